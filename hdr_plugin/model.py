"""Model configuration (YAML) and the container holding the four networks."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from .arch import DequantizationNet, HallucinationNet, LinearizationNet, RefinementNet
from .crf import apply_curve

STAGES = ("dequantization", "linearization", "hallucination", "refinement")


@dataclass
class ModelConfig:
    """Channel widths and constants of the four networks, as read from YAML."""

    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ModelConfig":
        """Read a model config; ``None`` means the one shipped in the package."""
        if path is None:
            text = resources.files("hdr_plugin.configs").joinpath("model.yaml").read_text()
        else:
            text = Path(path).read_text()
        raw = yaml.safe_load(text)
        missing = [s for s in STAGES if s not in raw]
        if missing:
            raise ValueError(f"model config lacks sections {missing}")
        return cls(raw)

    @classmethod
    def from_text(cls, text: str) -> "ModelConfig":
        return cls(yaml.safe_load(text))

    def to_text(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)

    def with_overrides(self, **sections: dict) -> "ModelConfig":
        raw = copy.deepcopy(self.raw)
        for key, value in sections.items():
            raw.setdefault(key, {}).update(value)
        return ModelConfig(raw)

    @property
    def name(self) -> str:
        return str(self.raw.get("name", "unnamed"))

    @property
    def padding_multiple(self) -> int:
        return int(self.raw.get("padding_multiple", 64))

    @property
    def linearization_input_size(self) -> int:
        return int(self.raw["linearization"].get("input_size", 256))


class HDRModel(nn.Module):
    """The four stage networks under the names used in weight files (``deq.``, ``lin.`` ...)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config.raw
        self.config = config
        self.deq = DequantizationNet(list(c["dequantization"]["widths"]))
        lin = c["linearization"]
        self.lin = LinearizationNet(
            int(lin["width"]), int(lin.get("n_weights", 11)), str(lin.get("anchor", "srgb")), float(lin.get("snap_threshold", 0.5))
        )
        hal = c["hallucination"]
        self.hal = HallucinationNet(int(hal["width"]), float(hal.get("mask_threshold", 0.88)))
        ref = c["refinement"]
        self.ref = RefinementNet(list(ref["widths"]), float(ref.get("log_range", 1.0)))

    def stage(self, name: str) -> nn.Module:
        return {"dequantization": self.deq, "linearization": self.lin, "hallucination": self.hal, "refinement": self.ref}[name]

    def parameter_count(self) -> dict[str, int]:
        return {s: sum(p.numel() for p in self.stage(s).parameters()) for s in STAGES}


def seeded_random_model(config: ModelConfig | None = None, seed: int = 0) -> HDRModel:
    """A model with reproducible random weights, for tests only (never shipped)."""
    torch.manual_seed(seed)
    return HDRModel(config or ModelConfig.load()).eval()


def downscale_longest_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Area-downscale ``(N, C, H, W)`` so its longest side is at most ``size`` (never upscales).

    Scriptable (the TorchScript export uses it too).
    """
    h = image.shape[-2]
    w = image.shape[-1]
    scale = float(size) / float(max(h, w))
    if scale >= 1.0:
        return image
    new_h = max(1, int(math.floor(h * scale + 0.5)))
    new_w = max(1, int(math.floor(w * scale + 0.5)))
    return torch.nn.functional.interpolate(image.float(), size=[new_h, new_w], mode="area")


def estimate_curve(model: HDRModel, image: torch.Tensor, snap: bool = True) -> torch.Tensor:
    """Inverse curves ``(N, 1024)`` from a downscaled copy of each whole display-referred image.

    One curve per image: Linearization-Net always sees the full frame at the configured
    ``input_size``, in training, in evaluation and behind tiled inference alike.
    """
    params = model.lin.predict_parameters(downscale_longest_side(image, model.config.linearization_input_size))
    return model.lin.curve_from_parameters(params, snap=snap)


def reconstruct(
    model: HDRModel,
    ldr: torch.Tensor,
    curve: torch.Tensor | None = None,
    *,
    use_deq: bool = True,
    use_hal: bool = True,
    use_ref: bool = True,
    snap: bool = True,
) -> dict[str, torch.Tensor]:
    """Run the four stages on a whole batch ``(N, 3, H, W)`` (sides multiples of 64).

    ``curve`` overrides Linearization-Net with given inverse curves; the ``use_*`` flags
    ablate a stage; ``snap=False`` keeps the sRGB-confidence blend soft (training).
    Returns every intermediate: ``deq``, ``curve``, ``linear``, ``hallucinated`` and the
    final ``hdr`` (all float32).  Used by training, evaluation and
    the Nuke export; the Engine runs the same stages tile by tile.
    """
    deq = model.deq(ldr) if use_deq else ldr.float()
    if curve is None:
        curve = estimate_curve(model, deq, snap)
    linear = apply_curve(deq, curve)
    hallucinated = model.hal(linear) if use_hal else linear
    hdr = model.ref(hallucinated, linear, deq) if use_ref else hallucinated
    return {"deq": deq, "curve": curve, "linear": linear, "hallucinated": hallucinated, "hdr": hdr.float()}
