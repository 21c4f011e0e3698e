"""``hdr-plugin eval``: score the validation split with the METRICS.md protocol.

Prints the full pipeline, the inverse-sRGB baseline, one ablation per network (no
Dequantization-Net; the sRGB inverse curve instead of Linearization-Net; no
Hallucination-Net; no Refinement-Net) and a reference row that uses the *true* inverse
curve (not a method: it shows what a perfect Linearization-Net would give), then the
stage metrics and the speed.  Validation pairs: held-out scenes x views x curve
families, fully determined by ``--split`` and ``--seed`` (see ``training/synthesis.py``
and ``training/splits.yaml``; ``v1``, the default, is the 160 pairs every earlier number
was measured on).

Beside the PSNRs, for the over-exposed region: the light the output holds there
(``metrics.light_ratio``: geometric mean over images and mean error in stops) and the
spurious texture of the fill at -2 EV (``metrics.spurious_texture``, S).  With
``--jpeg-variant`` every method is scored again on a camera-JPEG variant of the same pairs
(quality 60-90, 4:2:0, light sharpening, seeded; ``synthesis.EVAL_CAMERA_JPEG``), with
the regions taken from the clean input so both tables score the same pixels.
``--sheet DIR`` instead writes a picture sheet of real photos (``sheet.py``).
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
    ("default", "default path (quality standard: Linearization- + Hallucination-Net)"),
    ("full", "full pipeline (quality max: all four networks)"),
    ("srgb", "inverse sRGB (baseline)"),
    ("no_deq", "ablation: no Dequantization-Net"),
    ("no_lin", "ablation: sRGB curve instead of Linearization-Net"),
    ("no_hal", "ablation: no Hallucination-Net"),
    ("no_ref", "ablation: no Refinement-Net"),
    ("true_curve", "reference: true inverse curve, no hallucination"),
)
METRIC_KEYS = ("pu21", "pu21_over", "log_psnr", "tm_psnr", "tm_ssim")
#: seed offset of the camera-JPEG variant (pair i is re-encoded with [seed + JPEG_SEED, i])
JPEG_SEED = 60


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


def evaluate(model, pairs, device: torch.device, precision: str, region_ldrs: list[np.ndarray] | None = None) -> dict:
    """Per-pair metrics for every method, plus stage metrics and timing.

    ``region_ldrs``: the inputs that define each pair's regions (alignment pixels and the
    over-exposed region); default each pair's own input.  The JPEG variant passes the
    clean inputs here.
    """
    from ..devices import autocast
    from ..model import reconstruct

    model.eval().to(device)
    srgb_inv = torch.as_tensor(srgb_to_linear(crf.GRID), dtype=torch.float32)
    rows: list[dict] = []
    deq_ours, deq_none, curve_rmse, curve_srgb_rmse, true_curves = [], [], [], [], []
    seconds, megapixels = 0.0, 0.0
    with torch.inference_mode():
        for i, p in enumerate(pairs):
            region = p.ldr if region_ldrs is None else region_ldrs[i]
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
                    # what the Engine runs by default (hdr_plugin.quality): no Dequantization-
                    # and no Refinement-Net; sparse tiles agree with this to >= 50 dB (tests/test_sparse.py)
                    "default": reconstruct(model, ldr, use_deq=False, use_ref=False)["hdr"],
                    "no_lin": reconstruct(model, ldr, curve=srgb_inv.to(device))["hdr"],
                    "no_hal": reconstruct(model, ldr, use_hal=False)["hdr"],
                    # reconstruct(..., use_ref=False)["hdr"] is exactly the full run's
                    # "hallucinated" (tests/test_evaluation.py): no second pass needed
                    "no_ref": full["hallucinated"].float(),
                }
            preds = {k: _hwc(v) for k, v in outputs.items()}
            preds["srgb"] = srgb_to_linear(p.ldr).astype(np.float32)
            preds["true_curve"] = crf.apply_curve_np(p.ldr, p.inverse_curve)
            row = {"family": p.family, "scene": p.scene, "jpeg": p.jpeg_quality}
            for name, pred in preds.items():
                row[name] = metrics.score(pred, p.hdr, region)
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


def light_and_texture(scores: list[dict]) -> dict[str, float]:
    """Over-exposed-region summary of a list of per-image scores (see ``metrics``)."""
    ratios = [s["light_ratio"] for s in scores]
    tex = np.asarray([s["texture_s"] for s in scores], dtype=np.float64)
    tex = tex[np.isfinite(tex)]
    return {
        "light_ratio": metrics.geometric_mean(ratios),
        "light_stops": metrics.mean_abs_stops(ratios),
        "texture_s_median": float(np.median(tex)) if tex.size else float("nan"),
        "texture_s_mean": float(np.mean(tex)) if tex.size else float("nan"),
        "texture_s_pooled": metrics.pooled_texture([s["texture_num"] for s in scores], [s["texture_den"] for s in scores]),
        "texture_images": int(tex.size),
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
        light = {"all": light_and_texture([r[method] for r in rows])}
        for fam in FAMILIES:
            sel = [r[method] for r in rows if r["family"] == fam]
            if sel:
                light[fam] = light_and_texture(sel)
        out[method] = {"mix": mix, "mean": plain, "families": fam_means, "light": light}
    return out


def _fmt(v: float, spec: str) -> str:
    return "-" if v is None or not np.isfinite(v) else format(v, spec)


def format_tables(summary: dict, result: dict, title: str = "") -> list[str]:
    """The PSNR table, the per-family table, the over-exposed-region table and stage metrics."""
    lines = [title, ""] if title else []
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
    lines += ["", "Over-exposed region: light held (predicted / true luminance, aligned; geometric mean over images, "
              "and mean |log2| error in stops) and spurious texture S of the fill at -2 EV (0 = the true texture, "
              "1 = no texture, > 1 = texture that is not there; median and pooled over images):", ""]
    lines.append("| method | light ratio | light error (stops) | S median | S pooled | " + " | ".join(f"light {f}" for f in FAMILIES) + " |")
    lines.append("|---|---|---|---|---|" + "---|" * len(FAMILIES))
    for method, label in METHODS:
        a = summary[method]["light"]["all"]
        fams = [_fmt(summary[method]["light"].get(f, {}).get("light_ratio", float("nan")), ".2f") for f in FAMILIES]
        lines.append(f"| {label} | {_fmt(a['light_ratio'], '.3f')} | {_fmt(a['light_stops'], '.2f')} | "
                     f"{_fmt(a['texture_s_median'], '.2f')} | {_fmt(a['texture_s_pooled'], '.2f')} | " + " | ".join(fams) + " |")
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
    return lines


def format_report(summary: dict, result: dict, n_pairs: int, n_scenes: int, header: str,
                  jpeg: tuple[dict, dict] | None = None) -> str:
    lines = [header, "", f"{n_pairs} validation pairs from {n_scenes} held-out scenes; 'mix' weights the curve families "
             + ", ".join(f"{f} {w:.0%}" for f, w in PRIOR_WEIGHTS.items()) + ".", ""]
    lines += format_tables(summary, result)
    if jpeg is not None:
        js, jr = jpeg
        q = [r["jpeg"] for r in jr["rows"]]
        lines += ["", ""] + format_tables(
            js, jr, f"Camera-JPEG variant: the same {n_pairs} pairs re-encoded from the clean camera output as camera "
            f"JPEGs (quality {min(q)}-{max(q)}, 4:2:0, light unsharp-mask sharpening; regions from the clean inputs):")
        full_c, full_j = summary["full"], js["full"]
        lines += ["", f"JPEG cost, full pipeline: PU21 {full_j['mix']['pu21'] - full_c['mix']['pu21']:+.2f} dB (mix), "
                  f"{full_j['mix']['pu21_over'] - full_c['mix']['pu21_over']:+.2f} dB over-exposed; light ratio "
                  f"{full_c['light']['all']['light_ratio']:.3f} -> {full_j['light']['all']['light_ratio']:.3f}; S median "
                  f"{full_c['light']['all']['texture_s_median']:.2f} -> {full_j['light']['all']['texture_s_median']:.2f} "
                  f"(inverse sRGB {js['srgb']['light']['all']['texture_s_median']:.2f}); Dequantization-Net earns "
                  f"{full_j['mix']['pu21'] - js['no_deq']['mix']['pu21']:+.2f} dB PU21 on these inputs."]
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    from ..devices import resolve_device, resolve_precision
    from ..training.synthesis import camera_jpeg_variant, load_scenes, split_views, validation_pairs
    from ..weights import load_model

    if getattr(args, "sheet", None) is not None:
        from .sheet import make_sheet

        return make_sheet(args)
    device = resolve_device(args.device)
    model, info = load_model(args.weights)
    precision = resolve_precision(args.precision, device, info.precision_checks)
    split = getattr(args, "split", "v1")
    views = args.views if args.views is not None else split_views(split)
    try:
        scenes = load_scenes(args.data, f"val:{split}", args.limit)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pairs = validation_pairs(scenes, size=args.size, views_per_scene=views, seed=args.seed)
    t0 = time.time()
    result = evaluate(model, pairs, device, precision)
    summary = summarise(result)
    jpeg = None
    if getattr(args, "jpeg_variant", False):
        variant = [camera_jpeg_variant(p, [args.seed + JPEG_SEED, i]) for i, p in enumerate(pairs)]
        jresult = evaluate(model, variant, device, precision, region_ldrs=[p.ldr for p in pairs])
        jpeg = (summarise(jresult), jresult)
    header = (
        f"hdr-plugin eval: weights {info.path.name} ({info.sha256[:12]}, {'trained' if info.trained else 'UNTRAINED'}), "
        f"{device}, {precision}, split {split}, {args.size}px views x {views}, seed {args.seed}"
        f"{', + camera-JPEG variant' if jpeg else ''} ({time.time() - t0:.0f} s)"
    )
    print(format_report(summary, result, len(pairs), len(scenes), header, jpeg))
    if args.json:
        out = {"split": split, "views": views, "seed": args.seed, "summary": summary, "stage": result["stage"],
               "seconds_per_megapixel": result["seconds_per_megapixel"], "rows": result["rows"]}
        if jpeg:
            out["jpeg_variant"] = {"summary": jpeg[0], "stage": jpeg[1]["stage"], "rows": jpeg[1]["rows"]}
        args.json.write_text(json.dumps(out, indent=1))
    return 0
