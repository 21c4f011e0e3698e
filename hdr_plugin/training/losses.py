"""Training losses (float32, on ``(N, 3, H, W)`` RGB tensors)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..evaluation.metrics import CLIP_LUMINANCE, PU21_PEAK, pu21_encode


def pu21_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in the PU21 domain, per channel, clip level at 100 cd/m^2.

    The evaluation metric is PU21-PSNR, i.e. an L2 error in this space, so this loss asks
    for the conditional mean the metric rewards (an L1 loss would ask for the median).
    """
    a = pu21_encode(CLIP_LUMINANCE * pred.float().clamp_min(0.0))
    b = pu21_encode(CLIP_LUMINANCE * target.float().clamp_min(0.0))
    return ((a - b) / PU21_PEAK).pow(2).mean()


def pu21_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance in the PU21 domain (used for the linear image, where errors are small)."""
    a = pu21_encode(CLIP_LUMINANCE * pred.float().clamp_min(0.0))
    b = pu21_encode(CLIP_LUMINANCE * target.float().clamp_min(0.0))
    return (a - b).abs().mean() / PU21_PEAK


def log_mse(pred: torch.Tensor, target: torch.Tensor, floor_db: float) -> torch.Tensor:
    """Mean over images of ``log(MSE_i + floor)``: minus the mean PSNR over images, / 4.34.

    Mean PSNR weighs every image's *relative* error equally, where a plain L2 lets the
    worst images (JPEG blocks, ambiguous curves) dominate the gradient; ``floor_db`` caps
    the reward for near-perfect images so gradients stay bounded.
    """
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    return torch.log(mse + 10.0 ** (-floor_db / 10.0)).mean()


def pu21_log_mse(pred: torch.Tensor, target: torch.Tensor, floor_db: float = 60.0) -> torch.Tensor:
    """:func:`log_mse` in the PU21 domain (the metric's space), clip level at 100 cd/m^2.

    For curve estimation it pulls the regressor toward the likely answer (an sRGB image
    given exactly the sRGB curve) instead of the average of ambiguous ones.
    """
    a = pu21_encode(CLIP_LUMINANCE * pred.float().clamp_min(0.0)) / PU21_PEAK
    b = pu21_encode(CLIP_LUMINANCE * target.float().clamp_min(0.0)) / PU21_PEAK
    return log_mse(a, b, floor_db)


def aligned_pu21_log_mse(pred: torch.Tensor, target: torch.Tensor, ldr: torch.Tensor, floor_db: float = 60.0) -> torch.Tensor:
    """The evaluation metric as a loss: each prediction is scaled to its target by the
    protocol's alignment (geometric mean ratio of luminance over well-exposed pixels,
    treated as a constant), then :func:`log_mse` of PU21-encoded luminance.

    Without it a final-stage network spends its capacity on a global brightness the metric
    ignores, and a per-channel mean over the batch lets the worst images dominate.
    """
    from ..color import luminance
    from ..evaluation.metrics import OVEREXPOSED_LEVEL

    yp, yt = luminance(pred.float(), channel_axis=1), luminance(target.float(), channel_axis=1)
    with torch.no_grad():
        valid = (ldr.amax(dim=1) < OVEREXPOSED_LEVEL) & (yp > 0) & (yt > 0)
        log_ratio = torch.log(yt.clamp_min(1e-12)) - torch.log(yp.clamp_min(1e-12))
        count = valid.flatten(1).sum(dim=1).clamp_min(1)
        scale = torch.exp((log_ratio * valid).flatten(1).sum(dim=1) / count).view(-1, 1, 1)
    a = pu21_encode(CLIP_LUMINANCE * (yp * scale).clamp_min(0.0)) / PU21_PEAK
    b = pu21_encode(CLIP_LUMINANCE * yt.clamp_min(0.0)) / PU21_PEAK
    return log_mse(a, b, floor_db)


def compress(y: torch.Tensor) -> torch.Tensor:
    """The paper's compressed HDR domain ``T(y) = log(1 + 10 y) / log(11)``."""
    return torch.log1p(10.0 * y.float().clamp_min(0.0)) / math.log(11.0)


def total_variation(y: torch.Tensor) -> torch.Tensor:
    return (y[..., 1:, :] - y[..., :-1, :]).abs().mean() + (y[..., :, 1:] - y[..., :, :-1]).abs().mean()


def perceptual(encoder: torch.nn.ModuleList, pred: torch.Tensor, target: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Feature distance through the first ``levels`` blocks of a frozen (trained) VGG-style encoder."""
    x, y = compress(pred), compress(target)
    loss = pred.new_zeros(())
    for block in list(encoder)[:levels]:
        x, y = block(x), block(y)
        loss = loss + F.mse_loss(x.float(), y.float())
        x, y = F.max_pool2d(x, 2), F.max_pool2d(y, 2)
    return loss


def _overexposed(ldr: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` float mask of pixels whose input max channel is at the clip level."""
    from ..evaluation.metrics import OVEREXPOSED_LEVEL

    return (ldr.float().amax(dim=1, keepdim=True) >= OVEREXPOSED_LEVEL).float()


def missing_light(pred: torch.Tensor, target: torch.Tensor, ldr: torch.Tensor, min_pixels: int = 16) -> torch.Tensor:
    """Mean over images of ``|log2(sum Y_pred / sum Y_true)|`` in the over-exposed region.

    The evaluation's light ratio as a loss, in stops.  A PU21 L2 alone asks for the
    conditional mean in a compressive domain, which under uncertainty holds too little light
    (measured: 0.6 of the truth); this term counts the light that is missing.  Images with
    fewer than ``min_pixels`` clipped pixels do not count.
    """
    from ..color import luminance

    mask = _overexposed(ldr)[:, 0]
    yp = (luminance(pred.float().clamp_min(0.0), channel_axis=1) * mask).flatten(1).sum(dim=1)
    yt = (luminance(target.float().clamp_min(0.0), channel_axis=1) * mask).flatten(1).sum(dim=1)
    valid = (mask.flatten(1).sum(dim=1) >= min_pixels).float()
    stops = (torch.log2(yp + 1e-6) - torch.log2(yt + 1e-6)).abs()
    return (stops * valid).sum() / valid.sum().clamp_min(1.0)


def masked_log_l2(pred: torch.Tensor, target: torch.Tensor, ldr: torch.Tensor, eps: float = 1.0 / 64) -> torch.Tensor:
    """The paper's hallucination loss: L2 of ``log(y + eps)`` over the over-exposed region."""
    mask = _overexposed(ldr)
    d = torch.log(pred.float().clamp_min(0.0) + eps) - torch.log(target.float().clamp_min(0.0) + eps)
    return (d.pow(2) * mask).sum() / (3.0 * mask.sum()).clamp_min(1.0)
