"""Flicker benchmark: shot-locked camera curve (with and without temporal stabilisation) vs one curve per frame vs the ground truth.

    python tools/flicker_bench.py [--frames 48] [--size 320x192] [--scenes N] [--weights W]
                                  [--temporal-radius R[,R2..]] [--temporal-anchors K]

A synthetic shot per validation HDR scene (``hdr_plugin/training/splits.yaml``, from
``../shared/data/hdr``): a wide perspective view is rendered once, and the shot is a
window sliding over it by ``--pan`` pixels per frame (a slow pan whose motion is known
exactly), with a slow exposure ramp of ``--ramp`` EV over the shot, sensor noise drawn
afresh per frame, and ONE camera curve (sRGB followed by an S-shaped tone curve, the
prior's most common non-trivial family) and 8-bit quantization from
``hdr_plugin/training/synthesis.py`` / ``crf.py``.  Each frame is then reconstructed
(a) with one curve for the shot (``Engine.shot_curve`` of 8 spread frames, what
``hdr-plugin convert`` does for a sequence), (a') the same followed by the temporal
stabilisation of the hallucinated region (``hdr_plugin/temporal.py``: radius
``--temporal-radius`` and ``--temporal-anchors`` anchor frames, by default what
``hdr-plugin convert`` does for a shot; its own motion and exposure estimates, not the
known pan) and (b) with a curve estimated per frame.

Measured, after motion compensation (every frame shifted back by its known pan offset
onto the part of the scene all frames see) and in log2 luminance (stops):

* ``static``: RMS over frame pairs of the change of mean log luminance of *static*
  pixels — scene points unclipped in every frame — minus the exposure ramp's own step
  (so the ground truth scores 0 by construction; the raw ramp step is printed too).
* ``hallucinated``: mean over pixels clipped in every frame of the temporal standard
  deviation of log luminance after removing the exposure ramp.  For the ground truth
  this is the scene's own variation (0 for a static scene seen through an exact pan).
* ``error``: mean absolute log2 error against the ground truth in the hallucinated
  region (how far off the restored highlights are, not how much they flicker).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hdr_plugin import crf  # noqa: E402
from hdr_plugin.color import luminance  # noqa: E402
from hdr_plugin.training import curves, synthesis  # noqa: E402

DEFAULT_SCENES = (
    "polyhaven_3d-demo-data/kloppenheim_05_1k.hdr",
    "polyhaven_3d-demo-data/leadenhall_market_1k.hdr",
    "polyhaven_drei-assets/studio_small_03_1k.hdr",
)


def load_scene(data_root: str, rel: str) -> synthesis.Scene:
    """One scene, normalised as :func:`hdr_plugin.training.synthesis.load_scenes` does (99th percentile peak = 1)."""
    from hdr_plugin.io import read_hdr

    row = next(r for r in synthesis.index_rows(data_root) if r["path"] == rel)
    img = np.maximum(np.nan_to_num(read_hdr(Path(data_root) / "hdr" / rel), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    img = (img / max(np.percentile(img.max(axis=2), 99.0), 1e-8)).astype(np.float32)
    return synthesis.Scene(rel, img, row["projection"] == "equirect", row["license"])


def make_shot(scene, width: int, height: int, frames: int, pan: int, ramp_ev: float, clip: float, seed: int):
    """``(ldr frames, gt hdr frames, log2 gains, forward curve)`` for one scene."""
    import cv2

    rng = np.random.default_rng(seed)
    wide_w = width + pan * (frames - 1)
    if scene.equirect:
        square = synthesis.equirect_view(scene.image, 0.3, np.deg2rad(-5), np.deg2rad(100), wide_w)
        top = (wide_w - height) // 2
        wide = square[top : top + height]
    else:
        h, w = scene.image.shape[:2]
        scale = max(wide_w / w, height / h)
        img = cv2.resize(scene.image, (int(np.ceil(w * scale)), int(np.ceil(h * scale))), interpolation=cv2.INTER_AREA)
        wide = img[:height, :wide_w]
    wide = np.ascontiguousarray(np.maximum(wide, 0.0), dtype=np.float32)
    base = synthesis.expose(wide[:, :width], clip)  # exposure set on the first frame
    level = float(wide[:, :width].max() / max(base.max(), 1e-12)) if base is not None else 1.0
    forward = curves.s_tone_curve(curves.srgb_curve(), 0.3, 8.0, 0.5)
    forward = np.asarray(forward, dtype=np.float64)
    log_gains = np.linspace(0.0, ramp_ev, frames)
    ldr, gt = [], []
    for t in range(frames):
        hdr = wide[:, t * pan : t * pan + width] / level * np.float32(2.0 ** log_gains[t])
        sigma = np.sqrt((0.004 * np.minimum(hdr, 1.0)) ** 2 + 0.001**2)
        sensor = np.clip(hdr + sigma * rng.standard_normal(hdr.shape).astype(np.float32), 0.0, 1.0)
        _, q = crf.simulate_camera(sensor, forward)
        ldr.append(q.astype(np.float32))
        gt.append(hdr.astype(np.float32))
    return ldr, gt, log_gains, forward


def compensate(frames, pan: int, width: int):
    """Each frame's view of the scene columns every frame sees (the known pan undone)."""
    n = len(frames)
    common = width - pan * (n - 1)
    if common < 16:
        raise SystemExit(f"--pan {pan} over {n} frames leaves {common} common columns; lower --pan or raise --size")
    return np.stack([f[:, pan * (n - 1 - t) : pan * (n - 1 - t) + common] for t, f in enumerate(frames)])


def measure(stack: np.ndarray, log_gains: np.ndarray, static: np.ndarray, clipped: np.ndarray, gt_log: np.ndarray | None):
    log_l = np.log2(np.maximum(luminance(stack), 1e-6))  # (T, H, W)
    means = np.array([lv[static].mean() for lv in log_l])
    ramp_step = np.diff(log_gains)
    static_rms = float(np.sqrt(np.mean((np.diff(means) - ramp_step) ** 2)))
    detrended = log_l - log_gains[:, None, None]
    hall_std = float(detrended[:, clipped].std(axis=0).mean()) if clipped.any() else float("nan")
    err = float(np.abs(log_l[:, clipped] - gt_log[:, clipped]).mean()) if gt_log is not None and clipped.any() else 0.0
    return static_rms, hall_std, err, float(np.abs(ramp_step).mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", default="320x192", help="frame WIDTHxHEIGHT")
    p.add_argument("--pan", type=int, default=2, help="pixels per frame")
    p.add_argument("--ramp", type=float, default=1.0, help="exposure ramp over the shot, EV")
    p.add_argument("--clip", type=float, default=0.06, help="fraction of clipped pixels in the first frame")
    p.add_argument("--scenes", type=int, default=len(DEFAULT_SCENES))
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--weights", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--temporal-radius", default=None, help="radius (or comma list of radii) of the temporal row(s) (default: the shot default)")
    p.add_argument("--temporal-anchors", type=int, default=None, help="anchor frames of the temporal row(s) (default: the shot default)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the README)")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.frames < 2:
        raise SystemExit("--frames must be at least 2")

    from hdr_plugin.pipeline import Engine
    from hdr_plugin.plugins import make_plugin_manager
    from hdr_plugin import temporal
    from hdr_plugin.shots import curve_picks

    radii = [temporal.check_radius(r) for r in str(args.temporal_radius or temporal.DEFAULT_RADIUS).split(",")]
    if args.temporal_anchors is None:
        args.temporal_anchors = temporal.ANCHOR_FRAMES

    engine = Engine(args.weights, device=args.device, precision=args.precision, tile=0, plugin_manager=make_plugin_manager(load_entrypoints=False))
    val = set(synthesis.scene_paths(args.data, "val"))
    wanted = [s for s in DEFAULT_SCENES if s in val][: args.scenes]
    rows = {path: load_scene(args.data, path) for path in wanted}
    results = {"ground truth": [], "shot-locked curve": [], **{f"shot-locked + temporal (R={r}, K={args.temporal_anchors})": [] for r in radii if r}, "curve per frame": []}
    threshold = float(engine.model.hal.mask_threshold)
    t0 = time.perf_counter()
    for si, path in enumerate(wanted):
        scene = rows[path]
        ldr, gt, log_gains, _ = make_shot(scene, width, height, args.frames, args.pan, args.ramp, args.clip, seed=si)
        gt_c = compensate(gt, args.pan, width)
        ldr_c = compensate(ldr, args.pan, width)
        static = (ldr_c.max(axis=3) < 250 / 255).all(axis=0) & (ldr_c.mean(axis=3) > 10 / 255).all(axis=0)
        clipped = (ldr_c.max(axis=3) >= 254.5 / 255).all(axis=0)
        gt_log = np.log2(np.maximum(luminance(gt_c), 1e-6))
        shot_curve = engine.shot_curve([ldr[i] for i in curve_picks(len(ldr), 8)])
        passes = [temporal.analyse(i, f, engine.reconstruct(f, curve=shot_curve), threshold) for i, f in enumerate(ldr)]
        locked = [fp.image for fp in passes]
        runs = [("ground truth", gt), ("shot-locked curve", locked)]
        t1 = time.perf_counter()
        for r in radii:
            if r:
                nums = list(range(len(passes)))
                anchors = temporal.anchor_frames(nums, args.temporal_anchors)
                runs.append((f"shot-locked + temporal (R={r}, K={args.temporal_anchors})", [
                    temporal.stabilise(fp, [passes[n] for n in temporal.window_of(i, nums, r, anchors)])[0] for i, fp in enumerate(passes)]))
        t_temporal = time.perf_counter() - t1
        per_frame = [engine.reconstruct(f).image for f in ldr]
        runs.append(("curve per frame", per_frame))
        for name, frames in runs:
            stack = compensate(frames, args.pan, width)
            results[name].append(measure(stack, log_gains, static, clipped, None if name == "ground truth" else gt_log))
        print(f"  {path}: {args.frames} frames, {static.mean():.0%} static, {clipped.mean():.1%} clipped in every frame "
              f"({time.perf_counter() - t0:.0f} s; temporal {t_temporal:.1f} s)", file=sys.stderr, flush=True)
    ramp = results["ground truth"][0][3]
    header = ("", "static Δ mean log L (RMS, stops/frame)", "hallucinated σ_t log L (stops)", "hallucinated |error| (stops)")
    table = [(name, *(float(np.mean([r[k] for r in rs])) for k in range(3))) for name, rs in results.items()]
    print(f"\nflicker: {len(wanted)} scene(s) x {args.frames} frames {width}x{height}, pan {args.pan} px/frame, "
          f"exposure ramp {args.ramp:g} EV ({ramp:.4f} stops/frame, removed), one camera curve (sRGB + S-curve), "
          f"weights {engine.weights_info.path.parent.name if engine.weights_info else 'in-memory'}, precision {engine.precision}, "
          f"{time.perf_counter() - t0:.0f} s")
    if args.markdown:
        print("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
        print("|---|---:|---:|---:|")
        for name, a, b, c in table:
            print(f"| {name} | {a:.4f} | {b:.4f} | {'—' if name == 'ground truth' else f'{c:.3f}'} |")
    else:
        print(f"{header[0]:<32}{'static RMS':>12}{'hall. σ_t':>12}{'hall. |err|':>12}")
        for name, a, b, c in table:
            print(f"{name:<32}{a:>12.4f}{b:>12.4f}{'-' if name == 'ground truth' else f'{c:.3f}':>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
