"""The Engine (hdr_plugin.pipeline): stage order, one curve per image, padding, metadata,
input handling, exposure and the bundled sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA, tiny_model

import hdr_plugin
from hdr_plugin import crf
from hdr_plugin.color import linear_to_srgb
from hdr_plugin.io import read_hdr, read_ldr
from hdr_plugin.model import reconstruct
from hdr_plugin.pipeline import Engine
from hdr_plugin.plugins import make_plugin_manager


@pytest.fixture(scope="module")
def sample_rgb():
    from conftest import ROOT

    return read_ldr(ROOT / "hdr_plugin" / "data" / "sample.png").rgb


def test_engine_matches_the_batch_reconstruction(engine, sample_rgb):
    """Untiled fp32 Engine == model.reconstruct (deq -> lin -> curve lookup -> hal -> ref)."""
    rgb = sample_rgb[:128, :192]  # multiples of 64: no padding involved
    result = engine.reconstruct(rgb)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        ref = reconstruct(engine.model, x)
    np.testing.assert_allclose(result.curve, ref["curve"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.image, ref["hdr"][0].numpy().transpose(1, 2, 0), rtol=1e-5, atol=1e-5)


def test_output_keeps_size_and_is_not_clamped(engine, sample_rgb):
    rgb = sample_rgb[37:137, 11:211]  # 200x100: padded to 256x128 inside, cropped back
    out = engine(rgb)
    assert out.shape == rgb.shape and out.dtype == np.float32 and out.flags.c_contiguous
    assert out.min() >= 0 and np.isfinite(out).all()
    clipped = rgb.max(axis=2) >= 1.0
    assert clipped.any() and out[clipped].max() > 1.2  # the top is never clamped


def test_padding_does_not_leak_into_the_image(engine, sample_rgb):
    """The reflect padding is cropped away: the visible part of a padded run matches a run on
    a larger image in the interior (receptive fields aside, far from the padded edge)."""
    rgb = sample_rgb[:100, :150]
    out = engine(rgb)
    out_big = engine(sample_rgb[:128, :192])  # needs no padding
    assert out.shape == (100, 150, 3)
    # same content away from the bottom/right edge where padding differs
    err = np.abs(out[:40, :60] - out_big[:40, :60]) / (out_big[:40, :60] + 0.05)
    assert np.median(err) < 0.02


def test_linearization_runs_once_on_a_downscaled_copy(sample_rgb):
    model = tiny_model()
    eng = Engine(model=model, device="cpu", precision="fp32", tile=128, tile_overlap=32, quality="max", runtime="torch", plugin_manager=make_plugin_manager(False))
    inputs = []
    handle = model.lin.register_forward_hook(lambda mod, args, out: inputs.append(tuple(args[0].shape)))
    try:
        eng.reconstruct(sample_rgb[:256, :320])  # six 128-px tiles
    finally:
        handle.remove()
    size = model.config.linearization_input_size
    assert inputs == [(1, 3, round(256 * size / 320), size)]  # one call, longest side = input_size


def test_metadata_and_timings(engine, tiny_weights, sample_rgb):
    from hdr_plugin.weights import read_manifest

    r = engine.reconstruct(sample_rgb[:64, :64], exposure=0.5)
    assert r.metadata["hdrPluginVersion"] == hdr_plugin.__version__
    assert r.metadata["hdrPluginWeights"] == read_manifest(tiny_weights).sha256[:16]
    assert r.metadata["hdrPluginPrecision"] == "fp32"
    assert r.metadata["hdrPluginExposureEV"] == "0.5"
    assert set(r.timings) >= {"prepare", "dequantize", "linearize", "reconstruct", "total"}
    assert all(v >= 0 for v in r.timings.values())
    d = engine.describe()
    assert d["device"] == "cpu" and d["precision"] == "fp32" and d["tile"] == 0
    assert d["weights_sha256"] == read_manifest(tiny_weights).sha256 and d["weights_trained"] is False
    assert d["model_config"] == "tiny-test" and set(d["parameters"]) == {"dequantization", "linearization", "hallucination", "refinement"}


def test_exposure_scales_exactly(engine, sample_rgb):
    rgb = sample_rgb[:64, :128]
    base = engine(rgb)
    np.testing.assert_array_equal(engine(rgb, exposure=1.0), base * 2)
    np.testing.assert_allclose(engine(rgb, exposure=-2.0), base / 4, rtol=1e-7)


def test_input_types_and_the_input_is_untouched(engine, sample_rgb):
    rgb = np.ascontiguousarray(sample_rgb[:64, :96])
    u8 = np.round(rgb * 255).astype(np.uint8)
    keep = u8.copy()
    a = engine(u8)
    np.testing.assert_array_equal(u8, keep)  # never modified
    np.testing.assert_allclose(engine(u8.astype(np.uint16) * 257), a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(engine(u8 / np.float32(255)), a, rtol=1e-5, atol=1e-6)
    gray = u8[:, :, 1]
    np.testing.assert_array_equal(engine(gray), engine(np.dstack([gray] * 3)))
    with pytest.raises(ValueError, match=r"display-referred in \[0, 1\]"):
        engine(rgb * 4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        engine(np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(TypeError, match="unsupported pixel type int16"):
        engine(u8.astype(np.int16))
    with pytest.raises(ValueError, match="non-empty"):
        engine(np.zeros((0, 4, 3), np.uint8))


def test_bad_engine_settings(tiny_weights):
    with pytest.raises(ValueError, match="tile must be 0 .* at least 64"):
        Engine(tiny_weights, device="cpu", tile=32)
    assert Engine(tiny_weights, device="cpu", tile="auto").tile is None  # sized from the memory budget
    assert Engine(tiny_weights, device="cpu", tile=None).tile is None
    with pytest.raises(ValueError, match="tile_overlap must be >= 0"):
        Engine(tiny_weights, device="cpu", tile_overlap=-50)
    with pytest.raises(ValueError, match="max_memory must be a positive"):
        Engine(tiny_weights, device="cpu", max_memory=0)
    with pytest.raises(ValueError, match="unknown quality 'best'"):
        Engine(tiny_weights, device="cpu", quality="best")
    with pytest.raises(ValueError, match="unknown runtime 'tvm'"):
        Engine(tiny_weights, device="cpu", runtime="tvm")


def test_deterministic(engine, sample_rgb):
    rgb = sample_rgb[:64, :64]
    np.testing.assert_array_equal(engine(rgb), engine(rgb))


def test_bundled_sample_is_the_camera_simulation_of_its_ground_truth(sample_rgb):
    gt = read_hdr(DATA / "sample_gt.exr")
    assert gt.shape == sample_rgb.shape == (384, 512, 3)
    assert gt.min() >= 0 and gt.max() > 100  # real highlights, clip level 1
    simulated = crf.quantize(linear_to_srgb(np.clip(gt, 0, 1)))
    assert np.abs(simulated - sample_rgb).max() <= 1.01 / 255  # within one 8-bit code
    clipped = sample_rgb.max(axis=2) >= 1.0
    assert 0.03 < clipped.mean() < 0.12
    assert gt.max(axis=2)[clipped].mean() > 2.0  # the clipped pixels hide real radiance


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (run tools/gpu_check.sh where there is one)")
def test_cuda_engine_matches_cpu_and_tiles(tiny_weights, sample_path):
    from hdr_plugin.evaluation.metrics import pu21_psnr

    rgb = read_ldr(sample_path).rgb
    cpu = Engine(tiny_weights, device="cpu", precision="fp32", tile=0).reconstruct(rgb).image
    gpu = Engine(tiny_weights, device="cuda", precision="fp32", tile=0).reconstruct(rgb).image
    tiled = Engine(tiny_weights, device="cuda", precision="fp32", tile=256).reconstruct(rgb).image
    assert pu21_psnr(gpu, cpu) >= 60.0
    assert pu21_psnr(tiled, gpu) >= 50.0
