"""Minimal OpenEXR reader/writer in pure Python (no numpy, no OpenEXR package).

GIMP's Python usually has neither numpy nor the OpenEXR package (GIMP's own EXR
exporter works on images, not on plain pixels), so the plug-in exchanges float pixels with the external engine through
the simplest valid OpenEXR files: single-part scanline images, ``NO_COMPRESSION``, 32-bit
``FLOAT`` channels.  The engine side reads and writes them with the real OpenEXR library
(``hdr_plugin.io``; ``hdr_plugin convert`` is asked for ``--float --compression none``).
Values travel bit for bit: nothing is quantised, nothing converted.

Pixels are passed as ``array.array('f')`` holding interleaved RGB rows, top row first.
"""

from __future__ import annotations

import array
import struct
import sys

MAGIC = 20000630
FLOAT, HALF, UINT = 2, 1, 0
_BIG_ENDIAN = sys.byteorder == "big"


class ExrError(ValueError):
    """The file is not an EXR this minimal reader handles."""


def _attr(name: str, type_name: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + type_name.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _le(a: array.array) -> bytes:
    if _BIG_ENDIAN:  # pragma: no cover - every host GIMP runs on is little-endian today
        a = array.array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def write_rgb(path: str, rgb: array.array, width: int, height: int) -> None:
    """Write interleaved float RGB (``len(rgb) == width * height * 3``) as an uncompressed EXR."""
    if len(rgb) != width * height * 3:
        raise ValueError(f"expected {width * height * 3} floats for {width}x{height} RGB, got {len(rgb)}")
    names = ("B", "G", "R")  # channels are stored in alphabetical order
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", FLOAT, 0, 1, 1) for n in names) + b"\0"
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = b"".join(
        [
            struct.pack("<ii", MAGIC, 2),
            _attr("channels", "chlist", chlist),
            _attr("compression", "compression", b"\0"),
            _attr("dataWindow", "box2i", box),
            _attr("displayWindow", "box2i", box),
            _attr("lineOrder", "lineOrder", b"\0"),
            _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
            _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
            _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
            b"\0",
        ]
    )
    planes = [rgb[2::3], rgb[1::3], rgb[0::3]]  # B, G, R
    row_bytes = width * 4 * 3
    first = len(header) + 8 * height
    offsets = array.array("Q", (first + y * (8 + row_bytes) for y in range(height)))
    with open(path, "wb") as f:
        f.write(header)
        f.write(_le(offsets))
        for y in range(height):
            f.write(struct.pack("<ii", y, row_bytes))
            for plane in planes:
                f.write(_le(plane[y * width : (y + 1) * width]))


def _cstr(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("latin-1"), end + 1


def _parse_chlist(value: bytes) -> list[tuple[str, int, int, int]]:
    out, pos = [], 0
    while value[pos : pos + 1] != b"\0":
        name, pos = _cstr(value, pos)
        ptype, _, xs, ys = struct.unpack_from("<iB3xii", value, pos)
        pos += 16
        out.append((name, ptype, xs, ys))
    return out


def read_rgb(path: str) -> tuple[array.array, int, int]:
    """Read R, G, B (FLOAT, uncompressed, scanline) as interleaved ``array('f')``, width, height."""
    with open(path, "rb") as f:
        data = f.read()
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != MAGIC:
        raise ExrError(f"{path}: not an OpenEXR file")
    if version & 0x1200:  # tiled (0x200) or multi-part (0x1000)
        raise ExrError(f"{path}: tiled or multi-part EXR; expected a scanline image")
    pos, attrs = 8, {}
    while data[pos : pos + 1] != b"\0":
        name, pos = _cstr(data, pos)
        type_name, pos = _cstr(data, pos)
        (size,) = struct.unpack_from("<i", data, pos)
        attrs[name] = (type_name, data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    pos += 1
    if attrs.get("compression", ("", b"\1"))[1] != b"\0":
        raise ExrError(f"{path}: compressed EXR; the engine must write --compression none")
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"][1])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    channels = _parse_chlist(attrs["channels"][1])
    names = [c[0] for c in channels]
    for want in "RGB":
        if want not in names:
            raise ExrError(f"{path}: no {want} channel (has {names})")
    for name, ptype, xs, ys in channels:
        if ptype != FLOAT or xs != 1 or ys != 1:
            raise ExrError(f"{path}: channel {name} is not full-resolution 32-bit float")
    offsets = array.array("Q")
    offsets.frombytes(data[pos : pos + 8 * height])
    if _BIG_ENDIAN:  # pragma: no cover
        offsets.byteswap()
    planes = {n: array.array("f") for n in "RGB"}
    row = width * 4
    for off in offsets:
        y, size = struct.unpack_from("<ii", data, off)
        if size != row * len(channels):
            raise ExrError(f"{path}: unexpected block size {size} at line {y}")
        p = off + 8
        for name, *_ in channels:
            if name in planes:
                planes[name].frombytes(data[p : p + row])
            p += row
    rgb = array.array("f", bytes(4 * 3 * width * height))
    if _BIG_ENDIAN:  # pragma: no cover
        for plane in planes.values():
            plane.byteswap()
    rgb[0::3], rgb[1::3], rgb[2::3] = planes["R"], planes["G"], planes["B"]
    return rgb, width, height
