"""Training losses (float32, on ``(N, 3, H, W)`` RGB tensors)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..evaluation.metrics import CLIP_LUMINANCE, PU21_PEAK, pu21_encode


def pu21_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance in the PU21 domain, per channel, clip level at 100 cd/m^2 (the metric's space)."""
    a = pu21_encode(CLIP_LUMINANCE * pred.float().clamp_min(0.0))
    b = pu21_encode(CLIP_LUMINANCE * target.float().clamp_min(0.0))
    return (a - b).abs().mean() / PU21_PEAK


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
