"""Padding and tiled execution (hdr_plugin.tiling) and tiled inference in the Engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_model

from hdr_plugin.evaluation.metrics import pu21_psnr
from hdr_plugin.io import read_ldr
from hdr_plugin.pipeline import Engine
from hdr_plugin.plugins import make_plugin_manager
from hdr_plugin.tiling import pad_to_multiple, run_tiled, tile_grid

CPU = torch.device("cpu")


def _np_reference_pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """numpy's reflect padding (repeated for large pads) per axis; a 1-pixel axis is replicated."""
    for axis, pad in ((2, ph), (3, pw)):
        widths = [(0, 0)] * 4
        widths[axis] = (0, pad)
        x = np.pad(x, widths, mode="reflect" if x.shape[axis] > 1 else "edge")
    return x


@pytest.fixture(scope="module")
def sample_rgb():
    from conftest import ROOT

    return read_ldr(ROOT / "hdr_plugin" / "data" / "sample.png").rgb


def _engines(tile: int, overlap: int = 96):
    model = tiny_model()
    pm = make_plugin_manager(load_entrypoints=False)
    untiled = Engine(model=model, device="cpu", precision="fp32", tile=0, plugin_manager=pm)
    tiled = Engine(model=model, device="cpu", precision="fp32", tile=tile, tile_overlap=overlap, plugin_manager=pm)
    return untiled, tiled


# --------------------------------------------------------------------------- padding
@pytest.mark.parametrize("h,w", [(5, 7), (1, 1), (1, 9), (3, 1), (2, 2), (63, 65), (64, 64), (100, 30), (130, 7)])
def test_pad_to_multiple_reflects_and_crops_back_exactly(h, w):
    x = torch.arange(2 * 3 * h * w, dtype=torch.float32).reshape(2, 3, h, w)
    padded, size = pad_to_multiple(x, 64)
    assert size == (h, w)
    assert padded.shape[-2] == math.ceil(h / 64) * 64 and padded.shape[-1] == math.ceil(w / 64) * 64
    assert torch.equal(padded[..., :h, :w], x)  # cropping back gives the input exactly
    ref = _np_reference_pad(x.numpy(), padded.shape[-2] - h, padded.shape[-1] - w)
    np.testing.assert_array_equal(padded.numpy(), ref)


def test_pad_reflects_without_repeating_the_edge():
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]]).expand(1, 1, 2, 3)
    padded, _ = pad_to_multiple(x, 8)
    assert padded[0, 0, 0].tolist() == [1, 2, 3, 2, 1, 2, 3, 2]


# --------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("h,w,tile,overlap", [(1500, 2000, 512, 96), (384, 512, 128, 32), (100, 100, 512, 96), (65, 129, 64, 8)])
def test_tile_grid_cores_partition_the_image(h, w, tile, overlap):
    tiles = tile_grid(h, w, tile, overlap)
    assert len(tiles) == math.ceil(h / tile) * math.ceil(w / tile)
    owner = np.zeros((h, w), np.int32)
    for t in tiles:
        owner[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert 0 <= t.ey0 <= t.y0 < t.y1 <= t.ey1 <= h and 0 <= t.ex0 <= t.x0 < t.x1 <= t.ex1 <= w
        assert t.y0 - t.ey0 == min(overlap, t.y0) and t.ey1 - t.y1 == min(overlap, h - t.y1)
    assert np.all(owner == 1)


# --------------------------------------------------------------------------- run_tiled
def _image(h=300, w=420, c=3, seed=0):
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_run_tiled_reports_every_tile_in_order():
    image = _image()
    calls = []
    out = run_tiled(lambda x: x * 2 + 1, image, 3, device=CPU, tile=128, overlap=16, progress=lambda d, t: calls.append((d, t)))
    n = len(tile_grid(300, 420, 128, 16))
    assert n == 12
    assert calls == [(i, n) for i in range(1, n + 1)]
    torch.testing.assert_close(out, image * 2 + 1, atol=1e-5, rtol=1e-6)


def test_run_tiled_single_pass_when_untiled():
    image = _image(70, 90)
    calls, shapes = [], []

    def fn(x):
        shapes.append(tuple(x.shape))
        return x[:, :2] * 3

    out = run_tiled(fn, image, 2, device=CPU, tile=0, overlap=96, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1)] and shapes == [(1, 3, 128, 128)]  # padded to multiples of 64
    assert torch.equal(out, image[:, :2] * 3)


def test_run_tiled_tiles_are_padded_and_cropped():
    image = _image(200, 300)
    seen = []

    def fn(x):
        seen.append(tuple(x.shape[-2:]))
        return x

    out = run_tiled(fn, image, 3, device=CPU, tile=128, overlap=20, multiple=64)
    assert all(h % 64 == 0 and w % 64 == 0 for h, w in seen) and len(seen) == len(tile_grid(200, 300, 128, 20))
    torch.testing.assert_close(out, image, atol=1e-6, rtol=1e-6)  # blending weights sum to one


def test_run_tiled_progress_exception_stops_the_pass():
    image = _image()
    calls = []

    class Stop(Exception):
        pass

    def progress(done, total):
        calls.append(done)
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        run_tiled(lambda x: x, image, 3, device=CPU, tile=128, overlap=16, progress=progress)
    assert calls == [1, 2, 3]


def test_run_tiled_blends_a_spatial_filter_seamlessly():
    """A 7x7 box blur tiled with 32 px of overlap matches the whole-image blur exactly
    wherever no tile's cut edge is within the blur radius; next to a cut edge the
    feathering weight of the wrong pixels is small."""
    image = _image(256, 320, seed=4)
    blur = torch.nn.Conv2d(3, 3, 7, padding=3, groups=3, bias=False, padding_mode="reflect")
    torch.nn.init.constant_(blur.weight, 1 / 49)
    tile, overlap, radius = 96, 32, 3
    with torch.no_grad():
        whole = run_tiled(blur, image, 3, device=CPU, tile=0, overlap=0)
        tiled = run_tiled(blur, image, 3, device=CPU, tile=tile, overlap=overlap)
    near_cut = torch.zeros(256, 320, dtype=torch.bool)
    for t in tile_grid(256, 320, tile, overlap):
        if t.ey0 > 0:
            near_cut[t.ey0 : t.ey0 + radius, t.ex0 : t.ex1] = True
        if t.ey1 < 256:
            near_cut[t.ey1 - radius : t.ey1, t.ex0 : t.ex1] = True
        if t.ex0 > 0:
            near_cut[t.ey0 : t.ey1, t.ex0 : t.ex0 + radius] = True
        if t.ex1 < 320:
            near_cut[t.ey0 : t.ey1, t.ex1 - radius : t.ex1] = True
    err = (tiled - whole).abs()[0].amax(0)
    assert near_cut.float().mean() < 0.15
    assert err[~near_cut].max() < 1e-5
    assert err[near_cut].max() < radius / (overlap + 1) * 0.5


# --------------------------------------------------------------------------- the Engine
def _psnr_tiled_vs_untiled(image: np.ndarray, tile: int):
    untiled, tiled = _engines(tile)
    a = untiled.reconstruct(image)
    b = tiled.reconstruct(image)
    return a, b, pu21_psnr(b.image, a.image)


def test_engine_tiled_matches_untiled_small(sample_rgb):
    image = sample_rgb  # 512x384: four 256-px tiles meeting in the middle
    a, b, psnr = _psnr_tiled_vs_untiled(image, 256)
    assert len(tile_grid(384, 512, 256, 96)) == 4
    assert psnr >= 50.0, psnr
    assert np.percentile(np.abs(a.image - b.image) / (a.image + 1e-2), 99) < 0.01
    # Linearization-Net sees the whole image once: the tiled run finds (nearly) the same curve
    np.testing.assert_allclose(a.curve, b.curve, atol=1e-3)


@pytest.mark.slow
def test_engine_tiled_matches_untiled_2000x1500_fp32(sample_rgb):
    """The acceptance check: 512-px tiles on a 2000x1500 image agree to >= 50 dB PU21-PSNR.

    The image mirrors the bundled sample (clipped highlights included).  About 50 s on
    two busy cores, hence ``slow``.
    """
    image = np.pad(sample_rgb, ((0, 1500 - 384), (0, 2000 - 512), (0, 0)), mode="symmetric")
    assert image.shape == (1500, 2000, 3) and (image.max(axis=2) >= 1.0).mean() > 0.01
    a, b, psnr = _psnr_tiled_vs_untiled(image, 512)
    assert a.image.max() > 1.0  # highlights above the clipping level are in the comparison
    assert psnr >= 50.0, psnr


@pytest.mark.parametrize("h,w", [(1, 1), (5, 7), (1, 9), (3, 1), (2, 2)])
def test_engine_handles_tiny_images(engine, h, w):
    rgb = np.random.default_rng(h * 10 + w).uniform(0, 1, (h, w, 3)).astype(np.float32)
    rgb[0, 0] = 1.0
    out = engine(rgb)
    assert out.shape == (h, w, 3) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0


def test_engine_tiled_on_tiny_image_uses_one_tile(engine):
    rgb = np.full((5, 7, 3), 0.5, np.float32)
    _, tiled = _engines(128)
    np.testing.assert_array_equal(tiled(rgb), engine(rgb))
