"""Reconstruction metrics, following the METRICS.md protocol.

Images are RGB scene-linear (H, W, 3) numpy arrays whose clipping level is 1.0.
Predictions are first aligned to the ground truth by one global factor computed on the
well-exposed pixels, because single-image HDR is known only up to scale.
"""

from __future__ import annotations

import numpy as np

from ..color import luminance

PU21_BANDING_GLARE = (0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204, 596.3148142)
PU21_PEAK = 256.0
CLIP_LUMINANCE = 100.0  # cd/m^2 at the camera's clipping level
Y_RANGE = (0.005, 10000.0)
OVEREXPOSED_LEVEL = 0.95
TEXTURE_EV = -2.0  # the spurious-texture measure looks at the fill pulled down two stops
TEXTURE_SIGMAS = (2.0, 8.0)  # band-pass: Gaussian sigma 2 px minus sigma 8 px
TEXTURE_ERODE = 4  # px taken off the over-exposed region's border
TEXTURE_MIN_ENERGY = 1e-6  # mean(bp(gt)^2) below this: the truth has no texture to compare with


def pu21_encode(y):
    """PU21 ("banding_glare") encoding of absolute luminance in cd/m^2 (numpy or torch)."""
    p1, p2, p3, p4, p5, p6, p7 = PU21_BANDING_GLARE
    if isinstance(y, np.ndarray):
        y = np.clip(y, *Y_RANGE)
    else:
        y = y.clamp(*Y_RANGE)
    yp = y**p4
    return p7 * (((p1 + p2 * yp) / (1 + p3 * yp)) ** p5 - p6)


def overexposed_mask(ldr: np.ndarray, level: float = OVEREXPOSED_LEVEL) -> np.ndarray:
    """Pixels whose input max channel is >= ``level`` (the hallucination region)."""
    return ldr.max(axis=2) >= level


def alignment_scale(pred: np.ndarray, gt: np.ndarray, ldr: np.ndarray) -> float:
    """``exp(mean(log Y_gt - log Y_pred))`` over well-exposed pixels positive in both."""
    yp, yg = luminance(pred.astype(np.float64)), luminance(gt.astype(np.float64))
    valid = (~overexposed_mask(ldr)) & (yp > 0) & (yg > 0)
    if not valid.any():
        valid = (yp > 0) & (yg > 0)
    if not valid.any():
        return 1.0
    return float(np.exp(np.mean(np.log(yg[valid]) - np.log(yp[valid]))))


def _psnr(a: np.ndarray, b: np.ndarray, peak: float, mask: np.ndarray | None = None) -> float:
    d = (a - b) ** 2
    if mask is not None:
        if not mask.any():
            return float("nan")
        d = d[mask]
    mse = float(np.mean(d))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)


def pu21_psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PU21-PSNR of two *aligned* linear images (clip level 1.0 = 100 cd/m^2)."""
    a = pu21_encode(CLIP_LUMINANCE * luminance(pred.astype(np.float64)))
    b = pu21_encode(CLIP_LUMINANCE * luminance(gt.astype(np.float64)))
    return _psnr(a, b, PU21_PEAK, mask)


def log_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR of log10 luminance (clamped to the PU21 range), peak = the log range."""
    a = np.log10(np.clip(CLIP_LUMINANCE * luminance(pred.astype(np.float64)), *Y_RANGE))
    b = np.log10(np.clip(CLIP_LUMINANCE * luminance(gt.astype(np.float64)), *Y_RANGE))
    return _psnr(a, b, np.log10(Y_RANGE[1] / Y_RANGE[0]))


def tonemap(x: np.ndarray) -> np.ndarray:
    """The protocol's simple tone map: ``(x / (1 + x)) ** (1 / 2.2)`` per channel."""
    x = np.maximum(x.astype(np.float64), 0.0)
    return (x / (1.0 + x)) ** (1 / 2.2)


def tonemapped_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    return _psnr(tonemap(pred), tonemap(gt), 1.0)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Gaussian window, sigma 1.5) over channels of two images in [0, 1]."""
    import cv2

    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(a.shape[2]):
        x, y = a[:, :, ch].astype(np.float64), b[:, :, ch].astype(np.float64)

        def blur(z):
            return cv2.GaussianBlur(z, (11, 11), 1.5)

        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(m.mean())
    return float(np.mean(vals))


def light_ratio(aligned: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Light the prediction holds in ``mask`` as a fraction of the truth's.

    ``sum(Y_pred) / sum(Y_gt)`` over the masked pixels of a *scale-aligned* prediction:
    1.0 is the right amount of light, 0.5 one stop too little.  NaN for an empty mask.
    """
    if not mask.any():
        return float("nan")
    yp = luminance(aligned.astype(np.float64))[mask].sum()
    yg = luminance(gt.astype(np.float64))[mask].sum()
    return float(yp / yg) if yg > 0 else float("nan")


def texture_bandpass(linear: np.ndarray, ev: float = TEXTURE_EV) -> np.ndarray:
    """Difference of Gaussians (sigma 2 px minus 8 px) of the sRGB-encoded luminance of a
    scene-linear image shown at ``ev`` stops (clipped to the display range, as a viewer
    sees it)."""
    import cv2

    from ..color import linear_to_srgb

    y = np.clip(luminance(linear.astype(np.float64)) * 2.0**ev, 0.0, 1.0)
    e = linear_to_srgb(y)
    out = np.zeros_like(e)
    for sign, sigma in zip((1.0, -1.0), TEXTURE_SIGMAS):
        k = 2 * int(np.ceil(3 * sigma)) + 1
        out += sign * cv2.GaussianBlur(e, (k, k), sigma, borderType=cv2.BORDER_REFLECT)
    return out


def texture_region(ldr: np.ndarray, erode: int = TEXTURE_ERODE) -> np.ndarray:
    """The over-exposed region eroded by ``erode`` px (a disc), where the fill is judged."""
    import cv2

    over = overexposed_mask(ldr).astype(np.uint8)
    if erode <= 0:
        return over.astype(bool)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
    return cv2.erode(over, disc, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def spurious_texture_terms(aligned: np.ndarray, gt: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """``(mean((bp(pred) - bp(gt))^2), mean(bp(gt)^2))`` over ``region`` (NaNs if empty)."""
    if not region.any():
        return float("nan"), float("nan")
    bp, bg = texture_bandpass(aligned), texture_bandpass(gt)
    return float(np.mean((bp - bg)[region] ** 2)), float(np.mean(bg[region] ** 2))


def spurious_texture(aligned: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float:
    """S = mean((bp(pred) - bp(gt))^2) / mean(bp(gt)^2) over ``region``.

    0 = the truth's texture exactly; 1.0 = a fill with no texture at all (or one as wrong
    as none); above 1 = texture that is not there.  NaN when the region is empty or the
    truth has no texture there at -2 EV (nothing to compare with).
    """
    num, den = spurious_texture_terms(aligned, gt, region)
    if not np.isfinite(den) or den < TEXTURE_MIN_ENERGY:
        return float("nan")
    return num / den


def score(pred: np.ndarray, gt: np.ndarray, ldr: np.ndarray) -> dict[str, float]:
    """All protocol metrics for one prediction (aligned here) against its ground truth.

    ``ldr`` is the input that defines the regions (alignment pixels, over-exposed region).
    Besides the PSNRs: ``light_ratio`` (light held in the over-exposed region, 1 = right),
    ``texture_s`` (spurious texture S in the fill) and its two terms, for pooling.
    """
    aligned = pred * alignment_scale(pred, gt, ldr)
    over = overexposed_mask(ldr)
    num, den = spurious_texture_terms(aligned, gt, texture_region(ldr))
    return {
        "pu21": pu21_psnr(aligned, gt),
        "pu21_over": pu21_psnr(aligned, gt, over),
        "log_psnr": log_psnr(aligned, gt),
        "tm_psnr": tonemapped_psnr(aligned, gt),
        "tm_ssim": ssim(tonemap(aligned), tonemap(gt)),
        "light_ratio": light_ratio(aligned, gt, over),
        "texture_s": num / den if np.isfinite(den) and den >= TEXTURE_MIN_ENERGY else float("nan"),
        "texture_num": num,
        "texture_den": den,
    }


def geometric_mean(values) -> float:
    """exp(mean(log v)) over the finite, positive values (NaN if none)."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], dtype=np.float64)
    return float(np.exp(np.mean(np.log(v)))) if v.size else float("nan")


def mean_abs_stops(values) -> float:
    """Mean |log2 v| over finite, positive ratios: the light error in stops."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], dtype=np.float64)
    return float(np.mean(np.abs(np.log2(v)))) if v.size else float("nan")


def pooled_texture(nums, dens) -> float:
    """S pooled over images: sum of the error energies over sum of the truth's energies."""
    pairs = [(n, d) for n, d in zip(nums, dens) if np.isfinite(n) and np.isfinite(d)]
    den = sum(d for _, d in pairs)
    return float(sum(n for n, _ in pairs) / den) if den > 0 else float("nan")


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Plain PSNR (used for the dequantization stage metric)."""
    return _psnr(a.astype(np.float64), b.astype(np.float64), peak)
