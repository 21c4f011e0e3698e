"""The inference engine: load once, reconstruct many images.

``Engine.reconstruct`` takes an RGB display-referred image and returns RGB float32
scene-linear HDR with the input's white (code value 1.0) at 1.0 and highlights above it:

1. Dequantization-Net, tile by tile;
2. one inverse camera curve for the whole image: a plugin's (``hdr_inverse_crf``), or
   Linearization-Net on a downscaled copy of the dequantized image;
3. curve lookup (float32), Hallucination-Net and Refinement-Net, tile by tile.

Hooks observe every stage, report progress per tile and may cancel.
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
from .devices import autocast, resolve_device, resolve_precision
from .model import HDRModel, downscale_longest_side
from .plugins import get_plugin_manager
from .tiling import run_tiled
from .weights import load_model

log = logging.getLogger("hdr_plugin")

DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 96


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


@dataclass
class HDRResult:
    """The final scene-linear RGB image and metadata, as seen by ``hdr_finalize_output``."""

    image: np.ndarray
    metadata: dict[str, str]
    curve: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t[0].numpy().transpose(1, 2, 0), dtype=np.float32)


class Engine:
    """Reusable reconstruction engine (networks loaded once; thread-compatible, not thread-safe).

    Parameters
    ----------
    weights: a weights folder / ``.safetensors`` path, or None for the shipped weights.
    device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``; an unavailable explicit
        device raises :class:`hdr_plugin.devices.DeviceUnavailableError`.
    precision: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (see :mod:`hdr_plugin.devices`).
    tile: tile size in pixels, ``0`` for whole-image processing, ``None``/"auto" for
        ``DEFAULT_TILE``.
    tile_overlap: pixels of context added around each tile.
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
        model: HDRModel | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
    ):
        self.device = resolve_device(device)
        if model is not None:
            self.model, self.weights_info = model.eval(), None
        else:
            self.model, self.weights_info = load_model(weights)
        self.model.to(self.device)
        self.tile = DEFAULT_TILE if tile in (None, "auto") else int(tile)
        if self.tile < 0 or 0 < self.tile < 64:
            raise ValueError(f"tile must be 0 (no tiling) or at least 64 pixels, got {tile}")
        self.tile_overlap = int(tile_overlap)
        self._pm = plugin_manager
        measured = dict(self.weights_info.precision_checks) if self.weights_info else {}
        self.precision = resolve_precision(precision, self.device, measured)
        if self.weights_info is not None and not self.weights_info.trained:
            log.warning("hdr_plugin: weights %s are marked untrained (test weights)", self.weights_info.path)
        log.info(
            "hdr_plugin: device=%s precision=%s weights=%s",
            self.device,
            self.precision,
            self.weights_info.path if self.weights_info else "<in-memory model>",
        )

    # ------------------------------------------------------------------ properties
    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        return self._pm or get_plugin_manager()

    @property
    def config(self):
        return self.model.config

    def describe(self) -> dict[str, Any]:
        """Device, precision, weights and config, for ``hdr-plugin info`` and logs."""
        info = self.weights_info
        return {
            "device": str(self.device),
            "precision": self.precision,
            "tile": self.tile,
            "weights": str(info.path) if info else None,
            "weights_sha256": info.sha256 if info else None,
            "weights_trained": info.trained if info else None,
            "model_config": self.config.name,
            "parameters": self.model.parameter_count(),
        }

    # ------------------------------------------------------------------ stages
    def _progress(self, ctx: RunContext, stage: str):
        def report(done: int, total: int) -> None:
            answers = self.plugin_manager.hook.hdr_progress(stage=stage, done=done, total=total, context=ctx)
            if any(a is False for a in answers):
                raise Cancelled(f"cancelled during {stage} ({done}/{total})")

        return report

    def _observe(self, stage: str, image: np.ndarray, ctx: RunContext) -> None:
        self.plugin_manager.hook.hdr_stage_output(stage=stage, image=image, context=ctx)

    def _has_observers(self) -> bool:
        return bool(self.plugin_manager.hook.hdr_stage_output.get_hookimpls())

    @torch.inference_mode()
    def dequantize(self, rgb: np.ndarray, ctx: RunContext | None = None) -> np.ndarray:
        """Stage 1 on a display-referred RGB image; returns display-referred RGB float32."""
        ctx = ctx or RunContext(self)

        def fn(x: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.precision):
                return self.model.deq(x)

        out = run_tiled(
            fn,
            _to_tensor(rgb),
            3,
            device=self.device,
            tile=self.tile,
            overlap=self.tile_overlap,
            multiple=self.config.padding_multiple,
            progress=self._progress(ctx, "dequantize"),
        )
        return _to_numpy(out)

    @torch.inference_mode()
    def estimate_curve(self, dequantized: np.ndarray) -> np.ndarray:
        """Linearization-Net's (1024,) inverse curve for a whole display-referred RGB image."""
        small = downscale_longest_side(_to_tensor(dequantized), self.config.linearization_input_size)
        with autocast(self.device, self.precision):
            curve = self.model.lin(small.to(self.device))
        return curve[0].float().cpu().numpy()

    def shot_curve(self, frames: list[np.ndarray]) -> np.ndarray:
        """One inverse curve for several frames of a shot (mean of per-frame curves, monotonic).

        ``frames`` are display-referred RGB images; lock the result with
        :class:`hdr_plugin.plugins.LockedCurve` so a sequence does not flicker.
        """
        if not frames:
            raise ValueError("shot_curve needs at least one frame")
        curves = [self.estimate_curve(self.dequantize(self.prepare(f))) for f in frames]
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
        observe = self._has_observers()

        timings = {"prepare": time.perf_counter() - t0}
        t = time.perf_counter()
        deq = self.dequantize(rgb, ctx)
        timings["dequantize"] = time.perf_counter() - t
        if observe:
            self._observe("dequantized", deq, ctx)

        t = time.perf_counter()
        if curve is None:
            curve = self.plugin_manager.hook.hdr_inverse_crf(image=deq, context=ctx)
        if curve is None:
            curve = self.estimate_curve(deq)
        curve = _check_curve(curve)
        timings["linearize"] = time.perf_counter() - t
        self._progress(ctx, "linearize")(1, 1)
        if observe:
            self._observe("inverse_curve", curve, ctx)

        curve_t = torch.as_tensor(curve, device=self.device)
        extra = 6 if observe else 0

        def fn(x: torch.Tensor) -> torch.Tensor:
            linear = crf.apply_curve(x, curve_t)
            with autocast(self.device, self.precision):
                hallucinated = self.model.hal(linear)
                refined = self.model.ref(hallucinated, linear, x)
            parts = [refined.float()] + ([linear, hallucinated.float()] if extra else [])
            return torch.cat(parts, dim=1)

        t = time.perf_counter()
        out = run_tiled(
            fn,
            _to_tensor(deq),
            3 + extra,
            device=self.device,
            tile=self.tile,
            overlap=self.tile_overlap,
            multiple=self.config.padding_multiple,
            progress=self._progress(ctx, "reconstruct"),
        )
        hdr = _to_numpy(out[:, :3])
        timings["reconstruct"] = time.perf_counter() - t
        if not np.isfinite(hdr).all():
            raise NumericalError(
                f"the networks produced NaN/inf values at precision {self.precision}; retry with precision='fp32'"
            )
        if observe:
            self._observe("linear", _to_numpy(out[:, 3:6]), ctx)
            self._observe("hallucinated", _to_numpy(out[:, 6:9]), ctx)
            self._observe("refined", hdr, ctx)

        result = HDRResult(hdr, ctx.metadata, curve, timings)
        result.metadata.update(
            {
                "hdrPluginVersion": _version(),
                "hdrPluginWeights": self.weights_info.sha256[:16] if self.weights_info else "in-memory",
                "hdrPluginPrecision": self.precision,
            }
        )
        self.plugin_manager.hook.hdr_finalize_output(result=result, context=ctx)
        result.image = np.ascontiguousarray(result.image, dtype=np.float32)
        timings["total"] = time.perf_counter() - t0
        log.debug("hdr_plugin: %dx%d in %.2f s", rgb.shape[1], rgb.shape[0], timings["total"])
        return result

    def __call__(self, image: np.ndarray, **options: Any) -> np.ndarray:
        """Shorthand for ``reconstruct(image, **options).image``."""
        return self.reconstruct(image, **options).image

    def with_precision(self, precision: str) -> "Engine":
        """A shallow copy sharing the loaded networks but running at another precision."""
        other = copy.copy(self)
        other.precision = resolve_precision(precision, self.device)
        return other


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
) -> Engine:
    """A cached :class:`Engine` for these settings (networks load once per process)."""
    key = (str(weights) if weights else None, str(device), precision, str(tile), tile_overlap)
    if key not in _ENGINES:
        _ENGINES[key] = Engine(weights, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap)
    return _ENGINES[key]
