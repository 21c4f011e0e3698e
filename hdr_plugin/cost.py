"""Compute cost of the networks: multiply-accumulates per pixel, counted from the modules.

Used to weight progress by the work each step really does, by ``hdr-plugin bench`` for
kMAC/px and achieved GMAC/s, and by the model card's gain-per-cost table.  Convolutions
and linear layers are counted (everything else is memory traffic, not MACs).
"""

from __future__ import annotations

import functools

import torch
from torch import nn


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``module`` on ``inputs``."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += int(out.numel()) * k

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += int(out.numel()) * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


@functools.lru_cache(maxsize=32)
def _kmac_per_pixel_cached(model: nn.Module, size: int) -> dict[str, float]:
    x = torch.rand(1, 3, size, size)
    px = size * size
    with torch.no_grad():
        return {
            "dequantization": count_macs(model.deq, x) / px / 1e3,
            "hallucination": count_macs(model.hal, x) / px / 1e3,
            "refinement": count_macs(model.ref, x, x, x) / px / 1e3,
        }


def kmac_per_pixel(model: nn.Module, size: int = 64) -> dict[str, float]:
    """kMAC per computed pixel of the three full-resolution networks.

    Every convolution is same-padded, so the count per pixel does not depend on the size
    (any multiple of 32 gives the same numbers; 64 keeps it to milliseconds)."""
    return dict(_kmac_per_pixel_cached(model, size))


def linearization_macs(model: nn.Module) -> int:
    """MACs of one Linearization-Net call on its downscaled input (once per image)."""
    size = int(model.config.linearization_input_size)
    return count_macs(model.lin, torch.rand(1, 3, size, size))
