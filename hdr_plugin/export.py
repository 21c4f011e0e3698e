"""TorchScript export of the whole pipeline for Nuke's CatFileCreator / Inference node.

``hdr-plugin export-torchscript OUT.pt`` writes one TorchScript module with the contract
CatFileCreator takes (Foundry's ".cat File Creation" guide):

* ``forward(self, input: Tensor) -> Tensor``: one ``1 x 3 x H x W`` float tensor in (Nuke's
  ``rgba.red, rgba.green, rgba.blue``), one ``1 x 3 x H x W`` tensor out (Output Scale 1);
* inside ``forward``: Nuke's scene-linear input -> sRGB OETF -> clamp to [0, 1] (NaN -> 0)
  -> reflect-pad to a multiple of 64 -> Dequantization-Net -> one inverse camera curve from
  Linearization-Net on a downscaled copy of the whole frame -> curve lookup ->
  Hallucination-Net -> Refinement-Net -> crop -> ``* 2**exposure``: scene-linear RGB, the
  input's white at 1.0, highlights above it.  This is the :class:`hdr_plugin.Engine`
  computation with ``tile=0`` at fp32, step for step, so both give the same pixels;
* every tensor follows ``input.device``; the computation is float32 and the result is cast
  back to ``input.dtype``;
* knobs are plain attributes set in ``__init__`` (CatFileCreator "User" tab, knob Name =
  attribute name): ``exposure`` (float, EV) and ``linear_input`` (int 0/1: 1 = the input is
  Nuke scene-linear and is converted to sRGB inside; 0 = the input is already
  display-referred, e.g. a Read node with Raw Data ticked).

Not supported: Inference's "Optimize for Speed and Memory" (it converts the weights to
fp16; the camera-curve math needs float32).  ``forward`` stops with a message saying so.

Torch versions: the file is written by the torch running the export (recorded in the
file's ``hdr_plugin.json`` extra file).  Nuke 13 runs TorchScript from torch 1.6, Nuke 14
pins torch 1.12.1 and later releases newer torch; a ``.pt`` saved by a newer torch (2.x)
may not load in an older one (operator schemas such as ``aten::pad`` are newer), so export
with the torch of the Nuke release you target; see ``adapters/nuke/README.md``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from .crf import apply_curve
from .model import HDRModel, downscale_longest_side
from .tiling import pad_to_multiple

EXTRA_FILE = "hdr_plugin.json"
KNOBS = {
    "exposure": "float: exposure adjustment in EV applied to the output (default 0.0)",
    "linear_input": "int 0/1 (check box): 1 = input is Nuke scene-linear, converted to sRGB inside (default); "
    "0 = input is already display-referred sRGB",
}


# --------------------------------------------------------------------------- scriptable helpers
def srgb_oetf(x: torch.Tensor) -> torch.Tensor:
    """sRGB OETF, as :func:`hdr_plugin.color.linear_to_srgb` (scriptable, any float dtype)."""
    low = x * 12.92
    high = 1.055 * torch.clamp(x, min=0.0031308) ** (1.0 / 2.4) - 0.055
    return torch.where(x <= 0.0031308, low, high)


# --------------------------------------------------------------------------- the module
class NukeHDR(nn.Module):
    """The four stages behind the CatFileCreator contract (see the module docstring)."""

    def __init__(self, model: HDRModel, exposure: float = 0.0, linear_input: int = 1):
        super().__init__()
        self.deq = model.deq
        self.lin = model.lin
        self.hal = model.hal
        self.ref = model.ref
        # knobs: plain attributes, names without dots (CatFileCreator custom knobs)
        self.exposure = float(exposure)
        self.linear_input = int(linear_input)
        # constants
        self.multiple = int(model.config.padding_multiple)
        self.curve_size = int(model.config.linearization_input_size)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != 4 or input.shape[0] != 1 or input.shape[1] != 3:
            raise RuntimeError("hdr_plugin: expected a 1 x 3 x H x W tensor (Channels In: rgba.red, rgba.green, rgba.blue)")
        if self.ref.unet.tail.weight.dtype != torch.float32:
            raise RuntimeError(
                "hdr_plugin: the weights are not float32; untick 'Optimize for Speed and Memory' on the Inference node"
            )
        x = input.float()
        x = torch.where(torch.isnan(x), torch.zeros_like(x), x)
        if self.linear_input != 0:
            x = srgb_oetf(x)
        x = torch.clamp(x, 0.0, 1.0)

        padded, (h, w) = pad_to_multiple(x, self.multiple)
        deq = self.deq(padded)[:, :, :h, :w]
        curve = self.lin(downscale_longest_side(deq, self.curve_size))
        deq_padded, (h, w) = pad_to_multiple(deq, self.multiple)
        linear = apply_curve(deq_padded, curve)
        hallucinated = self.hal(linear)
        hdr = self.ref(hallucinated, linear, deq_padded)[:, :, :h, :w].float()
        if self.exposure != 0.0:
            hdr = hdr * (2.0**self.exposure)
        return hdr.to(input.dtype)


def torchscript_module(model: HDRModel, exposure: float = 0.0, linear_input: int = 1) -> torch.jit.ScriptModule:
    """``torch.jit.script`` of :class:`NukeHDR` around ``model`` (float32, eval mode, CPU).

    ``model`` is not modified (the networks are deep-copied)."""
    import copy

    model = copy.deepcopy(model).float().eval().cpu()
    for p in model.parameters():
        p.requires_grad_(False)
    return torch.jit.script(NukeHDR(model, exposure=exposure, linear_input=linear_input).eval())


#: the name STYLE_ANCHORS.md uses for the same function
torchscript = torchscript_module


def metadata(model: HDRModel, weights_sha256: str | None = None) -> dict:
    """What the ``hdr_plugin.json`` extra file in an exported ``.pt`` says."""
    from . import __version__

    return {
        "format": "hdr-plugin-torchscript/1",
        "hdr_plugin": __version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "weights_sha256": weights_sha256,
        "model_config": model.config.name,
        "padding_multiple": model.config.padding_multiple,
        "contract": "forward(input: Tensor[1,3,H,W] scene-linear) -> Tensor[1,3,H,W] scene-linear; "
        "Channels In/Out rgba.red, rgba.green, rgba.blue; Output Scale 1",
        "knobs": KNOBS,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def save_torchscript(module: torch.jit.ScriptModule, path: str | Path, meta: dict, overwrite: bool = False) -> Path:
    """Save atomically (temporary file, then rename) with ``meta`` as an extra file."""
    from .io import atomic_output

    with atomic_output(path, overwrite) as tmp:
        torch.jit.save(module, str(tmp), _extra_files={EXTRA_FILE: json.dumps(meta, indent=2)})
    return Path(path)


def read_metadata(path: str | Path) -> dict:
    """The ``hdr_plugin.json`` extra file of an exported ``.pt`` (loads it on the CPU)."""
    extra = {EXTRA_FILE: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[EXTRA_FILE]) if extra[EXTRA_FILE] else {}


# --------------------------------------------------------------------------- self-check
def check_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A scene-linear RGB test frame: smooth gradients, texture and a region above 1.0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / max(1, width - 1), yy / max(1, height - 1), 0.5 * np.ones_like(xx)], axis=-1)
    img = 0.8 * base * base + 0.02 * rng.random((height, width, 3), dtype=np.float32)
    cy, cx, r = height * 0.3, width * 0.7, max(2.0, min(width, height) * 0.15)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 4.0
    return img.astype(np.float32)


def self_check(path: str | Path, model: HDRModel, width: int, height: int) -> dict:
    """Reload ``path`` with plain ``torch.jit.load`` and compare it with the Engine (fp32, untiled).

    Returns ``{"pu21_psnr": dB, "max_abs": ..., "shape_ok": bool, "half_input_dtype": str}``.
    """
    from .color import linear_to_srgb
    from .evaluation.metrics import pu21_psnr
    from .pipeline import Engine
    from .plugins import make_plugin_manager

    loaded = torch.jit.load(str(path), map_location="cpu")
    linear = check_image(width, height)
    with torch.inference_mode():
        out = loaded(torch.from_numpy(linear.transpose(2, 0, 1).copy())[None])
        half_out = loaded(torch.from_numpy(linear.transpose(2, 0, 1).copy())[None].half())
    ts = out[0].numpy().transpose(1, 2, 0)
    engine = Engine(model=model, device="cpu", precision="fp32", tile=0, plugin_manager=make_plugin_manager(load_entrypoints=False))
    display = np.clip(linear_to_srgb(linear), 0.0, 1.0).astype(np.float32)
    ref = engine.reconstruct(display).image
    return {
        "pu21_psnr": pu21_psnr(ts, ref),
        "max_abs": float(np.abs(ts - ref).max()),
        "shape_ok": tuple(out.shape) == (1, 3, height, width) and out.dtype == torch.float32,
        "half_input_dtype": str(half_out.dtype).replace("torch.", ""),
        "finite": bool(np.isfinite(ts).all()),
    }


# --------------------------------------------------------------------------- CLI
def _parse_size(text: str) -> Tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--check-size takes WIDTHxHEIGHT, e.g. 256x192, not {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--check-size must be positive, got {text!r}")
    return w, h


def export_torchscript_cli(args) -> int:
    """``hdr-plugin export-torchscript OUT.pt [--weights W] [--overwrite] [--check-size WxH]``.

    Exit codes: 0 written and checked; 1 output exists or the self-check failed (nothing
    left behind); 2 usage, weights or scripting error.
    """
    from .weights import WeightsError, load_model

    out = Path(args.output)
    try:
        width, height = _parse_size(args.check_size or "256x192")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if out.suffix.lower() != ".pt":
        print(f"error: {out}: the TorchScript file must end in .pt (CatFileCreator's 'TorchScript File')", file=sys.stderr)
        return 2
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists (use --overwrite)", file=sys.stderr)
        return 1
    try:
        model, info = load_model(args.weights)
    except (WeightsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        module = torchscript_module(model)
    except Exception as e:  # a network that stopped being scriptable
        print(f"error: TorchScript compilation failed with torch {torch.__version__}: {e}", file=sys.stderr)
        return 2
    save_torchscript(module, out, metadata(model, info.sha256), overwrite=args.overwrite)
    report = self_check(out, model, width, height)
    ok = report["shape_ok"] and report["finite"] and report["pu21_psnr"] >= 50.0 and report["half_input_dtype"] == "float16"
    if not ok:
        out.unlink(missing_ok=True)
        print(f"error: self-check failed, {out} removed: {report}", file=sys.stderr)
        return 1
    print(f"{out}: TorchScript of the whole pipeline, torch {torch.__version__}, {out.stat().st_size / 1e6:.1f} MB")
    print(f"  self-check {width}x{height}: PU21-PSNR {report['pu21_psnr']:.1f} dB against the engine, max |diff| {report['max_abs']:.2e}")
    print("  CatFileCreator: Channels In and Out rgba.red, rgba.green, rgba.blue; Output Scale 1;")
    print("  optional knobs (User tab, Name = attribute): exposure (float), linear_input (check box 0/1).")
    print(
        f"  This file was written by torch {torch.__version__}. Nuke 14 pins torch 1.12.1 and newer Nuke releases newer "
        "torch; if CatFileCreator cannot read it, re-export in an environment with that Nuke's torch "
        "(see adapters/nuke/README.md)."
    )
    return 0


__all__: List[str] = [
    "NukeHDR",
    "torchscript_module",
    "torchscript",
    "save_torchscript",
    "read_metadata",
    "self_check",
    "export_torchscript_cli",
    "srgb_oetf",
]
