"""Evaluation: light held in the clipped region, spurious texture S, the camera-JPEG
variant, the validation splits and the picture sheet."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hdr_plugin import crf
from hdr_plugin.evaluation import metrics
from hdr_plugin.io import write_hdr
from hdr_plugin.training import synthesis

from conftest import SHARED_DATA, requires_shared_data, tiny_model


def _textured_scene(size: int = 96, seed: int = 0):
    """A scene with a textured over-exposed square (a lamp-lit wall) inside a smooth,
    well-exposed surround; returns (gt, ldr) with the clip level at 1."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    gt = np.repeat((0.2 + 0.3 * x)[..., None], 3, axis=2)
    lo, hi = size // 4, 3 * size // 4
    texture = 2.5 + 1.2 * np.sin(40 * x[lo:hi, lo:hi]) * np.cos(33 * y[lo:hi, lo:hi]) + rng.uniform(0, 0.5, (hi - lo, hi - lo))
    gt[lo:hi, lo:hi] = texture[..., None]
    ldr = np.clip(gt, 0, 1)
    return gt, ldr, (slice(lo, hi), slice(lo, hi))


# --------------------------------------------------------------------------- light ratio and S
def test_perfect_prediction_holds_all_light_and_no_spurious_texture():
    gt, ldr, _ = _textured_scene()
    s = metrics.score(gt.copy(), gt, ldr)
    assert s["light_ratio"] == 1.0
    assert s["texture_s"] == 0.0
    # the global scale the protocol ignores changes neither
    s3 = metrics.score(3.7 * gt, gt, ldr)
    assert s3["light_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert s3["texture_s"] == pytest.approx(0.0, abs=1e-12)


def test_half_bright_fill_holds_half_the_light():
    gt, ldr, box = _textured_scene()
    pred = gt.copy()
    pred[box] *= 0.5  # the over-exposed region only; the surround (alignment) is exact
    s = metrics.score(pred, gt, ldr)
    assert s["light_ratio"] == pytest.approx(0.5, abs=1e-12)
    assert metrics.mean_abs_stops([s["light_ratio"]]) == pytest.approx(1.0)


def test_textureless_fill_of_a_textured_region_scores_one():
    gt, ldr, _ = _textured_scene()
    flat = np.full_like(gt, 0.3)  # no texture anywhere: bp(pred) = 0
    region = metrics.texture_region(ldr)
    assert metrics.spurious_texture(flat, gt, region) == pytest.approx(1.0, abs=1e-12)


def test_texture_that_is_not_there_scores_above_one():
    gt, ldr, box = _textured_scene()
    import cv2

    pred = gt.copy()
    noise = cv2.GaussianBlur(np.random.default_rng(5).standard_normal(gt.shape[:2]), (0, 0), 3.0)
    blotches = (noise / noise.std())[box]  # mottled, cloud-like: the band-pass's own scale
    pred[box] = np.maximum(gt[box] + 1.5 * blotches[..., None], 0.2)
    s = metrics.score(pred, gt, ldr)
    assert s["texture_s"] > 1.0
    # the textureless fill is better than the wrong texture, the truth better than both
    flat = gt.copy()
    flat[box] = 2.0
    assert 0.0 == metrics.score(gt, gt, ldr)["texture_s"] < metrics.score(flat, gt, ldr)["texture_s"] < s["texture_s"]


def test_texture_region_is_the_over_exposed_region_eroded_by_four_pixels():
    ldr = np.zeros((40, 40, 3), np.float32)
    ldr[10:30, 5:25] = 1.0
    region = metrics.texture_region(ldr)
    ys, xs = np.nonzero(region)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (14, 25, 9, 20)
    assert region.sum() == 12 * 12


def test_bandpass_is_a_difference_of_gaussians_at_minus_two_ev():
    flat = np.full((64, 64, 3), 3.0, np.float32)  # any constant: no band-pass response
    np.testing.assert_allclose(metrics.texture_bandpass(flat), 0.0, atol=1e-12)
    # above 4x the clip level everything shows as display white at -2 EV: no texture
    bright = np.random.default_rng(0).uniform(4.0, 40.0, (64, 64, 3))
    np.testing.assert_allclose(metrics.texture_bandpass(bright), 0.0, atol=1e-12)


def test_aggregates():
    assert metrics.geometric_mean([0.5, 2.0, float("nan")]) == pytest.approx(1.0)
    assert metrics.mean_abs_stops([0.5, 2.0, 0.25]) == pytest.approx(4 / 3)
    assert metrics.pooled_texture([1.0, 3.0], [2.0, 2.0]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- camera JPEGs
def _smooth_encoded(size=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.5 + 0.3 * np.sin(9 * x + c) * np.cos(7 * y) for c in rng.uniform(0, 3, 3)], axis=-1)
    return img.astype(np.float32)


def test_explicit_420_is_what_libjpeg_did_before_and_444_keeps_chroma():
    checker = np.zeros((32, 32, 3), np.float32)
    checker[..., 0] = (np.indices((32, 32)).sum(0) % 2).astype(np.float32)
    checker[..., 2] = 1 - checker[..., 0]
    np.testing.assert_array_equal(synthesis._jpeg(checker, 95, "420"), synthesis._jpeg(checker, 95))
    err420 = np.abs(synthesis._jpeg(checker, 100, "420") - checker).mean()
    err444 = np.abs(synthesis._jpeg(checker, 100, "444") - checker).mean()
    assert err444 < 0.05 < err420


def test_camera_jpeg_draws_qualities_subsampling_sharpening_and_is_seeded():
    enc = _smooth_encoded()
    cam = synthesis.CameraJPEG()
    rng = np.random.default_rng(0)
    qualities = [cam.apply(enc, rng)[1] for _ in range(150)]
    assert min(qualities) < 65 and max(qualities) > 95 and all(60 <= q <= 100 for q in qualities)
    a, qa = cam.apply(enc, np.random.default_rng(3))
    b, qb = cam.apply(enc, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    codes = a * 255
    np.testing.assert_array_equal(codes, np.round(codes))  # decoded 8-bit
    edge = np.full((32, 32, 3), 0.3, np.float32)
    edge[:, 16:] = 0.7
    sharp = synthesis.sharpen(edge, 0.5, 1.0)
    assert sharp[0, 15, 0] < 0.3 - 0.02 and sharp[0, 16, 0] > 0.7 + 0.02  # halos on both sides of the edge
    np.testing.assert_allclose(sharp[:, :8], 0.3, atol=1e-6)  # flat areas untouched
    assert synthesis.sharpen(edge, 0.0, 1.0) is edge


def test_training_synthesis_makes_camera_jpegs_below_quality_90():
    opts = synthesis.SynthesisOptions()
    assert opts.camera is not None and opts.jpeg_quality == (60, 100) and opts.jpeg_probability >= 0.3
    rng = np.random.default_rng(1)
    view = np.random.default_rng(2).gamma(1.5, 0.5, (64, 64, 3)).astype(np.float32)
    qualities = []
    for _ in range(60):
        p = synthesis.make_pair(view, np.linspace(0, 1, crf.N_SAMPLES) ** (1 / 2.2), "gamma", rng, opts)
        if p is not None and p.jpeg_quality:
            qualities.append(p.jpeg_quality)
    assert qualities and min(qualities) < 90


def test_validation_options_are_unchanged():
    v = synthesis.SynthesisOptions.validation()
    assert v.camera is None and v.jpeg_quality == (90, 100) and v.jpeg_probability == pytest.approx(1 / 3)


def test_camera_jpeg_variant_keeps_the_truth_and_changes_only_the_input():
    enc = _smooth_encoded(96)
    hdr = crf.apply_curve_np(enc, crf.invert_curve(np.linspace(0, 1, crf.N_SAMPLES) ** (1 / 2.2))) * 1.0
    pair = synthesis.Pair(ldr=crf.quantize(enc).astype(np.float32), encoded=enc, linear=hdr, hdr=hdr,
                          inverse_curve=np.linspace(0, 1, crf.N_SAMPLES).astype(np.float32), family="gamma", scene="x")
    v = synthesis.camera_jpeg_variant(pair, [2020, 0])
    w = synthesis.camera_jpeg_variant(pair, [2020, 0])
    np.testing.assert_array_equal(v.ldr, w.ldr)
    assert v.hdr is pair.hdr and v.encoded is pair.encoded and 60 <= v.jpeg_quality <= 90
    assert not np.array_equal(v.ldr, pair.ldr)
    assert metrics.psnr(v.ldr, enc) < metrics.psnr(pair.ldr, enc)


# --------------------------------------------------------------------------- splits
def test_split_names_resolve():
    s = synthesis.load_splits()
    v1, v2 = synthesis.validation_split_paths(s, "v1"), synthesis.validation_split_paths(s, "v2")
    assert len(v1) == 16 and set(v1) < set(v2) and len(v2) == 20
    assert synthesis.split_views("v1") == 2 and synthesis.split_views("val:v2") == 4
    with pytest.raises(ValueError):
        synthesis.validation_split_paths(s, "v3")


@requires_shared_data()
def test_v1_validation_pairs_are_the_ones_every_earlier_number_was_measured_on():
    """The default eval pairs must not drift (speed and retraining compare against
    26.06 / 18.39 dB on them).  Hash of the first scene's pairs, recorded with the code
    that produced the README's table."""
    scenes = synthesis.load_scenes(SHARED_DATA, "val:v1", 1)
    pairs = synthesis.validation_pairs(scenes, size=96, views_per_scene=2, seed=2020)
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(p.ldr).tobytes() for p in pairs)).hexdigest()
    assert scenes[0].path == "deep-hdr-reconstruction-crops/0003.exr"
    assert [p.jpeg_quality for p in pairs] == [0, 0, 0, 0, 0, 0, 0, 0, 99, 0]
    assert digest[:16] == "84b8a8e7a53e727d"


@requires_shared_data()
def test_v2_training_split_takes_the_new_scenes_and_stays_disjoint():
    rows = {r["path"]: r for r in synthesis.index_rows(SHARED_DATA)}
    train = set(synthesis.scene_paths(SHARED_DATA, "train"))
    v2 = set(synthesis.scene_paths(SHARED_DATA, "v2"))
    assert len(v2) == 20 and not train & v2
    assert all(rows[p]["license"].startswith(("CC0", "BSD")) for p in train)
    assert len(train) == 87  # the old 62 plus 25 of the 29 added scenes
    assert "polyhaven_stable-fast-3d/metro_noord_1k.hdr" in train


def test_squeezed_panoramas_are_stretched_back(tmp_path):
    img = np.random.default_rng(0).uniform(0.1, 5.0, (64, 32, 3)).astype(np.float32)  # 1:2 stored
    write_hdr(tmp_path / "hdr" / "sq.hdr", img)
    with open(tmp_path / "hdr" / "INDEX.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "license", "projection", "max"])
        w.writeheader()
        w.writerow({"path": "sq.hdr", "license": "CC0-1.0", "projection": "equirect (1:2 squeezed)", "max": "5"})
    (scene,) = synthesis.load_scenes(tmp_path, "train")
    assert scene.equirect and scene.image.shape == (64, 128, 3)


# --------------------------------------------------------------------------- eval command
def test_no_refinement_ablation_is_the_full_runs_hallucinated_output():
    from hdr_plugin.model import reconstruct

    model = tiny_model(seed=1)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        full = reconstruct(model, x)
        no_ref = reconstruct(model, x, use_ref=False)
    torch.testing.assert_close(no_ref["hdr"], full["hallucinated"].float(), rtol=0, atol=0)
    assert not torch.equal(full["hdr"], full["hallucinated"])


@pytest.fixture
def mini_data(tmp_path) -> Path:
    """A data folder with the first two v1 validation scenes (synthetic pixels)."""
    val = synthesis.load_splits()["validation"][:2]
    rows = []
    for i, rel in enumerate(val):
        gt, _, _ = _textured_scene(160, seed=i)
        write_hdr(tmp_path / "hdr" / rel, (gt * (1 + 0.2 * i)).astype(np.float32))
        rows.append({"path": rel, "license": "GPL-3.0", "projection": "perspective/crop", "max": str(float(gt.max()))})
    with open(tmp_path / "hdr" / "INDEX.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return tmp_path


def test_eval_reports_light_texture_and_the_jpeg_variant(mini_data, tmp_path, capsys):
    from hdr_plugin.cli import main

    out = tmp_path / "eval.json"
    rc = main(["eval", "--data", str(mini_data), "--size", "64", "--views", "1", "--jpeg-variant",
               "--json", str(out), "--device", "cpu", "--precision", "fp32"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "light ratio" in text and "Camera-JPEG variant" in text and "JPEG cost" in text and "split v1" in text
    data = json.loads(out.read_text())
    assert data["split"] == "v1" and data["views"] == 1
    rows, jrows = data["rows"], data["jpeg_variant"]["rows"]
    assert len(rows) == len(jrows) == 2 * 5
    assert all(60 <= r["jpeg"] <= 90 for r in jrows)
    for r in rows:
        assert r["srgb"]["light_ratio"] > 0 and "texture_s" in r["full"]
    # the true inverse curve without hallucination holds the clipped light exactly as the
    # clipped linear image does: never more than the truth
    assert all(r["true_curve"]["light_ratio"] <= 1.0 + 1e-6 for r in rows)
    light = data["summary"]["full"]["light"]
    assert set(light) >= {"all", "srgb"} and np.isfinite(light["all"]["light_ratio"])
    assert data["jpeg_variant"]["stage"]["no_dequantization_psnr"] < data["stage"]["no_dequantization_psnr"]


def test_sheet_writes_rows_for_real_photos(mini_data, tmp_path, capsys):
    import cv2

    from hdr_plugin.cli import main

    photo = mini_data / "ldr_real" / "set" / "0001"
    photo.mkdir(parents=True)
    img = np.full((96, 128, 3), 120, np.uint8)
    img[20:60, 30:90] = 255  # a blown highlight
    cv2.imwrite(str(photo / "in.jpg"), img)
    cv2.imwrite(str(photo / "ours.jpg"), img // 2)
    sheet = tmp_path / "sheet"
    rc = main(["eval", "--data", str(mini_data), "--sheet", str(sheet), "--sheet-photos", "set/0001",
               "--device", "cpu", "--precision", "fp32", "--tile", "0"])
    assert rc == 0
    row = cv2.imread(str(sheet / "set_0001.png"))
    assert row.shape == (96, 6 * 128, 3)
    assert cv2.imread(str(sheet / "sheet.png")).shape == row.shape
    assert "over-exposed" in capsys.readouterr().out
    assert main(["eval", "--data", str(mini_data), "--sheet", str(sheet), "--sheet-photos", "nope"]) == 2
