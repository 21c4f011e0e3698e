"""``hdr-plugin eval``: score the validation split with the METRICS.md protocol.

Prints the full pipeline, the inverse-sRGB baseline, one ablation per network (no
Dequantization-Net; the sRGB inverse curve instead of Linearization-Net; no
Hallucination-Net; no Refinement-Net) and a reference row that uses the *true* inverse
curve (not a method: it shows what a perfect Linearization-Net would give), then the
stage metrics and the speed.  Validation pairs: held-out scenes x views x curve
families, fully determined by ``--seed`` (see ``training/synthesis.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from .. import crf
from ..color import srgb_to_linear
from ..training.curves import FAMILIES, PRIOR_WEIGHTS
from . import metrics

METHODS = (
    ("full", "full pipeline"),
    ("srgb", "inverse sRGB (baseline)"),
    ("no_deq", "ablation: no Dequantization-Net"),
    ("no_lin", "ablation: sRGB curve instead of Linearization-Net"),
    ("no_hal", "ablation: no Hallucination-Net"),
    ("no_ref", "ablation: no Refinement-Net"),
    ("true_curve", "reference: true inverse curve, no hallucination"),
)
METRIC_KEYS = ("pu21", "pu21_over", "log_psnr", "tm_psnr", "tm_ssim")


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].detach().float().cpu().numpy().transpose(1, 2, 0)


def best_single_gamma(curves: list[np.ndarray]) -> tuple[float, float]:
    """The one gamma g whose inverse curve x**g has the lowest mean RMSE over ``curves``."""
    grid = np.linspace(1.0, 3.5, 251)
    errs = [np.mean([np.sqrt(np.mean((crf.GRID**g - c) ** 2)) for c in curves]) for g in grid]
    i = int(np.argmin(errs))
    return float(grid[i]), float(errs[i])


def evaluate(model, pairs, device: torch.device, precision: str) -> dict:
    """Per-pair metrics for every method, plus stage metrics and timing."""
    from ..devices import autocast
    from ..model import reconstruct

    model.eval().to(device)
    srgb_inv = torch.as_tensor(srgb_to_linear(crf.GRID), dtype=torch.float32)
    rows: list[dict] = []
    deq_ours, deq_none, curve_rmse, curve_srgb_rmse, true_curves = [], [], [], [], []
    seconds, megapixels = 0.0, 0.0
    with torch.inference_mode():
        for p in pairs:
            ldr = _chw(p.ldr).to(device)
            true_curve = torch.as_tensor(p.inverse_curve)
            with autocast(device, precision):
                t0 = time.perf_counter()
                full = reconstruct(model, ldr)
                seconds += time.perf_counter() - t0
                megapixels += p.ldr.shape[0] * p.ldr.shape[1] / 1e6
                outputs = {
                    "full": full["hdr"],
                    "no_deq": reconstruct(model, ldr, use_deq=False)["hdr"],
                    "no_lin": reconstruct(model, ldr, curve=srgb_inv.to(device))["hdr"],
                    "no_hal": reconstruct(model, ldr, use_hal=False)["hdr"],
                    "no_ref": reconstruct(model, ldr, use_ref=False)["hdr"],
                }
            preds = {k: _hwc(v) for k, v in outputs.items()}
            preds["srgb"] = srgb_to_linear(p.ldr).astype(np.float32)
            preds["true_curve"] = crf.apply_curve_np(p.ldr, p.inverse_curve)
            row = {"family": p.family, "scene": p.scene, "jpeg": p.jpeg_quality}
            for name, pred in preds.items():
                row[name] = metrics.score(pred, p.hdr, p.ldr)
            rows.append(row)
            deq_ours.append(metrics.psnr(_hwc(full["deq"]), p.encoded))
            deq_none.append(metrics.psnr(p.ldr, p.encoded))
            pred_curve = full["curve"][0].float().cpu()
            curve_rmse.append(float(torch.sqrt(torch.mean((pred_curve - true_curve) ** 2))))
            curve_srgb_rmse.append(float(torch.sqrt(torch.mean((srgb_inv - true_curve) ** 2))))
            true_curves.append(p.inverse_curve)
    gamma, gamma_rmse = best_single_gamma(true_curves)
    return {
        "rows": rows,
        "stage": {
            "dequantization_psnr": float(np.mean(deq_ours)),
            "no_dequantization_psnr": float(np.mean(deq_none)),
            "curve_rmse": float(np.mean(curve_rmse)),
            "srgb_curve_rmse": float(np.mean(curve_srgb_rmse)),
            "best_single_gamma": gamma,
            "best_single_gamma_rmse": gamma_rmse,
        },
        "seconds_per_megapixel": seconds / max(megapixels, 1e-9),
    }


def summarise(result: dict) -> dict:
    """Means per method: the prior-weighted mix, the plain mean and each curve family."""
    rows = result["rows"]
    out: dict = {}
    for method, _ in METHODS:
        fam_means = {}
        for fam in FAMILIES:
            sel = [r[method] for r in rows if r["family"] == fam]
            if sel:
                fam_means[fam] = {k: float(np.nanmean([s[k] for s in sel])) for k in METRIC_KEYS}
        weight = sum(PRIOR_WEIGHTS[f] for f in fam_means)
        mix = {k: sum(PRIOR_WEIGHTS[f] * m[k] for f, m in fam_means.items()) / weight for k in METRIC_KEYS}
        plain = {k: float(np.nanmean([r[method][k] for r in rows])) for k in METRIC_KEYS}
        out[method] = {"mix": mix, "mean": plain, "families": fam_means}
    return out


def format_report(summary: dict, result: dict, n_pairs: int, n_scenes: int, header: str) -> str:
    lines = [header, "", f"{n_pairs} validation pairs from {n_scenes} held-out scenes; 'mix' weights the curve families "
             + ", ".join(f"{f} {w:.0%}" for f, w in PRIOR_WEIGHTS.items()) + ".", ""]
    lines.append("| method | PU21-PSNR (mix) | PU21 over-exposed | log-PSNR | TM-PSNR | TM-SSIM | PU21 plain mean |")
    lines.append("|---|---|---|---|---|---|---|")
    for method, label in METHODS:
        m, plain = summary[method]["mix"], summary[method]["mean"]
        lines.append(
            f"| {label} | {m['pu21']:.2f} | {m['pu21_over']:.2f} | {m['log_psnr']:.2f} | {m['tm_psnr']:.2f} | {m['tm_ssim']:.3f} | {plain['pu21']:.2f} |"
        )
    lines += ["", "PU21-PSNR per curve family (gain over inverse sRGB):", ""]
    lines.append("| method | " + " | ".join(FAMILIES) + " |")
    lines.append("|---|" + "---|" * len(FAMILIES))
    for method, label in METHODS:
        cells = []
        for fam in FAMILIES:
            f = summary[method]["families"].get(fam)
            b = summary["srgb"]["families"].get(fam)
            cells.append(f"{f['pu21']:.2f} ({f['pu21'] - b['pu21']:+.2f})" if f and b else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    st = result["stage"]
    lines += [
        "",
        "Stage metrics:",
        f"- Dequantization: {st['dequantization_psnr']:.2f} dB PSNR vs {st['no_dequantization_psnr']:.2f} dB without "
        f"({st['dequantization_psnr'] - st['no_dequantization_psnr']:+.2f} dB), against the un-quantized camera output",
        f"- Inverse curve RMSE: {st['curve_rmse']:.4f} predicted vs {st['best_single_gamma_rmse']:.4f} for the best single "
        f"gamma ({st['best_single_gamma']:.2f}) ({1 - st['curve_rmse'] / st['best_single_gamma_rmse']:.0%} lower); "
        f"inverse sRGB {st['srgb_curve_rmse']:.4f}",
        f"- Speed: {result['seconds_per_megapixel']:.2f} s per megapixel (full pipeline, batch of one)",
    ]
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    from ..devices import resolve_device, resolve_precision
    from ..training.synthesis import load_scenes, validation_pairs
    from ..weights import load_model

    device = resolve_device(args.device)
    model, info = load_model(args.weights)
    precision = resolve_precision(args.precision, device, info.precision_checks)
    try:
        scenes = load_scenes(args.data, "val", args.limit)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pairs = validation_pairs(scenes, size=args.size, views_per_scene=args.views, seed=args.seed)
    t0 = time.time()
    result = evaluate(model, pairs, device, precision)
    summary = summarise(result)
    header = (
        f"hdr-plugin eval: weights {info.path.name} ({info.sha256[:12]}, {'trained' if info.trained else 'UNTRAINED'}), "
        f"{device}, {precision}, {args.size}px views, seed {args.seed} ({time.time() - t0:.0f} s)"
    )
    print(format_report(summary, result, len(pairs), len(scenes), header))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "stage": result["stage"],
                                         "seconds_per_megapixel": result["seconds_per_megapixel"],
                                         "rows": result["rows"]}, indent=1))
    return 0
