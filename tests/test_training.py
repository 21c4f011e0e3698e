"""Training data synthesis, curve families, splits, losses and a short real training run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hdr_plugin import crf
from hdr_plugin.io import write_hdr
from hdr_plugin.training import curves, synthesis
from hdr_plugin.training.train import STAGES, TrainOptions, pair_to_tensors, stage_loss, train

from conftest import SHARED_DATA, TINY_CONFIG, requires_shared_data, tiny_model


def _scene(seed: int, h: int = 96, w: int = 192) -> np.ndarray:
    """A smooth synthetic HDR scene with a few very bright spots (a sun, lamps)."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.2 + 0.3 * np.sin(6 * x + r.uniform(0, 6)) ** 2 + 0.2 * y
    img = np.stack([base * c for c in r.uniform(0.6, 1.2, 3)], axis=-1)
    for _ in range(3):
        cy, cx = r.uniform(0, 1, 2) * (h / max(h, w), w / max(h, w))
        img += r.uniform(5, 50) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.002)[..., None]
    return img.astype(np.float32)


@pytest.fixture
def data_root(tmp_path) -> Path:
    """A miniature data folder laid out like ../shared/data (INDEX.csv + HDR files)."""
    val_path = yaml.safe_load((Path(synthesis.__file__).parent / "splits.yaml").read_text())["validation"][0]
    entries = [
        ("train/a.hdr", "CC0-1.0", "equirect", _scene(1)),
        ("train/b.hdr", "BSD-3-Clause", "perspective/crop", _scene(2, 128, 128)),
        ("train/c.hdr", "GPL-3.0", "perspective/crop", _scene(3, 128, 128)),  # never trained on
        (val_path, "GPL-3.0", "perspective/crop", _scene(4, 128, 160)),
    ]
    hdr = tmp_path / "hdr"
    rows = []
    for rel, lic, proj, img in entries:
        write_hdr(hdr / rel, img)
        rows.append({"path": rel, "license": lic, "projection": proj, "max": str(float(img.max()))})
    with open(hdr / "INDEX.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    return tmp_path


# --------------------------------------------------------------------------- splits
def test_split_uses_permissive_training_scenes_only(data_root):
    train = synthesis.scene_paths(data_root, "train")
    val = synthesis.scene_paths(data_root, "val")
    assert train == ["train/a.hdr", "train/b.hdr"]
    assert len(val) == 1 and not set(val) & set(train)


@requires_shared_data()
def test_real_splits_are_disjoint_and_licensed():
    rows = {r["path"]: r for r in synthesis.index_rows(SHARED_DATA)}
    train = synthesis.scene_paths(SHARED_DATA, "train")
    val = synthesis.scene_paths(SHARED_DATA, "val")
    assert not set(train) & set(val)
    # "val" is the split training validates on (v2: the 16 v1 scenes + 4 new ones)
    assert len(val) == len(synthesis.load_splits()["validation"]) + len(synthesis.load_splits()["validation_v2_added"]) == 20
    assert all(rows[p]["license"].startswith(("CC0", "BSD")) for p in train)
    assert len(train) >= 60


def test_dorf_validation_curves_never_trained_on():
    train_rows, test_rows = crf.dorf_split()
    assert len(test_rows) == 10 and not set(train_rows) & set(test_rows)
    rng = np.random.default_rng(0)
    train_curves = crf.dorf_curves()[list(train_rows)]
    for _ in range(20):
        c = curves.sample_forward_curve("dorf", rng, "val")
        assert np.abs(train_curves - c).max(axis=1).min() > 1e-6


# --------------------------------------------------------------------------- curve families
@pytest.mark.parametrize("family", curves.FAMILIES)
def test_every_curve_family_is_monotonic_with_fixed_endpoints(family):
    rng = np.random.default_rng(3)
    for _ in range(25):
        f = curves.sample_forward_curve(family, rng)
        assert f.shape == (crf.N_SAMPLES,)
        assert f[0] == 0.0 and f[-1] == 1.0
        assert np.diff(f).min() >= 0.0
        g = crf.invert_curve(f)
        assert np.diff(g).min() >= 0.0 and abs(g[0]) < 1e-9 and abs(g[-1] - 1) < 1e-9


def test_family_sampling_follows_the_prior():
    rng = np.random.default_rng(0)
    draws = [curves.sample_family(rng) for _ in range(4000)]
    for fam, weight in curves.PRIOR_WEIGHTS.items():
        assert abs(draws.count(fam) / len(draws) - weight) < 0.03


def test_s_curve_and_gamma_families_differ_from_srgb():
    rng = np.random.default_rng(1)
    srgb = curves.srgb_curve()
    assert np.abs(curves.sample_forward_curve("scurve", rng) - srgb).max() > 0.02
    assert np.abs(curves.sample_forward_curve("gamma", rng) - srgb).max() > 0.005


# --------------------------------------------------------------------------- synthesis
@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_exposure_hits_its_clip_fraction(target):
    view = np.random.default_rng(5).gamma(1.5, 1.0, (128, 128, 3)).astype(np.float32)
    hdr = synthesis.expose(view, target)
    assert abs(synthesis.clip_fraction_of(hdr) - target) < 0.002


def test_quantization_is_exact_and_pairs_are_consistent():
    rng = np.random.default_rng(9)
    opts = synthesis.SynthesisOptions(jpeg_probability=0.0)
    view = _scene(7, 128, 128)
    pair = synthesis.make_pair(view, curves.sample_forward_curve("dorf", rng), "dorf", rng, opts)
    assert pair is not None
    codes = pair.ldr * 255
    np.testing.assert_array_equal(codes, np.round(codes))  # exactly 8-bit values
    np.testing.assert_array_equal(pair.ldr, crf.quantize(pair.encoded))
    assert np.abs(pair.ldr - pair.encoded).max() <= 0.5 / 255 + 1e-7
    # the inverse curve maps the encoded image back to the sensor's clipped linear image
    back = crf.apply_curve_np(pair.encoded, pair.inverse_curve)
    assert np.abs(back - pair.linear).max() < 2e-3
    assert pair.hdr.max() > 1.0 and pair.linear.max() <= 1.0


def test_validation_pairs_are_deterministic_and_cover_every_family(data_root):
    scenes = synthesis.load_scenes(data_root, "val")
    a = synthesis.validation_pairs(scenes, size=64, views_per_scene=2, seed=11)
    b = synthesis.validation_pairs(scenes, size=64, views_per_scene=2, seed=11)
    assert len(a) == 2 * len(curves.FAMILIES)
    assert {p.family for p in a} == set(curves.FAMILIES)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.ldr, q.ldr)
    for p in a:
        assert 0.04 <= synthesis.clip_fraction_of(p.hdr) <= 0.16  # METRICS.md: 5-15% clipped


def test_equirect_view_reprojects_the_horizon():
    pano = np.zeros((64, 128, 3), np.float32)
    pano[31:33] = 1.0  # a bright horizon line
    view = synthesis.equirect_view(pano, 0.0, 0.0, np.deg2rad(90), 32)
    rows = view.mean(axis=(1, 2))
    assert rows.argmax() in (15, 16) and rows.max() > 0.5 and rows[:8].max() == 0


# --------------------------------------------------------------------------- losses and training
def _batch(data_root, n=2, size=64, seed=0):
    scenes = synthesis.load_scenes(data_root, "train")
    rng = np.random.default_rng(seed)
    items = [pair_to_tensors(synthesis.random_pair(scenes, size, rng)) for _ in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_lowers_its_loss_on_a_fixed_batch(data_root, stage):
    model = tiny_model(seed=0).train()  # perturbed away from identity, so every stage has work to do
    batch = _batch(data_root)
    opts = TrainOptions(stage=stage, runs=data_root / "runs", precision="fp32")
    params = [p for p in model.parameters()]
    optimizer = torch.optim.Adam(params, lr=2e-3)
    first = None
    for _ in range(40):
        loss, _ = stage_loss(stage, model, batch, opts)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final, _ = stage_loss(stage, model, batch, opts)
    assert final.item() < 0.9 * first


def test_short_training_run_logs_checkpoints_and_resumes(data_root, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY_CONFIG))
    runs = tmp_path / "runs"
    opts = TrainOptions(
        stage="lin", runs=runs, data=data_root, steps=12, batch=4, crop=64, workers=0,
        log_every=4, val_every=6, val_size=64, config=cfg, precision="fp32", lr=2e-3,
    )
    out = train(opts)
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["lin"] for r in records if "lin" in r]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert sum("val" in r for r in records) == 2
    from hdr_plugin.training.calibrate import THRESHOLDS

    for v in (r["val"] for r in records if "val" in r):  # lin is scored at its calibrated snap threshold
        assert v["snap_threshold"] in [float(t) for t in THRESHOLDS]
        assert 0.0 <= v["curve_rmse"] < 0.5 and np.isfinite(v["score"])
    # resuming continues the step count instead of starting over
    opts.steps = 16
    train(opts)
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["step"] == 16


def test_export_writes_fp16_weights_that_load_strictly(data_root, tmp_path):
    from hdr_plugin.training.export import export_weights
    from hdr_plugin.weights import load_model

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY_CONFIG))
    runs = tmp_path / "runs"
    train(TrainOptions(stage="hal", runs=runs, data=data_root, steps=2, batch=2, crop=64, workers=0,
                       log_every=1, val_every=2, val_size=64, config=cfg, precision="fp32"))
    info = export_weights(runs, tmp_path / "weights")
    assert info.trained and info.manifest["dtype"] == "float16"
    model, loaded = load_model(tmp_path / "weights")
    assert loaded.sha256 == info.sha256
    assert info.manifest["training"]["stages"]["hal"]["steps"] == 2
    best = torch.load(runs / "hal" / "best.pt", weights_only=True)["model"]
    w = "hal.out.weight"
    torch.testing.assert_close(model.state_dict()[w], best[w].half().float())
    # a run started from shipped weights says so in the next manifest
    train(TrainOptions(stage="deq", runs=runs, data=data_root, steps=2, batch=2, crop=64, workers=0,
                       log_every=1, val_every=2, val_size=64, config=cfg, precision="fp32", init=tmp_path / "weights"))
    stages = export_weights(runs, tmp_path / "weights2").manifest["training"]["stages"]
    assert stages["deq"]["started_from"] == str(tmp_path / "weights") and "started_from" not in stages["hal"]


def test_export_rebuilds_each_network_with_the_config_it_was_trained_with(data_root, tmp_path):
    """Stages trained with different configs (here a wider Hallucination-Net and a
    Linearization-Net with another input size) export into one consistent model."""
    import copy

    from hdr_plugin.training.export import config_from_runs, export_weights
    from hdr_plugin.weights import load_model

    runs = tmp_path / "runs"
    wide_hal = copy.deepcopy(TINY_CONFIG)
    wide_hal["hallucination"]["width"] = 8
    big_lin = copy.deepcopy(TINY_CONFIG)
    big_lin["linearization"]["input_size"] = 96
    for stage, cfg in (("hal", wide_hal), ("lin", big_lin)):
        path = tmp_path / f"{stage}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        train(TrainOptions(stage=stage, runs=runs, data=data_root, steps=1, batch=2, crop=64, workers=0,
                           log_every=1, val_every=1, val_size=64, config=path, precision="fp32"))
    merged = config_from_runs(runs)
    assert merged.raw["hallucination"]["width"] == 8
    assert merged.raw["linearization"]["input_size"] == 96
    export_weights(runs, tmp_path / "weights")
    model, _ = load_model(tmp_path / "weights")  # strict load: shapes match the merged config
    best_hal = torch.load(runs / "hal" / "best.pt", weights_only=True)["model"]
    torch.testing.assert_close(model.state_dict()["hal.out.weight"], best_hal["hal.out.weight"].half().float())
    assert model.config.linearization_input_size == 96


def _fake_best(runs: Path, stage: str, model, score: float) -> None:
    (runs / stage).mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "best_score": score, "step": 1}, runs / stage / "best.pt")


@pytest.mark.parametrize("joint_score, uses_joint", [(25.0, True), (23.0, False)])
def test_joint_weights_are_used_only_when_they_beat_the_stagewise_pipeline(tmp_path, joint_score, uses_joint):
    from hdr_plugin.model import ModelConfig
    from hdr_plugin.training.train import assemble_model

    stagewise, joint = tiny_model(seed=1), tiny_model(seed=2)
    for stage in ("deq", "lin", "hal", "ref"):
        _fake_best(tmp_path, stage, stagewise, 24.0 if stage == "ref" else 50.0)
    _fake_best(tmp_path, "joint", joint, joint_score)
    model = assemble_model(tmp_path, ModelConfig(dict(TINY_CONFIG)))
    expected = joint if uses_joint else stagewise
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected.state_dict()[name])


def test_resume_takes_other_networks_from_their_current_best(data_root, tmp_path):
    """A stage's last.pt restores only the network that stage trains, so an upstream
    network whose architecture or weights changed since is not pulled back."""
    from hdr_plugin.model import ModelConfig
    from hdr_plugin.training.train import assemble_model, load_stage_modules

    runs = tmp_path / "runs"
    old, new = tiny_model(seed=1), tiny_model(seed=3)
    _fake_best(runs, "deq", new, 50.0)
    model = assemble_model(runs, ModelConfig(dict(TINY_CONFIG)), upto="lin")
    load_stage_modules(model, old.state_dict(), "lin")
    torch.testing.assert_close(model.deq.state_dict(), new.deq.state_dict())
    torch.testing.assert_close(model.lin.state_dict(), old.lin.state_dict())


def test_log_mse_is_minus_mean_psnr():
    from hdr_plugin.training.losses import log_mse

    target = torch.zeros(2, 3, 4, 4)
    pred = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])
    psnr = torch.tensor([20.0, 40.0])  # per image, peak 1
    expected = -(psnr / 10 * np.log(10)).mean()
    torch.testing.assert_close(log_mse(pred, target, floor_db=200.0), expected, atol=1e-4, rtol=0)


def test_aligned_loss_is_the_evaluation_metric():
    """Refinement-Net's loss equals minus the protocol's PU21-PSNR (aligned, per image) in
    log units, so it ignores the global scale the metric ignores."""
    from hdr_plugin.evaluation import metrics
    from hdr_plugin.training.losses import aligned_pu21_log_mse

    rng = np.random.default_rng(0)
    gt = (rng.uniform(0.01, 1.0, (32, 32, 3)) * np.where(rng.uniform(size=(32, 32, 1)) > 0.9, 8.0, 1.0)).astype(np.float32)
    ldr = np.clip(gt, 0, 1)
    pred = (gt * rng.uniform(0.8, 1.25, gt.shape)).astype(np.float32)
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    loss = aligned_pu21_log_mse(t(pred), t(gt), t(ldr), floor_db=200.0)
    expected = -metrics.score(pred, gt, ldr)["pu21"] / 10 * np.log(10)
    assert abs(float(loss) - expected) < 1e-3
    scaled = aligned_pu21_log_mse(t(pred * 3.7), t(gt), t(ldr), floor_db=200.0)
    assert abs(float(scaled) - float(loss)) < 1e-4


def test_snap_threshold_calibration_picks_the_best_table_entry(data_root):
    from hdr_plugin.training.calibrate import THRESHOLDS, calibrate_snap_threshold

    model = tiny_model(seed=1)
    best, table = calibrate_snap_threshold(model, synthesis.load_scenes(data_root, "train"), size=64)
    assert set(table) == {float(t) for t in THRESHOLDS}
    assert table[best] == max(table.values())
    assert all(np.isfinite(v) for v in table.values())


def test_snap_threshold_table_picks_the_threshold_that_snaps_only_where_it_pays():
    from hdr_plugin.training.calibrate import threshold_table

    # (family, sRGB confidence, PU21 with the network's curve, PU21 snapped to inverse sRGB)
    rows = [("srgb", 0.9, 20.0, 30.0), ("gamma", 0.6, 25.0, 22.0)]
    table = threshold_table(rows)
    best = max(table, key=table.get)
    assert best == pytest.approx(0.6)  # snaps the sRGB image, keeps the gamma image's own curve
    assert table[best] == pytest.approx((0.30 * 30 + 0.15 * 25) / 0.45)
    assert table[0.55] == pytest.approx((0.30 * 30 + 0.15 * 22) / 0.45)
    assert table[1.01] == pytest.approx((0.30 * 20 + 0.15 * 25) / 0.45)  # never snap


def test_hal_is_validated_behind_the_trained_linearization_net(data_root, tmp_path):
    """Without a trained Linearization-Net, Hallucination-Net is scored on the clipped region
    of the true linear image; with one, on the whole image behind lin, exactly as
    `hdr-plugin eval` scores the shipped default path (--quality standard)."""
    from hdr_plugin.color import srgb_to_linear
    from hdr_plugin.evaluation import metrics
    from hdr_plugin.model import ModelConfig, reconstruct
    from hdr_plugin.training.train import assemble_model, validate

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY_CONFIG))
    runs = tmp_path / "runs"
    common = dict(runs=runs, data=data_root, steps=2, batch=2, crop=64, workers=0, log_every=1,
                  val_every=2, val_size=64, config=cfg, precision="fp32")
    train(TrainOptions(stage="hal", **common))
    alone = [json.loads(x) for x in (runs / "hal" / "log.jsonl").read_text().splitlines() if '"val"' in x][-1]["val"]
    assert "over_exposed" not in alone

    train(TrainOptions(stage="lin", **common))
    (runs / "hal" / "last.pt").unlink()  # a fresh hal run, now with a trained lin upstream
    (runs / "hal" / "log.jsonl").unlink()
    train(TrainOptions(stage="hal", **common))
    behind = [json.loads(x) for x in (runs / "hal" / "log.jsonl").read_text().splitlines() if '"val"' in x][-1]["val"]
    assert np.isfinite(behind["over_exposed"])

    # the logged score is the evaluation metric of the lin + hal pipeline (the default path)
    model = assemble_model(runs, ModelConfig(dict(TINY_CONFIG))).eval()
    pairs = synthesis.validation_pairs(synthesis.load_scenes(data_root, "val"), size=64, views_per_scene=1, seed=7)
    opts = TrainOptions(stage="hal", **common)
    p = pairs[0]
    with torch.no_grad():
        hdr = reconstruct(model, torch.from_numpy(p.ldr.transpose(2, 0, 1).copy())[None], use_deq=False, use_ref=False)["hdr"]
    single = validate("hal", model, pairs[:1], opts, hal_behind_lin=True)
    expected = metrics.score(hdr[0].numpy().transpose(1, 2, 0), p.hdr, p.ldr)["pu21"]
    assert single["score"] == pytest.approx(expected, abs=1e-4)
    assert single["baseline"] == pytest.approx(metrics.score(srgb_to_linear(p.ldr), p.hdr, p.ldr)["pu21"], abs=1e-6)


def test_missing_light_counts_stops_of_light_in_the_clipped_region():
    """One stop too little light in the over-exposed region is a loss of 1; the well-exposed
    pixels do not count; an image without clipped pixels does not count."""
    from hdr_plugin.training.losses import missing_light

    ldr = torch.full((2, 3, 8, 8), 0.5)
    ldr[0, :, :4] = 1.0  # top half of image 0 clipped; image 1 has no clipped pixel
    truth = torch.where(ldr >= 1.0, torch.full_like(ldr, 6.0), ldr)
    half = torch.where(ldr >= 1.0, truth / 2, truth * 5.0)  # wrong well-exposed pixels: ignored
    assert abs(float(missing_light(half, truth, ldr)) - 1.0) < 1e-4
    assert float(missing_light(truth, truth, ldr)) < 1e-4
    quarter = torch.where(ldr >= 1.0, truth / 4, truth)
    assert abs(float(missing_light(quarter, truth, ldr)) - 2.0) < 1e-4


def test_masked_log_l2_is_the_paper_loss_over_the_clipped_region():
    from hdr_plugin.training.losses import masked_log_l2

    ldr = torch.full((1, 3, 4, 4), 0.5)
    ldr[..., :2, :] = 1.0
    truth = torch.full_like(ldr, 3.0)
    pred = truth.clone()
    pred[..., 2:, :] = 100.0  # errors outside the clipped region do not count
    assert float(masked_log_l2(pred, truth, ldr)) < 1e-8
    pred[..., :2, :] = 3.0 * np.e  # one unit of log error (eps is small against 3)
    assert abs(float(masked_log_l2(pred, truth, ldr, eps=1e-9)) - 1.0) < 1e-4


def test_hal_trains_on_the_camera_output_it_will_see(data_root):
    """--hal-input camera feeds Hallucination-Net the 8-bit (maybe JPEG) camera output
    linearised with its true curve, quantization steps included; linear: the clean image."""
    batch = _batch(data_root, n=2)
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x

    class Model:
        hal = Spy()

    for source in ("camera", "linear"):
        opts = TrainOptions(stage="hal", runs=data_root / "runs", precision="fp32", hal_input=source, light_weight=1.0, log_weight=1.0)
        loss, parts = stage_loss("hal", Model(), batch, opts)
        assert {"pu_l2", "light_stops", "log_l2"} <= set(parts) and torch.isfinite(loss)
        expected = crf.apply_curve(batch["ldr"], batch["inverse_curve"]) if source == "camera" else batch["linear"]
        torch.testing.assert_close(seen["x"], expected.clamp(0, 1) if source == "camera" else expected)
    camera = crf.apply_curve(batch["ldr"], batch["inverse_curve"])
    assert not torch.allclose(camera, batch["linear"], atol=1e-4)  # the two inputs really differ


def test_hal_and_deq_checkpoints_are_ranked_on_clean_and_camera_jpeg_pairs(data_root, tmp_path):
    """Hallucination- and Dequantization-Net are selected on the mean of the clean
    validation pairs' score and their camera-JPEG variant's (regions from the clean inputs,
    as `hdr-plugin eval --jpeg-variant` scores them); other stages on the clean pairs only."""
    from hdr_plugin.evaluation import metrics
    from hdr_plugin.model import ModelConfig, reconstruct
    from hdr_plugin.training.train import assemble_model, camera_jpeg_validation, validate_stage

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY_CONFIG))
    runs = tmp_path / "runs"
    common = dict(runs=runs, data=data_root, steps=2, batch=2, crop=64, workers=0, log_every=1,
                  val_every=2, val_size=64, config=cfg, precision="fp32")
    train(TrainOptions(stage="lin", **common))
    train(TrainOptions(stage="hal", **common))
    lin_val = [json.loads(x) for x in (runs / "lin" / "log.jsonl").read_text().splitlines() if '"val"' in x][-1]["val"]
    assert "jpeg_score" not in lin_val
    hal_val = [json.loads(x) for x in (runs / "hal" / "log.jsonl").read_text().splitlines() if '"val"' in x][-1]["val"]
    assert hal_val["score"] == pytest.approx(0.5 * (hal_val["clean_score"] + hal_val["jpeg_score"]))
    assert np.isfinite(hal_val["jpeg_over_exposed"])

    model = assemble_model(runs, ModelConfig(dict(TINY_CONFIG))).eval()
    pairs = synthesis.validation_pairs(synthesis.load_scenes(data_root, "val"), size=64, views_per_scene=1, seed=7)[:1]
    jpegs = camera_jpeg_validation(pairs)
    assert jpegs[0].jpeg_quality >= 60 and not np.array_equal(jpegs[0].ldr, pairs[0].ldr)
    assert np.array_equal(jpegs[0].hdr, pairs[0].hdr)
    with torch.no_grad():
        hdr = reconstruct(model, torch.from_numpy(jpegs[0].ldr.transpose(2, 0, 1).copy())[None], use_deq=False, use_ref=False)["hdr"]
    result = validate_stage("hal", model, pairs, jpegs, TrainOptions(stage="hal", **common), hal_behind_lin=True)
    expected = metrics.score(hdr[0].numpy().transpose(1, 2, 0), pairs[0].hdr, pairs[0].ldr)["pu21"]
    assert result["jpeg_score"] == pytest.approx(expected, abs=1e-4)


def test_export_from_init_takes_untrained_networks_and_their_record_from_it(data_root, tmp_path):
    """`train export --init W`: a fine-tune of one network exports the whole pipeline, the
    other networks bit-exact from W and their training record kept in the manifest."""
    from hdr_plugin.training.export import export_weights
    from hdr_plugin.weights import load_model

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY_CONFIG))
    first = tmp_path / "runs"
    for stage in ("deq", "hal"):
        train(TrainOptions(stage=stage, runs=first, data=data_root, steps=1, batch=2, crop=64, workers=0,
                           log_every=1, val_every=1, val_size=64, config=cfg, precision="fp32"))
    export_weights(first, tmp_path / "w1")
    from hdr_plugin.weights import update_manifest

    update_manifest(tmp_path / "w1", quality={"default": "standard"})  # a record export does not write
    base, _ = load_model(tmp_path / "w1")
    tuned = tmp_path / "runs-tune"
    train(TrainOptions(stage="hal", runs=tuned, data=data_root, steps=2, batch=2, crop=64, workers=0, lr=1e-2,
                       log_every=1, val_every=1, val_size=64, config=cfg, precision="fp32", init=tmp_path / "w1"))
    info = export_weights(tuned, tmp_path / "w2", init=tmp_path / "w1")
    model, _ = load_model(tmp_path / "w2")
    state, base_state = model.state_dict(), base.state_dict()
    for k in state:
        if k.startswith("deq."):
            torch.testing.assert_close(state[k], base_state[k], rtol=0, atol=0)
    if (tuned / "hal" / "best.pt").is_file():  # the fine-tune beat its start: its checkpoint is exported
        expected = torch.load(tuned / "hal" / "best.pt", weights_only=True)["model"]["hal.out.weight"].half().float()
    else:  # it did not: the start's network is
        expected = base_state["hal.out.weight"]
    torch.testing.assert_close(state["hal.out.weight"], expected, rtol=0, atol=0)
    stages = info.manifest["training"]["stages"]
    assert stages["deq"]["from_init"] is True and stages["deq"]["steps"] == 1
    assert "from_init" not in stages["hal"] and stages["hal"]["started_from"] == str(tmp_path / "w1")
    assert info.manifest["quality"] == {"default": "standard"}
