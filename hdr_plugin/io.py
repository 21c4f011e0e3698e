"""Image reading and writing.

* :func:`read_ldr` reads 8/16-bit PNG, JPEG (EXIF orientation applied), TIFF and WebP and
  returns **RGB** float32 display-referred values in [0, 1] plus the alpha channel if any.
* :func:`read_hdr` reads Radiance ``.hdr`` and OpenEXR files as **RGB** float32 scene-linear.
* :func:`write_exr` / :func:`write_hdr` write **RGB** float32 scene-linear images atomically
  (temporary file in the target folder, then rename) and refuse to overwrite unless asked.

OpenEXR goes through the ``OpenEXR`` package (OpenCV 5 wheels are built without it).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import sys
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .color import REC709_CHROMATICITIES, REC709_LUMA

LDR_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
HDR_EXTENSIONS = (".exr", ".hdr")
HALF_MAX = 65504.0
EXR_COMPRESSIONS = ("zip", "piz", "none", "zips", "rle", "dwaa", "dwab")


class ImageReadError(ValueError):
    """An input file is missing, unreadable or not a supported image.

    Every failure of every decoder (OpenCV, OpenEXR, Pillow) surfaces as this type or one
    of its subclasses; ``path`` is the file and ``problem`` says what is wrong in words.
    """

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class ImageTooLargeError(ImageReadError):
    """The header claims more pixels than the limit (``max_pixels``, CLI ``--max-pixels``)."""


class CorruptImageError(ImageReadError):
    """The file is truncated or its data is corrupt (also decoder warnings, unless allowed)."""


class CorruptImageWarning(UserWarning):
    """A decoder reported corrupt data but ``allow_corrupt=True`` converted the image anyway."""


#: Default pixel limit: 8K (7680x4320 = 33 MP) and 100-MP medium-format photos
#: (11648x8736 = 101.8 MP) pass; a 14000x14000 image (196 MP) needs ``--max-pixels``.
DEFAULT_MAX_PIXELS = 120_000_000
#: The most channels an OpenEXR input may declare (multi-layer renders have dozens).
MAX_EXR_CHANNELS = 1024


@dataclass
class LDRImage:
    """A decoded display-referred image: ``rgb`` float32 (H, W, 3) in [0, 1], optional ``alpha`` (H, W).

    ``alpha_associated`` says whether ``rgb`` is already multiplied by alpha (EXR inputs)
    or straight (PNG, TIFF, WebP).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    path: Path | None = None
    alpha_associated: bool = False
    #: the file's colour as :func:`hdr_plugin.input_color.detect` found it (None: not inspected, taken as sRGB)
    color: object | None = None  # an hdr_plugin.input_color.InputColor


@dataclass
class ImageHeader:
    """What a file's header says, read before anything is decoded (see :func:`probe_image`)."""

    format: str  # "PNG", "JPEG", "TIFF", "WebP", "BMP", "PNM", "OpenEXR", "Radiance HDR"
    width: int
    height: int
    channels: int | None = None
    #: a structural problem found without decoding ("truncated PNG: ..."), or None
    damage: str | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def is_float(self) -> bool:
        return self.format in ("OpenEXR", "Radiance HDR")


def _cv2():
    import cv2

    return cv2


# --------------------------------------------------------------------------- raw bytes
def _check_file(path: Path) -> int:
    """The file's size, or an :class:`ImageReadError` saying why it cannot be read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageReadError("broken symbolic link (its target does not exist)", path) from None
        raise ImageReadError("no such file", path) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageReadError("symbolic link loop (the link points back at itself)", path) from None
        raise ImageReadError(f"cannot be read ({e.strerror or e})", path) from None
    except ValueError as e:  # embedded NUL in the name
        raise ImageReadError(f"not a valid file name ({e})", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError("is a folder, not an image file", path)
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError("not a regular file (a device, pipe or socket)", path)
    if st.st_size == 0:
        raise CorruptImageError("empty file (0 bytes), not a readable image", path)
    return st.st_size


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except PermissionError:
        raise ImageReadError("permission denied", path) from None
    except IsADirectoryError:
        raise ImageReadError("is a folder, not an image file", path) from None
    except OSError as e:
        raise ImageReadError(f"cannot be read ({e.strerror or e})", path) from None


# --------------------------------------------------------------------------- headers
class _HeaderError(Exception):
    """Internal: a header that cannot be parsed (turned into ImageReadError with the path)."""


def _u16(b: bytes, o: int, big: bool = True) -> int:
    if o + 2 > len(b):
        raise _HeaderError("header ends early")
    return int.from_bytes(b[o : o + 2], "big" if big else "little")


def _u32(b: bytes, o: int, big: bool = True) -> int:
    if o + 4 > len(b):
        raise _HeaderError("header ends early")
    return int.from_bytes(b[o : o + 4], "big" if big else "little")


def _png_header(b: bytes) -> ImageHeader:
    if len(b) < 33 or b[12:16] != b"IHDR":
        raise _HeaderError("truncated PNG: no IHDR header" if len(b) < 33 else "corrupt PNG: the first chunk is not IHDR")
    w, h = _u32(b, 16), _u32(b, 20)
    depth, ctype = b[24], b[25]
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(ctype)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        raise _HeaderError(f"corrupt PNG: invalid colour type {ctype} / bit depth {depth}")
    # walk every chunk: CRCs, IEND, truncation (cheap: zlib.crc32 runs in C)
    damage = None
    o, seen_idat, seen_iend = 8, False, False
    while o + 8 <= len(b):
        n = _u32(b, o)
        kind = b[o + 4 : o + 8]
        if n > 0x7FFFFFFF:
            damage = f"corrupt PNG: chunk length {n} at byte {o}"
            break
        if o + 12 + n > len(b):
            damage = f"truncated PNG: the file ends inside its {kind.decode('latin-1')!r} chunk ({len(b)} bytes)"
            break
        if zlib.crc32(b[o + 4 : o + 8 + n]) != _u32(b, o + 8 + n):
            damage = f"corrupt PNG: CRC error in the {kind.decode('latin-1')!r} chunk at byte {o}"
            break
        seen_idat |= kind == b"IDAT"
        o += 12 + n
        if kind == b"IEND":
            seen_iend = True
            break
    if damage is None and not seen_iend:
        damage = "truncated PNG: no image data" if not seen_idat else f"truncated PNG: no IEND chunk ({len(b)} bytes)"
    return ImageHeader("PNG", w, h, channels, damage)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(b: bytes) -> ImageHeader:
    o = 2
    while True:
        while o < len(b) and b[o] != 0xFF:  # tolerate junk between segments (libjpeg warns)
            o += 1
        while o < len(b) and b[o] == 0xFF:
            o += 1
        if o >= len(b):
            raise _HeaderError("truncated JPEG: the file ends before the frame header")
        marker = b[o]
        o += 1
        if marker in (0x01, *range(0xD0, 0xD8)):
            continue
        if marker == 0xD9 or marker == 0xDA:
            raise _HeaderError("corrupt JPEG: no frame header before the image data")
        n = _u16(b, o)
        if n < 2:
            raise _HeaderError(f"corrupt JPEG: segment length {n}")
        if marker in _SOF:
            if o + 8 > len(b):
                raise _HeaderError("truncated JPEG: the file ends inside the frame header")
            h, w, nc = _u16(b, o + 3), _u16(b, o + 5), b[o + 7]
            if h == 0:
                raise _HeaderError("JPEG with a DNL (height defined later) frame header, not supported")
            sos = b.find(b"\xff\xda", o + n)
            damage = None
            if sos < 0:
                damage = "truncated JPEG: no image data after the frame header"
            elif b.rfind(b"\xff\xd9") < sos:
                damage = f"truncated JPEG: no end-of-image marker ({len(b)} bytes)"
            return ImageHeader("JPEG", w, h, nc, damage)
        o += n


def _tiff_header(b: bytes) -> ImageHeader:
    big = b[:2] == b"MM"
    end = "big" if big else "little"
    version = _u16(b, 2, big)
    bigtiff = version == 43
    if bigtiff:
        if len(b) < 16:
            raise _HeaderError("truncated TIFF header")
        ifd = int.from_bytes(b[8:16], end)
    else:
        ifd = _u32(b, 4, big)
    if ifd < 8 or ifd >= len(b):
        raise _HeaderError(f"truncated TIFF: its first directory lies at byte {ifd}, the file has {len(b)}")
    count_size, entry_size, value_size = (8, 20, 8) if bigtiff else (2, 12, 4)
    if ifd + count_size > len(b):
        raise _HeaderError("truncated TIFF directory")
    count = int.from_bytes(b[ifd : ifd + count_size], end)
    if count == 0 or count > 4096:
        raise _HeaderError(f"corrupt TIFF: {count} directory entries")
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
    tags: dict[int, list[int]] = {}
    for i in range(count):
        e = ifd + count_size + i * entry_size
        if e + entry_size > len(b):
            raise _HeaderError("truncated TIFF: the file ends inside the first directory")
        tag = int.from_bytes(b[e : e + 2], end)
        typ = int.from_bytes(b[e + 2 : e + 4], end)
        n = int.from_bytes(b[e + 4 : e + 4 + value_size], end)
        if tag not in (256, 257, 277, 273, 279, 324, 325) or typ not in (3, 4, 16):
            continue
        item = sizes[typ]
        if n * item <= value_size:
            raw = b[e + 4 + value_size : e + 4 + value_size + n * item]
        else:
            at = int.from_bytes(b[e + 4 + value_size : e + 4 + 2 * value_size], end)
            if at + n * item > len(b):
                tags[tag] = [-1]  # an array beyond the end of the file
                continue
            raw = b[at : at + n * item]
        tags[tag] = [int.from_bytes(raw[k : k + item], end) for k in range(0, n * item, item)][: 1 << 20]
    if 256 not in tags or 257 not in tags:
        raise _HeaderError("corrupt TIFF: no image width/height in the first directory")
    w, h = tags[256][0], tags[257][0]
    channels = tags.get(277, [1])[0]
    damage = None
    for off_tag, len_tag in ((273, 279), (324, 325)):
        offs, lens = tags.get(off_tag), tags.get(len_tag)
        if offs is None or lens is None:
            continue
        if offs == [-1] or lens == [-1]:
            damage = "truncated TIFF: its strip/tile table lies beyond the end of the file"
            break
        last = max((o + n for o, n in zip(offs, lens)), default=0)
        if last > len(b):
            damage = f"truncated TIFF: the image data needs {last} bytes, the file has {len(b)}"
            break
    return ImageHeader("TIFF", w, h, channels, damage)


def _webp_header(b: bytes) -> ImageHeader:
    riff = int.from_bytes(b[4:8], "little")
    damage = None
    if riff + 8 > len(b):
        damage = f"truncated WebP: the header says {riff + 8} bytes, the file has {len(b)}"
    kind = b[12:16]
    if len(b) < 30:
        raise _HeaderError("truncated WebP header")
    if kind == b"VP8X":
        w = 1 + int.from_bytes(b[24:27], "little")
        h = 1 + int.from_bytes(b[27:30], "little")
        channels = 4 if b[20] & 0x10 else 3
    elif kind == b"VP8L":
        if b[20] != 0x2F:
            raise _HeaderError("corrupt WebP: bad lossless signature")
        bits = int.from_bytes(b[21:25], "little")
        w, h = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        channels = 4 if (bits >> 28) & 1 else 3
    elif kind == b"VP8 ":
        if b[23:26] != b"\x9d\x01\x2a":
            raise _HeaderError("corrupt WebP: bad VP8 start code")
        w = int.from_bytes(b[26:28], "little") & 0x3FFF
        h = int.from_bytes(b[28:30], "little") & 0x3FFF
        channels = 3
    else:
        raise _HeaderError(f"unsupported WebP chunk {kind!r}")
    return ImageHeader("WebP", w, h, channels, damage)


def _bmp_header(b: bytes) -> ImageHeader:
    dib = _u32(b, 14, False)
    if dib == 12:
        w, h, bpp = _u16(b, 18, False), _u16(b, 20, False), _u16(b, 24, False)
    else:
        if len(b) < 30:
            raise _HeaderError("truncated BMP header")
        w = int.from_bytes(b[18:22], "little", signed=True)
        h = abs(int.from_bytes(b[22:26], "little", signed=True))
        bpp = _u16(b, 28, False)
    if w <= 0:
        raise _HeaderError(f"corrupt BMP: width {w}")
    damage = None
    offset = _u32(b, 10, False)
    compression = _u32(b, 30, False) if dib >= 40 else 0
    if compression in (0, 3) and bpp in (1, 4, 8, 16, 24, 32):
        need = offset + ((w * bpp + 31) // 32) * 4 * h
        if need > len(b):
            damage = f"truncated BMP: the pixels need {need} bytes, the file has {len(b)}"
    return ImageHeader("BMP", w, h, 4 if bpp == 32 else 3, damage)


def _pnm_header(b: bytes) -> ImageHeader:
    fields, o = [], 2
    need = 2 if b[1:2] in (b"1", b"4") else 3
    while len(fields) < need:
        while o < len(b) and b[o : o + 1].isspace():
            o += 1
        if o < len(b) and b[o : o + 1] == b"#":
            while o < len(b) and b[o : o + 1] not in (b"\n", b"\r"):
                o += 1
            continue
        start = o
        while o < len(b) and b[o : o + 1].isdigit():
            o += 1
        if start == o:
            raise _HeaderError("corrupt PNM header")
        fields.append(int(b[start:o]))
    return ImageHeader("PNM", fields[0], fields[1], 3 if b[1:2] in (b"3", b"6") else 1)


def _radiance_header(b: bytes) -> ImageHeader:
    end = b.find(b"\n\n")
    if end < 0:
        raise _HeaderError("truncated Radiance HDR header")
    line_end = b.find(b"\n", end + 2)
    line = b[end + 2 : line_end if line_end >= 0 else len(b)].decode("latin-1", "replace").split()
    if len(line) != 4 or line[0][1:] not in ("X", "Y") or line[2][1:] not in ("X", "Y") or line[0][1:] == line[2][1:]:
        raise _HeaderError("corrupt Radiance HDR: no resolution line")
    try:
        a, c = int(line[1]), int(line[3])
    except ValueError:
        raise _HeaderError("corrupt Radiance HDR: bad resolution line") from None
    h, w = (a, c) if line[0][1:] == "Y" else (c, a)
    if line_end < 0 or line_end + 1 >= len(b):
        return ImageHeader("Radiance HDR", w, h, 3, "truncated Radiance HDR: no pixel data")
    return ImageHeader("Radiance HDR", w, h, 3)


_EXR_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


def _exr_parse(b: bytes, size: int) -> tuple[ImageHeader, dict]:
    """Parse an OpenEXR header (first part); ``size`` is the whole file's size."""
    version = _u32(b, 4, False)
    if version & 0xFF != 2:
        raise _HeaderError(f"unsupported OpenEXR version {version & 0xFF}")
    if version & 0x800:
        raise _HeaderError("deep-data OpenEXR, not an image this tool can read")
    multipart, tiled = bool(version & 0x1000), bool(version & 0x200)
    attrs: dict[str, tuple[str, bytes]] = {}
    o = 8
    while True:
        if o >= len(b):
            raise _HeaderError("truncated EXR: the file ends inside its header")
        if b[o] == 0:
            o += 1
            break
        name_end = b.find(b"\0", o, o + 256)
        type_end = b.find(b"\0", name_end + 1, name_end + 257) if name_end >= 0 else -1
        if name_end < 0 or type_end < 0 or type_end + 5 > len(b):
            raise _HeaderError("truncated EXR: the file ends inside its header" if len(b) >= size else "corrupt EXR header")
        n = int.from_bytes(b[type_end + 1 : type_end + 5], "little", signed=True)
        if n < 0 or type_end + 5 + n > size:
            raise _HeaderError(f"corrupt EXR header: attribute size {n}")
        if type_end + 5 + n > len(b):
            raise _HeaderError("truncated EXR: the file ends inside its header")
        name = b[o:name_end].decode("latin-1")
        attrs[name] = (b[name_end + 1 : type_end].decode("latin-1"), b[type_end + 5 : type_end + 5 + n])
        o = type_end + 5 + n
    if multipart:  # skip the other parts' headers; offset tables follow the empty header
        while o < len(b) and b[o] != 0:
            while o < len(b) and b[o] != 0:
                name_end = b.find(b"\0", o)
                type_end = b.find(b"\0", name_end + 1) if name_end >= 0 else -1
                if type_end < 0 or type_end + 5 > len(b):
                    raise _HeaderError("truncated EXR: the file ends inside its header")
                n = int.from_bytes(b[type_end + 1 : type_end + 5], "little", signed=True)
                if n < 0:
                    raise _HeaderError(f"corrupt EXR header: attribute size {n}")
                o = type_end + 5 + n
            o += 1
        o += 1
    for need in ("dataWindow", "channels", "compression"):
        if need not in attrs:
            raise _HeaderError(f"corrupt EXR header: no {need!r} attribute")
    typ, dw = attrs["dataWindow"]
    if typ != "box2i" or len(dw) != 16:
        raise _HeaderError("corrupt EXR header: bad dataWindow")
    x0, y0, x1, y1 = (int.from_bytes(dw[k : k + 4], "little", signed=True) for k in range(0, 16, 4))
    w, h = x1 - x0 + 1, y1 - y0 + 1
    if w <= 0 or h <= 0:
        raise _HeaderError(f"corrupt EXR header: empty data window ({x0},{y0})-({x1},{y1})")
    chl = attrs["channels"][1]
    names, k = [], 0
    while k < len(chl) and chl[k] != 0:
        end = chl.find(b"\0", k)
        if end < 0 or end + 17 > len(chl):
            raise _HeaderError("corrupt EXR header: bad channel list")
        names.append(chl[k:end].decode("latin-1"))
        k = end + 17
    compression = attrs["compression"][1][:1]
    info = {"names": names, "multipart": multipart, "tiled": tiled or "tiles" in attrs, "table": o,
            "compression": compression[0] if compression else -1, "attrs": attrs}
    return ImageHeader("OpenEXR", w, h, len(names)), info


def _exr_damage(path: Path, head: ImageHeader, info: dict, size: int) -> str | None:
    """Check the chunk offset table against the file size (truncation, unwritten chunks)."""
    if info["multipart"]:
        if "chunkCount" not in info["attrs"]:
            return None
        chunks = int.from_bytes(info["attrs"]["chunkCount"][1][:4], "little", signed=True)
    elif info["tiled"]:
        tiles = info["attrs"].get("tiles", ("", b""))[1]
        if len(tiles) < 9 or tiles[8] & 0x0F != 0:  # only ONE_LEVEL tiled images are checked
            return None
        tx, ty = int.from_bytes(tiles[0:4], "little"), int.from_bytes(tiles[4:8], "little")
        if tx <= 0 or ty <= 0:
            return "corrupt EXR header: tile size 0"
        chunks = -(-head.width // tx) * -(-head.height // ty)
    else:
        lines = _EXR_LINES.get(info["compression"])
        if lines is None:
            return None
        chunks = -(-head.height // lines)
    table = info["table"]
    if chunks <= 0 or table + 8 * chunks > size:
        return f"truncated EXR: the file ends inside its chunk table ({size} bytes)"
    with open(path, "rb") as f:
        f.seek(table)
        offsets = np.frombuffer(f.read(8 * chunks), dtype="<u8")
        if (offsets == 0).any():
            return f"truncated EXR: {int((offsets == 0).sum())} of {chunks} chunks were never written (incomplete file)"
        if (offsets < table + 8 * chunks).any() or (offsets >= size).any():
            return f"truncated EXR: chunk offsets point beyond the end of the file ({size} bytes)"
        last = int(offsets.max())
        f.seek(last)
        # scanline chunk: [part], y, size; tiled: [part], 4 ints, size
        skip = (4 if info["multipart"] else 0) + (16 if info["tiled"] else 4)
        chunk_head = f.read(skip + 4)
    if len(chunk_head) < skip + 4:
        return f"truncated EXR: the file ends inside its last chunk ({size} bytes)"
    n = int.from_bytes(chunk_head[skip : skip + 4], "little", signed=True)
    if n < 0 or last + skip + 4 + n > size:
        return f"truncated EXR: the last chunk needs {last + skip + 4 + max(n, 0)} bytes, the file has {size}"
    return None


def _detect(b: bytes) -> str | None:
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if b[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if b[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "TIFF"
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return "WebP"
    if b[:2] == b"BM" and len(b) >= 18:
        return "BMP"
    if b[:4] == b"\x76\x2f\x31\x01":
        return "OpenEXR"
    if b[:2] == b"#?":
        return "Radiance HDR"
    if len(b) > 2 and b[:1] == b"P" and b[1:2] in b"123456" and b[2:3].isspace():
        return "PNM"
    return None


_PARSERS = {"PNG": _png_header, "JPEG": _jpeg_header, "TIFF": _tiff_header, "WebP": _webp_header,
            "BMP": _bmp_header, "PNM": _pnm_header, "Radiance HDR": _radiance_header}
_NOT_AN_IMAGE = "not an image (not a readable PNG, JPEG, TIFF, WebP, BMP, OpenEXR or Radiance HDR file)"


def _probe(path: Path, data: bytes, size: int) -> tuple[ImageHeader, dict]:
    kind = _detect(data)
    if kind is None:
        raise ImageReadError(_NOT_AN_IMAGE, path)
    try:
        if kind == "OpenEXR":
            head, info = _exr_parse(data, size)
            if head.channels and head.channels <= MAX_EXR_CHANNELS:
                head.damage = _exr_damage(path, head, info, size)
        else:
            head, info = _PARSERS[kind](data), {}
    except _HeaderError as e:
        cls = CorruptImageError if str(e).startswith(("truncated", "corrupt")) else ImageReadError
        raise cls(str(e), path) from None
    except (IndexError, ValueError, OverflowError, UnicodeDecodeError) as e:  # a lie we did not foresee
        raise CorruptImageError(f"corrupt {kind} header ({type(e).__name__}: {e})", path) from None
    if head.width <= 0 or head.height <= 0:
        raise CorruptImageError(f"corrupt {kind} header: {head.width}x{head.height} pixels", path)
    return head, info


def probe_image(path: str | os.PathLike) -> ImageHeader:
    """Read only what describes an image file: format, size, channels, structural damage.

    Nothing is decoded.  Raises :class:`ImageReadError` (with the file's name) when the
    file is missing, not an image, or its header is unreadable.
    """
    return _open(path, None)[2]


def check_pixel_limit(head: ImageHeader, path: Path | None, max_pixels: int | None) -> None:
    """Refuse an image whose header claims more than ``max_pixels`` pixels (None: no limit)."""
    if max_pixels is not None and head.pixels > max_pixels:
        raise ImageTooLargeError(
            f"{head.format} header claims {head.width}x{head.height} pixels ({head.pixels / 1e6:.1f} MP), "
            f"above the limit of {max_pixels} ({max_pixels / 1e6:.1f} MP); raise it with --max-pixels "
            "(Python: max_pixels=) if the image is genuine",
            path,
        )


def _corrupt(path: Path, problem: str, allow_corrupt: bool, decoded: bool) -> None:
    """Raise for corrupt data, or warn when ``allow_corrupt`` and an image was decoded anyway."""
    if allow_corrupt and decoded:
        warnings.warn(CorruptImageWarning(f"{path}: {problem}; converted anyway (--allow-corrupt)"), stacklevel=3)
        return
    hint = "" if decoded is False else "; --allow-corrupt converts it anyway"
    raise CorruptImageError(problem + hint, path)


# --------------------------------------------------------------------------- decoder messages
_STDERR_LOCK = threading.Lock()
_DAMAGE_WORDS = re.compile(
    r"corrupt|premature|truncat|crc|invalid|extraneous|read error|seek error|incomplete|too much|"
    r"not enough|extra compressed|bad |unexpected end|huffman|out of range|damaged|error|exception|inconsistent|"
    r"bogus|not defined|sequential",
    re.I,
)
_BENIGN = re.compile(
    r"iCCP|sRGB profile|cHRM|unknown field|unknown tag|ASCII value|wrong data type|unrecognized|JFIF revision|"
    r"thumbnail|JFXX",
    re.I,
)


def _flush_c_stdio() -> None:
    """Flush C stdio buffers (C++ iostreams write through them) so captured text lands now."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # no libc symbols (Windows): the decoders there write unbuffered
        pass


@contextlib.contextmanager
def _decoder_messages(fds: tuple[int, ...] = (2,)):
    """Capture what C decoders print while decoding (libjpeg's "Corrupt JPEG data", libpng
    warnings, libtiff errors on fd 2; the OpenEXR binding's "Exception raised reading
    pixel data" on fd 1); yields a list filled with the lines.

    Output of other threads in that moment is taken for the decoder's (decodes are short).
    """
    lines: list[str] = []
    with _STDERR_LOCK:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        _flush_c_stdio()
        captured = []
        try:
            for fd in fds:
                try:
                    saved = os.dup(fd)
                except OSError:  # no such descriptor (some embedded hosts): not listened to
                    continue
                tmp = tempfile.TemporaryFile()
                os.dup2(tmp.fileno(), fd)
                captured.append((fd, saved, tmp))
            yield lines
        finally:
            _flush_c_stdio()
            for fd, saved, tmp in reversed(captured):
                os.dup2(saved, fd)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read(1 << 16).decode("utf-8", "replace")
                tmp.close()
                # everything printed while the lock is held is taken as the decoder's: libjpeg's
                # warnings carry no prefix ("Inconsistent progression sequence ...")
                lines += [line.strip() for line in text.splitlines() if line.strip()]


def _damage_in(lines: list[str]) -> str | None:
    """The first decoder message that reports damaged data (benign chatter is ignored)."""
    for line in lines:
        if _DAMAGE_WORDS.search(line) and not _BENIGN.search(line):
            line = re.sub(r"^\[[^\]]*\]\s*(global\s+\S+\s+)?", "", line)  # OpenCV's log prefix
            line = re.sub(r"^.*?: (\(EXR_ERR)", r"\1", line)  # OpenEXR repeats the file name
            return line[:200]
    return None


def _imdecode(path: Path, data: bytes, head: ImageHeader, allow_corrupt: bool, flags: int) -> np.ndarray:
    cv2 = _cv2()
    if head.damage and not allow_corrupt:
        raise CorruptImageError(head.damage, path)
    with _decoder_messages() as lines:
        try:
            a = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        except cv2.error as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else "decoder error"
            if "memory" in msg.lower() or "alloc" in msg.lower():
                raise ImageTooLargeError(
                    f"not enough memory to decode {head.width}x{head.height} pixels; lower --max-pixels or free memory", path
                ) from None
            if "limit" in msg.lower() or "too big" in msg.lower() or "pixels" in msg.lower():
                raise ImageTooLargeError(
                    f"{head.width}x{head.height} pixels is above OpenCV's own decoder limit "
                    "(environment variable OPENCV_IO_MAX_IMAGE_PIXELS)",
                    path,
                ) from None
            raise CorruptImageError(f"corrupt {head.format} data (OpenCV: {msg})", path) from None
        except MemoryError:
            raise ImageTooLargeError(
                f"not enough memory to decode {head.width}x{head.height} pixels; lower --max-pixels or free memory", path
            ) from None
    damage = _damage_in(lines)
    if a is None or a.size == 0:
        problem = head.damage or (f"corrupt {head.format} data ({damage})" if damage else f"corrupt {head.format} data: the decoder could not read it")
        raise CorruptImageError(problem, path)
    if head.damage:
        _corrupt(path, head.damage, allow_corrupt, True)
    elif damage:
        _corrupt(path, f"corrupt {head.format} data ({damage})", allow_corrupt, True)
    return a


# --------------------------------------------------------------------------- LDR files
def _exif_orientation(data: bytes, fmt: str) -> int:
    if fmt not in ("JPEG", "PNG", "TIFF", "WebP"):
        return 1
    try:
        from PIL import Image
    except ImportError:  # pillow comes with imageio; without it orientation stays as stored
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: our limit applies
            with Image.open(io.BytesIO(data)) as im:
                value = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # damaged EXIF never stops a decodable image: it is shown as stored
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W, ...) array so that it displays upright (EXIF tag 274 values)."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.swapaxes(x, 0, 1)[:, ::-1],
        7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1],
        8: lambda x: np.swapaxes(x, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


def decode_ldr_array(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Split an OpenCV-order (BGR/BGRA/gray) integer array into RGB [0, 1], alpha and bit depth.

    Each channel is converted straight into the float32 result: no full-size float copy
    of the decoded array is made on the way.
    """
    if a.dtype == np.uint8:
        scale, depth = 255.0, 8
    elif a.dtype == np.uint16:
        scale, depth = 65535.0, 16
    elif a.dtype == np.float32:
        scale, depth = 1.0, 32
    else:
        raise ImageReadError(f"unsupported pixel type {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ImageReadError(f"unsupported array rank {a.ndim}")
    c = a.shape[2]
    if c not in (1, 2, 3, 4):
        raise ImageReadError(f"unsupported channel count {c}")
    h, w = a.shape[:2]
    rgb = np.empty((h, w, 3), np.float32)
    colour = [0, 0, 0] if c <= 2 else [2, 1, 0]  # gray is repeated; BGR becomes RGB
    div = np.float32(scale)
    for i, src in enumerate(colour):
        if i and colour[i] == colour[0]:
            rgb[:, :, i] = rgb[:, :, 0]
        else:
            np.divide(a[:, :, src], div, out=rgb[:, :, i], casting="unsafe")
    alpha = None
    if c in (2, 4):
        alpha = np.empty((h, w), np.float32)
        np.divide(a[:, :, c - 1], div, out=alpha, casting="unsafe")
    return rgb, alpha, depth


def _decode_ldr(path: Path, data: bytes, head: ImageHeader, allow_corrupt: bool) -> LDRImage:
    cv2 = _cv2()
    a = _imdecode(path, data, head, allow_corrupt, cv2.IMREAD_UNCHANGED)
    if a.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{a.dtype} pixels; expected an 8- or 16-bit display-referred image", path)
    try:
        rgb, alpha, depth = decode_ldr_array(a)
    except ImageReadError as e:
        raise ImageReadError(e.problem, path) from None
    del a
    from .input_color import InputColorError, detect

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="PIL")  # damaged EXIF chatter; the pixels decoded
            color = detect(path, data)  # ICC / PNG cICP, sRGB / EXIF colour tags; pixels stay as stored
    except InputColorError as e:
        raise ImageReadError(str(e), path) from None
    except MemoryError:
        raise ImageTooLargeError("not enough memory to read its embedded colour profile", path) from None
    except Exception as e:  # a damaged profile or colour chunk (zlib, struct, index errors)
        raise CorruptImageError(f"corrupt colour information ({type(e).__name__}: {str(e)[:160]})", path) from None
    orientation = _exif_orientation(data, head.format)
    rgb = _apply_orientation(rgb, orientation)
    alpha = _apply_orientation(alpha, orientation) if alpha is not None else None
    return LDRImage(rgb, alpha, depth, path, color=color)


def _open(path: str | os.PathLike, max_pixels: int | None) -> tuple[Path, bytes, ImageHeader, dict, int]:
    """Check the file, read it (OpenEXR: only its header), probe it and apply the pixel limit."""
    path = Path(path)
    size = _check_file(path)
    kind = _detect(_read_bytes(path, 64))
    if kind is None:
        raise ImageReadError(_NOT_AN_IMAGE, path)
    if kind == "OpenEXR":  # the OpenEXR library reads the pixels itself
        data = _read_bytes(path, min(size, 16 << 20))
    else:
        if max_pixels is not None and size > max_pixels * 16 + (64 << 20):
            raise ImageTooLargeError(
                f"{size / 1e9:.1f} GB file, larger than any image within the limit of {max_pixels} pixels; "
                "raise it with --max-pixels",
                path,
            )
        data = _read_bytes(path)
    head, info = _probe(path, data, size)
    check_pixel_limit(head, path, max_pixels)
    return path, data, head, info, size


def read_ldr(
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, allow_corrupt: bool = False
) -> LDRImage:
    """Read an 8/16-bit display-referred image file as RGB float32 in [0, 1].

    The header is checked before anything is decoded: ``max_pixels`` (None: no limit)
    refuses larger images with :class:`ImageTooLargeError`; truncated files and data the
    decoder reports as corrupt raise :class:`CorruptImageError`, or with
    ``allow_corrupt=True`` are decoded anyway with a :class:`CorruptImageWarning`.
    """
    path, data, head, _, _ = _open(path, max_pixels)
    if head.is_float:
        raise ImageReadError(f"an {head.format} float image, not an 8/16-bit one; read it with read_input()", path)
    return _decode_ldr(path, data, head, allow_corrupt)


def _yc_to_rgb(channels: dict, height: int, width: int) -> np.ndarray:
    """Decode an OpenEXR luminance/chroma (Y, RY, BY) image to RGB (chroma upsampled bilinearly)."""
    cv2 = _cv2()
    y = channels["Y"].pixels.astype(np.float32)

    def full(name: str) -> np.ndarray:
        c = channels[name].pixels.astype(np.float32)
        return cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) if c.shape != (height, width) else c

    wr, wg, wb = REC709_LUMA
    r = (full("RY") + 1.0) * y
    b = (full("BY") + 1.0) * y
    g = (y - wr * r - wb * b) / wg
    return np.stack([r, g, b], axis=-1)


def _read_exr(path: Path, head: ImageHeader, info: dict, allow_corrupt: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an OpenEXR file (first part) to RGB float32 and its ``A`` channel if any."""
    names = set(info["names"])
    if head.channels is not None and head.channels > MAX_EXR_CHANNELS:
        raise ImageTooLargeError(f"OpenEXR with {head.channels} channels (at most {MAX_EXR_CHANNELS} are read)", path)
    if not ({"R", "G", "B"} <= names or "Y" in names):
        raise ImageReadError(f"no R,G,B or Y channels (has {sorted(names)[:20]})", path)
    if head.damage and not allow_corrupt:
        raise CorruptImageError(head.damage, path)
    import OpenEXR

    try:
        with _decoder_messages((1, 2)) as lines:
            with OpenEXR.File(str(path), separate_channels=True) as f:
                ch = f.parts[0].channels
                names = set(ch)
                shape = (head.height, head.width)
                if {"R", "G", "B"} <= names:
                    planes = [ch[c].pixels for c in "RGB"]
                    if any(p is None or p.shape != shape for p in planes):
                        raise CorruptImageError("corrupt EXR: its R, G, B channels do not match the data window", path)
                    rgb = np.empty(shape + (3,), np.float32)
                    for i, p in enumerate(planes):
                        rgb[:, :, i] = p
                elif {"Y", "RY", "BY"} <= names:
                    rgb = _yc_to_rgb(ch, *shape)
                elif "Y" in names:
                    rgb = np.repeat(ch["Y"].pixels.astype(np.float32)[:, :, None], 3, axis=2)
                else:
                    raise ImageReadError(f"no R,G,B or Y channels (has {sorted(names)[:20]})", path)
                alpha = np.ascontiguousarray(ch["A"].pixels, dtype=np.float32) if "A" in names else None
                if alpha is not None and alpha.shape != shape:
                    alpha = None
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageTooLargeError(f"not enough memory to decode {head.width}x{head.height} EXR pixels", path) from None
    except Exception as e:  # the OpenEXR binding raises IndexError, RuntimeError, TypeError ... for bad files
        problem = head.damage or f"corrupt EXR data (OpenEXR: {type(e).__name__}: {str(e)[:200]})"
        raise CorruptImageError(problem, path) from None
    damage = _damage_in(lines)
    if head.damage:
        _corrupt(path, head.damage, allow_corrupt, True)
    elif damage:  # the binding prints the decoder's error and returns what it could read
        _corrupt(path, f"corrupt EXR data ({damage})", allow_corrupt, True)
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha


def _read_float(path: Path, data: bytes, head: ImageHeader, info: dict, allow_corrupt: bool) -> tuple[np.ndarray, np.ndarray | None]:
    if head.format == "OpenEXR":
        return _read_exr(path, head, info, allow_corrupt)
    cv2 = _cv2()
    a = _imdecode(path, data, head, allow_corrupt, cv2.IMREAD_UNCHANGED)
    if a.ndim != 3 or a.shape[2] != 3:
        raise CorruptImageError(f"corrupt Radiance HDR data (decoded shape {a.shape})", path)
    return np.ascontiguousarray(a[:, :, ::-1], dtype=np.float32), None


def read_hdr(
    path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, allow_corrupt: bool = False
) -> np.ndarray:
    """Read an OpenEXR or Radiance file as RGB float32 scene-linear (H, W, 3); alpha dropped.

    The same checks as :func:`read_ldr` apply (header first, ``max_pixels``, corruption).
    """
    path, data, head, info, _ = _open(path, max_pixels)
    if not head.is_float:
        raise ImageReadError(f"a {head.format} file, not OpenEXR or Radiance HDR", path)
    return _read_float(path, data, head, info, allow_corrupt)[0]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


INPUT_ENCODINGS = ("display", "linear")


def read_input(
    path: str | os.PathLike,
    encoding: str | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_corrupt: bool = False,
) -> LDRImage:
    """Read any supported input as display-referred RGB [0, 1] for the engine.

    The format is taken from the file's content, not its name.  8/16-bit files go through
    the same path as :func:`read_ldr`.  Float files (OpenEXR, Radiance, e.g. frames
    rendered by a host) need ``encoding``: ``"display"`` when they hold display-referred
    values (clamped to [0, 1]), ``"linear"`` when they hold scene-linear Rec.709 values
    (sRGB-encoded first; what lies above 1.0 is clipped, as a camera would).  NaN becomes
    0.  An EXR ``A`` channel is returned as associated alpha.  ``max_pixels`` and
    ``allow_corrupt`` as in :func:`read_ldr`; every failure is an :class:`ImageReadError`
    naming the file.
    """
    path, data, head, info, _ = _open(path, max_pixels)
    if not head.is_float:
        return _decode_ldr(path, data, head, allow_corrupt)
    if encoding not in INPUT_ENCODINGS:
        raise ImageReadError(
            f"holds float data ({head.format}): say how it is encoded with --input-encoding display "
            "(display-referred values in [0, 1]) or --input-encoding linear (scene-linear, sRGB-encoded first)",
            path,
        )
    rgb, alpha = _read_float(path, data, head, info, allow_corrupt)
    np.nan_to_num(rgb, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    if encoding == "linear":
        from .color import linear_to_srgb

        rgb = linear_to_srgb(np.maximum(rgb, 0.0, out=rgb))
    if alpha is not None:
        np.nan_to_num(alpha, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return LDRImage(np.clip(rgb, 0.0, 1.0, out=rgb).astype(np.float32, copy=False), alpha, 32, path, alpha_associated=True)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    Raises :class:`FileExistsError` if ``path`` exists and ``overwrite`` is false.  On any
    exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} appeared while writing; not replaced")
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _check_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    if not np.isfinite(rgb).all():
        raise ValueError("image contains NaN or infinite values")
    return rgb.astype(np.float32, copy=False)


def write_exr(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    half: bool = True,
    compression: str = "zip",
    overwrite: bool = False,
    attributes: dict | None = None,
    premultiply: bool = True,
    chromaticities: tuple | None = None,
    layers: dict[str, dict[str, np.ndarray]] | None = None,
    multipart: bool = False,
) -> Path:
    """Write scene-linear RGB(A) to OpenEXR with Rec.709/D65 ``chromaticities``.

    ``chromaticities``: the 8 floats (red, green, blue, white xy) of another RGB space, or
    False to write none.
    ``layers``: extra layers, ``{layer: {channel name: (H, W) array}}`` (channel names as
    :mod:`hdr_plugin.passes` makes them, e.g. ``mask.Y``), written into the same part
    beside the RGB beauty, or one part per layer (part name = layer) with ``multipart``.

    ``half=True`` stores 16-bit floats unless a value exceeds the half range, in which
    case float32 is used so nothing saturates.  ``compression``: one of ``EXR_COMPRESSIONS``.
    With ``alpha``, ``rgb`` is taken as straight (un-associated) colour, as PNG and TIFF
    store it, and is multiplied by alpha because EXR readers expect associated alpha;
    ``premultiply=False`` writes ``rgb`` unchanged (data that is already premultiplied, or
    must pass through raw).  Returns the path written.
    """
    import OpenEXR

    rgb = _check_linear(rgb)
    compression = compression.lower()
    if compression not in EXR_COMPRESSIONS:
        raise ValueError(f"unknown EXR compression {compression!r}; choose from {', '.join(EXR_COMPRESSIONS)}")
    layers = layers or {}
    peak = max([float(np.abs(rgb).max(initial=0.0))] + [float(np.abs(c).max(initial=0.0)) for chans in layers.values() for c in chans.values()])
    use_half = half and peak <= HALF_MAX
    dtype = np.float16 if use_half else np.float32
    comp = {"none": "NO"}.get(compression, compression.upper())
    (rx, ry), (gx, gy), (bx, by), (wx, wy) = REC709_CHROMATICITIES
    header = {
        "compression": getattr(OpenEXR, f"{comp}_COMPRESSION"),
        "type": OpenEXR.scanlineimage,
        "chromaticities": tuple(chromaticities) if chromaticities else (rx, ry, gx, gy, bx, by, wx, wy),
    }
    if chromaticities is False:  # pixels in a space without meaningful primaries (e.g. an OCIO log space)
        del header["chromaticities"]
    header.update(attributes or {})
    channels = {name: np.ascontiguousarray(rgb[:, :, i]).astype(dtype) for i, name in enumerate("RGB")}
    if alpha is not None:
        alpha = np.asarray(alpha, dtype=np.float32)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
        channels["A"] = np.ascontiguousarray(alpha).astype(dtype)
        if premultiply:
            for i, name in enumerate("RGB"):
                channels[name] = (rgb[:, :, i] * alpha).astype(dtype)
    extra = {layer: {n: np.ascontiguousarray(c).astype(dtype) for n, c in chans.items()} for layer, chans in layers.items()}
    for chans in extra.values():
        for n, c in chans.items():
            if c.shape != rgb.shape[:2]:
                raise ValueError(f"layer channel {n} has shape {c.shape}, image is {rgb.shape[:2]}")
    if multipart and extra:
        parts = [OpenEXR.Part(header, channels, "rgba")]
        shared = {k: header[k] for k in ("compression", "type", "chromaticities") if k in header}
        parts += [OpenEXR.Part(dict(shared), c, layer) for layer, c in extra.items()]
        exr = OpenEXR.File(parts)
    else:
        for chans in extra.values():
            channels.update(chans)
        exr = OpenEXR.File(header, channels)
    with atomic_output(path, overwrite) as tmp:
        with exr as f:
            f.write(str(tmp))
    return Path(path)


def write_hdr(path: str | os.PathLike, rgb: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write scene-linear RGB to Radiance RGBE (about 1% precision; negatives become 0)."""
    rgb = np.maximum(_check_linear(rgb), 0.0)
    cv2 = _cv2()
    with atomic_output(path, overwrite) as tmp:
        ok, buf = cv2.imencode(".hdr", np.ascontiguousarray(rgb[:, :, ::-1]))
        if not ok:
            raise OSError(f"OpenCV could not encode {path}")
        buf.tofile(tmp)
    return Path(path)


def write_image(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None, **options) -> Path:
    """Write by extension: ``.exr`` through :func:`write_exr`, ``.hdr`` through :func:`write_hdr`."""
    suffix = Path(path).suffix.lower()
    if suffix == ".exr":
        return write_exr(path, rgb, alpha, **options)
    if suffix == ".hdr":  # RGBE: no alpha, no header attributes, one precision
        return write_hdr(path, rgb, overwrite=options.get("overwrite", False))
    raise ValueError(f"unsupported output extension {suffix!r}: use .exr or .hdr")
