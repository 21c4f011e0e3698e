"""Padding and overlapping-tile execution of fully convolutional stages.

The image stays in host memory; tiles travel to the device one at a time, are
reflect-padded to a multiple of 64, processed, cropped back and blended into the host
result with linear feathering across the overlaps.  On CUDA out-of-memory the pass
restarts with half the tile size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

log = logging.getLogger("hdr_plugin")

MIN_TILE = 128


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``(N, C, H, W)`` at the bottom/right to multiples of ``multiple``.

    Reflection is repeated when the pad exceeds the image (tiny inputs).  Returns the
    padded tensor and the original ``(H, W)`` for cropping back.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    while ph > 0 or pw > 0:
        step_h, step_w = min(ph, x.shape[-2] - 1), min(pw, x.shape[-1] - 1)
        if step_h == 0 and step_w == 0:  # 1-pixel image: nothing to reflect
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            break
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        ph, pw = ph - step_h, pw - step_w
    return x, (h, w)


@dataclass(frozen=True)
class Tile:
    """A tile: the core window it owns and the extended window it is computed on."""

    y0: int
    y1: int
    x0: int
    x1: int
    ey0: int
    ey1: int
    ex0: int
    ex1: int


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cover the image with ``tile``-sized cores, each extended by ``overlap`` on inner sides."""
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            tiles.append(Tile(y0, y1, x0, x1, max(0, y0 - overlap), min(height, y1 + overlap), max(0, x0 - overlap), min(width, x1 + overlap)))
    return tiles


def _ramp(n: int, lo_ext: int, hi_ext: int) -> torch.Tensor:
    """1-D blend weights: rising over the leading extension, flat, falling over the trailing one."""
    w = torch.ones(n)
    if lo_ext > 0:
        w[:lo_ext] = torch.arange(1, lo_ext + 1, dtype=torch.float32) / (lo_ext + 1)
    if hi_ext > 0:
        w[n - hi_ext :] = torch.arange(hi_ext, 0, -1, dtype=torch.float32) / (hi_ext + 1)
    return w


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    out_channels: int,
    *,
    device: torch.device,
    tile: int | None,
    overlap: int,
    multiple: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Apply ``fn`` (device tensor ``(1, C, h, w)`` -> ``(1, out_channels, h, w)``) tile by tile.

    ``image`` is a host ``(1, C, H, W)`` float32 tensor; ``tile=None``/0 processes the
    whole image at once.  ``progress(done, total)`` is called after every tile (it may
    raise to cancel).  Returns a host float32 ``(1, out_channels, H, W)`` tensor.
    """
    _, _, height, width = image.shape
    size = tile if tile else max(height, width)
    while True:
        try:
            return _run_pass(fn, image, out_channels, device, size, overlap if tile else 0, multiple, progress)
        except RuntimeError as e:
            if device.type != "cuda" or not _is_oom(e) or size // 2 < MIN_TILE:
                raise
            torch.cuda.empty_cache()
            size //= 2
            log.warning("CUDA out of memory; retrying with %d-pixel tiles", size)


def _run_pass(fn, image, out_channels, device, size, overlap, multiple, progress) -> torch.Tensor:
    _, _, height, width = image.shape
    tiles = tile_grid(height, width, size, overlap)
    if len(tiles) == 1:
        x, (h, w) = pad_to_multiple(image.to(device), multiple)
        out = fn(x)[..., :h, :w].float().cpu()
        if progress:
            progress(1, 1)
        return out
    acc = torch.zeros(1, out_channels, height, width)
    weight = torch.zeros(1, 1, height, width)
    for i, t in enumerate(tiles):
        x = image[..., t.ey0 : t.ey1, t.ex0 : t.ex1].to(device)
        x, (h, w) = pad_to_multiple(x, multiple)
        out = fn(x)[..., :h, :w].float().cpu()
        wy = _ramp(h, t.y0 - t.ey0, t.ey1 - t.y1)
        wx = _ramp(w, t.x0 - t.ex0, t.ex1 - t.x1)
        wmap = (wy[:, None] * wx[None, :])[None, None]
        acc[..., t.ey0 : t.ey1, t.ex0 : t.ex1] += out * wmap
        weight[..., t.ey0 : t.ey1, t.ex0 : t.ex1] += wmap
        if progress:
            progress(i + 1, len(tiles))
    return acc / weight
