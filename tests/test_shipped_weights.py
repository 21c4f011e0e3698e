"""The trained weights in ``weights/`` (what the quick start uses), scored against a known
answer: the bundled sample is a camera simulation of a validation scene whose scene-linear
ground truth is ``tests/data/sample_gt.exr`` (see tools/make_sample.py).  Skips when no
trained weights are shipped."""

from __future__ import annotations

import numpy as np
import pytest

from hdr_plugin.color import srgb_to_linear
from hdr_plugin.evaluation import metrics
from hdr_plugin.io import read_hdr, read_ldr
from hdr_plugin.pipeline import Engine
from hdr_plugin.weights import read_manifest

from conftest import DATA, ROOT


@pytest.fixture
def sample_scores(shipped_weights):
    folder = shipped_weights
    ldr = read_ldr(ROOT / "hdr_plugin" / "data" / "sample.png").rgb
    gt = read_hdr(DATA / "sample_gt.exr")
    ours = Engine(folder, device="cpu", precision="fp32", tile=0).reconstruct(ldr).image
    return ldr, ours, metrics.score(ours, gt, ldr), metrics.score(srgb_to_linear(ldr), gt, ldr)


def test_shipped_weights_are_small_fp16_and_trained(shipped_weights):
    info = read_manifest(shipped_weights)
    assert info.trained
    total = sum(p.stat().st_size for p in shipped_weights.glob("*.safetensors"))
    assert 0 < total <= 60e6


def test_shipped_weights_beat_inverse_srgb_on_the_bundled_sample(sample_scores):
    _, _, ours, baseline = sample_scores
    assert ours["pu21"] > baseline["pu21"] + 1.0
    assert ours["pu21_over"] > baseline["pu21_over"] + 1.0


def test_shipped_weights_restore_highlights_above_the_clip_level(sample_scores):
    ldr, hdr, _, _ = sample_scores
    clipped = ldr.max(axis=2) >= 1.0
    unclipped = ldr.max(axis=2) < 0.9
    assert hdr.dtype == np.float32 and np.isfinite(hdr).all() and hdr.min() >= 0
    # the clipped lamps and skylight come back brighter than the clip level, and brighter
    # than anything that was not clipped
    assert np.median(hdr.max(axis=2)[clipped]) > 1.0
    assert hdr.max(axis=2)[clipped].mean() > 1.5 * hdr.max(axis=2)[unclipped].mean()
