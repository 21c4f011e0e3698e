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


def score(pred: np.ndarray, gt: np.ndarray, ldr: np.ndarray) -> dict[str, float]:
    """All protocol metrics for one prediction (aligned here) against its ground truth."""
    aligned = pred * alignment_scale(pred, gt, ldr)
    over = overexposed_mask(ldr)
    return {
        "pu21": pu21_psnr(aligned, gt),
        "pu21_over": pu21_psnr(aligned, gt, over),
        "log_psnr": log_psnr(aligned, gt),
        "tm_psnr": tonemapped_psnr(aligned, gt),
        "tm_ssim": ssim(tonemap(aligned), tonemap(gt)),
    }


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Plain PSNR (used for the dequantization stage metric)."""
    return _psnr(a.astype(np.float64), b.astype(np.float64), peak)
