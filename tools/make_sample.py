"""Make the bundled sample: a CC0 validation scene through the simulated sRGB camera.

    python tools/make_sample.py --data ../shared/data

Writes ``hdr_plugin/data/sample.png`` (8-bit sRGB, about 8% of pixels clipped) and
``tests/data/sample_gt.exr`` (the exposure-scaled scene-linear ground truth, clip level 1).
The scene is Poly Haven's "leadenhall_market" (CC0), a validation scene: never trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hdr_plugin import crf
from hdr_plugin.color import linear_to_srgb
from hdr_plugin.io import read_hdr, write_exr
from hdr_plugin.training.synthesis import equirect_view, expose

SCENE = "polyhaven_3d-demo-data/leadenhall_market_1k.hdr"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--scene", default=SCENE)
    ap.add_argument("--yaw", type=float, default=180.0, help="view direction, degrees")
    ap.add_argument("--pitch", type=float, default=10.0)
    ap.add_argument("--fov", type=float, default=80.0)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--clip", type=float, default=0.08, help="fraction of clipped pixels")
    ap.add_argument("--out", default="hdr_plugin/data/sample.png")
    ap.add_argument("--gt", default="tests/data/sample_gt.exr")
    args = ap.parse_args()

    import cv2

    pano = read_hdr(Path(args.data) / "hdr" / args.scene)
    side = max(args.width, args.height)
    view = equirect_view(pano, np.deg2rad(args.yaw), np.deg2rad(args.pitch), np.deg2rad(args.fov), side)
    y0, x0 = (side - args.height) // 2, (side - args.width) // 2
    view = view[y0 : y0 + args.height, x0 : x0 + args.width]
    hdr = expose(np.maximum(view, 0), args.clip)
    ldr = crf.quantize(linear_to_srgb(np.clip(hdr, 0, 1)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, np.round(ldr[:, :, ::-1] * 255).astype(np.uint8))
    write_exr(args.gt, hdr, overwrite=True)
    print(f"{args.out}: {args.width}x{args.height}, clipped {float((hdr.max(axis=2) > 1).mean()):.1%}")


if __name__ == "__main__":
    main()
