"""Tile planning and tiled execution of fully convolutional stages.

The image stays in host memory as an ``(H, W, C)`` numpy array; tiles travel to the
device one at a time.  The grid is *balanced*: along each axis the image is cut into
equal cores (sizes differ by at most one pixel), each core is computed on a window that
adds ``overlap`` pixels of context on its inner sides and is then grown, inside the image,
to a multiple of the networks' padding multiple, so the padding a network needs is real
context rather than reflection.  Only the core of each tile is written back: every pixel
is owned by exactly one tile.

Sparse execution: a tile whose ``needs`` test is false is not computed at all and its core
keeps what the output buffer already holds (for Hallucination-Net: the linear image, which
is exactly what the network returns wherever the over-exposure mask is zero).

On CUDA out-of-memory the pass restarts with tiles of a quarter of the area.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger("hdr_plugin")

#: smallest tile core side the planner makes (context dominates below that)
MIN_CORE = 64
#: fixed cost of one tile call, counted as this many extra computed pixels when the
#: planner compares grids (launch and copy overheads, measured order of magnitude)
TILE_OVERHEAD_PX = 16384


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


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def axis_windows(length: int, n: int, overlap: int, multiple: int) -> list[tuple[int, int, int, int]]:
    """``n`` balanced cores along one axis, each as ``(c0, c1, e0, e1)``.

    Cores split ``length`` into sizes that differ by at most one; a window adds
    ``overlap`` on inner sides and is grown inside ``[0, length)`` (evenly on both sides,
    spilling over where one side hits the border) to the longest window's length, a
    multiple of ``multiple``.
    """
    bounds = [(i * length) // n for i in range(n + 1)]
    spans = [(c0, c1, max(0, c0 - overlap), min(length, c1 + overlap)) for c0, c1 in zip(bounds[:-1], bounds[1:])]
    # every window gets the same length (the longest, rounded to the multiple): one input
    # shape per pass, so a runtime keeps one set of buffers; border windows gain context
    target = min(max(_round_up(e1 - e0, multiple) for *_, e0, e1 in spans), length)
    out = []
    for c0, c1, e0, e1 in spans:
        need = target - (e1 - e0)
        lo = min(need // 2, e0)
        hi = min(need - lo, length - e1)
        lo = min(need - hi, e0)
        out.append((c0, c1, e0 - lo, e1 + hi))
    return out


def _axis_cost(windows, multiple: int) -> int:
    return sum(_round_up(e1 - e0, multiple) for _, _, e0, e1 in windows)


def plan_grid(
    height: int,
    width: int,
    *,
    overlap: int,
    multiple: int = 64,
    max_core: int | None = None,
    max_window_area: int | None = None,
) -> list[Tile]:
    """A balanced grid computing the fewest pixels under the given limits.

    ``max_core``: cores at most this many pixels on a side (an explicit ``--tile``).
    ``max_window_area``: computed windows (padded) at most this many pixels (the memory
    budget).  With neither, the whole image is one tile.  Among the grids that satisfy
    the limits the one with the fewest computed pixels wins (ties: fewer tiles).
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot tile an empty image ({width}x{height})")
    ny_min = max(1, math.ceil(height / max_core)) if max_core else 1
    nx_min = max(1, math.ceil(width / max_core)) if max_core else 1
    ny_max = max(ny_min, min(math.ceil(height / MIN_CORE), ny_min + 48))
    nx_max = max(nx_min, min(math.ceil(width / MIN_CORE), nx_min + 48))
    rows = {ny: axis_windows(height, ny, overlap if ny > 1 else 0, multiple) for ny in range(ny_min, ny_max + 1)}
    cols = {nx: axis_windows(width, nx, overlap if nx > 1 else 0, multiple) for nx in range(nx_min, nx_max + 1)}
    tallest = {ny: max(_round_up(e1 - e0, multiple) for *_, e0, e1 in r) for ny, r in rows.items()}
    widest = {nx: max(_round_up(e1 - e0, multiple) for *_, e0, e1 in c) for nx, c in cols.items()}
    best = None
    for ny, r in rows.items():
        for nx, c in cols.items():
            if max_window_area and tallest[ny] * widest[nx] > max_window_area:
                continue
            cost = _axis_cost(r, multiple) * _axis_cost(c, multiple) + ny * nx * TILE_OVERHEAD_PX
            if best is None or cost < best[0]:
                best = (cost, ny, nx)
    if best is None:  # nothing fits the area: the finest grid searched
        best = (0, ny_max, nx_max)
    _, ny, nx = best
    return [Tile(y0, y1, x0, x1, ey0, ey1, ex0, ex1) for y0, y1, ey0, ey1 in rows[ny] for x0, x1, ex0, ex1 in cols[nx]]


def tile_grid(height: int, width: int, tile: int, overlap: int, multiple: int = 64) -> list[Tile]:
    """The balanced grid for an explicit tile size (cores at most ``tile`` px a side)."""
    return plan_grid(height, width, overlap=overlap, multiple=multiple, max_core=tile)


def computed_pixels(tiles: Sequence[Tile], multiple: int = 64) -> int:
    """Pixels a pass over ``tiles`` computes, padding included."""
    return sum(_round_up(t.ey1 - t.ey0, multiple) * _round_up(t.ex1 - t.ex0, multiple) for t in tiles)


class MaskIndex:
    """Constant-time "does this rectangle hold any masked pixel" for a boolean (H, W) mask."""

    def __init__(self, mask: np.ndarray):
        m = np.asarray(mask, dtype=bool)
        self.fraction = float(m.mean()) if m.size else 0.0
        # int32 summed-area table, built in place (no full-size temporaries): 4 bytes a pixel
        dtype = np.int32 if m.size < 2**31 else np.int64
        self._sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1), dtype)
        inner = self._sat[1:, 1:]
        np.cumsum(m, axis=0, dtype=dtype, out=inner)
        np.cumsum(inner, axis=1, out=inner)

    def count(self, y0: int, y1: int, x0: int, x1: int) -> int:
        s = self._sat
        return int(s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0])

    def any_in_core(self, t: Tile) -> bool:
        return self.count(t.y0, t.y1, t.x0, t.x1) > 0


def plan_sparse_grid(
    height: int,
    width: int,
    mask: MaskIndex,
    *,
    overlap: int,
    multiple: int,
    max_window_area: int,
) -> list[Tile]:
    """The grid that computes the fewest pixels when only tiles holding masked pixels run.

    Tries the memory-limited grid and grids of a quarter, a sixteenth ... of its window
    area (down to cores of twice the context) and keeps the cheapest; returns only the
    tiles that need computing.
    """
    best = None
    area = max_window_area
    smallest = max(MIN_CORE * MIN_CORE, (4 * overlap) ** 2)
    while True:
        tiles = [t for t in plan_grid(height, width, overlap=overlap, multiple=multiple, max_window_area=area) if mask.any_in_core(t)]
        cost = computed_pixels(tiles, multiple) + len(tiles) * TILE_OVERHEAD_PX
        if best is None or cost < best[0]:
            best = (cost, tiles)
        if area <= smallest or not tiles:
            break
        area = max(smallest, area // 4)
    return best[1]


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def _window(a: np.ndarray, t: Tile, device: torch.device) -> torch.Tensor:
    """``(1, C, h, w)`` float32 device tensor of the tile's window of a host (H, W, C) array."""
    w = np.ascontiguousarray(a[t.ey0 : t.ey1, t.ex0 : t.ex1].transpose(2, 0, 1))
    return torch.from_numpy(w).to(device=device, dtype=torch.float32)[None]


def run_tiles(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[np.ndarray],
    out: np.ndarray,
    tiles: Sequence[Tile],
    *,
    device: torch.device,
    multiple: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Compute ``fn`` on each tile's window of ``inputs`` and write its core into ``out``.

    ``inputs``: host ``(H, W, C_i)`` float arrays; ``fn`` gets one ``(1, C_i, h, w)``
    device tensor per input (padded to ``multiple``) and returns ``(1, C_out, h, w)``.
    ``out``: host ``(H, W, C_out)`` array, written in place at each tile's core (what
    lies outside the given tiles is left as it was).  ``progress(done, total)`` is called
    after every tile (it may raise to cancel).
    """
    total = len(tiles)
    for i, t in enumerate(tiles):
        windows = []
        for a in inputs:
            x, (h, w) = pad_to_multiple(_window(a, t, device), multiple)
            windows.append(x)
        y = fn(*windows)[0, :, :h, :w]
        core = y[:, t.y0 - t.ey0 : t.y1 - t.ey0, t.x0 - t.ex0 : t.x1 - t.ex0]
        out[t.y0 : t.y1, t.x0 : t.x1] = core.float().cpu().numpy().transpose(1, 2, 0)
        if progress:
            progress(i + 1, total)
    return out


def run_with_oom_retry(plan: Callable[[int], Sequence[Tile]], run: Callable[[Sequence[Tile]], np.ndarray], area: int, device: torch.device) -> np.ndarray:
    """``run(plan(area))``, replanning with a quarter of the window area on CUDA out-of-memory."""
    while True:
        try:
            return run(plan(area))
        except RuntimeError as e:
            if device.type != "cuda" or not _is_oom(e) or area // 4 < (MIN_CORE * 4) ** 2:
                raise
            torch.cuda.empty_cache()
            area //= 4
            log.warning("CUDA out of memory; retrying with tiles of at most %d pixels", area)


# --------------------------------------------------------------------------- memory planning
#: default peak-memory budget of one conversion (``--max-memory``)
DEFAULT_MAX_MEMORY = 3 * 2**30
#: resident memory of the process before any image: Python, torch, the runtime, the weights
#: (measured: 365 MiB after an engine with OpenVINO has loaded)
BASELINE_BYTES = 450 * 2**20
#: default peak working memory per computed window pixel (the runtimes report their own:
#: ``hdr_plugin.runtime.BYTES_PER_WINDOW_PIXEL``)
BYTES_PER_WINDOW_PIXEL = 1200
#: windows never get smaller than this (cores of about 4x the context)
MIN_WINDOW_AREA = 448 * 448


class MemoryBudgetError(ValueError):
    """The image cannot be converted within the memory budget."""


def window_area_for_budget(budget: int, image_pixels: int, host_bytes_per_pixel: int, window_bytes_per_pixel: int = BYTES_PER_WINDOW_PIXEL) -> int:
    """The largest tile window (pixels) that keeps a conversion's peak under ``budget`` bytes.

    ``host_bytes_per_pixel``: what the engine and its caller hold per image pixel for the
    whole run (decoded input, output, intermediate images); ``window_bytes_per_pixel``:
    the runtime's working memory per computed pixel.
    """
    free = budget - BASELINE_BYTES - image_pixels * host_bytes_per_pixel
    area = free // window_bytes_per_pixel
    if area < MIN_WINDOW_AREA:
        need = BASELINE_BYTES + image_pixels * host_bytes_per_pixel + MIN_WINDOW_AREA * window_bytes_per_pixel
        raise MemoryBudgetError(
            f"a {image_pixels / 1e6:.1f}-megapixel image needs about {need / 2**30:.1f} GiB, above the memory budget of "
            f"{budget / 2**30:.1f} GiB; raise it with --max-memory (or max_memory=)"
        )
    return int(area)
