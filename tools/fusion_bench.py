"""Time temporal stabilisation's fusion of one frame (hdr_plugin.temporal.stabilise).

A synthetic panning frame with clipped areas (about 6 % of a 1080p frame hallucinated) and
12 neighbours (R = 2 and the 8 anchors), each shifted by a known whole-pixel motion; prints
the seconds of one alignment and of the whole fusion.  The engine pass itself is timed by
``hdr-plugin bench --size WxH``; compare the two on the same machine.

    python tools/fusion_bench.py --size 1920x1080
"""

from __future__ import annotations

import argparse
import time
import types

import cv2
import numpy as np

from hdr_plugin import temporal


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="1920x1080", help="frame size WxH (default 1920x1080)")
    p.add_argument("--neighbours", type=int, default=12, help="neighbours fused (2R + 8 anchors; default 12)")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    n = args.neighbours
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0.05, 0.8, (h + 3 * n, w + 3 * n, 3)).astype(np.float32), (0, 0), 3)
    scene[h // 4 : h // 2, w // 5 : w // 2] = 1.0  # clipped areas
    scene[2 * h // 3 : 2 * h // 3 + h // 18, 5 * w // 8 : 4 * w // 5] = 1.0
    curve = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
    frames = []
    for k in range(n + 1):
        rgb = np.ascontiguousarray(scene[k : k + h, k : k + w])
        restored = (rgb * np.where(rgb >= 1.0, 3.0, 1.0)).astype(np.float32)
        frames.append(temporal.analyse(k, rgb, types.SimpleNamespace(image=restored, curve=curve), 0.88))
    center = frames[n // 2]
    neighbours = [temporal.compact(f) for i, f in enumerate(frames) if i != n // 2]
    t = time.perf_counter()
    temporal.align(center, neighbours[0])
    one = time.perf_counter() - t
    t = time.perf_counter()
    _, alignments = temporal.stabilise(center, neighbours)
    total = time.perf_counter() - t
    print(f"{w}x{h}, {float((center.alpha > 0).mean()):.1%} hallucinated: one alignment {one:.2f} s; "
          f"fusion over {n} neighbours {total:.2f} s ({sum(a.used for a in alignments)} used)")


if __name__ == "__main__":
    main()
