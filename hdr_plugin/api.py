"""The OpenCV-style function surface: ``hdr_plugin.apply(img, dst=None, **options)``.

Conventions (as ``cv2`` functions): BGR(A) channel order by default, numpy in, numpy out,
``dst`` honoured.  Input is display-referred: uint8, uint16 or float in [0, 1].  Output is
C-contiguous float32 scene-linear BGR(A), >= 0 and unbounded above, with the input's white
at 1.0; it feeds ``cv2.createTonemapReinhard().process`` directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .pipeline import Engine, load_engine

_INT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _validate(img: Any, channel_order: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Check ``img`` and split it into RGB float32 [0, 1] and float32 alpha (or None)."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"img must be a numpy array, got {type(img).__name__}")
    if img.dtype == object:
        raise TypeError("img has dtype object; pass a numeric uint8, uint16 or float32 array")
    if img.dtype not in _INT_SCALE and img.dtype not in _FLOATS:
        raise TypeError(f"img has unsupported dtype {img.dtype}; use uint8, uint16 or float32 (display-referred)")
    if img.ndim not in (2, 3):
        raise ValueError(f"img must be HxW, HxWx3 or HxWx4, got ndim={img.ndim} (shape {img.shape})")
    if img.size == 0:
        raise ValueError(f"img is empty (shape {img.shape})")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels not in (1, 3, 4):
        raise ValueError(f"img has {channels} channels; expected 1 (gray), 3 ({channel_order.upper()}) or 4 (with alpha)")
    if img.dtype in _FLOATS:
        x = img.astype(np.float32)
        if not np.isfinite(x).all():
            raise ValueError("img contains NaN or infinite values")
        lo, hi = float(img.min()), float(img.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"float img must be display-referred in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]")
    else:
        x = img.astype(np.float32) / _INT_SCALE[img.dtype]
    if x.ndim == 2:
        x = x[:, :, None]
    alpha = np.ascontiguousarray(x[:, :, 3]) if channels == 4 else None
    colour = x[:, :, :3] if channels >= 3 else np.repeat(x, 3, axis=2)
    if channels >= 3 and channel_order == "bgr":
        colour = colour[:, :, ::-1]
    return np.ascontiguousarray(colour), alpha


def apply(
    img: np.ndarray,
    dst: np.ndarray | None = None,
    *,
    channel_order: str = "bgr",
    exposure: float = 0.0,
    engine: Engine | None = None,
    weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str | None = "auto",
    input_space: str = "srgb",
    output_space: str = "lin-rec709",
    **options: Any,
) -> np.ndarray:
    """Reconstruct a scene-linear HDR image from one display-referred image, cv2 style.

    ``img``: HxW (gray), HxWx3 (BGR) or HxWx4 (BGRA) uint8 / uint16 / float32 in [0, 1].
    ``channel_order="rgb"`` for RGB(A) callers.  Returns float32 HxWx3 (or HxWx4 with the
    alpha channel passed through as float in [0, 1]) in the same channel order; when
    ``dst`` (float32, that shape) is given it is filled and returned.  ``exposure`` adds EV.
    The engine (networks on ``device`` at ``precision``) is cached between calls.

    ``input_space``: the colour space of ``img``'s code values (``srgb``, ``display-p3``,
    ``adobe-rgb``, ``rec709``, ``rec2020``; ``auto`` means ``srgb``, since an array carries
    no tag).  ``output_space``: ``lin-rec709`` (default), ``lin-rec2020``, ``lin-p3``,
    ``acescg`` or ``aces2065-1`` (see :mod:`hdr_plugin.color`).
    """
    order = channel_order.lower()
    if order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    rgb, alpha = _validate(img, order)
    from .color import OutputTransform
    from .input_color import engine_input, engine_output_space, resolve

    colour = resolve(None, None if input_space == "auto" else input_space)
    transform = OutputTransform(output_space)
    out_channels = 3 if alpha is None else 4
    shape = (rgb.shape[0], rgb.shape[1], out_channels)
    if dst is not None:
        if not isinstance(dst, np.ndarray) or dst.dtype != np.float32 or dst.shape != shape:
            got = f"{dst.dtype} {dst.shape}" if isinstance(dst, np.ndarray) else type(dst).__name__
            raise ValueError(f"dst must be a float32 array of shape {shape}, got {got}")
    engine = engine or load_engine(weights, device=device, precision=precision, tile=tile)
    hdr = engine.reconstruct(engine_input(rgb, colour), exposure=exposure, **options).image
    hdr = transform.apply(hdr, engine_output_space(colour))
    if order == "bgr":
        hdr = hdr[:, :, ::-1]
    out = dst if dst is not None else np.empty(shape, np.float32)
    out[:, :, :3] = hdr
    if alpha is not None:
        out[:, :, 3] = alpha
    return out
