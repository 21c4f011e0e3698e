"""Assemble the best checkpoint of every stage into the shipped weights folder."""

from __future__ import annotations

import json
import platform
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..devices import cpu_has_native_bf16
from ..model import ModelConfig
from ..weights import WeightsInfo, load_model, read_manifest, save_weights, update_manifest
from .stages import STAGE_MODULES
from .train import STAGES, assemble_model, joint_beats_stagewise, stage_dir

# config section of each network, so a network is rebuilt with the widths it was trained with
MODULE_SECTIONS = {"deq": "dequantization", "lin": "linearization", "hal": "hallucination", "ref": "refinement"}


def config_from_runs(runs: Path) -> ModelConfig:
    """The model config of the exported pipeline: each network's section comes from the run
    that trained it (the stages may have used different configs, e.g. a retrained
    Linearization-Net with another input size); the rest from the first run found."""
    configs = {}
    for stage in STAGES:
        last = stage_dir(runs, stage) / "last.pt"
        if last.is_file():
            configs[stage] = ModelConfig(torch.load(last, map_location="cpu", weights_only=False)["config"])
    if not configs:
        raise FileNotFoundError(f"no training runs under {runs}")
    merged = next(iter(configs.values()))
    for stage, config in configs.items():
        if stage == "joint" and not joint_beats_stagewise(runs):
            continue
        merged = merged.with_overrides(**{MODULE_SECTIONS[m]: config.raw[MODULE_SECTIONS[m]] for m in STAGE_MODULES[stage]})
    return merged


def _init_config_with_runs(runs: Path, init: Path) -> ModelConfig:
    """The init weights' config, with the sections of the networks trained in ``runs``."""
    base = ModelConfig.from_text(read_manifest(init).manifest["model_config"])
    try:
        trained = config_from_runs(runs)
    except FileNotFoundError:
        return base
    sections = {MODULE_SECTIONS[m] for stage in STAGES if (stage_dir(runs, stage) / "last.pt").is_file()
                for m in STAGE_MODULES[stage]}
    return base.with_overrides(**{s: trained.raw[s] for s in sections})


def _stage_summary(runs: Path) -> dict:
    summary = {}
    for stage in STAGES:
        last, best = stage_dir(runs, stage) / "last.pt", stage_dir(runs, stage) / "best.pt"
        if not last.is_file():
            continue
        ck = torch.load(last, map_location="cpu", weights_only=False)
        bk = torch.load(best, map_location="cpu", weights_only=False) if best.is_file() else {}
        summary[stage] = {
            "steps": int(ck["step"]),
            "wall_minutes": round(float(ck.get("elapsed", 0.0)) / 60, 1),
            "best_step": int(bk.get("step", 0)),
            "best_val_score": round(float(ck["best_score"]), 3),
            "in_export": stage != "joint" or joint_beats_stagewise(runs),
        }
        if ck.get("init"):
            summary[stage]["started_from"] = ck["init"]
        log = stage_dir(runs, stage) / "log.jsonl"
        if log.is_file():
            vals = [json.loads(line) for line in log.read_text().splitlines() if '"val"' in line]
            if vals:
                summary[stage]["last_val"] = {k: round(v, 3) for k, v in vals[-1]["val"].items()}
    return summary


def precision_agreement(weights: Path, precision: str = "bf16", device: str = "cpu") -> float:
    """PU21-PSNR between fp32 and ``precision`` outputs of the full engine on the bundled sample."""
    from ..evaluation.metrics import pu21_psnr
    from ..io import read_ldr
    from ..pipeline import Engine
    from ..plugins import make_plugin_manager

    sample = read_ldr(resources.files("hdr_plugin.data").joinpath("sample.png"))
    pm = make_plugin_manager(load_entrypoints=False)
    ref = Engine(weights, device=device, precision="fp32", tile=0, plugin_manager=pm)
    low = ref.with_precision(precision)
    a = ref.reconstruct(sample.rgb).image
    b = low.reconstruct(sample.rgb).image
    return float(pu21_psnr(b, a))


def export_weights(runs: Path, out: Path, data: Path | None = None, config: ModelConfig | None = None,
                   init: Path | None = None) -> WeightsInfo:
    """Write fp16 safetensors + manifest for the best weights of each trained stage.

    With ``data`` (the training data folder), Linearization-Net's sRGB snap threshold is
    first calibrated on fresh views of the training scenes (see ``calibrate.py``).
    With ``init`` (a weights folder), the networks no run in ``runs`` trained come from
    those weights, and the manifest keeps their training record (a fine-tune of one
    network exports the whole pipeline).
    """
    if init is not None and config is None:
        config = _init_config_with_runs(runs, init)
    config = config or config_from_runs(runs)
    model = assemble_model(runs, config, init)
    summary = _stage_summary(runs)
    if init is not None:
        inherited = ((read_manifest(init).manifest.get("training") or {}).get("stages") or {})
        summary = {**{k: {**v, "from_init": True} for k, v in inherited.items() if k not in summary}, **summary}
    calibration = None
    if data is not None and model.lin.srgb_head:
        from .calibrate import calibrate_snap_threshold
        from .synthesis import load_scenes

        threshold, table = calibrate_snap_threshold(model, load_scenes(data, "train"))
        model.lin.snap_threshold = threshold
        model.config.raw["linearization"]["snap_threshold"] = threshold
        calibration = {"snap_threshold": threshold, "calibration_pu21_by_threshold": {str(k): round(v, 3) for k, v in table.items()}}
    save_weights(
        model,
        out,
        trained=True,
        extra={
            "training": {
                "stages": summary,
                "data": "real HDR scenes with CC0 or BSD licences (see hdr_plugin/training/splits.yaml)",
                "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
                "calibration": calibration,
            }
        },
    )
    # fp16 storage must not change results: compare against the fp32 checkpoint weights
    fp16_model, _ = load_model(out)
    diff = max(
        float((a.float() - b.float()).abs().max())
        for a, b in zip(model.state_dict().values(), fp16_model.state_dict().values())
        if a.is_floating_point()
    )
    checks = {}
    if cpu_has_native_bf16():
        checks["cpu_bf16"] = round(precision_agreement(out, "bf16", "cpu"), 2)
    update_manifest(out, precision_checks=checks, fp16_storage_max_abs_diff=float(np.float32(diff)))
    if init is not None:
        # what export does not write (the quality modes' record) carries over from the init
        # weights; its measured numbers are the init's until `hdr-plugin eval` is re-run
        written = read_manifest(out).manifest
        carried = {k: v for k, v in read_manifest(init).manifest.items() if k not in written}
        if carried:
            update_manifest(out, **carried)
    return read_manifest(out)
