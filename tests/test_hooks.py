"""The pluggy hook interface: curve override, stage observers, progress and cancellation,
output finalisation, input preparation, validation, and entry-point discovery."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hdr_plugin
from hdr_plugin import crf
from hdr_plugin.io import read_ldr
from hdr_plugin.pipeline import Cancelled, Engine
from hdr_plugin.plugins import (
    DEFAULT_PLUGINS,
    LockedCurve,
    PluginError,
    get_plugin_manager,
    hookimpl,
    make_plugin_manager,
    plugin_names,
    register_plugin,
    unregister_plugin,
)
from hdr_plugin.tiling import tile_grid

DIST = Path(__file__).resolve().parent / "data" / "tiny_plugin_dist"
# a known curve far from inverse sRGB (which the tiny test model predicts)
KNOWN = (crf.GRID**1.5).astype(np.float32)


@pytest.fixture(scope="module")
def small_rgb():
    from conftest import ROOT

    return read_ldr(ROOT / "hdr_plugin" / "data" / "sample.png").rgb[100:228, 100:292]  # 192x128, clipped sky


class Recorder:
    """Records every stage output and progress event."""

    def __init__(self, cancel_at=None):
        self.stages: list[tuple[str, object]] = []
        self.progress: list[tuple[str, int, int]] = []
        self.fractions: list[float] = []
        self.cancel_at = cancel_at
        self.finalized = 0

    @hookimpl
    def hdr_stage_output(self, stage, image, context):
        self.stages.append((stage, np.array(image, copy=True)))

    @hookimpl
    def hdr_progress(self, stage, done, total, context):
        self.progress.append((stage, done, total))
        self.fractions.append(context.fraction)
        if self.cancel_at == (stage, done):
            return False
        return True

    @hookimpl
    def hdr_finalize_output(self, result, context):
        self.finalized += 1


# --------------------------------------------------------------------------- inverse curve override
def test_locked_curve_changes_the_result_as_predicted(engine, small_rgb):
    baseline = engine.reconstruct(small_rgb)
    forced = engine.reconstruct(small_rgb, curve=KNOWN)
    lock = LockedCurve(KNOWN)
    rec = Recorder()
    register_plugin(lock, pm=engine.plugin_manager)
    register_plugin(rec, pm=engine.plugin_manager)
    try:
        locked = engine.reconstruct(small_rgb)
    finally:
        unregister_plugin(lock, pm=engine.plugin_manager)
        unregister_plugin(rec, pm=engine.plugin_manager)
    np.testing.assert_array_equal(locked.curve, KNOWN)
    np.testing.assert_array_equal(locked.image, forced.image)  # same as passing the curve
    assert not np.allclose(baseline.curve, KNOWN, atol=0.01)
    assert np.abs(locked.image - baseline.image).mean() > 0.01  # and different from the estimate
    # the linear image is exactly the dequantized image through the locked curve, by hand
    stages = dict(rec.stages)
    np.testing.assert_array_equal(stages["inverse_curve"], KNOWN)
    by_hand = np.interp(stages["dequantized"], crf.GRID, KNOWN)
    np.testing.assert_allclose(stages["linear"], by_hand, atol=2e-6)
    # after unregistering, Linearization-Net is back
    np.testing.assert_array_equal(engine.reconstruct(small_rgb).curve, baseline.curve)


def test_identity_curve_makes_linear_equal_dequantized(engine, small_rgb):
    rec = Recorder()
    lock = LockedCurve(crf.GRID.astype(np.float32))
    for p in (lock, rec):
        register_plugin(p, pm=engine.plugin_manager)
    try:
        engine.reconstruct(small_rgb)
    finally:
        for p in (lock, rec):
            unregister_plugin(p, pm=engine.plugin_manager)
    stages = dict(rec.stages)
    np.testing.assert_allclose(stages["linear"], stages["dequantized"], atol=1e-6)


def test_curve_plugin_returning_none_defers_to_the_network(engine, small_rgb):
    class Abstain:
        calls = 0

        @hookimpl
        def hdr_inverse_crf(self, image, context):
            Abstain.calls += 1
            assert image.shape == small_rgb.shape and image.dtype == np.float32
            return None

    expected = engine.reconstruct(small_rgb).curve
    p = Abstain()
    register_plugin(p, pm=engine.plugin_manager)
    try:
        got = engine.reconstruct(small_rgb).curve
    finally:
        unregister_plugin(p, pm=engine.plugin_manager)
    assert Abstain.calls == 1
    np.testing.assert_array_equal(got, expected)


def test_invalid_curves_are_rejected(engine, small_rgb):
    with pytest.raises(ValueError, match="monotonic"):
        LockedCurve(KNOWN[::-1].copy())
    with pytest.raises(ValueError, match="1024 finite samples"):
        LockedCurve(KNOWN[:100])

    class Bad:
        @hookimpl
        def hdr_inverse_crf(self, image, context):
            return 1.0 - KNOWN  # decreasing

    p = Bad()
    register_plugin(p, pm=engine.plugin_manager)
    try:
        with pytest.raises(ValueError, match="monotonic"):
            engine.reconstruct(small_rgb)
    finally:
        unregister_plugin(p, pm=engine.plugin_manager)


def test_shot_curve_locks_one_curve_for_several_frames(engine, small_rgb):
    frames = [small_rgb, np.ascontiguousarray(small_rgb[:, ::-1] * 0.6)]
    shot = engine.shot_curve(frames)
    per_frame = [engine.reconstruct(f).curve for f in frames]
    assert shot.shape == (1024,) and shot[0] == 0 and abs(shot[-1] - 1) < 1e-6 and np.all(np.diff(shot) >= 0)
    np.testing.assert_allclose(shot, np.mean(per_frame, axis=0), atol=1e-5)
    lock = LockedCurve(shot)
    register_plugin(lock, pm=engine.plugin_manager)
    try:
        results = [engine.reconstruct(f) for f in frames]
    finally:
        unregister_plugin(lock, pm=engine.plugin_manager)
    for frame, r in zip(frames, results):
        np.testing.assert_array_equal(r.curve, shot)
        np.testing.assert_array_equal(r.image, engine.reconstruct(frame, curve=shot).image)


# --------------------------------------------------------------------------- progress and cancellation
def _clipped_tiles(eng, rgb):
    """The tiles of eng's grid whose core holds over-exposed pixels of the linear image."""
    from hdr_plugin.tiling import MaskIndex

    h, w = rgb.shape[:2]
    curve = eng.estimate_curve(eng.display_image(rgb))
    mask = MaskIndex(crf.apply_curve_np(eng.display_image(rgb), curve).max(axis=2) > eng.model.hal.mask_threshold)
    return [t for t in eng.plan_dense(h, w) if mask.any_in_core(t)]


@pytest.fixture
def half_dark_rgb(small_rgb):
    """The clipped-sky crop with its lower half darkened: clipped tiles above, none below."""
    rgb = small_rgb.copy()
    rgb[64:] *= 0.3
    return rgb


def test_progress_hook_sees_every_tile_of_every_network(half_dark_rgb):
    from conftest import tiny_model

    small_rgb = half_dark_rgb
    pm = make_plugin_manager(load_entrypoints=False)
    eng = Engine(model=tiny_model(), device="cpu", precision="fp32", tile=64, tile_overlap=16, quality="max", runtime="torch", plugin_manager=pm)
    n = len(tile_grid(*small_rgb.shape[:2], 64, 16))
    assert n == 2 * 3
    k = len(_clipped_tiles(eng, small_rgb))
    assert 0 < k < n  # the sky clips, the rest does not: Hallucination-Net runs on k tiles only
    rec = Recorder()
    register_plugin(rec, pm=pm)
    eng.reconstruct(small_rgb)
    expected = [("dequantize", i, n) for i in range(1, n + 1)] + [("linearize", 1, 1)]
    expected += [("hallucinate", i, k) for i in range(1, k + 1)] + [("refine", i, n) for i in range(1, n + 1)]
    assert rec.progress == expected
    # context.fraction: the share of the compute done, weighted by MACs; it only grows and ends at 1
    assert all(b >= a for a, b in zip(rec.fractions, rec.fractions[1:])) and rec.fractions[-1] == pytest.approx(1.0)
    assert 0 < rec.fractions[0] < 0.5  # one Dequantization tile of six, the cheap curve and k of six hallucination tiles after it


def test_default_quality_reports_the_curve_then_the_clipped_tiles(half_dark_rgb):
    from conftest import tiny_model

    small_rgb = half_dark_rgb
    pm = make_plugin_manager(load_entrypoints=False)
    eng = Engine(model=tiny_model(), device="cpu", precision="fp32", tile=64, tile_overlap=16, runtime="torch", plugin_manager=pm)
    assert eng.quality.name == "standard"
    k = len(_clipped_tiles(eng, small_rgb))
    rec = Recorder()
    register_plugin(rec, pm=pm)
    eng.reconstruct(small_rgb)
    assert 0 < k < 6
    assert rec.progress == [("linearize", 1, 1)] + [("hallucinate", i, k) for i in range(1, k + 1)]
    # weighted by MACs: the curve's share is what Linearization-Net costs against the k tiles
    from hdr_plugin.tiling import computed_pixels

    hal_macs = eng.kmac_per_pixel["hallucination"] * 1e3 * computed_pixels(_clipped_tiles(eng, small_rgb))
    assert rec.fractions[0] == pytest.approx(eng.linearization_macs / (eng.linearization_macs + hal_macs))
    assert rec.fractions[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("cancel_at", [("dequantize", 2), ("linearize", 1), ("hallucinate", 1), ("refine", 6)])
def test_returning_false_cancels(small_rgb, cancel_at):
    from conftest import tiny_model

    pm = make_plugin_manager(load_entrypoints=False)
    eng = Engine(model=tiny_model(), device="cpu", precision="fp32", tile=64, tile_overlap=16, quality="max", runtime="torch", plugin_manager=pm)
    rec = Recorder(cancel_at=cancel_at)
    register_plugin(rec, pm=pm)
    assert hdr_plugin.Cancelled is Cancelled
    with pytest.raises(Cancelled, match=f"cancelled during {cancel_at[0]}"):
        eng.reconstruct(small_rgb)
    assert rec.progress[-1][:2] == cancel_at  # nothing ran after the cancelling answer
    assert rec.finalized == 0
    assert "refined" not in dict(rec.stages)


def test_cancelled_cli_run_writes_nothing(tmp_path, sample_path):
    from hdr_plugin import cli

    class CancelLate:
        @hookimpl
        def hdr_progress(self, stage, done, total, context):
            return stage != "hallucinate"  # cancel at the very last step of the default quality

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = CancelLate()
    register_plugin(p)  # the process-wide manager the CLI's engine uses
    try:
        rc = cli.main(["convert", str(sample_path), "-o", str(out_dir / "x.exr"), "-q"])
    finally:
        unregister_plugin(p)
    assert rc == 130
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


# --------------------------------------------------------------------------- stage observers and finalisation
def test_stage_observers_receive_every_intermediate(engine, small_rgb):
    rec = Recorder()
    register_plugin(rec, pm=engine.plugin_manager)
    try:
        result = engine.reconstruct(small_rgb)
    finally:
        unregister_plugin(rec, pm=engine.plugin_manager)
    names = [s for s, _ in rec.stages]
    assert names == ["dequantized", "inverse_curve", "linear", "hallucinated", "refined"]
    st = dict(rec.stages)
    h, w = small_rgb.shape[:2]
    for name in ("dequantized", "linear", "hallucinated", "refined"):
        assert st[name].shape == (h, w, 3) and st[name].dtype == np.float32
    assert 0 <= st["dequantized"].min() and st["dequantized"].max() <= 1
    assert not np.array_equal(st["dequantized"], small_rgb)  # Dequantization-Net changed it
    np.testing.assert_array_equal(st["inverse_curve"], result.curve)
    np.testing.assert_allclose(st["linear"], np.interp(st["dequantized"], crf.GRID, result.curve), atol=2e-6)
    assert np.all(st["hallucinated"] >= st["linear"] - 1e-6)
    assert st["hallucinated"].max() > 1.0  # highlights restored above the clipping level
    np.testing.assert_array_equal(st["refined"], result.image)


def test_finalize_output_can_replace_the_image(engine, small_rgb):
    class Replace:
        @hookimpl
        def hdr_finalize_output(self, result, context):
            result.image = np.full_like(result.image, 3.0)
            result.metadata["replacedBy"] = "test"

    p = Replace()
    register_plugin(p, pm=engine.plugin_manager)
    try:
        r = engine.reconstruct(small_rgb)
        r_ev = engine.reconstruct(small_rgb, exposure=1.0)
    finally:
        unregister_plugin(p, pm=engine.plugin_manager)
    assert r.image.shape == small_rgb.shape and np.all(r.image == 3.0) and r.metadata["replacedBy"] == "test"
    assert np.all(r_ev.image == 6.0)  # the built-in exposure adjustment runs last


def test_prepare_input_hook_accepts_a_custom_type(engine, small_rgb):
    class Wrapped:
        def __init__(self, rgb):
            self.rgb = rgb

    class Unwrap:
        @hookimpl
        def hdr_prepare_input(self, image, context):
            return image.rgb if isinstance(image, Wrapped) else None

    with pytest.raises(ValueError, match=r"RGB image, got shape \(\)"):  # the built-in cannot read it
        engine.reconstruct(Wrapped(small_rgb))
    p = Unwrap()
    register_plugin(p, pm=engine.plugin_manager)
    try:
        got = engine.reconstruct(Wrapped(small_rgb)).image
    finally:
        unregister_plugin(p, pm=engine.plugin_manager)
    np.testing.assert_array_equal(got, engine.reconstruct(small_rgb).image)


# --------------------------------------------------------------------------- validation and the manager
def test_misspelled_hook_name_is_reported_and_not_registered():
    pm = make_plugin_manager(load_entrypoints=False)

    class Typo:
        @hookimpl
        def hdr_progres(self, stage, done, total, context):
            return False

    before = set(pm.get_plugins())
    with pytest.raises(PluginError, match="hdr_progres.*check the spelling"):
        register_plugin(Typo(), pm=pm)
    assert set(pm.get_plugins()) == before


def test_misspelled_hook_argument_is_reported():
    pm = make_plugin_manager(load_entrypoints=False)

    class TypoArg:
        @hookimpl
        def hdr_progress(self, stage, done, totl, context):
            return None

    with pytest.raises(PluginError, match="totl"):
        register_plugin(TypoArg(), pm=pm)
    assert len(pm.get_plugins()) == len(DEFAULT_PLUGINS)


def test_manager_is_built_once_with_builtins():
    pm = get_plugin_manager()
    assert get_plugin_manager() is pm
    assert set(DEFAULT_PLUGINS) <= set(plugin_names(pm))
    assert hdr_plugin.hookimpl is hookimpl


# --------------------------------------------------------------------------- entry points
@pytest.fixture(scope="module")
def installed_dist(tmp_path_factory) -> Path:
    """The tiny plugin distribution, installed (not editable) into a temporary folder."""
    root = tmp_path_factory.mktemp("tiny_plugin")
    src = root / "src"
    shutil.copytree(DIST, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert list(target.glob("hdr_plugin_tiny_test-*.dist-info/entry_points.txt"))
    return target


def _run_with_dist(site: Path, code: str, disable: bool = False) -> dict:
    env = dict(os.environ)
    env.pop("HDR_PLUGIN_DISABLE_ENTRYPOINTS", None)
    if disable:
        env["HDR_PLUGIN_DISABLE_ENTRYPOINTS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


ENTRY_POINT_SCRIPT = """
    import json, warnings
    import numpy as np
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from hdr_plugin.plugins import make_plugin_manager, plugin_names, rejected_plugins
        pm = make_plugin_manager(load_entrypoints=True)
    from hdr_plugin.pipeline import Engine
    engine = Engine(device="cpu", precision="fp32", tile=0, plugin_manager=pm)
    rgb = np.linspace(0, 1, 64 * 48 * 3, dtype=np.float32).reshape(64, 48, 3)
    plain = engine.reconstruct(rgb)
    forced = engine.reconstruct(rgb, tiny_plugin=True)
    by_curve = engine.reconstruct(rgb, curve=np.linspace(0, 1, 1024, dtype=np.float32) ** 2)
    print(json.dumps({
        "plugins": plugin_names(pm),
        "rejected": rejected_plugins(),
        "warnings": [str(w.message) for w in caught],
        "metadata": forced.metadata,
        "forced_equals_curve": bool(np.array_equal(forced.image, by_curve.image)),
        "plain_differs": bool(np.abs(plain.image - forced.image).max() > 1e-3),
        "forced_curve_max_err": float(np.abs(forced.curve - np.linspace(0, 1, 1024) ** 2).max()),
    }))
"""


def test_plugin_in_a_distribution_is_discovered_through_its_entry_point(installed_dist):
    got = _run_with_dist(installed_dist, ENTRY_POINT_SCRIPT)
    assert "tiny" in got["plugins"]
    assert got["metadata"]["tinyPlugin"] == "loaded"
    assert got["forced_equals_curve"] and got["plain_differs"]
    assert got["forced_curve_max_err"] < 1e-6
    # the misspelled one is rejected with a warning that names it, and listed
    assert "tiny_typo" not in got["plugins"]
    assert "hdr_finalise_output" in got["rejected"]["tiny_typo"]
    assert any("tiny_typo" in w and "hdr_finalise_output" in w for w in got["warnings"])


def test_entry_points_can_be_disabled(installed_dist):
    got = _run_with_dist(installed_dist, ENTRY_POINT_SCRIPT, disable=True)
    assert "tiny" not in got["plugins"] and got["rejected"] == {} and "tinyPlugin" not in got["metadata"]


def test_info_lists_loaded_and_rejected_plugins(installed_dist):
    code = """
        import contextlib, io, json
        from hdr_plugin import cli
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = cli.main(["info", "--json"])
        info = json.loads(buf.getvalue())
        print(json.dumps({"rc": rc, "plugins": info["plugins"], "rejected": info["rejected_plugins"]}))
    """
    got = _run_with_dist(installed_dist, code)
    assert got["rc"] == 0
    assert "tiny" in got["plugins"] and "hdr_plugin.default_plugins.inputs" in got["plugins"]
    assert "tiny_typo" in got["rejected"]
