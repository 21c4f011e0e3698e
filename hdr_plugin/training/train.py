"""Stage-wise training of the four networks, then joint fine-tuning.

Stages (each its own resumable run under ``<runs>/<stage>/``):

* ``deq``   - Dequantization-Net, L2 to the un-quantized camera output plus a per-image
  log-MSE so clean 8-bit images count as much as JPEG-damaged ones;
* ``lin``   - Linearization-Net, 10 x L2 on the linear image + 1 x L2 on the inverse curve,
  plus metric-aligned terms (PU21 L1, per-image log-MSE) and the sRGB-confidence BCE;
* ``hal``   - Hallucination-Net on the true clipped linear image, L2 in the PU21 domain
  (validated behind the trained Linearization-Net when there is one);
* ``ref``   - Refinement-Net behind the frozen first three, L2 in the PU21 domain;
* ``joint`` - all four, 1 deq + 10 lin + 1 crf + 1 hal + 0.001 perceptual + 0.1 TV.

``lin``, ``hal`` and ``deq`` are independent and may run in parallel; ``ref`` and
``joint`` start from the best weights of the earlier stages.  Each run writes ``last.pt``
(resume point), ``best.pt`` (best validation score) and ``log.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset

from .. import crf
from ..color import srgb_to_linear
from ..evaluation import metrics
from ..model import HDRModel, ModelConfig, downscale_longest_side, reconstruct
from . import losses
from .calibrate import threshold_table
from .curves import PRIOR_WEIGHTS
from .stages import DEFAULT_BATCH, STAGE_MODULES, STAGES
from .synthesis import Pair, SynthesisOptions, camera_jpeg_variant, load_scenes, random_pair, validation_pairs

log = logging.getLogger("hdr_plugin.train")



@dataclass
class TrainOptions:
    stage: str
    runs: Path
    data: Path = Path("../shared/data")
    steps: int = 10000
    max_minutes: float | None = None
    batch: int | None = None
    crop: int = 256
    lr: float = 2e-4
    seed: int = 0
    precision: str = "bf16"
    device: str = "cpu"
    threads: int | None = None
    workers: int = 1
    log_every: int = 50
    val_every: int = 500
    val_views: int = 1
    val_size: int = 256
    #: what Hallucination-Net is trained on: "camera" = the 8-bit (maybe JPEG) camera output
    #: linearised with its true inverse curve, i.e. what the product feeds it (quantization
    #: steps and JPEG artefacts included); "linear" = the clean clipped sensor image
    hal_input: str = "camera"
    #: weights of the light-counting terms added to the PU21 L2 in the hal stage
    light_weight: float = 0.0
    log_weight: float = 0.0
    config: Path | None = None
    init: Path | None = None
    scene_limit: int | None = None
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- data
def pair_to_tensors(p: Pair) -> dict[str, torch.Tensor]:
    def chw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))

    return {
        "ldr": chw(p.ldr),
        "encoded": chw(p.encoded),
        "linear": chw(p.linear),
        "hdr": chw(p.hdr),
        "inverse_curve": torch.from_numpy(p.inverse_curve),
        "is_srgb": torch.tensor(float(p.family == "srgb")),
    }


class PairStream(IterableDataset):
    """Endless stream of random training pairs; each worker has its own seeded generator."""

    def __init__(self, data: Path, crop: int, seed: int, scene_limit: int | None = None, options: SynthesisOptions | None = None):
        self.data, self.crop, self.seed, self.scene_limit = data, crop, seed, scene_limit
        self.options = options or SynthesisOptions()

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        if info is not None:
            torch.set_num_threads(1)  # synthesis is numpy; leave the cores to the training step
        scenes = load_scenes(self.data, "train", self.scene_limit)
        rng = np.random.default_rng([self.seed, wid])
        options = self.options
        while True:
            yield pair_to_tensors(random_pair(scenes, self.crop, rng, options))


#: Stage-specific camera simulation.  Dequantization is learnt where it is possible, in
#: clean images: under sensor noise larger than one code value the quantization residual
#: is unpredictable, and mostly-noisy targets teach the network to output nothing.
STAGE_SYNTHESIS = {"deq": SynthesisOptions(noise_probability=0.2)}
#: Stages whose checkpoints are also scored on camera JPEGs of the validation pairs (what
#: users feed in: in-camera sharpening, quality 60-90, 4:2:0): a network that only the clean
#: pairs rank can lose 0.6 dB on them unseen (measured with the shipped Hallucination-Net).
JPEG_VALIDATED_STAGES = ("deq", "hal")
#: seed offset of the camera-JPEG validation pairs (as the evaluation's JPEG_SEED)
VAL_JPEG_SEED = 60


# --------------------------------------------------------------------------- helpers
def _autocast(opts: TrainOptions):
    if opts.precision == "fp32":
        return torch.autocast(device_type=opts.device.split(":")[0], enabled=False)
    dtype = torch.bfloat16 if opts.precision == "bf16" else torch.float16
    return torch.autocast(device_type=opts.device.split(":")[0], dtype=dtype)


def _freeze_batchnorm(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def stage_dir(runs: Path, stage: str) -> Path:
    return Path(runs) / stage


def assemble_model(runs: Path, config: ModelConfig, init: Path | None = None, upto: str | None = None) -> HDRModel:
    """Model with each network taken from the best checkpoint of the stage that trained it.

    Starts from ``init`` weights (or random); later stages override earlier ones, ``joint``
    overrides all when its best validation score (the same full-pipeline score as ``ref``'s)
    beats the stage-wise result.  ``upto`` stops before that stage (used when starting it).
    """
    from ..weights import load_model

    if init is not None:
        model, _ = load_model(init)
    else:
        model = HDRModel(config)
    for stage in STAGES:
        if stage == upto:
            break
        best = stage_dir(runs, stage) / "best.pt"
        if not best.is_file():
            continue
        if stage == "joint" and not joint_beats_stagewise(runs):
            log.info("joint fine-tuning did not beat the stage-wise pipeline on validation; not used")
            continue
        load_stage_modules(model, torch.load(best, map_location="cpu", weights_only=True)["model"], stage)
    return model


def best_score(runs: Path, stage: str) -> float:
    """Best validation score a stage reached (``-inf`` when it has no ``best.pt``)."""
    best = stage_dir(runs, stage) / "best.pt"
    if not best.is_file():
        return -math.inf
    return float(torch.load(best, map_location="cpu", weights_only=True)["best_score"])


def joint_beats_stagewise(runs: Path) -> bool:
    """``joint`` and ``ref`` validate the same full pipeline, so their scores compare."""
    return best_score(runs, "joint") > best_score(runs, "ref")


def load_stage_modules(model: HDRModel, state: dict[str, torch.Tensor], stage: str) -> None:
    """Load only the networks ``stage`` trains from a whole-model state dict (strictly), so a
    checkpoint stays usable after another stage's architecture changed."""
    for name in STAGE_MODULES[stage]:
        sub = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
        getattr(model, name).load_state_dict(sub)


# --------------------------------------------------------------------------- losses per stage
def stage_loss(stage: str, model: HDRModel, batch: dict[str, torch.Tensor], opts: TrainOptions) -> tuple[torch.Tensor, dict]:
    ldr, encoded, linear, hdr, inv = (batch[k] for k in ("ldr", "encoded", "linear", "hdr", "inverse_curve"))
    if stage == "deq":
        with _autocast(opts):
            out = model.deq(ldr)
        l2 = F.mse_loss(out, encoded)
        l_psnr = losses.log_mse(out, encoded, floor_db=70.0)
        return l2 + 1e-4 * l_psnr, {"l2": l2.item(), "log_mse": l_psnr.item()}
    if stage == "lin":
        with _autocast(opts):
            params = model.lin.predict_parameters(downscale_longest_side(ldr, model.config.linearization_input_size))
        curve = model.lin.curve_from_parameters(params, snap=False)
        pred_linear = crf.apply_curve(ldr, curve)
        l_lin = F.mse_loss(pred_linear, linear)
        l_crf = F.mse_loss(curve, inv)
        l_pu = losses.pu21_l1(pred_linear, linear)
        l_psnr = losses.pu21_log_mse(pred_linear, linear)
        loss = 10.0 * l_lin + 1.0 * l_crf + l_pu + 0.05 * l_psnr
        parts = {"lin": l_lin.item(), "crf": l_crf.item(), "pu": l_pu.item(), "log_mse": l_psnr.item()}
        if model.lin.srgb_head:
            l_srgb = F.binary_cross_entropy_with_logits(params[:, -1].float(), batch["is_srgb"])
            loss = loss + 0.05 * l_srgb
            parts["srgb_bce"] = l_srgb.item()
        return loss, parts
    if stage == "hal":
        source = crf.apply_curve(ldr, inv).clamp(0.0, 1.0) if opts.hal_input == "camera" else linear
        with _autocast(opts):
            out = model.hal(source)
        l_pu = losses.pu21_l2(out, hdr)
        loss, parts = l_pu, {"pu_l2": l_pu.item()}
        if opts.light_weight:
            l_light = losses.missing_light(out, hdr, ldr)
            loss = loss + opts.light_weight * l_light
            parts["light_stops"] = l_light.item()
        if opts.log_weight:
            l_log = losses.masked_log_l2(out, hdr, ldr)
            loss = loss + opts.log_weight * l_log
            parts["log_l2"] = l_log.item()
        return loss, parts
    if stage == "ref":
        with torch.no_grad(), _autocast(opts):
            st = reconstruct(model, ldr, use_ref=False)
        with _autocast(opts):
            out = model.ref(st["hallucinated"], st["linear"], st["deq"])
        l2 = losses.pu21_l2(out, hdr)
        l_metric = losses.aligned_pu21_log_mse(out, hdr, ldr)
        return l2 + 0.01 * l_metric, {"pu_l2": l2.item(), "aligned_log_mse": l_metric.item()}
    if stage == "joint":
        with _autocast(opts):
            st = reconstruct(model, ldr, snap=False)
        l_deq = F.mse_loss(st["deq"], encoded)
        l_lin = F.mse_loss(st["linear"], linear)
        l_crf = F.mse_loss(st["curve"], inv)
        l_hal = losses.pu21_l2(st["hdr"], hdr)
        with _autocast(opts):
            l_per = losses.perceptual(model.hal.encoder, st["hdr"], hdr)
        l_tv = losses.total_variation(losses.compress(st["hdr"]))
        loss = l_deq + 10 * l_lin + l_crf + l_hal + 0.001 * l_per + 0.1 * l_tv
        return loss, {"deq": l_deq.item(), "lin": l_lin.item(), "crf": l_crf.item(), "hal": l_hal.item(), "tv": l_tv.item()}
    raise ValueError(f"unknown stage {stage!r}; choose from {STAGES}")


# --------------------------------------------------------------------------- validation
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().transpose(1, 2, 0)


def weighted_family_mean(rows: list[tuple[str, float]]) -> float:
    """Mean per family, then the families averaged with the prior weights."""
    fam: dict[str, list[float]] = {}
    for f, v in rows:
        if np.isfinite(v):
            fam.setdefault(f, []).append(v)
    total = sum(PRIOR_WEIGHTS[f] for f in fam)
    return float(sum(PRIOR_WEIGHTS[f] * np.mean(v) for f, v in fam.items()) / max(total, 1e-12))


@torch.no_grad()
def validate(stage: str, model: HDRModel, pairs: list[Pair], opts: TrainOptions, hal_behind_lin: bool = False,
             region_ldrs: list[np.ndarray] | None = None) -> dict[str, float]:
    """Stage-appropriate validation score (higher is better, key ``score``) and baseline.

    ``hal_behind_lin``: score Hallucination-Net behind the model's own Linearization-Net
    (set when that network is trained) rather than on the true linear image.
    ``region_ldrs``: the inputs that define each pair's regions (default its own input; the
    camera-JPEG pairs pass their clean inputs, as the evaluation does).
    """
    model.eval()
    ours, base, no_ref, over_rows = [], [], [], []
    snap_rows: list[tuple[str, float, float, float]] = []
    rmse_rows: list[tuple[str, float, float, float]] = []
    srgb_inverse = torch.as_tensor(srgb_to_linear(crf.GRID), dtype=torch.float32)
    extra: dict[str, list[float]] = {}
    for i, p in enumerate(pairs):
        region = p.ldr if region_ldrs is None else region_ldrs[i]
        t = {k: v.unsqueeze(0) for k, v in pair_to_tensors(p).items()}
        if stage == "deq":
            with _autocast(opts):
                out = model.deq(t["ldr"])
            ours.append((p.family, metrics.psnr(_np(out[0]), p.encoded)))
            base.append((p.family, metrics.psnr(p.ldr, p.encoded)))
        elif stage == "lin":
            # scored as export will use it: snapping to sRGB above a calibrated threshold, so
            # checkpoints are compared without the noise of a fixed threshold's position
            with _autocast(opts):
                params = model.lin.predict_parameters(
                    downscale_longest_side(t["ldr"], model.config.linearization_input_size))
            soft = model.lin.curve_from_parameters(params, snap=False)[0]
            conf = float(model.lin.srgb_confidence(params)[0])
            pu_srgb = metrics.score(srgb_to_linear(p.ldr), p.hdr, p.ldr)["pu21"]
            pu_soft = metrics.score(crf.apply_curve_np(p.ldr, soft.cpu().numpy()), p.hdr, p.ldr)["pu21"]
            base.append((p.family, pu_srgb))
            snap_rows.append((p.family, conf, pu_soft, pu_srgb))
            truth = t["inverse_curve"][0]
            rmse_rows.append((p.family, conf, float(torch.sqrt(F.mse_loss(soft, truth))),
                              float(torch.sqrt(F.mse_loss(srgb_inverse.to(truth.device), truth)))))
        elif stage == "hal" and hal_behind_lin:
            # Scored as the product runs it: behind this model's Dequantization- and
            # Linearization-Net, whole image, evaluation metric.  Fed the true linear image
            # instead, the score ranked checkpoints against the full pipeline (measured:
            # the "best" of a run lost 0.3-0.5 dB to its last checkpoint in `hdr-plugin eval`).
            # The shipped default path (--quality standard) has no Dequantization-Net.
            with _autocast(opts):
                st = reconstruct(model, t["ldr"], use_deq=False, use_ref=False)
            s = metrics.score(_np(st["hdr"][0]), p.hdr, region)
            ours.append((p.family, s["pu21"]))
            over_rows.append((p.family, s["pu21_over"]))
            if np.isfinite(s.get("light_ratio", np.nan)):
                extra.setdefault("light_log2", []).append(float(np.log2(max(s["light_ratio"], 1e-6))))
            base.append((p.family, metrics.score(srgb_to_linear(p.ldr), p.hdr, region)["pu21"]))
        elif stage == "hal":
            # no trained Linearization-Net yet: the clipped region of the true linear image
            with _autocast(opts):
                out = model.hal(t["linear"])
            over = metrics.overexposed_mask(region)
            ours.append((p.family, metrics.pu21_psnr(_np(out[0]), p.hdr, over)))
            base.append((p.family, metrics.pu21_psnr(p.linear, p.hdr, over)))
        else:
            with _autocast(opts):
                st = reconstruct(model, t["ldr"])
            out = st["hdr"]
            ours.append((p.family, metrics.score(_np(out[0]), p.hdr, p.ldr)["pu21"]))
            # Refinement-Net must beat its own absence, not just the baseline
            no_ref.append((p.family, metrics.score(_np(st["hallucinated"][0]), p.hdr, p.ldr)["pu21"]))
            base.append((p.family, metrics.score(srgb_to_linear(p.ldr), p.hdr, p.ldr)["pu21"]))
    if snap_rows:
        table = threshold_table(snap_rows)
        threshold = max(table, key=table.get)
        ours = [(f, snap if c > threshold else soft) for f, c, soft, snap in snap_rows]
        extra["snap_threshold"] = [threshold]
        extra["curve_rmse"] = [snap if c > threshold else soft for _, c, soft, snap in rmse_rows]
    result = {"score": weighted_family_mean(ours), "baseline": weighted_family_mean(base)}
    if no_ref:
        result["without_ref"] = weighted_family_mean(no_ref)
    if over_rows:
        result["over_exposed"] = weighted_family_mean(over_rows)
    for fam in PRIOR_WEIGHTS:
        vals = [v for f, v in ours if f == fam and np.isfinite(v)]
        bvals = [v for f, v in base if f == fam and np.isfinite(v)]
        if vals:
            result[f"{fam}_gain"] = float(np.mean(vals) - np.mean(bvals))
    for k, v in extra.items():
        result[k] = float(np.mean(v))
    return result


def camera_jpeg_validation(pairs: list[Pair]) -> list[Pair]:
    """The validation pairs re-made as camera JPEGs (``synthesis.EVAL_CAMERA_JPEG``, seeded)."""
    return [camera_jpeg_variant(p, [7 + VAL_JPEG_SEED, i]) for i, p in enumerate(pairs)]


def validate_stage(stage: str, model: HDRModel, pairs: list[Pair], jpeg_pairs: list[Pair] | None, opts: TrainOptions,
                   hal_behind_lin: bool = False) -> dict[str, float]:
    """``validate`` on the clean pairs and, when given, on their camera-JPEG variant.

    With JPEGs, ``score`` is the mean of the two scores (``clean_score``, ``jpeg_score``);
    every other key of the JPEG run is logged with a ``jpeg_`` prefix.
    """
    clean = validate(stage, model, pairs, opts, hal_behind_lin=hal_behind_lin)
    if not jpeg_pairs:
        return clean
    jpeg = validate(stage, model, jpeg_pairs, opts, hal_behind_lin=hal_behind_lin, region_ldrs=[p.ldr for p in pairs])
    result = {"score": 0.5 * (clean["score"] + jpeg["score"]), "clean_score": clean["score"], "jpeg_score": jpeg["score"]}
    result.update({k: v for k, v in clean.items() if k != "score"})
    result.update({f"jpeg_{k}": v for k, v in jpeg.items() if k != "score"})
    return result


# --------------------------------------------------------------------------- main loop
def train(opts: TrainOptions) -> Path:
    """Run (or resume) one stage; returns the stage folder holding ``best.pt``."""
    if opts.stage not in STAGES:
        raise ValueError(f"unknown stage {opts.stage!r}; choose from {STAGES}")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    out = stage_dir(opts.runs, opts.stage)
    out.mkdir(parents=True, exist_ok=True)
    config = ModelConfig.load(opts.config)
    batch_size = opts.batch or DEFAULT_BATCH[opts.stage]
    device = torch.device(opts.device)

    last = out / "last.pt"
    if last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        config = ModelConfig(ckpt["config"])
        # The other networks come from their stages' current best checkpoints.
        model = assemble_model(opts.runs, config, opts.init, upto=opts.stage)
        load_stage_modules(model, ckpt["model"], opts.stage)
        step, best_score, elapsed = ckpt["step"], ckpt["best_score"], ckpt.get("elapsed", 0.0)
        log.info("resuming %s at step %d (best %.3f)", opts.stage, step, best_score)
    else:
        model = assemble_model(opts.runs, config, opts.init, upto=opts.stage)
        ckpt, step, best_score, elapsed = None, 0, -math.inf, 0.0
    model.to(device=device, memory_format=torch.channels_last)
    modules = [getattr(model, n) for n in STAGE_MODULES[opts.stage]]
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=opts.lr)
    if ckpt is not None and "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])

    # Hallucination-Net is selected behind a trained Linearization-Net when there is one
    lin_trained = opts.init is not None or (stage_dir(opts.runs, "lin") / "best.pt").is_file()
    val_scenes = load_scenes(opts.data, "val")
    val_set = validation_pairs(val_scenes, size=opts.val_size, views_per_scene=opts.val_views, seed=7)
    val_jpeg = camera_jpeg_validation(val_set) if opts.stage in JPEG_VALIDATED_STAGES else None
    stream = PairStream(opts.data, opts.crop, seed=opts.seed * 100003 + step, scene_limit=opts.scene_limit, options=STAGE_SYNTHESIS.get(opts.stage))
    loader = DataLoader(stream, batch_size=batch_size, num_workers=opts.workers, persistent_workers=opts.workers > 0)

    def lr_at(s: int) -> float:
        return opts.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, opts.steps) / opts.steps)))

    # provenance for the manifest: which weights a run started from (None: random)
    init_record = (ckpt or {}).get("init") or (str(opts.init) if opts.init is not None else None)

    def save(path: Path, **extra) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "config": config.raw, "step": step, "best_score": best_score, "elapsed": elapsed,
                    "init": init_record, **extra}, tmp)
        tmp.replace(path)

    logf = open(out / "log.jsonl", "a")
    if step == 0 and opts.init is not None:
        # the starting weights' score: a checkpoint becomes best.pt only when it beats them
        val = validate_stage(opts.stage, model, val_set, val_jpeg, opts, lin_trained)
        best_score = val["score"]
        logf.write(json.dumps({"step": 0, "val": val, "init": True}) + "\n")
        logf.flush()
        log.info("%s val of the starting weights: %s", opts.stage, json.dumps(val))
    session_start = time.time()
    start = time.time() - elapsed
    running: dict[str, float] = {}
    t_log = time.time()
    for batch in loader:
        if step >= opts.steps or (opts.max_minutes and time.time() - session_start > opts.max_minutes * 60):
            break
        model.train()
        if opts.stage in ("ref", "joint"):
            _freeze_batchnorm(model)
        batch = {k: v.to(device) for k, v in batch.items()}
        for g in optimizer.param_groups:
            g["lr"] = lr_at(step)
        loss, parts = stage_loss(opts.stage, model, batch, opts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        for k, v in parts.items():
            running[k] = running.get(k, 0.0) + v
        if step % opts.log_every == 0:
            rate = opts.log_every / (time.time() - t_log)
            t_log = time.time()
            avg = {k: v / opts.log_every for k, v in running.items()}
            running = {}
            elapsed = time.time() - start
            rec = {"step": step, "time_min": round(elapsed / 60, 2), "steps_per_s": round(rate, 3), "lr": lr_at(step), **avg}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log.info("%s step %d/%d %s", opts.stage, step, opts.steps, " ".join(f"{k}={v:.4g}" for k, v in avg.items()))
        if step % opts.val_every == 0 or step == opts.steps:
            elapsed = time.time() - start
            val = validate_stage(opts.stage, model, val_set, val_jpeg, opts, lin_trained)
            improved = val["score"] > best_score
            if improved:
                best_score = val["score"]
                save(out / "best.pt")
            rec = {"step": step, "time_min": round(elapsed / 60, 2), "val": val, "best": improved}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log.info("%s val step %d: %s%s", opts.stage, step, json.dumps(val), " (best)" if improved else "")
            save(last, optimizer=optimizer.state_dict())
    elapsed = time.time() - start
    save(last, optimizer=optimizer.state_dict())
    logf.close()
    return out
