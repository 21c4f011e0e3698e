"""``hdr_plugin.apply``: the OpenCV-style surface (issue point 6)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import hdr_plugin
from hdr_plugin import pipeline
from hdr_plugin.plugins import hookimpl, register_plugin, unregister_plugin


@pytest.fixture(scope="module")
def bgr8():
    from conftest import ROOT

    img = cv2.imread(str(ROOT / "hdr_plugin" / "data" / "sample.png"), cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(img[64:128, 192:320])  # 128x64 BGR uint8 with clipped highlights


def test_bgr_in_bgr_out_matches_rgb_order(bgr8):
    out = hdr_plugin.apply(bgr8)
    rgb_out = hdr_plugin.apply(np.ascontiguousarray(bgr8[:, :, ::-1]), channel_order="rgb")
    assert out.shape == bgr8.shape and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb_out[:, :, ::-1])
    # and the engine really saw RGB: reconstruct() on the RGB array gives the same pixels
    eng = hdr_plugin.load_engine()
    np.testing.assert_array_equal(rgb_out, eng.reconstruct(bgr8[:, :, ::-1]).image)
    assert not np.array_equal(out, rgb_out)  # the channel order matters for this image


def test_output_is_scene_linear_with_highlights_above_one(bgr8):
    out = hdr_plugin.apply(bgr8)
    assert out.min() >= 0
    clipped = (bgr8 == 255).all(axis=2)
    assert clipped.any() and out[clipped].max() > 1.0  # never clamped at the top


def test_bgra_alpha_passes_through_unchanged(bgr8, rng):
    alpha = rng.integers(0, 256, bgr8.shape[:2], dtype=np.uint8)
    bgra = np.dstack([bgr8, alpha])
    out = hdr_plugin.apply(bgra)
    assert out.shape == (*bgr8.shape[:2], 4) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out[:, :, 3], alpha.astype(np.float32) / 255)
    np.testing.assert_array_equal(out[:, :, :3], hdr_plugin.apply(bgr8))  # alpha does not leak into colour
    alpha16 = (alpha.astype(np.uint16) * 257)
    out16 = hdr_plugin.apply(np.dstack([bgr8.astype(np.uint16) * 257, alpha16]))
    np.testing.assert_array_equal(out16[:, :, 3], alpha16.astype(np.float32) / 65535)


def test_uint8_uint16_float32_inputs_agree(bgr8):
    out8 = hdr_plugin.apply(bgr8)
    out16 = hdr_plugin.apply(bgr8.astype(np.uint16) * 257)  # the same code values at 16 bits
    outf = hdr_plugin.apply(bgr8.astype(np.float32) / 255)
    np.testing.assert_allclose(out16, out8, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outf, out8, rtol=1e-5, atol=1e-6)
    outd = hdr_plugin.apply(bgr8.astype(np.float64) / 255)  # float64 inside [0, 1] is accepted
    np.testing.assert_allclose(outd, out8, rtol=1e-5, atol=1e-6)


def test_gray_becomes_three_channels(bgr8):
    gray = cv2.cvtColor(bgr8, cv2.COLOR_BGR2GRAY)
    out = hdr_plugin.apply(gray)
    assert out.shape == (*gray.shape, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, hdr_plugin.apply(np.dstack([gray] * 3)))
    np.testing.assert_array_equal(hdr_plugin.apply(gray[:, :, None]), out)  # HxWx1 as well


def test_non_contiguous_input_and_exposure(bgr8):
    view = bgr8[::2, ::2]  # a strided view
    assert not view.flags.c_contiguous
    out = hdr_plugin.apply(view)
    assert out.shape == view.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, hdr_plugin.apply(np.ascontiguousarray(view)))
    np.testing.assert_allclose(hdr_plugin.apply(view, exposure=1.0), 2 * out, rtol=1e-6)


def test_dst_is_written_into_and_returned(bgr8):
    expected = hdr_plugin.apply(bgr8)
    dst = np.full(bgr8.shape, -1.0, np.float32)
    out = hdr_plugin.apply(bgr8, dst)
    assert out is dst
    np.testing.assert_array_equal(dst, expected)
    dst4 = np.empty((*bgr8.shape[:2], 4), np.float32)
    alpha = np.full(bgr8.shape[:2], 128, np.uint8)
    assert hdr_plugin.apply(np.dstack([bgr8, alpha]), dst=dst4) is dst4
    np.testing.assert_array_equal(dst4[:, :, :3], expected)
    assert np.all(dst4[:, :, 3] == np.float32(128 / 255))


def test_result_feeds_cv2_tonemap_reinhard(bgr8):
    out = hdr_plugin.apply(bgr8)
    # Default gamma 1.0: with gamma != 1 OpenCV's own min-max normalisation can round the
    # darkest pixel to about -1e-17 before its power, giving NaN there whatever the input.
    ldr = cv2.createTonemapReinhard().process(out)
    assert ldr.shape == out.shape and ldr.dtype == np.float32
    assert np.isfinite(ldr).all() and ldr.max() > 0.5
    # tone mapping keeps the ordering of brightness: the clipped sky stays brightest
    clipped = (bgr8 == 255).all(axis=2)
    assert ldr[clipped].mean() > ldr[~clipped].mean()
    assert cv2.createTonemapDrago().process(out).shape == out.shape


def test_engine_is_cached_between_calls(bgr8):
    pipeline._ENGINES.clear()
    seen = []

    class Spy:
        @hookimpl
        def hdr_finalize_output(self, result, context):
            seen.append(context.engine)

    spy = Spy()
    register_plugin(spy)  # the process-wide manager used by cached engines
    try:
        hdr_plugin.apply(bgr8)
        hdr_plugin.apply(bgr8[:32, :32])
        hdr_plugin.apply(bgr8, channel_order="rgb")
    finally:
        unregister_plugin(spy)
    assert len(seen) == 3 and seen[0] is seen[1] is seen[2]
    assert len(pipeline._ENGINES) == 1
    assert hdr_plugin.load_engine() is seen[0]  # the public loader hands out the same engine
    assert hdr_plugin.load_engine(precision="fp32") is hdr_plugin.load_engine(precision="fp32")


def test_explicit_engine_is_used(engine, bgr8):
    out = hdr_plugin.apply(bgr8, engine=engine)
    np.testing.assert_array_equal(out, engine.reconstruct(bgr8[:, :, ::-1]).image[:, :, ::-1])
    assert pipeline._ENGINES == {}  # nothing else was loaded


GOOD = np.zeros((8, 8, 3), np.uint8)


def _nan():
    a = np.full((8, 8, 3), 0.5, np.float32)
    a[2, 3, 1] = np.nan
    return a


def _inf():
    a = np.full((8, 8, 3), 0.5, np.float32)
    a[0, 0, 0] = np.inf
    return a


BAD_INPUTS = [
    pytest.param(np.zeros((0, 0, 3), np.uint8), {}, ValueError, "img is empty", id="empty"),
    pytest.param(np.zeros((0, 5), np.uint8), {}, ValueError, "img is empty", id="empty-2d"),
    pytest.param(np.zeros(8, np.uint8), {}, ValueError, "ndim=1", id="ndim-1"),
    pytest.param(np.zeros((2, 8, 8, 3), np.uint8), {}, ValueError, "ndim=4", id="ndim-4"),
    pytest.param(np.zeros((8, 8, 2), np.uint8), {}, ValueError, "has 2 channels", id="2-channels"),
    pytest.param(np.zeros((8, 8, 5), np.uint8), {}, ValueError, "has 5 channels", id="5-channels"),
    pytest.param(_nan(), {}, ValueError, "NaN or infinite", id="nan"),
    pytest.param(_inf(), {}, ValueError, "NaN or infinite", id="inf"),
    pytest.param(np.full((8, 8, 3), 1.5), {}, ValueError, r"display-referred in \[0, 1\]; got values in \[1.5, 1.5\]", id="float64-above-1"),
    pytest.param(np.full((8, 8, 3), -0.25), {}, ValueError, r"got values in \[-0.25", id="float64-below-0"),
    pytest.param(np.full((8, 8, 3), 255.0, np.float32), {}, ValueError, r"display-referred in \[0, 1\]", id="float32-0-255"),
    pytest.param(np.empty((8, 8, 3), object), {}, TypeError, "dtype object", id="object"),
    pytest.param(np.zeros((8, 8, 3), np.int32), {}, TypeError, "unsupported dtype int32", id="int32"),
    pytest.param([[0, 1], [1, 0]], {}, TypeError, "must be a numpy array, got list", id="list"),
    pytest.param(GOOD, {"dst": np.empty((8, 8, 3), np.float64)}, ValueError, r"dst must be a float32 array of shape \(8, 8, 3\), got float64", id="dst-dtype"),
    pytest.param(GOOD, {"dst": np.empty((8, 8, 4), np.float32)}, ValueError, r"dst must be .* got float32 \(8, 8, 4\)", id="dst-shape"),
    pytest.param(GOOD, {"dst": [0.0]}, ValueError, "dst must be .* got list", id="dst-type"),
    pytest.param(GOOD, {"channel_order": "rgba"}, ValueError, "channel_order must be 'bgr' or 'rgb'", id="channel-order"),
]


@pytest.mark.parametrize("img,kwargs,exc,message", BAD_INPUTS)
def test_bad_input_is_rejected_with_a_message(img, kwargs, exc, message):
    pipeline._ENGINES.clear()
    with pytest.raises(exc, match=message):
        hdr_plugin.apply(img, **kwargs)
    assert pipeline._ENGINES == {}  # validation happens before any network is loaded
