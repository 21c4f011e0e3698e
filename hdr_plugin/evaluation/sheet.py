"""``hdr-plugin eval --sheet DIR``: real photos at 0/-2/-4 EV beside the paper's result.

For each scene folder under ``<data>/ldr_real/`` (``in.jpg``, and the paper's tone-mapped
``ours.jpg`` when present) one row: the input, our reconstruction (the Engine's default
path, what ``convert`` writes) shown at 0, -2 and -4 EV, the input itself pulled down to
-2 EV (inverse sRGB: what the plate holds without reconstruction) and the paper's result.
Pulling the exposure down is where a blotchy fill shows.  Also printed per photo: how much
of it is over-exposed and the rms band-pass texture of our fill at -2 EV (the numerator
of ``metrics.spurious_texture`` without a ground truth; 0 for a flat fill).

The photos carry no licence: the sheet is made on demand, into a folder the caller
chooses, and must not be committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..color import linear_to_srgb, luminance, srgb_to_linear
from . import metrics

EVS = (0, -2, -4)


def display(linear: np.ndarray, ev: float) -> np.ndarray:
    """Scene-linear RGB -> 8-bit RGB shown at ``ev`` stops (clipped, sRGB-encoded)."""
    return np.round(np.clip(linear_to_srgb(np.clip(linear * 2.0**ev, 0, 1)), 0, 1) * 255).astype(np.uint8)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(img)
    for color, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, thick, cv2.LINE_AA)
    return out


def fill_texture(linear: np.ndarray, ldr: np.ndarray) -> float:
    """rms band-pass (DoG sigma 2 - 8 px of the -2 EV sRGB luminance) in the eroded
    over-exposed region, in 8-bit code values; NaN without such a region."""
    region = metrics.texture_region(ldr)
    if not region.any():
        return float("nan")
    return float(np.sqrt(np.mean(metrics.texture_bandpass(linear)[region] ** 2)) * 255)


def sheet_row(engine, folder: Path) -> tuple[np.ndarray, dict]:
    """One labelled RGB row for a scene folder, and its numbers."""
    import cv2

    from ..io import read_ldr

    ldr = read_ldr(folder / "in.jpg").rgb
    ours = engine.reconstruct(ldr).image
    plate = srgb_to_linear(ldr)
    name = f"{folder.parent.name}/{folder.name}"
    cells = [_label(display(plate, 0), f"{name} input")]
    cells += [_label(display(ours, ev), f"hdr-plugin {ev:+d} EV") for ev in EVS]
    cells.append(_label(display(plate, -2), "input (inverse sRGB) -2 EV"))
    paper = folder / "ours.jpg"
    if paper.is_file():
        p = read_ldr(paper).rgb
        if p.shape[:2] != ldr.shape[:2]:
            p = cv2.resize(p, (ldr.shape[1], ldr.shape[0]), interpolation=cv2.INTER_AREA)
        cells.append(_label(np.round(p * 255).astype(np.uint8), "paper (ours.jpg, tone-mapped)"))
    over = metrics.overexposed_mask(ldr)
    numbers = {
        "photo": name,
        "over_exposed": float(over.mean()),
        "fill_texture_rms": fill_texture(ours, ldr),
        "fill_peak": float(luminance(ours)[over].max()) if over.any() else float("nan"),
        "fill_mean": float(luminance(ours)[over].mean()) if over.any() else float("nan"),
    }
    return np.hstack(cells), numbers


def make_sheet(args: argparse.Namespace) -> int:
    import cv2

    from ..pipeline import Engine

    root = Path(args.data) / "ldr_real"
    folders = [root / f for f in args.sheet_photos]
    missing = [str(f) for f in folders if not (f / "in.jpg").is_file()]
    if missing:
        print("error: no in.jpg in " + ", ".join(missing), file=sys.stderr)
        return 2
    engine = Engine(args.weights, device=args.device, precision=args.precision, tile=args.tile, tile_overlap=args.tile_overlap)
    out = Path(args.sheet)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"hdr-plugin eval --sheet: {engine.device}, {engine.precision}; photos from {root} (no licence: do not commit)")
    for folder in folders:
        row, n = sheet_row(engine, folder)
        path = out / f"{folder.parent.name}_{folder.name}.png"
        cv2.imwrite(str(path), row[:, :, ::-1])
        rows.append(row)
        print(f"- {n['photo']}: {n['over_exposed']:.0%} over-exposed; our fill: mean {n['fill_mean']:.2f}, peak "
              f"{n['fill_peak']:.1f} (input white = 1), rms texture at -2 EV {n['fill_texture_rms']:.2f} code values -> {path}")
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    cv2.imwrite(str(out / "sheet.png"), sheet[:, :, ::-1])
    print(f"wrote {out / 'sheet.png'}")
    return 0
