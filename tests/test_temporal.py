"""Temporal stabilisation of hallucinated highlights (hdr_plugin/temporal.py): motion and
exposure estimates, well-exposed pixels untouched, flicker reduced, chunk bit-identity with
stabilisation on, and the --temporal-radius option."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from hdr_plugin import cli, shots, temporal
from test_shots import _header, _pixels

LINEAR = np.linspace(0.0, 1.0, 1024, dtype=np.float32)  # the identity inverse curve
THR = 0.88


def _scene(h: int = 72, w: int = 200, seed: int = 0) -> np.ndarray:
    """A wide scene-linear texture (mid-grey detail) with two bright lamps, (h, w, 3)."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0)
    tex = 0.1 + 0.6 * (tex - tex.min()) / (tex.max() - tex.min())
    img = np.stack([tex, tex * 0.9, tex * 0.8], axis=-1)
    y, x = np.mgrid[0:h, 0:w]
    for cx, cy, r in ((70, 30, 9), (130, 45, 7)):
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = 4.0
    return img.astype(np.float32)


def _shot(frames: int, pan: int = 2, width: int = 96, gains=None, noise: float = 0.0, drift: float = 0.0, seed: int = 1):
    """First passes of a panned shot: ``(passes, truth)``; the "hallucinated" radiance of
    clipped pixels is the truth times a per-frame random factor (flicker) of ``noise`` stops
    and a slow ``drift`` (stops over the shot, as when the guess ignores an exposure ramp)."""
    wide = _scene()
    rng = np.random.default_rng(seed)
    passes, truth = [], []
    for t in range(frames):
        gain = 1.0 if gains is None else gains[t]
        hdr = wide[:, t * pan : t * pan + width] * np.float32(gain)
        ldr = np.clip(hdr, 0.0, 1.0)
        ldr = np.round(ldr * 255) / 255
        out = hdr.copy()
        clipped = hdr.max(axis=2) > 1.0
        out[clipped] *= np.float32(2.0 ** (noise * rng.standard_normal() - drift * t / max(1, frames - 1)))
        passes.append(temporal.analyse(t, ldr, SimpleNamespace(image=out, curve=LINEAR, metadata={}), THR))
        truth.append(hdr)
    return passes, truth


def test_motion_estimate_recovers_a_known_shift():
    passes, _ = _shot(3, pan=3)
    a = temporal.align(passes[0], passes[2])  # frame 2 sees the scene 6 px further right
    assert a.used, a.why
    assert (a.dx, a.dy) == (-6.0, 0.0)  # whole pixels: the exact copy fits best
    assert abs(a.offset) < 0.02
    # a vertical and a horizontal shift of a textured image, the sub-pixel estimate
    tex = _scene(140, 200)[..., 1]
    ref, mov = tex[20:100, 30:150], tex[23:103, 25:145]  # mov(x + 5, y - 3) = ref(x, y)
    dx, dy, response = temporal.estimate_shift(np.log2(ref), np.log2(mov))
    assert response > 0.2 and abs(dx - 5) < 0.6 and abs(dy + 3) < 0.6


def test_exposure_ratio_recovered():
    passes, _ = _shot(2, pan=2, gains=[1.0, 2.0 ** -0.7])
    a = temporal.align(passes[0], passes[1])
    assert a.used, a.why
    assert abs(a.offset - 0.7) < 0.03  # log2(L_t / L_n)
    assert a.residual < 0.05


def test_unrelated_neighbour_is_rejected():
    passes, _ = _shot(1)
    rng = np.random.default_rng(5)
    noise = rng.random(passes[0].image.shape).astype(np.float32) * 0.8
    other = temporal.analyse(1, noise, SimpleNamespace(image=noise, curve=LINEAR, metadata={}), THR)
    a = temporal.align(passes[0], other)
    assert not a.used and a.why
    image, alignments = temporal.stabilise(passes[0], [other])
    assert image is passes[0].image  # nothing to fuse: the first pass as it was


def test_well_exposed_pixels_untouched_and_hallucinated_ones_change():
    passes, _ = _shot(5, noise=0.3)
    image, alignments = temporal.stabilise(passes[2], [passes[i] for i in (0, 1, 3, 4)])
    assert all(a.used for a in alignments), [a.why for a in alignments]
    own = passes[2].image
    keep = passes[2].alpha <= 0
    assert keep.any() and (~keep).any()
    assert image[keep].tobytes() == own[keep].tobytes()
    assert not np.array_equal(image[~keep], own[~keep])
    assert np.isfinite(image).all() and image.dtype == np.float32


def test_flickering_hallucination_gets_a_lower_temporal_sigma():
    frames, pan, width, radius = 12, 2, 96, 2
    passes, truth = _shot(frames, pan=pan, width=width, gains=np.linspace(1.0, 1.4, frames), noise=0.3, drift=0.6)
    nums = list(range(frames))
    anchors = temporal.anchor_frames(nums, 4)
    assert anchors == [0, 4, 7, 11]

    def fuse(anchors):
        return [temporal.stabilise(fp, [passes[n] for n in temporal.window_of(i, nums, radius, anchors)])[0] for i, fp in enumerate(passes)]

    fused, window_only = fuse(anchors), fuse(())
    common = width - pan * (frames - 1)

    def compensated(stack):
        return np.stack([f[:, pan * (frames - 1 - t) : pan * (frames - 1 - t) + common] for t, f in enumerate(stack)])

    gains = np.log2(np.linspace(1.0, 1.4, frames))[:, None, None]
    gt = compensated(truth)
    clipped = (gt.max(axis=3) > 1.0).all(axis=0)
    assert clipped.sum() > 50

    def sigma(stack):
        log_l = np.log2(np.maximum(compensated(stack) @ temporal._REC709, 1e-6)) - gains
        return float(log_l[:, clipped].std(axis=0).mean())

    before, after = sigma([fp.image for fp in passes]), sigma(fused)
    assert sigma(truth) < 1e-5
    assert after < 0.5 * before, (before, after)
    assert after < sigma(window_only) < before  # the window takes the jitter, the anchors the drift
    # and the fused highlights are no further from the truth than the first passes
    err = lambda stack: float(np.abs(np.log2(compensated(stack) @ temporal._REC709 + 1e-6) - np.log2(gt @ temporal._REC709 + 1e-6))[:, clipped].mean())
    assert err(fused) <= err([fp.image for fp in passes]) + 1e-3


def test_ring_buffer_windows_and_margins():
    assert temporal.needed_frames([5, 6], [1, 2, 3, 4, 5, 6, 7, 8, 10], 2) == [3, 4, 5, 6, 7, 8]
    assert temporal.needed_frames([9], [1, 8, 9, 10], 1) == [8, 9, 10]
    assert temporal.window_of(5, [2, 3, 4, 5, 7, 9], 2) == [3, 4, 7]  # frame numbers, gaps respected
    assert temporal.window_of(5, [2, 3, 4, 5, 7, 9], 2, [2, 9]) == [2, 3, 4, 7, 9]
    assert temporal.window_of(5, [2, 3, 4, 5, 7, 9], 0, [2, 9]) == []
    assert temporal.needed_frames([5], [1, 2, 3, 4, 5, 6, 7, 8, 10], 1, [1, 10]) == [1, 4, 5, 6, 10]
    assert temporal.anchor_frames(range(1, 21)) == [1, 4, 6, 9, 12, 15, 17, 20]  # the shot curve's frames
    computed = []
    passes, _ = _shot(6)

    def compute(n, image):
        computed.append(n)
        return passes[n]

    frames = [(n, object()) for n in temporal.needed_frames([2, 3], range(6), 2)]
    out = list(temporal.stabilised([2, 3], range(6), 2, frames, compute))
    assert [o[0] for o in out] == [2, 3] and computed == [0, 1, 2, 3, 4, 5]
    assert [a.number for a in out[0][3][1]] == [0, 1, 3, 4]
    # anchors come first and stay; frame 1 waits for them, then for frame 2 (its window's end)
    computed.clear()
    frames = [(5, object())] + [(n, object()) for n in (0, 1, 2)]
    out = list(temporal.stabilised([1], range(6), 1, frames, compute, anchors=[5]))
    assert computed == [5, 0, 1, 2] and [a.number for a in out[0][3][1]] == [0, 2, 5]


def _write_pan_plate(folder, frames, pan=2, width=96):
    folder.mkdir(parents=True, exist_ok=True)
    wide = _scene()
    srgb = lambda x: np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0), 1 / 2.4) - 0.055)
    for t in frames:
        hdr = wide[:, t * pan : t * pan + width]
        ldr = np.round(np.clip(srgb(np.clip(hdr, 0, 1)), 0, 1) * 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"plate.{t:04d}.png"), ldr[..., ::-1])
    return folder


def test_chunks_are_bit_identical_with_temporal_on(tmp_path, engine, monkeypatch):
    monkeypatch.setattr(temporal, "ANCHOR_FRAMES", 3)  # fewer passes; the margins still matter
    nums = list(range(1, 10))
    plate = _write_pan_plate(tmp_path / "in", nums)
    pattern = str(plate / "plate.%04d.png")
    one = shots.convert_shot(pattern, str(tmp_path / "one" / "plate.%04d.exr"), engine=engine, temporal_radius=2)
    assert one.converted == nums and one.exit_code == 0
    curve = str(tmp_path / "one" / "plate.curve.npy")
    anchors = temporal.anchor_frames(nums)
    assert anchors == [1, 5, 9]
    for chunk in ("1-3", "4-6", "7-9"):
        r = shots.convert_shot(pattern, str(tmp_path / "three" / "plate.%04d.exr"), frames=chunk, curve=curve, engine=engine, temporal_radius=2)
        assert r.exit_code == 0
    off = shots.convert_shot(pattern, str(tmp_path / "off" / "plate.%04d.exr"), curve=curve, engine=engine, temporal_radius=0)
    assert off.exit_code == 0
    differs = []
    for n in nums:
        ref = _pixels(tmp_path / "one" / f"plate.{n:04d}.exr")
        assert _pixels(tmp_path / "three" / f"plate.{n:04d}.exr").tobytes() == ref.tobytes(), n
        differs.append(not np.array_equal(ref, _pixels(tmp_path / "off" / f"plate.{n:04d}.exr")))
        h = _header(tmp_path / "one" / f"plate.{n:04d}.exr")
        assert h["hdrPluginTemporalRadius"] == "2"
        assert h["hdrPluginTemporalFrames"] == ",".join(map(str, temporal.window_of(n, nums, 2, anchors)))
    assert any(differs)  # stabilisation did change frames, so the comparison above can fail
    assert _header(tmp_path / "off" / "plate.0004.exr")["hdrPluginTemporalRadius"] == "0"
    # the default for shots is on
    d = shots.convert_shot(pattern, str(tmp_path / "d" / "plate.%04d.exr"), frames="4", curve=curve, engine=engine)
    assert _pixels(tmp_path / "d" / "plate.0004.exr").tobytes() == _pixels(tmp_path / "one" / "plate.0004.exr").tobytes()
    assert temporal.DEFAULT_RADIUS == 2


def test_radius_validation(tmp_path, capsys):
    assert temporal.check_radius("3") == 3 and temporal.check_radius(0) == 0
    for bad in (-1, "-2", "x", 1.5):
        with pytest.raises(ValueError):
            temporal.check_radius(bad)
    with pytest.raises(shots.ShotError, match=">= 0"):
        shots.convert_shot(str(tmp_path / "p.%04d.png"), None, temporal_radius=-1)
    with pytest.raises(SystemExit) as e:
        cli.main(["convert", str(tmp_path / "p.%04d.png"), "--temporal-radius", "-1"])
    assert e.value.code == 2
    assert "temporal radius must be >= 0" in capsys.readouterr().err


def test_buffered_neighbour_is_compact():
    """A buffered neighbour holds its guide, bit masks and the float16 radiance of its
    hallucinated pixels only: far below a float32 first pass (21 bytes a pixel)."""
    passes, _ = _shot(1, width=192)
    fp = passes[0]
    h, w = fp.alpha.shape
    nb = temporal.compact(fp)
    stored = int(np.unpackbits(nb.stored_bits, count=h * w).sum())
    assert stored >= int((fp.alpha > 0).sum()) > 0
    expected = 4 * h * w + 2 * -(-h * w // 8) + stored * temporal.NEIGHBOUR_STORED_BYTES
    assert nb.nbytes == expected
    assert nb.nbytes < 0.35 * 21 * h * w  # float32 image + alpha + guide + bool well: 21 B/px
    assert nb.guide.dtype == np.float32 and nb.image16.dtype == np.float16 and nb.alpha16.dtype == np.float16
    # what fusion reads of it: the first pass to float16 precision where alpha > 0, 0 where not stored
    alpha, image = nb.planes()
    sel = fp.alpha > 0
    assert np.abs(np.log2(image[sel] / fp.image[sel])).max() < 1e-3
    assert np.abs(alpha - fp.alpha).max() < 1e-3 and np.array_equal(nb.well, fp.well)
    # the worst case reserved in the engine's memory plan: 2R + K neighbours, R frames waiting
    assert temporal.held_bytes_per_pixel(0) == 0
    assert temporal.held_bytes_per_pixel(2, 8) == int(np.ceil(12 * (4.25 + 8) + 2 * temporal.PENDING_BYTES)) == 213


def test_ring_buffer_keeps_full_first_passes_only_for_frames_waiting():
    """While a first pass is computed, only the R frames waiting for their window's end are
    held in full, even when anchors are to be written (they are kept as Neighbours and
    computed again in order); the output is that of fusing the full first passes."""
    import gc
    import weakref

    passes, _ = _shot(8)
    made, alive_max, computed = [], [], []

    def compute(n, image):
        gc.collect()
        alive_max.append(sum(r() is not None for r in made))
        computed.append(n)
        fp = temporal.FirstPass(n, SimpleNamespace(image=passes[n].image.copy(), curve=LINEAR, metadata={}),
                                passes[n].alpha, passes[n].guide, passes[n].well)
        made.append(weakref.ref(fp))
        return fp

    nums, anchors = list(range(8)), [0, 3, 7]
    todo = [0, 1, 2, 3, 4, 5, 6, 7]
    needed = temporal.needed_frames(todo, nums, 1, anchors)
    frames = [(n, object()) for n in anchors] + [(n, object()) for n in needed]  # anchors to write come again
    written = []
    for t, _, fp, (image, _) in temporal.stabilised(todo, nums, 1, frames, compute, anchors):
        assert isinstance(fp, temporal.FirstPass) and fp.number == t
        # same bits as fusing the full first passes directly
        ref, _ = temporal.stabilise(passes[t], [passes[n] for n in temporal.window_of(t, nums, 1, anchors)])
        assert np.array_equal(image, ref), t
        written.append(t)
        del fp, image
    assert written == todo and computed == anchors + todo
    assert max(alive_max) == 1  # while frame t + 1 is computed, only frame t (R = 1) waits in full


def test_shot_refused_when_buffers_do_not_fit(tmp_path, engine):
    """The buffers count in the engine's memory plan; a budget they do not fit is refused up front."""
    from hdr_plugin.pipeline import _HOST_IMAGES
    from hdr_plugin.tiling import BASELINE_BYTES, MIN_WINDOW_AREA, MemoryBudgetError

    plate = _write_pan_plate(tmp_path / "in", range(1, 6))
    pattern = str(plate / "plate.%04d.png")
    saved = engine.max_memory, engine.tile
    try:
        engine.tile = None
        h, w = 72, 96
        host = h * w * 12 * _HOST_IMAGES[engine.quality.name]
        engine.max_memory = BASELINE_BYTES + host + MIN_WINDOW_AREA * engine.runners.bytes_per_window_pixel + 2**20
        engine.check_memory(h, w)  # fits without stabilisation
        engine.held_bytes_per_pixel = temporal.held_bytes_per_pixel(2)
        with pytest.raises(MemoryBudgetError):
            engine.check_memory(h, w)
        engine.held_bytes_per_pixel = 0
        with pytest.raises(shots.ShotError, match="temporal stabilisation"):
            shots.convert_shot(pattern, str(tmp_path / "o" / "plate.%04d.exr"), engine=engine, temporal_radius=2)
        assert not list((tmp_path / "o").glob("*.exr")) and engine.held_bytes_per_pixel == 0
    finally:
        engine.max_memory, engine.tile = saved
        engine.held_bytes_per_pixel = 0


def test_fusion_bench_runs_and_uses_every_neighbour(capsys, monkeypatch):
    """tools/fusion_bench.py (the README's fusion timing) aligns all its known shifts."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "fusion_bench.py"
    spec = importlib.util.spec_from_file_location("fusion_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["fusion_bench.py", "--size", "192x128", "--neighbours", "4"])
    module.main()
    out = capsys.readouterr().out
    assert "192x128" in out and "(4 used)" in out
