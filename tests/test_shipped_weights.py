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
from hdr_plugin.training import synthesis
from hdr_plugin.weights import read_manifest

from conftest import DATA, ROOT, SHARED_DATA, requires_shared_data


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
    """One image's margin swings by +-2 dB between networks of the same average quality
    (this view scored 26.94, 24.19 and 22.24 dB with the last three Hallucination-Nets,
    inverse sRGB 22.12): the margin that matters is asserted on held-out scenes below."""
    _, _, ours, baseline = sample_scores
    assert ours["pu21"] > baseline["pu21"]
    assert ours["pu21_over"] > baseline["pu21_over"]


@requires_shared_data()
def test_shipped_weights_beat_inverse_srgb_on_held_out_scenes(shipped_weights):
    """Scored as `hdr-plugin eval` scores, on the engine's default path: 30 pairs (6 of the
    validation scenes x 5 curve families, 256 px, never trained on).  Measured: +1.89 dB
    (weights 5759562b9b9d) and +1.83 dB (c401533ca38a) overall."""
    scenes = synthesis.load_scenes(SHARED_DATA, "val:v1", limit=6)
    pairs = synthesis.validation_pairs(scenes, size=256, views_per_scene=1, seed=2020)
    engine = Engine(shipped_weights, device="cpu", precision="fp32", tile=0)
    ours = [metrics.score(engine.reconstruct(p.ldr).image, p.hdr, p.ldr) for p in pairs]
    base = [metrics.score(srgb_to_linear(p.ldr), p.hdr, p.ldr) for p in pairs]
    for key in ("pu21", "pu21_over"):
        assert np.mean([s[key] for s in ours]) > np.mean([s[key] for s in base]) + 1.5, key
    for family in {p.family for p in pairs}:
        idx = [i for i, p in enumerate(pairs) if p.family == family]
        assert np.mean([ours[i]["pu21"] for i in idx]) > np.mean([base[i]["pu21"] for i in idx]), family


def test_shipped_weights_restore_highlights_above_the_clip_level(sample_scores):
    ldr, hdr, _, _ = sample_scores
    clipped = ldr.max(axis=2) >= 1.0
    unclipped = ldr.max(axis=2) < 0.9
    assert hdr.dtype == np.float32 and np.isfinite(hdr).all() and hdr.min() >= 0
    # the clipped lamps and skylight come back brighter than the clip level, and brighter
    # than anything that was not clipped
    assert np.median(hdr.max(axis=2)[clipped]) > 1.0
    assert hdr.max(axis=2)[clipped].mean() > 1.5 * hdr.max(axis=2)[unclipped].mean()
