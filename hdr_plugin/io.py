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
import os
import tempfile
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
    """An input file is missing, unreadable or not a supported image."""


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


def _cv2():
    import cv2

    return cv2


def _exif_orientation(path: Path) -> int:
    try:
        from PIL import Image
    except ImportError:  # pillow comes with imageio; without it orientation stays as stored
        return 1
    try:
        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1


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
    """Split an OpenCV-order (BGR/BGRA/gray) integer array into RGB [0, 1], alpha and bit depth."""
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
    c = a.shape[2]
    if c not in (1, 2, 3, 4):
        raise ImageReadError(f"unsupported channel count {c}")
    x = a.astype(np.float32) / scale
    alpha = None
    if c in (2, 4):
        alpha = np.ascontiguousarray(x[:, :, -1])
        x = x[:, :, :-1]
    rgb = np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x[:, :, ::-1]
    return np.ascontiguousarray(rgb), alpha, depth


def read_ldr(path: str | os.PathLike) -> LDRImage:
    """Read an 8/16-bit display-referred image file as RGB float32 in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    cv2 = _cv2()
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode handles non-ASCII paths
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if a is None:
        raise ImageReadError(f"{path}: not a readable PNG/JPEG/TIFF/WebP image")
    if a.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: {a.dtype} pixels; expected an 8- or 16-bit display-referred image")
    from .input_color import InputColorError, detect

    try:
        color = detect(path, data.tobytes())  # ICC / PNG cICP, sRGB / EXIF colour tags; pixels stay as stored
    except InputColorError as e:
        raise ImageReadError(f"{path}: {e}") from None
    rgb, alpha, depth = decode_ldr_array(a)
    orientation = _exif_orientation(path)
    rgb = _apply_orientation(rgb, orientation)
    alpha = _apply_orientation(alpha, orientation) if alpha is not None else None
    return LDRImage(rgb, alpha, depth, path, color=color)


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


def read_hdr(path: str | os.PathLike) -> np.ndarray:
    """Read an OpenEXR or Radiance file as RGB float32 scene-linear (H, W, 3); alpha dropped."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".hdr":
        a = _cv2().imread(str(path), _cv2().IMREAD_UNCHANGED)
        if a is None:
            raise ImageReadError(f"{path}: not a readable Radiance file")
        return np.ascontiguousarray(a[:, :, ::-1].astype(np.float32))
    if suffix == ".exr":
        import OpenEXR

        with OpenEXR.File(str(path), separate_channels=True) as f:
            ch = f.parts[0].channels
            names = set(ch)
            if {"R", "G", "B"} <= names:
                rgb = np.stack([ch[c].pixels.astype(np.float32) for c in "RGB"], axis=-1)
            elif {"Y", "RY", "BY"} <= names:
                h, w = ch["Y"].pixels.shape
                rgb = _yc_to_rgb(ch, h, w)
            elif "Y" in names:
                rgb = np.repeat(ch["Y"].pixels.astype(np.float32)[:, :, None], 3, axis=2)
            else:
                raise ImageReadError(f"{path}: no R,G,B or Y channels (has {sorted(names)})")
        return np.ascontiguousarray(rgb)
    raise ImageReadError(f"{path}: unsupported HDR extension {suffix!r} (use .exr or .hdr)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


INPUT_ENCODINGS = ("display", "linear")


def read_input(path: str | os.PathLike, encoding: str | None = None) -> LDRImage:
    """Read any supported input as display-referred RGB [0, 1] for the engine.

    8/16-bit files go through :func:`read_ldr`.  Float files (``.exr``, ``.hdr``, e.g.
    frames rendered by a host) need ``encoding``: ``"display"`` when they hold
    display-referred values (clamped to [0, 1]), ``"linear"`` when they hold scene-linear
    Rec.709 values (sRGB-encoded first; what lies above 1.0 is clipped, as a camera would).
    NaN becomes 0.  An EXR ``A`` channel is returned as associated alpha.
    """
    path = Path(path)
    if path.suffix.lower() not in HDR_EXTENSIONS:
        return read_ldr(path)
    if encoding not in INPUT_ENCODINGS:
        raise ImageReadError(
            f"{path} holds float data: say how it is encoded with --input-encoding display "
            "(display-referred values in [0, 1]) or --input-encoding linear (scene-linear, sRGB-encoded first)"
        )
    rgb = np.nan_to_num(read_hdr(path), nan=0.0, posinf=1.0, neginf=0.0)
    if encoding == "linear":
        from .color import linear_to_srgb

        rgb = linear_to_srgb(np.maximum(rgb, 0.0))
    alpha = None
    if path.suffix.lower() == ".exr":
        import OpenEXR

        with OpenEXR.File(str(path), separate_channels=True) as f:
            channels = f.parts[0].channels
            if "A" in channels:
                alpha = np.ascontiguousarray(channels["A"].pixels.astype(np.float32))
    return LDRImage(np.clip(rgb, 0.0, 1.0).astype(np.float32), alpha, 32, path, alpha_associated=True)


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
