"""Linearization-Net: estimates one inverse camera curve per image.

Input features (102 channels): the image, per-channel Sobel x/y edges and
spatially-aware soft histograms with 4, 8 and 16 bins.  A truncated ResNet (stem,
three bottlenecks to 4w channels, two to 8w with stride 2), global average pooling and a
dense layer predict curve parameters, turned into a 1024-sample monotonic inverse curve.

Curve head: with ``anchor="srgb"`` a zero output is exactly the inverse sRGB curve; the
first output is a log-exponent on it (a pure-gamma term), the next ones weight the
inverse-EMoR basis and the last is the logit of a confidence ``c`` that the image is
plain sRGB-encoded.  The curve is ``c * sRGB^-1 + (1 - c) * g``; at inference a confidence
above ``snap_threshold`` snaps to exact inverse sRGB.  Why: sRGB is the most common
encoding, and an L2-trained curve regressor averages ambiguous cases toward the mean
curve, which costs several dB on exactly those images; the snap makes the answer the
mode rather than the mean where the network is confident.  ``anchor="emor"`` is the
paper's head (mean inverse EMoR curve plus basis weights).  Curve math is elementwise
float32 so autocast never lowers it.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from .. import crf
from ..color import srgb_to_linear

HISTOGRAM_BINS = (4, 8, 16)


def sobel_features(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel x and y responses of ``(N, C, H, W)``, returned as ``(N, 2C, H, W)``."""
    c = x.shape[1]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype) / 4.0
    kernel = torch.stack([kx, kx.t()]).unsqueeze(1).repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def soft_histogram_features(x: torch.Tensor, bins: List[int]) -> torch.Tensor:
    """Triangular soft-bin memberships ``max(0, 1 - |x*B - b|)`` for b = 0..B.

    Channel order: input channel, then bin count B, then bin b (a per-channel table of
    ``sum(B + 1)`` values, which is what the 8-bit lookup-table path in training produces).
    """
    maps: List[torch.Tensor] = []
    for b in bins:
        centres = torch.arange(b + 1, device=x.device, dtype=x.dtype).view(1, 1, b + 1, 1, 1)
        maps.append(torch.relu(1.0 - (x.unsqueeze(2) * b - centres).abs()))
    return torch.cat(maps, dim=2).flatten(1, 2)


def linearization_features(x: torch.Tensor) -> torch.Tensor:
    """The 102-channel input of Linearization-Net for a display-referred ``(N, 3, H, W)`` image."""
    x = x.float().clamp(0.0, 1.0)
    return torch.cat([x, sobel_features(x), soft_histogram_features(x, [4, 8, 16])], dim=1)


N_FEATURES = 3 + 6 + 3 * sum(b + 1 for b in HISTOGRAM_BINS)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3, 1x1) with a projection shortcut when needed."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        if stride != 1 or cin != cout:
            self.shortcut: nn.Module = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class LinearizationNet(nn.Module):
    """Predicts a monotonic 1024-sample inverse camera curve ``(N, 1024)`` per image."""

    def __init__(
        self, width: int = 64, n_weights: int = crf.N_EMOR_WEIGHTS, anchor: str = "srgb", snap_threshold: float = 0.5
    ):
        super().__init__()
        if anchor not in ("srgb", "emor"):
            raise ValueError(f"unknown curve anchor {anchor!r}; use 'srgb' or 'emor'")
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(N_FEATURES, w, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.layer1 = nn.Sequential(Bottleneck(w, w, 4 * w), Bottleneck(4 * w, w, 4 * w), Bottleneck(4 * w, w, 4 * w))
        self.layer2 = nn.Sequential(Bottleneck(4 * w, 2 * w, 8 * w, stride=2), Bottleneck(8 * w, 2 * w, 8 * w))
        self.srgb_head = anchor == "srgb"
        self.n_weights = n_weights
        self.snap_threshold = float(snap_threshold)
        self.head = nn.Linear(8 * w, n_weights + (2 if self.srgb_head else 0))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

        g0, hinv = crf.inverse_emor_basis()
        base = srgb_to_linear(crf.GRID) if self.srgb_head else g0
        self.register_buffer("anchor", torch.as_tensor(base, dtype=torch.float32), persistent=False)
        self.register_buffer("basis", torch.as_tensor(hinv[:n_weights], dtype=torch.float32), persistent=False)

    def predict_parameters(self, image: torch.Tensor) -> torch.Tensor:
        """Raw head outputs ``(N, P)`` for a display-referred image ``(N, 3, H, W)``."""
        x = self.stem(linearization_features(image))
        x = self.layer2(self.layer1(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)).float()

    def srgb_confidence(self, params: torch.Tensor) -> torch.Tensor:
        """Confidence ``(N,)`` in [0, 1] that the image is plain sRGB-encoded (1 for the paper head: none)."""
        if not self.srgb_head:
            return torch.zeros_like(params[:, 0])
        return torch.sigmoid(params[:, -1].float())

    def curve_from_parameters(self, params: torch.Tensor, snap: bool = True) -> torch.Tensor:
        """Monotonic inverse curve ``(N, 1024)`` from head outputs, in float32.

        ``snap=False`` (training) keeps the soft confidence blend differentiable.
        """
        params = params.float()
        base = self.anchor.unsqueeze(0)
        weights = params
        if self.srgb_head:
            base = base.clamp_min(1e-8) ** torch.exp(params[:, :1])  # floor: finite gradient at 0
            weights = params[:, 1 : 1 + self.n_weights]
        curve = crf.make_monotonic(base + (weights.unsqueeze(2) * self.basis.unsqueeze(0)).sum(dim=1))
        if self.srgb_head:
            c = self.srgb_confidence(params).unsqueeze(1)
            if snap:
                c = torch.where(c > self.snap_threshold, torch.ones_like(c), c)
            curve = c * self.anchor.unsqueeze(0) + (1.0 - c) * curve
        return curve

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.curve_from_parameters(self.predict_parameters(image))
