"""The inference engine: load once, reconstruct many images.

``Engine.reconstruct`` takes an RGB display-referred image and returns RGB float32
scene-linear HDR with the input's white (code value 1.0) at 1.0 and highlights above it:

1. Dequantization-Net, tile by tile (``quality="max"`` only, see :mod:`hdr_plugin.quality`);
2. one inverse camera curve for the whole image: a plugin's (``hdr_inverse_crf``), or
   Linearization-Net on a downscaled copy of the (dequantized) image;
3. curve lookup (float32) and Hallucination-Net, only on the tiles that hold over-exposed
   pixels (every other pixel is the linear image, which is exactly what the network
   returns where its mask is zero);
4. Refinement-Net, tile by tile (``quality="max"`` only).

Tiles follow a balanced grid sized from the memory budget (:mod:`hdr_plugin.tiling`);
the full-resolution networks run on the chosen runtime (:mod:`hdr_plugin.runtime`).
Hooks observe every stage, report progress per tile (with ``context.fraction``, the share
of the whole run's compute that is done) and may cancel.
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import torch

from . import crf
from .cost import kmac_per_pixel, linearization_macs
from .devices import autocast, resolve_device, resolve_precision
from .model import HDRModel, downscale_longest_side
from .plugins import get_plugin_manager
from .quality import resolve_quality
from .runtime import Runners, resolve_runtime
from .tiling import (
    DEFAULT_MAX_MEMORY,
    MaskIndex,
    Tile,
    computed_pixels,
    plan_grid,
    plan_sparse_grid,
    run_tiles,
    run_with_oom_retry,
    window_area_for_budget,
)
from .weights import load_model

log = logging.getLogger("hdr_plugin")

DEFAULT_OVERLAP = 96
#: float32 RGB images held per pixel during a run: the caller's decoded input, the
#: prepared input, the output (and in ``max`` quality the dequantized and hallucinated images)
_HOST_IMAGES = {"standard": 3, "max": 5}


class Cancelled(Exception):
    """A progress hook returned False; nothing should be written."""


class NumericalError(RuntimeError):
    """The networks produced NaN or infinite values."""


@dataclass
class RunContext:
    """What hooks get to know about the current run."""

    engine: "Engine"
    options: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: share of this run's compute done so far (0..1), weighted by each step's MACs;
    #: set before every ``hdr_progress`` call
    fraction: float = 0.0


@dataclass
class HDRResult:
    """The final scene-linear RGB image and metadata, as seen by ``hdr_finalize_output``."""

    image: np.ndarray
    metadata: dict[str, str]
    curve: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: multiply-accumulates each stage computed (for benchmarks and progress weights)
    work: dict[str, float] = field(default_factory=dict)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


class _Work:
    """Progress accounting in MACs: what is planned, what is done."""

    def __init__(self):
        self.planned: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.fraction = 0.0

    def plan(self, stage: str, macs: float) -> None:
        self.planned[stage] = float(macs)
        self.done.setdefault(stage, 0.0)

    def advance(self, stage: str, fraction_of_stage: float) -> float:
        self.done[stage] = self.planned.get(stage, 0.0) * fraction_of_stage
        total = sum(self.planned.values())
        # a later, exact plan can only make a step cheaper than first estimated; never step back
        self.fraction = max(self.fraction, min(1.0, sum(self.done.values()) / total) if total > 0 else 1.0)
        return self.fraction


class Engine:
    """Reusable reconstruction engine (networks loaded once; thread-compatible, not thread-safe).

    Parameters
    ----------
    weights: a weights folder / ``.safetensors`` path, or None for the shipped weights.
    device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``; an unavailable explicit
        device raises :class:`hdr_plugin.devices.DeviceUnavailableError`.
    precision: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (see :mod:`hdr_plugin.devices`).
    tile: ``auto``/None (tiles sized from ``max_memory``; sparse Hallucination-Net picks
        the grid that computes the fewest pixels), a core size in pixels (at most that
        many pixels a side), or ``0`` for whole-image processing.
    tile_overlap: pixels of context added around each tile core.
    quality: ``auto`` | ``standard`` | ``max`` (see :mod:`hdr_plugin.quality`).
    runtime: ``auto`` | ``torch`` | ``openvino`` | ``onnxruntime`` (see :mod:`hdr_plugin.runtime`).
    max_memory: peak-memory budget in bytes for one conversion (default 3 GiB).
    model: an already built :class:`HDRModel` (tests, training) instead of ``weights``.
    plugin_manager: a pluggy manager (default: the process-wide one).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | str | None = "auto",
        tile_overlap: int = DEFAULT_OVERLAP,
        quality: str = "auto",
        runtime: str = "auto",
        max_memory: int | None = None,
        model: HDRModel | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
    ):
        self.device = resolve_device(device)
        if tile in (None, "auto"):
            self.tile: int | None = None
        else:
            self.tile = int(tile)
            if self.tile < 0 or 0 < self.tile < 64:
                raise ValueError(f"tile must be 0 (no tiling), auto or at least 64 pixels, got {tile}")
        if int(tile_overlap) < 0:
            raise ValueError(f"tile_overlap must be >= 0 pixels, got {tile_overlap}")
        self.tile_overlap = int(tile_overlap)
        self.max_memory = int(max_memory) if max_memory is not None else DEFAULT_MAX_MEMORY
        if self.max_memory <= 0:
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory}")
        #: host bytes per image pixel that the caller holds while the engine runs (a shot's
        #: temporal buffers, :func:`hdr_plugin.temporal.held_bytes_per_pixel`): counted in
        #: the memory plan, so that they too stay inside ``max_memory``
        self.held_bytes_per_pixel = 0
        if model is not None:
            self.model, self.weights_info = model.eval(), None
        else:
            self.model, self.weights_info = load_model(weights)
        self.model.to(self.device)
        self._pm = plugin_manager
        self.quality = resolve_quality(quality, self.weights_info.manifest if self.weights_info else None)
        self.runtime = resolve_runtime(runtime, self.device)
        measured = dict(self.weights_info.precision_checks) if self.weights_info else {}
        self.precision = resolve_precision(precision, self.device, measured, self.runtime)
        if self.runtime == "onnxruntime" and self.precision != "fp32":
            raise ValueError("the onnxruntime runtime runs fp32 only; use precision='fp32' or another runtime")
        self._runners: Runners | None = None
        self.kmac_per_pixel = kmac_per_pixel(self.model)
        self.linearization_macs = linearization_macs(self.model)
        if self.weights_info is not None and not self.weights_info.trained:
            log.warning("hdr_plugin: weights %s are marked untrained (test weights)", self.weights_info.path)
        log.info(
            "hdr_plugin: device=%s runtime=%s precision=%s quality=%s weights=%s",
            self.device,
            self.runtime,
            self.precision,
            self.quality.name,
            self.weights_info.path if self.weights_info else "<in-memory model>",
        )

    # ------------------------------------------------------------------ properties
    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        return self._pm or get_plugin_manager()

    @property
    def config(self):
        return self.model.config

    @property
    def runners(self) -> Runners:
        """The full-resolution networks on this engine's runtime (rebuilt if model, runtime or precision change)."""
        r = self._runners
        if r is None or r.model is not self.model or (r.runtime, r.precision) != (self.runtime, self.precision):
            weights_key = self.weights_info.sha256 if self.weights_info else None
            self._runners = r = Runners(self.model, self.runtime, self.device, self.precision, weights_key)
        return r

    def describe(self) -> dict[str, Any]:
        """Device, precision, weights and config, for ``hdr-plugin info`` and logs."""
        info = self.weights_info
        return {
            "device": str(self.device),
            "runtime": self.runtime,
            "precision": self.precision,
            "quality": self.quality.name,
            "networks": list(self.quality.networks),
            "tile": self.tile if self.tile is not None else "auto",
            "max_memory": self.max_memory,
            "weights": str(info.path) if info else None,
            "weights_sha256": info.sha256 if info else None,
            "weights_trained": info.trained if info else None,
            "model_config": self.config.name,
            "parameters": self.model.parameter_count(),
        }

    # ------------------------------------------------------------------ progress and observers
    def _progress(self, ctx: RunContext, stage: str, work: "_Work | None" = None):
        def report(done: int, total: int) -> None:
            if work is not None:
                ctx.fraction = work.advance(stage, done / max(1, total))
            answers = self.plugin_manager.hook.hdr_progress(stage=stage, done=done, total=total, context=ctx)
            if any(a is False for a in answers):
                raise Cancelled(f"cancelled during {stage} ({done}/{total})")

        return report

    def _observe(self, stage: str, image: np.ndarray, ctx: RunContext) -> None:
        self.plugin_manager.hook.hdr_stage_output(stage=stage, image=image, context=ctx)

    def _has_observers(self) -> bool:
        return bool(self.plugin_manager.hook.hdr_stage_output.get_hookimpls())

    # ------------------------------------------------------------------ planning
    def window_area(self, height: int, width: int) -> int | None:
        """Largest computed window (pixels) for an image of this size under ``max_memory``; None: untiled."""
        if self.tile == 0:
            return None
        return window_area_for_budget(
            self.max_memory, height * width, 4 * 3 * _HOST_IMAGES[self.quality.name] + int(getattr(self, "held_bytes_per_pixel", 0)),
            self.runners.bytes_per_window_pixel,
        )

    def check_memory(self, height: int, width: int) -> None:
        """Raise :class:`hdr_plugin.tiling.MemoryBudgetError` if an image of this size cannot be
        converted inside ``max_memory`` (callers check it from the file header, before decoding)."""
        self.window_area(height, width)

    def plan_dense(self, height: int, width: int, area: int | None = None) -> list[Tile]:
        """The balanced grid a dense pass (Dequantization-, Refinement-Net) runs on."""
        multiple = self.config.padding_multiple
        if self.tile == 0:
            return plan_grid(height, width, overlap=0, multiple=multiple)
        return plan_grid(
            height, width, overlap=self.tile_overlap, multiple=multiple, max_core=self.tile,
            max_window_area=area if area is not None else self.window_area(height, width),
        )

    def plan_hallucination(self, mask: MaskIndex, height: int, width: int, area: int | None = None) -> list[Tile]:
        """The tiles Hallucination-Net computes: those whose core holds over-exposed pixels."""
        if self.tile == 0:
            grid = plan_grid(height, width, overlap=0, multiple=self.config.padding_multiple)
            return [t for t in grid if mask.any_in_core(t)]
        if self.tile is not None:
            return [t for t in self.plan_dense(height, width, area) if mask.any_in_core(t)]
        return plan_sparse_grid(
            height, width, mask, overlap=self.tile_overlap, multiple=self.config.padding_multiple,
            max_window_area=area if area is not None else self.window_area(height, width),
        )

    # ------------------------------------------------------------------ stages
    def _dense_pass(self, network: str, stage: str, inputs: list[np.ndarray], fn, ctx, work) -> np.ndarray:
        height, width = inputs[0].shape[:2]
        out = np.empty((height, width, 3), np.float32)
        multiple = self.config.padding_multiple

        def run(tiles):
            return run_tiles(fn, inputs, out, tiles, device=self.device, multiple=multiple, progress=self._progress(ctx, stage, work))

        area = self.window_area(height, width) if self.tile != 0 else None
        return run_with_oom_retry(lambda a: self.plan_dense(height, width, a), run, area or 0, self.device)

    def dequantize(self, rgb: np.ndarray, ctx: RunContext | None = None, work: "_Work | None" = None) -> np.ndarray:
        """Stage 1 on a display-referred RGB image; returns display-referred RGB float32."""
        ctx = ctx or RunContext(self)
        runner = self.runners["dequantization"]
        return self._dense_pass("dequantization", "dequantize", [rgb], runner, ctx, work)

    @torch.inference_mode()
    def estimate_curve(self, display: np.ndarray) -> np.ndarray:
        """Linearization-Net's (1024,) inverse curve for a whole display-referred RGB image."""
        small = downscale_longest_side(_to_tensor(display), self.config.linearization_input_size)
        with autocast(self.device, self.precision):
            curve = self.model.lin(small.to(self.device))
        return curve[0].float().cpu().numpy()

    def display_image(self, rgb: np.ndarray, ctx: RunContext | None = None, work: "_Work | None" = None) -> np.ndarray:
        """What the camera curve is inverted on: the dequantized image, or the input where
        this quality mode skips Dequantization-Net."""
        return self.dequantize(rgb, ctx, work) if self.quality.dequantize else rgb

    def shot_curve(self, frames: list[np.ndarray]) -> np.ndarray:
        """One inverse curve for several frames of a shot (mean of per-frame curves, monotonic).

        ``frames`` are display-referred RGB images; lock the result with
        :class:`hdr_plugin.plugins.LockedCurve` so a sequence does not flicker.
        """
        if not frames:
            raise ValueError("shot_curve needs at least one frame")
        curves = [self.estimate_curve(self.display_image(self.prepare(f))) for f in frames]
        mean = torch.as_tensor(np.mean(curves, axis=0))
        return crf.make_monotonic(mean).numpy().astype(np.float32)

    def prepare(self, image: np.ndarray, ctx: RunContext | None = None) -> np.ndarray:
        """Run the ``hdr_prepare_input`` hook: any supported array -> RGB float32 [0, 1]."""
        ctx = ctx or RunContext(self)
        rgb = self.plugin_manager.hook.hdr_prepare_input(image=image, context=ctx)
        if rgb is None:
            raise TypeError(f"no plugin could prepare an input of type {type(image).__name__}")
        rgb = np.asarray(rgb, dtype=np.float32)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise ValueError(f"prepared input must be a non-empty (H, W, 3) array, got {rgb.shape}")
        return rgb

    def _plan_work(self, height: int, width: int) -> "_Work":
        """MACs of every step, with Hallucination-Net planned dense until its tiles are known."""
        work = _Work()
        k = self.kmac_per_pixel
        dense_px = computed_pixels(self.plan_dense(height, width))
        if self.quality.dequantize:
            work.plan("dequantize", k["dequantization"] * 1e3 * dense_px)
        work.plan("linearize", max(1, self.linearization_macs))
        work.plan("hallucinate", k["hallucination"] * 1e3 * dense_px)  # at most every tile; planned exactly later
        if self.quality.refine:
            work.plan("refine", k["refinement"] * 1e3 * dense_px)
        return work

    @torch.inference_mode()
    def reconstruct(
        self,
        image: np.ndarray,
        *,
        exposure: float = 0.0,
        curve: np.ndarray | None = None,
        source: str | None = None,
        **options: Any,
    ) -> HDRResult:
        """Reconstruct scene-linear HDR from one display-referred RGB image.

        ``image``: RGB (H, W[, 3]) uint8 / uint16 / float32 in [0, 1].  ``exposure``: EV
        added to the output.  ``curve``: force this (1024,) inverse curve.  Extra keyword
        options are passed to hooks in ``context.options``.
        """
        ctx = RunContext(self, {"exposure": exposure, **options}, source)
        t0 = time.perf_counter()
        rgb = self.prepare(image, ctx)
        height, width = rgb.shape[:2]
        observe = self._has_observers()
        work = self._plan_work(height, width)

        timings = {"prepare": time.perf_counter() - t0, "dequantize": 0.0, "refine": 0.0}
        t = time.perf_counter()
        display = self.display_image(rgb, ctx, work)
        timings["dequantize"] = time.perf_counter() - t
        if observe:
            self._observe("dequantized", display, ctx)

        t = time.perf_counter()
        if curve is None:
            curve = self.plugin_manager.hook.hdr_inverse_crf(image=display, context=ctx)
        if curve is None:
            curve = self.estimate_curve(display)
        curve = _check_curve(curve)
        timings["linearize"] = time.perf_counter() - t

        # Hallucination-Net: the output starts as the linear image; only tiles whose core
        # holds over-exposed pixels are computed (elsewhere the network returns its input).
        # They are planned before the curve's progress is reported, so the fraction of the
        # work done never goes back.
        t = time.perf_counter()
        curve_t = torch.as_tensor(curve, device=self.device)
        hallucinated, mask = _linearize(display, curve, self.model.hal.mask_threshold)
        area = self.window_area(height, width) if self.tile != 0 else 0
        planned = self.plan_hallucination(mask, height, width, area or None)
        work.plan("hallucinate", self.kmac_per_pixel["hallucination"] * 1e3 * computed_pixels(planned))
        self._progress(ctx, "linearize", work)(1, 1)
        if observe:
            self._observe("inverse_curve", curve, ctx)
            self._observe("linear", hallucinated.copy(), ctx)
        hal = self.runners["hallucination"]

        def hallucinate(x: torch.Tensor) -> torch.Tensor:
            return hal(crf.apply_curve(x, curve_t))

        def run_hal(tiles):
            work.plan("hallucinate", self.kmac_per_pixel["hallucination"] * 1e3 * computed_pixels(tiles))
            ctx.metadata["hdrPluginHallucinatedTiles"] = f"{len(tiles)}"
            progress = self._progress(ctx, "hallucinate", work)
            if not tiles:
                progress(1, 1)
            return run_tiles(hallucinate, [display], hallucinated, tiles, device=self.device,
                             multiple=self.config.padding_multiple, progress=progress)

        def plan_hal(a: int):
            return planned if a == (area or 0) else self.plan_hallucination(mask, height, width, a or None)

        run_with_oom_retry(plan_hal, run_hal, area or 0, self.device)
        timings["hallucinate"] = time.perf_counter() - t
        timings["clipped_fraction"] = mask.fraction

        hdr = hallucinated
        if self.quality.refine:
            if observe:
                self._observe("hallucinated", hallucinated, ctx)
            t = time.perf_counter()
            ref = self.runners["refinement"]

            def refine(a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
                return ref(a, crf.apply_curve(d, curve_t), d)

            hdr = self._dense_pass("refinement", "refine", [hallucinated, display], refine, ctx, work)
            timings["refine"] = time.perf_counter() - t
        elif observe:
            self._observe("hallucinated", hallucinated, ctx)
        self.runners.release_memory()
        if not np.isfinite(hdr).all():
            raise NumericalError(
                f"the networks produced NaN/inf values at precision {self.precision}; retry with precision='fp32'"
            )
        if observe:
            self._observe("refined", hdr, ctx)

        result = HDRResult(hdr, ctx.metadata, curve, timings, dict(work.planned))
        result.metadata.update(
            {
                "hdrPluginVersion": _version(),
                "hdrPluginWeights": self.weights_info.sha256[:16] if self.weights_info else "in-memory",
                "hdrPluginPrecision": self.precision,
                "hdrPluginRuntime": self.runtime,
                "hdrPluginQuality": self.quality.name,
            }
        )
        self.plugin_manager.hook.hdr_finalize_output(result=result, context=ctx)
        result.image = np.ascontiguousarray(result.image, dtype=np.float32)
        timings["reconstruct"] = timings["hallucinate"] + timings["refine"]
        timings["total"] = time.perf_counter() - t0
        log.debug("hdr_plugin: %dx%d in %.2f s", width, height, timings["total"])
        return result

    def __call__(self, image: np.ndarray, **options: Any) -> np.ndarray:
        """Shorthand for ``reconstruct(image, **options).image``."""
        return self.reconstruct(image, **options).image

    def with_options(self, *, precision: str | None = None, runtime: str | None = None, quality: str | None = None) -> "Engine":
        """A shallow copy sharing the loaded networks but with another precision, runtime or quality."""
        other = copy.copy(self)
        manifest = self.weights_info.manifest if self.weights_info else None
        if quality is not None:
            other.quality = resolve_quality(quality, manifest)
        if runtime is not None:
            other.runtime = resolve_runtime(runtime, self.device)
        if precision is not None or runtime is not None:
            measured = dict(self.weights_info.precision_checks) if self.weights_info else {}
            other.precision = resolve_precision(precision or "auto", self.device, measured, other.runtime)
        return other

    def with_precision(self, precision: str) -> "Engine":
        """A shallow copy sharing the loaded networks but running at another precision."""
        return self.with_options(precision=precision)


def _linearize(display: np.ndarray, curve: np.ndarray, threshold: float, rows: int = 256) -> tuple[np.ndarray, MaskIndex]:
    """The linear image (curve lookup) and its over-exposure mask, a block of rows at a time
    so no full-size temporaries are made (a 48-MP image would need about 3 GB of them)."""
    linear = np.empty(display.shape, np.float32)
    mask = np.empty(display.shape[:2], bool)
    for y in range(0, display.shape[0], rows):
        block = crf.apply_curve_np(display[y : y + rows], curve)
        linear[y : y + rows] = block
        np.greater(block.max(axis=2), threshold, out=mask[y : y + rows])
    return linear, MaskIndex(mask)


def _check_curve(curve: Any) -> np.ndarray:
    c = np.asarray(curve, dtype=np.float32).reshape(-1)
    if c.shape != (crf.N_SAMPLES,) or not np.isfinite(c).all():
        raise ValueError(f"inverse curve must have {crf.N_SAMPLES} finite samples, got shape {np.shape(curve)}")
    if np.diff(c).min() < -1e-5 or abs(float(c[0])) > 1e-4 or abs(float(c[-1]) - 1.0) > 1e-4:
        raise ValueError("inverse curve must be monotonic with curve[0] == 0 and curve[-1] == 1")
    return c


@functools.lru_cache(maxsize=None)
def _version() -> str:
    from . import __version__

    return __version__


_ENGINES: dict[tuple, Engine] = {}


def load_engine(
    weights: str | Path | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str | None = "auto",
    tile_overlap: int = DEFAULT_OVERLAP,
    quality: str = "auto",
    runtime: str = "auto",
    max_memory: int | None = None,
) -> Engine:
    """A cached :class:`Engine` for these settings (networks load once per process)."""
    key = (str(weights) if weights else None, str(device), precision, str(tile), tile_overlap, quality, runtime, max_memory)
    if key not in _ENGINES:
        _ENGINES[key] = Engine(
            weights, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap,
            quality=quality, runtime=runtime, max_memory=max_memory,
        )
    return _ENGINES[key]
