"""Render the README's before/after figure from the bundled validation sample.

    python tools/make_showcase.py [--weights W] [--out docs/showcase.png]

Rows: the ground truth, our reconstruction and plain inverse sRGB, each shown at 0, -2
and -4 EV (exposure lowered so that what was above the clip level becomes visible).
Both predictions are scaled to the ground truth with the METRICS.md alignment, and the
PU21-PSNR of each is printed on its row.  The sample is a view of a validation scene
(never trained on); its ground truth is ``tests/data/sample_gt.exr``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hdr_plugin.color import linear_to_srgb, srgb_to_linear
from hdr_plugin.evaluation import metrics
from hdr_plugin.io import read_hdr, read_ldr
from hdr_plugin.pipeline import Engine

ROOT = Path(__file__).resolve().parent.parent
EVS = (0, -2, -4)


def display(linear: np.ndarray, ev: float) -> np.ndarray:
    """Scene-linear RGB -> 8-bit BGR for viewing at ``ev`` stops."""
    return np.round(np.clip(linear_to_srgb(np.clip(linear * 2.0**ev, 0, 1)), 0, 1)[:, :, ::-1] * 255).astype(np.uint8)


def label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = img.copy()
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "showcase.png")
    ap.add_argument("--scale", type=float, default=0.5, help="downscale the figure for the README")
    args = ap.parse_args()

    ldr = read_ldr(ROOT / "hdr_plugin" / "data" / "sample.png").rgb
    gt = read_hdr(ROOT / "tests" / "data" / "sample_gt.exr")
    engine = Engine(args.weights, device="cpu", precision="fp32", tile=0)
    ours = engine.reconstruct(ldr).image
    baseline = srgb_to_linear(ldr)
    rows = [("ground truth", gt, None)]
    for name, pred in (("hdr-plugin", ours), ("inverse sRGB", baseline)):
        aligned = pred * metrics.alignment_scale(pred, gt, ldr)
        rows.append((name, aligned, metrics.score(pred, gt, ldr)))
    grid = []
    for name, img, score in rows:
        cells = []
        for ev in EVS:
            text = f"{name}, {ev:+d} EV" + (f", PU21 {score['pu21']:.1f} dB" if score and ev == 0 else "")
            cell = display(img, ev)
            if args.scale != 1.0:
                cell = cv2.resize(cell, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
            cells.append(label(cell, text))
        grid.append(np.hstack(cells))
        if score:
            print(f"{name}: PU21-PSNR {score['pu21']:.2f} dB, over-exposed region {score['pu21_over']:.2f} dB")
    figure = np.vstack(grid)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
