"""How much per-image evidence does Linearization-Net use?  Prints, on the evaluation pairs:

* the network's curve RMSE (snapped as shipped, and soft), how much its curves vary from
  image to image against how much the true curves vary, and per family the correlation of
  its mid-grey value with the truth;
* a ridge-regression probe from global image statistics (per-channel histograms, gradient
  magnitude per brightness band, clipped fraction) trained on fresh training-scene pairs,
  against the mean training curve: how much curve information such statistics carry.

    python tools/lin_diagnostics.py --data ../shared/data [--weights weights] [--train-pairs 3000]

Numbers from this script are quoted in weights/MODEL_CARD.md ("Tried after shipping").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hdr_plugin.devices import autocast
from hdr_plugin.model import estimate_curve
from hdr_plugin.training.synthesis import SynthesisOptions, load_scenes, random_pair, validation_pairs
from hdr_plugin.weights import load_model

SAMPLES = np.linspace(0, 1023, 64).astype(int)  # where the probe predicts the 1024-sample curve


def global_statistics(ldr: np.ndarray) -> np.ndarray:
    """Global features of a display-referred RGB image in [0, 1] (H, W, 3)."""
    feats = [np.histogram(ldr[..., c], bins=32, range=(0, 1))[0] / ldr[..., c].size for c in range(3)]
    y = ldr.mean(axis=2)
    grad = np.hypot(np.diff(y, axis=1)[:-1], np.diff(y, axis=0)[:, :-1])
    band = np.clip((y[:-1, :-1] * 16).astype(int), 0, 15)
    feats.append([grad[band == i].mean() if (band == i).any() else 0.0 for i in range(16)])
    feats.append([np.log(grad[band == i] + 1e-3).mean() if (band == i).any() else np.log(1e-3) for i in range(16)])
    feats.append([np.mean(ldr >= 0.99), y.mean(), y.std()])
    return np.concatenate([np.ravel(f) for f in feats])


def rmse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - b) ** 2).mean(axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--train-pairs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=2020, help="evaluation pairs seed (hdr-plugin eval's default)")
    args = ap.parse_args()

    model, _ = load_model(args.weights)
    model.eval()
    pairs = validation_pairs(load_scenes(args.data, "val"), size=384, views_per_scene=2, seed=args.seed)
    family = np.array([p.family for p in pairs])
    truth = np.array([p.inverse_curve for p in pairs])
    snapped, soft = [], []
    with torch.inference_mode():
        for p in pairs:
            x = torch.from_numpy(np.ascontiguousarray(p.ldr.transpose(2, 0, 1)))[None]
            with autocast(torch.device("cpu"), "bf16"):
                deq = model.deq(x).float()
            snapped.append(estimate_curve(model, deq, snap=True)[0].float().numpy())
            soft.append(estimate_curve(model, deq, snap=False)[0].float().numpy())
    snapped, soft = np.array(snapped), np.array(soft)
    print(f"{len(pairs)} evaluation pairs")
    print(f"network curve RMSE: {rmse(snapped, truth).mean():.4f} snapped, {rmse(soft, truth).mean():.4f} soft")
    print(f"image-to-image spread (mean per-sample std): network {soft.std(0).mean():.4f}, truth {truth.std(0).mean():.4f}")
    for fam in sorted(set(family)):
        sel = family == fam
        corr = np.corrcoef(soft[sel, 512], truth[sel, 512])[0, 1] if truth[sel, 512].std() > 0 else float("nan")
        print(f"  {fam:7s} RMSE {rmse(snapped[sel], truth[sel]).mean():.4f}, mid-grey correlation with truth {corr:+.2f}")

    rng = np.random.default_rng(0)
    train_scenes = load_scenes(args.data, "train")
    clean = SynthesisOptions(noise_probability=0.0)
    X, Y = [], []
    for _ in range(args.train_pairs):
        p = random_pair(train_scenes, 256, rng, clean)
        X.append(global_statistics(p.ldr))
        Y.append(p.inverse_curve[SAMPLES])
    X, Y = np.array(X), np.array(Y)
    Xv = np.array([global_statistics(p.ldr) for p in pairs])
    mu, sd, y_mean = X.mean(0), X.std(0) + 1e-6, Y.mean(0)
    A = (X - mu) / sd
    W = np.linalg.solve(A.T @ A + 1000.0 * np.eye(A.shape[1]), A.T @ (Y - y_mean))
    probe = np.maximum.accumulate(np.clip(((Xv - mu) / sd) @ W + y_mean, 0, 1), axis=1)
    print(f"ridge probe on global statistics ({args.train_pairs} training pairs): RMSE {rmse(probe, truth[:, SAMPLES]).mean():.4f}; "
          f"mean training curve {rmse(y_mean[None], truth[:, SAMPLES]).mean():.4f}")


if __name__ == "__main__":
    main()
