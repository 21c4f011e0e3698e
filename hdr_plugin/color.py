"""Colour conventions shared by the whole package.

Every function here says which encoding it takes and returns:

* *display-referred* ("encoded") values are what an 8-bit file stores, scaled to [0, 1];
* *scene-linear* values are proportional to light, >= 0 and unbounded above.

The engine works in RGB channel order internally; only the OpenCV-style surface
(:func:`hdr_plugin.apply`) and file I/O deal in BGR.  Functions accept numpy arrays
and torch tensors alike.
"""

from __future__ import annotations

import numpy as np

#: Rec.709 / sRGB luminance weights (R, G, B) used by the metrics and exposure math.
REC709_LUMA = (0.212656, 0.715158, 0.072186)

#: CIE xy chromaticities of Rec.709 primaries and the D65 white point, as written to EXR.
REC709_CHROMATICITIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), (0.3127, 0.3290))


def _lib(x):
    """Return the array namespace (numpy or torch) for ``x``."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np
    import torch

    return torch


def srgb_to_linear(encoded):
    """Inverse sRGB OETF: display-encoded [0, 1] -> linear [0, 1] (IEC 61966-2-1)."""
    xp = _lib(encoded)
    low = encoded / 12.92
    high = ((xp.clip(encoded, 0.04045, None) + 0.055) / 1.055) ** 2.4
    return xp.where(encoded <= 0.04045, low, high)


def linear_to_srgb(linear):
    """sRGB OETF: linear [0, 1] -> display-encoded [0, 1]; values above 1 extrapolate."""
    xp = _lib(linear)
    low = linear * 12.92
    high = 1.055 * xp.clip(linear, 0.0031308, None) ** (1 / 2.4) - 0.055
    return xp.where(linear <= 0.0031308, low, high)


def rec709_oetf(linear):
    """Rec.709 camera OETF: linear [0, 1] -> encoded [0, 1]."""
    xp = _lib(linear)
    low = linear * 4.5
    high = 1.099 * xp.clip(linear, 0.018, None) ** 0.45 - 0.099
    return xp.where(linear < 0.018, low, high)


def luminance(rgb, channel_axis: int = -1):
    """Rec.709 luminance of an RGB array (channel axis given explicitly)."""
    r, g, b = REC709_LUMA
    xp = _lib(rgb)
    if xp is np:
        c = np.moveaxis(rgb, channel_axis, 0)
    else:
        c = rgb.movedim(channel_axis, 0)
    return r * c[0] + g * c[1] + b * c[2]
