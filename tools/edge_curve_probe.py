"""Can colour edges refine Linearization-Net's curve?  A measured probe, not a pipeline stage.

Physics: where two flat regions meet, a pixel on the boundary is a linear mix of their two
scene-linear colours, so under the *true* inverse curve the three colours (side, boundary,
side) are collinear; under a wrong curve the boundary colour bends off the line (Lin et al.,
"Radiometric calibration from a single image", CVPR 2004).  This script takes such triples
from each image (adjacent pixels across an edge, both sides flat, the sides of clearly
different hue), and on fresh views of *training* scenes prints, per curve family:

* how often the true curve bends the triples less than the network's curve does (how
  informative the cue is on 8-bit images), and
* the curve RMSE of the network against the network refined by minimising the bend over
  the first inverse-EMoR components, with a Gaussian prior around the network's answer.

Snapped (exact inverse sRGB) answers are left alone.

    python tools/edge_curve_probe.py --data ../shared/data [--scenes 20] [--components 2] [--prior 0.3] [--min-hue 8]

Numbers from this script are quoted in weights/MODEL_CARD.md ("Tried after shipping").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.optimize import minimize

from hdr_plugin import crf
from hdr_plugin.color import srgb_to_linear
from hdr_plugin.devices import autocast
from hdr_plugin.model import estimate_curve
from hdr_plugin.training.synthesis import load_scenes, validation_pairs
from hdr_plugin.weights import load_model


def edge_triples(codes: np.ndarray, flat: int = 3, min_step: int = 25, min_hue_deg: float = 15.0) -> np.ndarray:
    """``(n, 3, 3)`` colour triples (side, boundary, side) from an 8-bit RGB image (H, W, 3).

    Horizontal and vertical runs of five pixels ``s s m t t``: both sides flat within
    ``flat`` codes, sides at least ``min_step`` codes apart in some channel and
    ``min_hue_deg`` apart in hue angle, every channel of ``m`` 15–85 % of the way between
    the sides, nothing near black or clipped.
    """
    out = []
    img = codes.astype(np.int16)
    for im in (img, img.transpose(1, 0, 2)):
        w = im.shape[1]
        s0, s1, m, t1, t0 = (im[:, k : w - 4 + k] for k in range(5))
        ok = (np.abs(s0 - s1).max(-1) <= flat) & (np.abs(t0 - t1).max(-1) <= flat)
        step = t1 - s1
        ok &= np.abs(step).max(-1) >= min_step
        for x in (s1, m, t1):
            ok &= (x.min(-1) >= 8) & (x.max(-1) <= 247)
        moving = np.abs(step) >= 10
        where = np.where(moving, (m - s1) / np.where(moving, step, 1), 0.5)
        ok &= np.all((where >= 0.15) & (where <= 0.85), axis=-1)
        a, b = s1[ok].astype(float), t1[ok].astype(float)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
        hue_ok = np.degrees(np.arccos(np.clip(cos, -1, 1))) >= min_hue_deg
        out.append(np.stack([s1[ok], m[ok], t1[ok]], 1)[hue_ok])
    return np.concatenate(out).astype(np.uint8)


def bend(triples: np.ndarray, inverse_curve: np.ndarray) -> np.ndarray:
    """Distance of each linearized boundary colour from its sides' line, over the sides' distance."""
    lut = np.interp(np.arange(256) / 255.0, crf.GRID, inverse_curve)
    a, m, b = lut[triples[:, 0]], lut[triples[:, 1]], lut[triples[:, 2]]
    d = b - a
    n = np.linalg.norm(d, axis=1) + 1e-9
    u = d / n[:, None]
    v = m - a
    return np.linalg.norm(v - (v * u).sum(1, keepdims=True) * u, axis=1) / n


def robust_cost(triples: np.ndarray, inverse_curve: np.ndarray, scale: float = 0.02) -> float:
    return float(np.mean(np.log1p((bend(triples, inverse_curve) / scale) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--scenes", type=int, default=20, help="training scenes to draw views from")
    ap.add_argument("--components", type=int, default=2, help="inverse-EMoR components refined")
    ap.add_argument("--prior", type=float, default=0.3, help="weight of the prior around the network's curve")
    ap.add_argument("--min-hue", type=float, default=8.0, help="least hue angle between an edge's sides, degrees")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    model, _ = load_model(args.weights)
    model.eval()
    pairs = validation_pairs(load_scenes(args.data, "train", args.scenes), size=384, views_per_scene=1, seed=args.seed)
    _, basis = crf.inverse_emor_basis()
    k = args.components
    dorf_inverse = crf.invert_curve(crf.dorf_curves())
    spread = np.array([crf.fit_inverse_emor_weights(c, k) for c in dorf_inverse]).std(0)
    srgb_inverse = srgb_to_linear(crf.GRID)

    rows = []
    for p in pairs:
        with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
            x = torch.from_numpy(np.ascontiguousarray(p.ldr.transpose(2, 0, 1)))[None]
            net = estimate_curve(model, model.deq(x), True)[0].float().numpy().astype(np.float64)
        triples = edge_triples(np.round(p.ldr * 255).astype(np.uint8), min_hue_deg=args.min_hue)
        refined, informative = net, np.nan
        if len(triples) >= 10 and np.abs(net - srgb_inverse).max() > 1e-4:
            informative = float(robust_cost(triples, p.inverse_curve) < robust_cost(triples, net))

            def curve(w: np.ndarray) -> np.ndarray:
                return np.clip(np.maximum.accumulate(net + (w * spread) @ basis[:k]), 0.0, 1.0)

            def objective(w: np.ndarray) -> float:
                return robust_cost(triples, curve(w)) + args.prior * float(np.sum(w**2))

            refined = curve(minimize(objective, np.zeros(k), method="Powell", options={"xtol": 1e-3, "ftol": 1e-5}).x)
        rmse = lambda c: float(np.sqrt(np.mean((c - p.inverse_curve) ** 2)))  # noqa: E731
        rows.append((p.family, len(triples), informative, rmse(net), rmse(refined)))

    print(f"{len(rows)} views of {args.scenes} training scenes; {k} components, prior {args.prior}, hue >= {args.min_hue} deg")
    print("family  triples(median)  true-curve-bends-less  RMSE net -> refined")
    for fam in sorted({r[0] for r in rows}) + ["all"]:
        sel = [r for r in rows if fam in (r[0], "all")]
        inf = [r[2] for r in sel if not np.isnan(r[2])]
        print(
            f"{fam:7s} {np.median([r[1] for r in sel]):8.0f}  "
            f"{(np.mean(inf) if inf else float('nan')):8.2f} ({len(inf)} refined)  "
            f"{np.mean([r[3] for r in sel]):.4f} -> {np.mean([r[4] for r in sel]):.4f}"
        )


if __name__ == "__main__":
    main()
