"""Choose Linearization-Net's sRGB snap threshold on calibration pairs.

The network outputs a confidence ``c`` that an image is plain sRGB-encoded; above
``snap_threshold`` the curve becomes exact inverse sRGB.  Where to put the threshold is a
trade-off the loss does not see (snapping wins big on sRGB images and loses on the
others), so it is chosen here to maximise the prior-weighted mean PU21-PSNR of the
linear image on *calibration* pairs: fresh views of the **training** scenes with
validation-style exposure, never the validation scenes, so the validation numbers stay
honest.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .. import crf
from ..color import srgb_to_linear
from ..evaluation import metrics
from ..model import HDRModel, downscale_longest_side
from .curves import FAMILIES, PRIOR_WEIGHTS
from .synthesis import Scene, validation_pairs

log = logging.getLogger("hdr_plugin.train")

THRESHOLDS = tuple(np.round(np.arange(0.05, 1.0001, 0.05), 2)) + (1.01,)  # 1.01 = never snap


def threshold_table(rows: list[tuple[str, float, float, float]]) -> dict[float, float]:
    """``{threshold: prior-weighted mean}`` from rows ``(family, confidence, value_soft,
    value_snapped)``: the value each image gets when the curve snaps above the threshold."""
    table = {}
    for t in THRESHOLDS:
        fam = {f: [snap if c > t else soft for g, c, soft, snap in rows if g == f] for f in FAMILIES}
        table[float(t)] = sum(PRIOR_WEIGHTS[f] * float(np.mean(v)) for f, v in fam.items() if v) / sum(
            PRIOR_WEIGHTS[f] for f, v in fam.items() if v
        )
    return table


@torch.no_grad()
def calibrate_snap_threshold(model: HDRModel, scenes: list[Scene], size: int = 256, seed: int = 99) -> tuple[float, dict]:
    """Best threshold and a table ``{threshold: weighted mean PU21}`` (1.01 means never snap)."""
    model.eval()
    pairs = validation_pairs(scenes, size=size, views_per_scene=1, seed=seed, families=FAMILIES)
    srgb = torch.as_tensor(srgb_to_linear(crf.GRID), dtype=torch.float32)
    rows = []
    for p in pairs:
        ldr = torch.from_numpy(np.ascontiguousarray(p.ldr.transpose(2, 0, 1)))[None]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            params = model.lin.predict_parameters(downscale_longest_side(ldr, model.config.linearization_input_size))
        soft = model.lin.curve_from_parameters(params, snap=False)[0]
        conf = float(model.lin.srgb_confidence(params)[0])
        pu_soft = metrics.score(crf.apply_curve_np(p.ldr, soft.numpy()), p.hdr, p.ldr)["pu21"]
        pu_snap = metrics.score(crf.apply_curve_np(p.ldr, srgb.numpy()), p.hdr, p.ldr)["pu21"]
        rows.append((p.family, conf, pu_soft, pu_snap))
    table = threshold_table(rows)
    best = max(table, key=table.get)
    log.info("snap threshold %.2f: calibration PU21 %.3f (never snap %.3f)", best, table[best], table[1.01])
    return best, table
