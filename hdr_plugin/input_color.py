"""What colour an input file is in, read from the file, and how the engine gets it.

Sources, in the order that wins (PNG's own precedence, then EXIF):

1. a PNG ``cICP`` chunk (ITU-T H.273 code points);
2. an embedded ICC profile (PNG ``iCCP``, JPEG APP2, TIFF, WebP), read through Pillow;
3. a PNG ``sRGB`` chunk;
4. EXIF ``ColorSpace`` (0xA001: 1 = sRGB, 0xFFFF = uncalibrated) with the DCF
   ``InteropIndex`` (``R98`` = sRGB, ``R03`` = Adobe RGB (1998));
5. nothing: the file is taken as sRGB (what every browser and OS does with untagged files).

An ICC profile is *recognised* when it is a matrix/TRC RGB profile whose D50-adapted
colorants match one of :data:`hdr_plugin.color.INPUT_SPACES`' primaries (sRGB/Rec.709,
Display P3, Adobe RGB (1998), Rec.2020); its tone curves are then used as they are
(evaluated from the profile).  Any other RGB profile is converted to sRGB through
LittleCMS (Pillow ImageCms, relative colorimetric intent), and :attr:`InputColor.note`
says so.  CMYK files are refused with a clear error (convert them to RGB first).

The engine keeps reversing the camera curve itself; what follows the tag is the
primaries (the engine's output is scene-linear *in the input's primaries*, converted to
the output space afterwards by a matrix) and the transfer-function prior: code values
are re-encoded from the file's transfer function to the sRGB curve the engine's
camera-curve prior is centred on (a no-op for sRGB and Display P3).  All arrays here are
RGB (not BGR), display-referred, float32 in [0, 1].
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import color as C

log = logging.getLogger("hdr_plugin")

INPUT_SPACE_CHOICES = ("auto",) + tuple(C.INPUT_SPACES)


class InputColorError(ValueError):
    """The input's colour cannot be used (CMYK, an HDR transfer, an unknown name)."""


# =========================================================================== ICC profiles
def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536.0)))


def _from_s15(b: bytes) -> float:
    return struct.unpack(">i", b)[0] / 65536.0


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _mluc(text: str) -> bytes:
    s = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(s), 28) + s


def _para(transfer: str) -> bytes:
    """ICC parametricCurveType (decode direction: encoded -> linear) for a named transfer."""
    if transfer == "srgb":
        kind, params = 3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    elif transfer == "rec709":
        a = C.BT709_ALPHA
        kind, params = 3, (1 / 0.45, 1 / a, (a - 1) / a, 1 / 4.5, 4.5 * C.BT709_BETA)
    elif transfer == "adobe-rgb":
        kind, params = 0, (C.ADOBE_RGB_GAMMA,)
    elif transfer == "linear":
        kind, params = 0, (1.0,)
    else:
        raise ValueError(f"no ICC curve for transfer {transfer!r}")
    return b"para\0\0\0\0" + struct.pack(">HH", kind, 0) + b"".join(_s15(p) for p in params)


def pcs_adapted_matrix(space: C.RGBSpace) -> np.ndarray:
    """RGB -> XYZ matrix adapted (Bradford) to the ICC D50 PCS white: the profile's colorant columns."""
    return C.bradford_matrix(space.white, C.ICC_PCS_D50_XYZ) @ space.to_xyz()


def make_icc_profile(space: C.RGBSpace, transfer: str | None = None, description: str | None = None) -> bytes:
    """An ICC v4 matrix/TRC display profile for ``space`` (bytes).

    ``transfer`` overrides ``space.transfer`` (``"linear"`` gives the linear profile hosts
    such as GIMP tag scene-linear images with).  Colorants are Bradford-adapted to D50
    and ``chad`` records the adaptation, as ICC.1:2010 requires.
    """
    transfer = transfer or space.transfer
    description = description or (space.title if transfer == space.transfer else f"{space.title}, {transfer}")
    m = pcs_adapted_matrix(space)
    chad = C.bradford_matrix(space.white, C.ICC_PCS_D50_XYZ)
    curve = _para(transfer)
    tags = [
        (b"desc", _mluc(description)),
        (b"cprt", _mluc("No copyright, use freely")),
        (b"wtpt", _xyz_tag(C.ICC_PCS_D50_XYZ)),
        (b"chad", b"sf32\0\0\0\0" + b"".join(_s15(v) for v in chad.reshape(-1))),
        (b"rXYZ", _xyz_tag(m[:, 0])),
        (b"gXYZ", _xyz_tag(m[:, 1])),
        (b"bXYZ", _xyz_tag(m[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    shared: dict[bytes, int] = {}
    for sig, body in tags:
        if body in shared:  # the three TRCs share one curve, as most profiles do
            table += sig + struct.pack(">II", shared[body], len(body))
            continue
        while (offset + len(data)) % 4:
            data += b"\0"
        shared[body] = offset + len(data)
        table += sig + struct.pack(">II", shared[body], len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    while len(body) % 4:
        body += b"\0"
    size = 128 + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + bytes([4, 0x30, 0, 0])
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 1)  # relative colorimetric
        + b"".join(_s15(v) for v in C.ICC_PCS_D50_XYZ)
        + b"hdrp"
        + b"\0" * 44  # profile ID (not computed) and reserved
    )
    assert len(header) == 128
    return header + body


@dataclass
class ICCInfo:
    """What a parsed ICC profile says (only what recognition needs)."""

    klass: str
    colorspace: str
    pcs: str
    description: str
    colorants: np.ndarray | None  # 3x3, columns XYZ (D50 PCS) of R, G, B; None if not matrix/TRC
    trcs: list | None  # three callables encoded -> linear, or None


def _curve(tag: bytes) -> Callable[[np.ndarray], np.ndarray] | None:
    kind = tag[:4]
    if kind == b"curv":
        n = struct.unpack(">I", tag[8:12])[0]
        if n == 0:
            return lambda x: x
        if n == 1:
            g = struct.unpack(">H", tag[12:14])[0] / 256.0
            return lambda x: np.clip(x, 0.0, None) ** g
        table = np.frombuffer(tag[12 : 12 + 2 * n], dtype=">u2").astype(np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, grid, table)
    if kind == b"para":
        ftype = struct.unpack(">H", tag[8:10])[0]
        count = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(ftype)
        if count is None:
            return None
        p = [_from_s15(tag[12 + 4 * i : 16 + 4 * i]) for i in range(count)]
        g = p[0]
        a, b, c, d, e, f = (p + [1.0, 0.0, 0.0, 0.0, 0.0, 0.0])[1:7] if count > 1 else (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)

        def para(x, ftype=ftype, g=g, a=a, b=b, c=c, d=d, e=e, f=f, p=p):
            x = np.asarray(x, dtype=np.float64)
            if ftype == 0:
                return np.clip(x, 0.0, None) ** g
            if ftype == 1:  # Y = (aX+b)^g for X >= -b/a, else 0
                return np.where(x >= -b / a, np.clip(a * x + b, 0.0, None) ** g, 0.0)
            if ftype == 2:  # Y = (aX+b)^g + c for X >= -b/a, else c
                return np.where(x >= -b / a, np.clip(a * x + b, 0.0, None) ** g + c, c)
            if ftype == 3:  # Y = (aX+b)^g for X >= d, else cX
                return np.where(x >= d, np.clip(a * x + b, 0.0, None) ** g, c * x)
            e_, f_ = p[5], p[6]  # type 4: Y = (aX+b)^g + e for X >= d, else cX + f
            return np.where(x >= d, np.clip(a * x + b, 0.0, None) ** g + e_, c * x + f_)

        return para
    return None


def _text(tag: bytes) -> str:
    kind = tag[:4]
    try:
        if kind == b"desc":  # v2 textDescriptionType
            n = struct.unpack(">I", tag[8:12])[0]
            return tag[12 : 12 + n].rstrip(b"\0").decode("latin-1")
        if kind == b"mluc":
            count, _ = struct.unpack(">II", tag[8:16])
            if count:
                length, off = struct.unpack(">II", tag[20:28])
                return tag[off : off + length].decode("utf-16-be").rstrip("\0")
        if kind == b"text":
            return tag[8:].rstrip(b"\0").decode("latin-1")
    except (struct.error, UnicodeDecodeError):
        pass
    return ""


def parse_icc(data: bytes) -> ICCInfo:
    """Parse the header and the tags recognition needs; raises InputColorError if malformed."""
    if len(data) < 132 or data[36:40] != b"acsp":
        raise InputColorError("embedded ICC profile is malformed (no 'acsp' signature)")
    klass, colorspace, pcs = (data[o : o + 4].decode("latin-1").strip() for o in (12, 16, 20))
    count = struct.unpack(">I", data[128:132])[0]
    tags: dict[bytes, bytes] = {}
    for i in range(min(count, 200)):
        sig, off, size = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        tags[sig] = data[off : off + size]
    colorants = trcs = None
    if all(t in tags for t in (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")):
        cols = []
        for t in (b"rXYZ", b"gXYZ", b"bXYZ"):
            tag = tags[t]
            cols.append([_from_s15(tag[8 + 4 * k : 12 + 4 * k]) for k in range(3)])
        colorants = np.array(cols, dtype=np.float64).T
        trcs = [_curve(tags[t]) for t in (b"rTRC", b"gTRC", b"bTRC")]
        if any(t is None for t in trcs):
            colorants = trcs = None
    return ICCInfo(klass, colorspace, pcs, _text(tags.get(b"desc", b"")), colorants, trcs)


def recognise_icc(info: ICCInfo) -> tuple[C.RGBSpace, str | None] | None:
    """``(input space, transfer name or None)`` for a matrix/TRC RGB profile with known primaries.

    The transfer name is set when the profile's curves equal one of
    :data:`hdr_plugin.color.TRANSFERS` (within 2e-3); otherwise the profile's own curves
    are used.  Returns None for other profiles.
    """
    if info.colorspace != "RGB" or info.pcs not in ("XYZ", "Lab") or info.colorants is None:
        return None
    x = np.linspace(0.0, 1.0, 257)
    curves = [t(x) for t in info.trcs]
    best = None
    for space in C.INPUT_SPACES.values():
        err = float(np.abs(pcs_adapted_matrix(space) - info.colorants).max())
        if err < 3e-3:
            matches = [
                t for t in C.TRANSFERS if all(np.abs(c - C.decode_transfer(x, t)).max() < 2e-3 for c in curves)
            ]
            score = (0 if space.transfer in matches else 1 if matches else 2, err)
            transfer = space.transfer if space.transfer in matches else (matches[0] if matches else None)
            if best is None or score < best[0]:
                best = (score, space, transfer)
    return None if best is None else (best[1], best[2])


# =========================================================================== the input's colour
@dataclass
class InputColor:
    """The colour of one input, as detected (or as the user said).

    ``space``: the input's primaries/white (one of :data:`hdr_plugin.color.INPUT_SPACES`,
    or sRGB after a LittleCMS conversion).  ``transfer``: the transfer function of the
    code values (a :data:`hdr_plugin.color.TRANSFERS` name), or None when the ICC
    profile's own curves (``trcs``) are used.  ``source``: where it came from
    (``icc``, ``cicp``, ``png-srgb``, ``exif``, ``untagged``, ``user``, ``float``).
    ``convert_icc``: profile bytes to convert to sRGB through LittleCMS before the engine.
    """

    space: C.RGBSpace
    transfer: str | None
    source: str
    description: str = ""
    trcs: list | None = field(default=None, repr=False)
    convert_icc: bytes | None = field(default=None, repr=False)
    note: str = ""

    @property
    def name(self) -> str:
        return self.space.name

    def summary(self) -> str:
        """One line for logs: ``display-p3 (icc: 'Display P3')``."""
        extra = f": {self.description!r}" if self.description else ""
        text = f"{self.space.name} ({self.source}{extra})"
        return f"{text}; {self.note}" if self.note else text

    def metadata(self) -> dict[str, str]:
        """EXR header attributes recording what was detected."""
        meta = {"hdrPluginInputSpace": self.space.name, "hdrPluginInputSource": self.source}
        if self.description:
            meta["hdrPluginInputProfile"] = self.description
        if self.note:
            meta["hdrPluginInputNote"] = self.note
        return meta


def untagged() -> InputColor:
    return InputColor(C.INPUT_SPACES["srgb"], "srgb", "untagged", note="no colour tag: taken as sRGB")


def from_name(name: str, source: str = "user") -> InputColor:
    """An :class:`InputColor` for an ``--input-space`` name (not ``auto``)."""
    try:
        space = C.input_space(name)
    except ValueError as e:
        raise InputColorError(str(e)) from None
    return InputColor(space, space.transfer, source)


# cICP (ITU-T H.273) code points this reader understands
_CICP_PRIMARIES = {1: "rec709", 9: "rec2020", 12: "display-p3"}
_CICP_TRANSFERS = {1: "rec709", 6: "rec709", 14: "rec709", 15: "rec709", 13: "srgb", 8: "linear"}


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The ancillary chunks before IDAT of a PNG file (type -> payload)."""
    out: dict[bytes, bytes] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in (b"IDAT", b"IEND"):
            break
        out.setdefault(kind, data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return out


def _from_cicp(payload: bytes) -> InputColor:
    prim, trc = payload[0], payload[1]
    if trc in (16, 18):
        raise InputColorError(
            f"cICP transfer {trc} ({'PQ' if trc == 16 else 'HLG'}) is already HDR; this tool reconstructs HDR from SDR images"
        )
    if prim not in _CICP_PRIMARIES or trc not in _CICP_TRANSFERS:
        raise InputColorError(f"cICP colour primaries {prim} / transfer {trc} are not supported; pass --input-space")
    base = C.INPUT_SPACES[_CICP_PRIMARIES[prim]]
    transfer = _CICP_TRANSFERS[trc]
    return InputColor(base, transfer, "cicp", f"cICP {prim}/{trc}/{payload[2]}/{payload[3]}")


def _from_icc(data: bytes) -> InputColor | None:
    info = parse_icc(data)
    if info.colorspace == "GRAY":
        return None  # gray: the engine replicates one channel; the sRGB default applies
    if info.colorspace != "RGB":
        raise InputColorError(f"embedded ICC profile is {info.colorspace}, not RGB")
    found = recognise_icc(info)
    if found is not None:
        space, transfer = found
        return InputColor(space, transfer, "icc", info.description, trcs=None if transfer else info.trcs)
    return InputColor(
        C.INPUT_SPACES["srgb"],
        "srgb",
        "icc",
        info.description,
        convert_icc=data,
        note="profile not one of srgb/display-p3/adobe-rgb/rec709/rec2020: converted to sRGB through LittleCMS (relative colorimetric)",
    )


def _from_exif(im) -> InputColor | None:
    try:
        exif = im.getexif()
        exif_ifd = exif.get_ifd(0x8769)
        cs = exif_ifd.get(0xA001)
        interop = exif.get_ifd(0xA005) or {}
        index = str(interop.get(0x0001, "")).strip("\0 ").upper()
    except Exception:
        return None
    if index == "R03" or (cs == 0xFFFF and index == "R03"):
        return InputColor(C.INPUT_SPACES["adobe-rgb"], "adobe-rgb", "exif", f"EXIF ColorSpace {cs}, InteropIndex R03")
    if cs == 1 or index == "R98":
        return InputColor(C.INPUT_SPACES["srgb"], "srgb", "exif", f"EXIF ColorSpace {cs}, InteropIndex {index or '-'}")
    return None


def detect(path: str | Path, data: bytes | None = None) -> InputColor:
    """The colour of an image file (see the module docstring for the order of the sources).

    ``data``: the file's bytes when the caller has read them already.  Raises
    :class:`InputColorError` for CMYK files, HDR (PQ/HLG) tags and unsupported cICP code
    points; anything Pillow cannot open is taken as untagged sRGB (the pixel decoder
    reports unreadable files).
    """
    import io

    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError:
            return untagged()
    head = bytes(data)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        chunks = _png_chunks(head)
        if b"cICP" in chunks and len(chunks[b"cICP"]) == 4:
            return _from_cicp(chunks[b"cICP"])
        if b"iCCP" in chunks:
            payload = chunks[b"iCCP"]
            name_end = payload.index(b"\0")
            found = _from_icc(zlib.decompress(payload[name_end + 2 :]))
            if found is not None:
                return found
        if b"sRGB" in chunks:
            return InputColor(C.INPUT_SPACES["srgb"], "srgb", "png-srgb")
    try:
        from PIL import Image
    except ImportError:
        return untagged()
    try:
        with Image.open(io.BytesIO(head)) as im:
            if im.mode == "CMYK":
                raise InputColorError(
                    "CMYK image: convert it to RGB first (e.g. in an image editor with its print profile); "
                    "CMYK values are not display-referred light"
                )
            icc = im.info.get("icc_profile")
            if icc:
                found = _from_icc(icc)
                if found is not None:
                    return found
            found = _from_exif(im)
            if found is not None:
                return found
    except InputColorError:
        raise
    except Exception:
        return untagged()
    return untagged()


def resolve(detected: InputColor | None, requested: str | None = "auto") -> InputColor:
    """The colour to use: the file's (``auto``/None; untagged -> sRGB) or the one named."""
    if requested in (None, "auto"):
        return detected or untagged()
    return from_name(requested)


# =========================================================================== pixels
def _littlecms_to_srgb(rgb: np.ndarray, profile: bytes) -> np.ndarray:
    """Convert RGB [0, 1] from ``profile`` to sRGB through LittleCMS (Pillow ImageCms), 8-bit precision.

    Pillow's transforms are 8 bits per channel: 8-bit inputs are converted pixel by pixel;
    deeper ones through a 52^3 lattice (code values 0, 5, ... 255) interpolated trilinearly.
    """
    import io

    from PIL import Image, ImageCms

    src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    dst = ImageCms.createProfile("sRGB")
    transform = ImageCms.buildTransform(src, dst, "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    codes = np.round(np.clip(rgb, 0.0, 1.0) * 255.0)
    if np.allclose(codes, rgb * 255.0, atol=1e-3):  # 8-bit data: exact per-pixel transform
        im = Image.fromarray(codes.astype(np.uint8), "RGB")
        return np.asarray(ImageCms.applyTransform(im, transform), dtype=np.float32) / 255.0
    n = 52
    axis = np.arange(n) * 5
    lattice = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(n * n, n, 3).astype(np.uint8)
    lut = np.asarray(ImageCms.applyTransform(Image.fromarray(lattice, "RGB"), transform), dtype=np.float32)
    lut = lut.reshape(n, n, n, 3) / 255.0
    pos = np.clip(rgb, 0.0, 1.0) * (n - 1)
    i0 = np.minimum(pos.astype(np.int64), n - 2)
    f = (pos - i0).astype(np.float32)
    out = np.zeros(rgb.shape, np.float32)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = (
                    (f[..., 0] if dr else 1 - f[..., 0])
                    * (f[..., 1] if dg else 1 - f[..., 1])
                    * (f[..., 2] if db else 1 - f[..., 2])
                )
                out += w[..., None] * lut[i0[..., 0] + dr, i0[..., 1] + dg, i0[..., 2] + db]
    return out


def decode_linear(rgb: np.ndarray, color: InputColor) -> np.ndarray:
    """The input's code values -> linear light in ``color.space``'s primaries (RGB float32)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if color.convert_icc is not None:
        rgb = _littlecms_to_srgb(rgb, color.convert_icc)
        return C.srgb_to_linear(rgb).astype(np.float32)
    if color.transfer is not None:
        return np.asarray(C.decode_transfer(rgb, color.transfer), dtype=np.float32)
    return np.stack([np.asarray(t(rgb[..., i]), np.float32) for i, t in enumerate(color.trcs)], axis=-1)


def engine_input(rgb: np.ndarray, color: InputColor) -> np.ndarray:
    """What the engine is given: the input in its own primaries, sRGB-curve encoded, RGB [0, 1].

    sRGB-curve inputs (sRGB, Display P3) pass through unchanged; other curves (Adobe RGB's
    gamma 2.2, BT.709's OETF, an ICC profile's own curves) are decoded and re-encoded with
    the sRGB curve; profiles that are not recognised go through LittleCMS to sRGB first.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if color.convert_icc is None and color.transfer == "srgb":
        return rgb
    linear = decode_linear(rgb, color)
    return np.clip(C.linear_to_srgb(np.clip(linear, 0.0, 1.0)), 0.0, 1.0).astype(np.float32)


def engine_output_space(color: InputColor) -> C.RGBSpace:
    """The scene-linear space the engine's output is in for this input (the input's primaries)."""
    return C.linear_space_of(color.space)
