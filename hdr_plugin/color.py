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


# =========================================================================== colour spaces
# Every RGB <-> XYZ matrix, white point, chromatic adaptation and transfer function of the
# package lives below.  Conventions: matrices act on column vectors of RGB in the stated
# order (R, G, B); images are (..., 3) arrays in RGB order (never BGR); "linear" means
# scene-linear, "encoded" display-referred [0, 1].

from dataclasses import dataclass  # noqa: E402

#: CIE 1931 xy white points.
WHITE_D65 = (0.3127, 0.3290)
WHITE_D50 = (0.3457, 0.3585)
#: The ACES white (about D60), SMPTE ST 2065-1.
WHITE_ACES = (0.32168, 0.33767)
#: The ICC profile connection space white, XYZ (ICC.1:2010 §7.2.16), as s15Fixed16 rounds it.
ICC_PCS_D50_XYZ = (0.9642, 1.0, 0.8249)

#: The Bradford cone-response matrix (Lam 1985; as in ICC.1 Annex E and OCIO's ``_BFD`` transforms).
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]], dtype=np.float64
)

_PRIMARIES = {
    "rec709": ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)),  # also sRGB (IEC 61966-2-1)
    "p3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),  # DCI/Display P3 (SMPTE EG 432-1)
    "adobe-rgb": ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)),  # Adobe RGB (1998)
    "rec2020": ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046)),  # ITU-R BT.2020
    "ap1": ((0.713, 0.293), (0.165, 0.830), (0.128, 0.044)),  # ACEScg (S-2014-004)
    "ap0": ((0.7347, 0.2653), (0.0, 1.0), (0.0001, -0.0770)),  # ACES2065-1 (ST 2065-1)
}

#: Transfer functions by name: ``decode`` (encoded -> linear) and ``encode`` (linear -> encoded).
TRANSFERS = ("srgb", "adobe-rgb", "rec709", "linear")
#: Adobe RGB (1998) gamma, 2 + 51/256 (Adobe RGB (1998) Color Image Encoding, §4.3.4.2).
ADOBE_RGB_GAMMA = 563.0 / 256.0
#: BT.709/BT.2020 OETF constants at full precision (ITU-R BT.2020 Table 4), so that the
#: two branches meet and decode/encode are exact inverses (1.099 / 0.018 are their roundings).
BT709_ALPHA = 1.09929682680944
BT709_BETA = 0.018053968510807


@dataclass(frozen=True)
class RGBSpace:
    """An RGB colour space: primaries and white (CIE xy) and a transfer function name.

    ``transfer`` is ``"linear"`` for the scene-linear output spaces; for the input spaces
    it is how the file's code values were encoded (see :func:`decode_transfer`).
    """

    name: str
    title: str
    primaries: tuple
    white: tuple
    transfer: str

    @property
    def chromaticities(self) -> tuple:
        """The 8 floats of an OpenEXR ``chromaticities`` attribute (red, green, blue, white xy)."""
        (rx, ry), (gx, gy), (bx, by) = self.primaries
        return (rx, ry, gx, gy, bx, by, self.white[0], self.white[1])

    def to_xyz(self) -> np.ndarray:
        """3x3 matrix: linear RGB in this space -> CIE XYZ (Y of white = 1), this space's own white."""
        return rgb_to_xyz_matrix(self.primaries, self.white)


#: Display-referred spaces an input file can be in (``--input-space``).
INPUT_SPACES = {
    "srgb": RGBSpace("srgb", "sRGB (IEC 61966-2-1)", _PRIMARIES["rec709"], WHITE_D65, "srgb"),
    "display-p3": RGBSpace("display-p3", "Display P3 (P3 primaries, D65, sRGB curve)", _PRIMARIES["p3"], WHITE_D65, "srgb"),
    "adobe-rgb": RGBSpace("adobe-rgb", "Adobe RGB (1998)", _PRIMARIES["adobe-rgb"], WHITE_D65, "adobe-rgb"),
    "rec709": RGBSpace("rec709", "ITU-R BT.709 (BT.709 OETF)", _PRIMARIES["rec709"], WHITE_D65, "rec709"),
    "rec2020": RGBSpace("rec2020", "ITU-R BT.2020 (BT.709/2020 OETF)", _PRIMARIES["rec2020"], WHITE_D65, "rec709"),
}

#: Scene-linear spaces the output can be written in (``--output-space``).
OUTPUT_SPACES = {
    "lin-rec709": RGBSpace("lin-rec709", "Linear Rec.709 (sRGB primaries), D65", _PRIMARIES["rec709"], WHITE_D65, "linear"),
    "lin-rec2020": RGBSpace("lin-rec2020", "Linear Rec.2020, D65", _PRIMARIES["rec2020"], WHITE_D65, "linear"),
    "lin-p3": RGBSpace("lin-p3", "Linear P3-D65", _PRIMARIES["p3"], WHITE_D65, "linear"),
    "acescg": RGBSpace("acescg", "ACEScg (AP1, ACES white)", _PRIMARIES["ap1"], WHITE_ACES, "linear"),
    "aces2065-1": RGBSpace("aces2065-1", "ACES2065-1 (AP0, ACES white)", _PRIMARIES["ap0"], WHITE_ACES, "linear"),
}
DEFAULT_OUTPUT_SPACE = "lin-rec709"

#: Output spaces whose EXR header also carries ``adoptedNeutral`` (the ACES white, ST 2065-4).
ACES_OUTPUT_SPACES = ("acescg", "aces2065-1")


def xy_to_xyz(xy) -> np.ndarray:
    """CIE xy chromaticity -> XYZ with Y = 1."""
    x, y = float(xy[0]), float(xy[1])
    return np.array([x / y, 1.0, (1.0 - x - y) / y], dtype=np.float64)


def rgb_to_xyz_matrix(primaries, white) -> np.ndarray:
    """3x3 float64 matrix from linear RGB (the given xy primaries) to XYZ, white -> Y = 1 (SMPTE RP 177)."""
    p = np.stack([xy_to_xyz(c) for c in primaries], axis=1)  # columns: XYZ of R, G, B at Y = 1
    scale = np.linalg.solve(p, xy_to_xyz(white))
    return p * scale[None, :]


def bradford_matrix(src_white, dst_white) -> np.ndarray:
    """3x3 Bradford chromatic adaptation XYZ(src white) -> XYZ(dst white); whites as xy or XYZ."""
    sw = np.asarray(src_white, dtype=np.float64)
    dw = np.asarray(dst_white, dtype=np.float64)
    sw = xy_to_xyz(sw) if sw.shape == (2,) else sw
    dw = xy_to_xyz(dw) if dw.shape == (2,) else dw
    gain = (BRADFORD @ dw) / (BRADFORD @ sw)
    return np.linalg.inv(BRADFORD) @ np.diag(gain) @ BRADFORD


def _whites_equal(a, b) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=1e-9))


def rgb_conversion_matrix(src: RGBSpace, dst: RGBSpace) -> np.ndarray:
    """3x3 float64 matrix: linear RGB in ``src`` -> linear RGB in ``dst``, Bradford where the whites differ."""
    m = src.to_xyz()
    if not _whites_equal(src.white, dst.white):
        m = bradford_matrix(src.white, dst.white) @ m
    return np.linalg.inv(dst.to_xyz()) @ m


def apply_matrix(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x3 matrix to the last axis of an RGB array (float32 result, computed in float64)."""
    rgb = np.asarray(rgb)
    return np.einsum("ij,...j->...i", np.asarray(matrix, np.float64), rgb.astype(np.float64)).astype(np.float32)


def linear_space_of(space: RGBSpace) -> RGBSpace:
    """The scene-linear space with ``space``'s primaries and white (what the engine's output is in)."""
    for out in OUTPUT_SPACES.values():
        if out.primaries == space.primaries and _whites_equal(out.white, space.white):
            return out
    return RGBSpace(f"lin-{space.name}", f"Linear {space.title}", space.primaries, space.white, "linear")


def decode_transfer(encoded, transfer: str):
    """Encoded [0, 1] -> linear by the named transfer function (inverse OETF)."""
    if transfer == "srgb":
        return srgb_to_linear(encoded)
    if transfer == "adobe-rgb":
        xp = _lib(encoded)
        return xp.clip(encoded, 0.0, None) ** ADOBE_RGB_GAMMA
    if transfer == "rec709":
        xp = _lib(encoded)
        a, knee = BT709_ALPHA, 4.5 * BT709_BETA
        high = ((xp.clip(encoded, knee, None) + (a - 1.0)) / a) ** (1 / 0.45)
        return xp.where(encoded < knee, encoded / 4.5, high)
    if transfer == "linear":
        return encoded
    raise ValueError(f"unknown transfer function {transfer!r}; known: {', '.join(TRANSFERS)}")


def encode_transfer(linear, transfer: str):
    """Linear -> encoded by the named transfer function (OETF); inverse of :func:`decode_transfer`."""
    if transfer == "srgb":
        return linear_to_srgb(linear)
    if transfer == "adobe-rgb":
        xp = _lib(linear)
        return xp.clip(linear, 0.0, None) ** (1.0 / ADOBE_RGB_GAMMA)
    if transfer == "rec709":
        xp = _lib(linear)
        a, b = BT709_ALPHA, BT709_BETA
        high = a * xp.clip(linear, b, None) ** 0.45 - (a - 1.0)
        return xp.where(linear < b, linear * 4.5, high)
    if transfer == "linear":
        return linear
    raise ValueError(f"unknown transfer function {transfer!r}; known: {', '.join(TRANSFERS)}")


def _lookup(table: dict, name: str, what: str) -> RGBSpace:
    if isinstance(name, RGBSpace):
        return name
    key = str(name).lower()
    if key not in table:
        raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(table)}")
    return table[key]


def input_space(name) -> RGBSpace:
    """The :class:`RGBSpace` for an ``--input-space`` name (``srgb``, ``display-p3`` ...)."""
    return _lookup(INPUT_SPACES, name, "input space")


def output_space(name) -> RGBSpace:
    """The :class:`RGBSpace` for an ``--output-space`` name (``lin-rec709``, ``acescg`` ...)."""
    return _lookup(OUTPUT_SPACES, name, "output space")


def exr_color_attributes(space) -> dict:
    """EXR header attributes that describe scene-linear pixels in ``space``.

    ``chromaticities`` always; ``adoptedNeutral`` (the ACES white) for the ACES spaces,
    and ``hdrPluginColorSpace`` (the space's name) so readers can tell them apart.
    """
    space = output_space(space) if not isinstance(space, RGBSpace) else space
    attrs = {"chromaticities": tuple(float(v) for v in space.chromaticities), "hdrPluginColorSpace": space.name}
    if space.name in ACES_OUTPUT_SPACES:
        attrs["adoptedNeutral"] = (float(space.white[0]), float(space.white[1]))
    return attrs


class OutputTransform:
    """Scene-linear output in the engine's space -> the requested output space.

    ``output_space``: an :data:`OUTPUT_SPACES` name (matrix, Bradford where whites differ),
    or, with ``ocio_config`` and ``ocio_space``, an OpenColorIO colour space (the pixels go
    to ACES2065-1 by matrix, then through OCIO; see :mod:`hdr_plugin.ocio`).
    """

    def __init__(self, output_space: str = DEFAULT_OUTPUT_SPACE, ocio_config: str | None = None, ocio_space: str | None = None):
        if (ocio_config is None) != (ocio_space is None):
            raise ValueError("--ocio CONFIG and --ocio-space NAME go together")
        self.ocio = None
        if ocio_config is not None:
            from .ocio import OCIOOutput

            self.ocio = OCIOOutput(ocio_config, ocio_space)
            self.space = OUTPUT_SPACES["aces2065-1"]
        else:
            self.space = _lookup(OUTPUT_SPACES, output_space, "output space")

    @property
    def name(self) -> str:
        return self.ocio.space if self.ocio else self.space.name

    def apply(self, linear: np.ndarray, source: RGBSpace) -> np.ndarray:
        """Convert RGB scene-linear pixels in ``source`` (e.g. the input's primaries)."""
        if source.primaries == self.space.primaries and _whites_equal(source.white, self.space.white):
            out = np.asarray(linear, dtype=np.float32)  # same space: pixels untouched, bit for bit
        else:
            out = apply_matrix(linear, rgb_conversion_matrix(source, self.space))
        return self.ocio.apply(out) if self.ocio else out

    def chromaticities(self):
        """The EXR ``chromaticities`` tuple, or None when the target has none (non-linear OCIO space)."""
        if self.ocio:
            return self.ocio.chromaticities
        return tuple(float(v) for v in self.space.chromaticities)

    def attributes(self) -> dict:
        """EXR attributes naming the space (``chromaticities`` excluded; see :meth:`chromaticities`)."""
        if self.ocio:
            attrs = self.ocio.attributes()
        else:
            attrs = exr_color_attributes(self.space)
        attrs.pop("chromaticities", None)
        return attrs
