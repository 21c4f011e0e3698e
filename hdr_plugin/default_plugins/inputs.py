"""Built-in input preparation: integer and float arrays to display-referred RGB [0, 1]."""

from __future__ import annotations

import numpy as np

from ..plugins import hookimpl


@hookimpl(trylast=True)
def hdr_prepare_input(image, context):
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) RGB image, got shape {a.shape}")
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        x = a.astype(np.float32) / 65535.0
    elif a.dtype in (np.float32, np.float64, np.float16):
        x = a.astype(np.float32)
        if not np.isfinite(x).all():
            raise ValueError("image contains NaN or infinite values")
        if x.size and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
            raise ValueError(
                f"float input must be display-referred in [0, 1]; got values in [{x.min():.4g}, {x.max():.4g}]"
            )
        x = np.clip(x, 0.0, 1.0)
    else:
        raise TypeError(f"unsupported pixel type {a.dtype}: use uint8, uint16 or float32")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x)
