"""Hallucination-Net: restores radiance in the clipped highlights.

VGG16-topology encoder (blocks of 2, 2, 3, 3, 3 3x3 convs with max-pooling), a 3x3
bottleneck, five resize-convolution decoder blocks (nearest x2, conv 3x3, BN, ReLU) with
1x1 skip fusions initialised as addition, and a final 1x1 conv to 3 channels.

Output: ``A = B + alpha * (exp(relu(z)) - 1)`` - a positive residual, only where the soft
over-exposure mask ``alpha`` is non-zero, so well-exposed pixels pass through unchanged.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

VGG_BLOCKS = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))  # (convs, width multiplier)


def overexposure_mask(linear: torch.Tensor, threshold: float) -> torch.Tensor:
    """Soft mask ``clip((max_c(B) - t) / (1 - t), 0, 1)`` of shape ``(N, 1, H, W)``, float32."""
    peak = linear.float().amax(dim=1, keepdim=True)
    return ((peak - threshold) / (1.0 - threshold)).clamp(0.0, 1.0)


class _AddFusion(nn.Conv2d):
    """1x1 conv over ``cat(decoder, skip)`` initialised to ``decoder + skip``."""

    def __init__(self, channels: int):
        super().__init__(2 * channels, channels, 1)
        with torch.no_grad():
            eye = torch.eye(channels).view(channels, channels, 1, 1)
            self.weight.copy_(torch.cat([eye, eye], dim=1))
            self.bias.zero_()


class HallucinationNet(nn.Module):
    """Predicts HDR values ``(N, 3, H, W)`` from a clipped linear image ``B`` in [0, 1].

    Height and width must be multiples of 32.
    """

    def __init__(self, width: int = 64, mask_threshold: float = 0.88):
        super().__init__()
        self.mask_threshold = mask_threshold
        widths = [width * m for _, m in VGG_BLOCKS]
        enc: List[nn.Module] = []
        cin = 3
        for (n_convs, _), cout in zip(VGG_BLOCKS, widths):
            layers: List[nn.Module] = []
            for _ in range(n_convs):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
            enc.append(nn.Sequential(*layers))
        self.encoder = nn.ModuleList(enc)
        self.bottleneck = nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1), nn.ReLU(inplace=True))
        up: List[nn.Module] = []
        fuse: List[nn.Module] = []
        for cout in reversed(widths):
            up.append(nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
            fuse.append(_AddFusion(cout))
            cin = cout
        self.up = nn.ModuleList(up)
        self.fuse = nn.ModuleList(fuse)
        self.out = nn.Conv2d(cin, 3, 1)

    def forward(self, linear: torch.Tensor) -> torch.Tensor:
        b = linear.float().clamp(0.0, 1.0)
        x = b.clamp_min(1e-5) ** (1.0 / 2.2)  # perceptual-ish encoding conditions convs better than linear
        skips: List[torch.Tensor] = []
        for i, block in enumerate(self.encoder):
            if i == 0:
                # The full-resolution first block runs in float32 even under autocast: it reads
                # the image itself, and bf16 input steps (0.4 %) there cost ~25 dB of bf16-vs-
                # fp32 agreement in the restored highlights, for no measurable speed gain.
                with torch.autocast(device_type="cpu", enabled=False):
                    with torch.autocast(device_type="cuda", enabled=False):
                        x = block(x.float())
            else:
                x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for i, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            skip = skips[len(skips) - 1 - i]
            x = up(F.interpolate(x, size=skip.shape[-2:], mode="nearest"))
            x = fuse(torch.cat([x, skip.to(x.dtype)], dim=1))
        z = self.out(x).float()
        alpha = overexposure_mask(b, self.mask_threshold)
        return b + alpha * torch.expm1(torch.relu(z))
