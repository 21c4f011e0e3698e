"""The Blender adapter's engine jobs (``adapters/blender/jobs.py``) without Blender.

``jobs.py`` does not import bpy, so its routes (in-process worker thread, external
``python -m hdr_plugin`` subprocess), staging/commit/cancel and messages are tested here
on the project's own Python; ``tests/test_blender.py`` runs the whole add-on in real
Blender.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "hdr_plugin" / "data" / "sample.png"


def _load_jobs():
    spec = importlib.util.spec_from_file_location("hdr_blender_jobs", ROOT / "adapters" / "blender" / "jobs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


jobs = _load_jobs()


@pytest.fixture
def small_rgb():
    from hdr_plugin.io import read_ldr

    return np.ascontiguousarray(read_ldr(SAMPLE).rgb[:128, :192])


def _settings(**kw):
    base = dict(route="in_process", device="cpu", precision="fp32", tile="auto")
    base.update(kw)
    return jobs.Settings(**base)


def _run(job, timeout=300.0):
    job.start()
    assert job.wait(timeout), "the job did not finish"
    return job


# --------------------------------------------------------------------------- helpers
def test_sequence_names_follow_blenders_rule():
    assert jobs.sequence_frame_path("/p/plate.0001.png", 12) == Path("/p/plate.0012.png")
    assert jobs.sequence_frame_path("/p/shot_v2_101.jpg", 7) == Path("/p/shot_v2_007.jpg")
    assert jobs.sequence_stem("/p/plate.0001.png") == ("plate", 4)
    with pytest.raises(ValueError):
        jobs.sequence_frame_path("/p/plate.png", 1)


def test_unique_outputs_never_reuse_a_name(tmp_path):
    assert jobs.unique_outputs(tmp_path, "sample", None) == [tmp_path / "sample_hdr.exr"]
    (tmp_path / "sample_hdr.exr").touch()
    assert jobs.unique_outputs(tmp_path, "sample", None) == [tmp_path / "sample_hdr_2.exr"]
    (tmp_path / "plate_hdr.0002.exr").touch()
    assert jobs.unique_outputs(tmp_path, "plate", [1, 2], 4) == [tmp_path / "plate_hdr_2.0001.exr", tmp_path / "plate_hdr_2.0002.exr"]
    assert jobs.clean_stem("my plate (1).png") == "my_plate_1"


def test_curve_picks_are_evenly_spaced():
    assert jobs.curve_picks(3, 8) == [0, 1, 2]
    assert jobs.curve_picks(100, 5) == [0, 25, 50, 74, 99]
    assert jobs.curve_picks(10, 1) == [0]


def test_png16_is_lossless_for_8bit_pixels(tmp_path):
    from hdr_plugin.io import read_ldr

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3)).astype(np.float32) / 255.0
    alpha = rng.integers(0, 256, (5, 7)).astype(np.float32) / 255.0
    back = read_ldr(jobs.write_png16(tmp_path / "x.png", rgb, alpha))
    assert back.bit_depth == 16
    np.testing.assert_allclose(back.rgb, rgb, atol=1e-6)
    np.testing.assert_allclose(back.alpha, alpha, atol=1e-6)


def test_missing_engine_message_says_what_to_install_where(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(jobs.importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(jobs.EngineUnavailable) as e:
        jobs.choose_route("auto", "")
    msg = str(e.value)
    assert "torch" in msg and sys.executable in msg and "pip install torch==2.13.0 --index-url" in msg and "pip install hdr-plugin" not in msg and "Python interpreter" in msg
    with pytest.raises(jobs.EngineUnavailable, match="is a folder"):
        jobs.choose_route("subprocess", str(tmp_path))
    assert jobs.choose_route("auto", sys.executable) == "subprocess"


def test_subprocess_env_drops_pythonhome(monkeypatch):
    monkeypatch.setenv("PYTHONHOME", "/blender/python")
    env = jobs.subprocess_env({"X": "1"})
    assert "PYTHONHOME" not in env and env["X"] == "1" and env["HDR_PLUGIN_WEIGHTS"] == os.environ["HDR_PLUGIN_WEIGHTS"]


# --------------------------------------------------------------------------- in process
def test_in_process_job_stages_then_commits(tmp_path, small_rgb, default_engine):
    engine = default_engine
    out = tmp_path / "renders" / "hdr"
    frame = jobs.Frame("still", out / "still_hdr.exr", rgb=small_rgb)
    job = _run(jobs.Job([frame], _settings(), out))
    assert job.state == "done", job.message
    assert not frame.output.exists() and job.progress == pytest.approx(1.0)
    assert job.commit() == [frame.output]
    assert sorted(p.name for p in out.iterdir()) == ["still_hdr.exr"]  # staging folder gone
    from hdr_plugin.io import read_hdr

    want = engine.reconstruct(small_rgb).image
    got = read_hdr(frame.output)
    assert np.abs(got - want).max() <= 2.0**-10 * max(1.0, float(want.max()))


def test_cancel_removes_staging_and_created_folders(tmp_path, small_rgb):
    out = tmp_path / "a" / "b"
    frames = [jobs.Frame(str(i), out / f"f_hdr.{i:04d}.exr", rgb=small_rgb) for i in (1, 2, 3)]
    job = jobs.Job(frames, _settings(tile=64, shot_curve=True), out).start()
    t0 = time.perf_counter()
    while job.progress == 0 and not job.finished and time.perf_counter() - t0 < 120:
        time.sleep(0.01)
    job.cancel()
    assert job.state == "cancelled" and "nothing was written" in job.message
    assert not (tmp_path / "a").exists()
    with pytest.raises(jobs.JobError):
        job.commit()


def test_commit_refuses_to_replace_a_file_that_appeared(tmp_path, small_rgb):
    frame = jobs.Frame("still", tmp_path / "still_hdr.exr", rgb=small_rgb)
    job = _run(jobs.Job([frame], _settings(), tmp_path))
    frame.output.write_bytes(b"user file")
    with pytest.raises(jobs.JobError, match="appeared"):
        job.commit()
    assert frame.output.read_bytes() == b"user file"
    assert [p.name for p in tmp_path.iterdir()] == ["still_hdr.exr"]


# --------------------------------------------------------------------------- subprocess
@pytest.mark.slow
def test_subprocess_route_matches_in_process(tmp_path, small_rgb):
    """The same shot through both routes: one frame from pixels, two from files, one curve."""
    from hdr_plugin.io import read_hdr

    files = [jobs.write_png16(tmp_path / f"plate.{i:04d}.png", np.roll(small_rgb, 9 * i, axis=1)) for i in (2, 3)]
    outputs = {}
    for route in ("in_process", "subprocess"):
        out = tmp_path / route
        frames = [jobs.Frame("1", out / "plate_hdr.0001.exr", rgb=small_rgb)]
        frames += [jobs.Frame(f"{i}", out / f"plate_hdr.{i:04d}.exr", path=p) for i, p in zip((2, 3), files)]
        job = _run(jobs.Job(frames, _settings(route=route, python=sys.executable, shot_curve=True), out))
        assert job.state == "done", job.message
        outputs[route] = [read_hdr(p) for p in job.commit()]
        assert sorted(p.name for p in out.iterdir()) == [f"plate_hdr.000{i}.exr" for i in (1, 2, 3)]
    for a, b in zip(outputs["in_process"], outputs["subprocess"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_subprocess_cancel_terminates_and_cleans_up(tmp_path, small_rgb):
    out = tmp_path / "hdr"
    frames = [jobs.Frame(str(i), out / f"f_hdr.{i:04d}.exr", rgb=small_rgb) for i in (1, 2, 3)]
    job = jobs.Job(frames, _settings(route="subprocess", python=sys.executable, tile=64), out).start()
    t0 = time.perf_counter()
    while job._proc is None and time.perf_counter() - t0 < 60:
        time.sleep(0.01)
    time.sleep(1.0)
    job.cancel()
    assert job.state == "cancelled"
    assert job._proc.poll() is not None
    assert not out.exists()


@pytest.mark.skipif(os.name == "nt", reason="uses a shell script as the fake interpreter")
def test_broken_external_python_names_the_fix(tmp_path, small_rgb):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'hdr_plugin'\" >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "hdr"
    job = _run(jobs.Job([jobs.Frame("x", out / "x_hdr.exr", rgb=small_rgb)], _settings(route="subprocess", python=str(fake)), out), 60)
    assert job.state == "failed"
    assert f"{fake} has no hdr-plugin installed" in job.message and "pip install" in job.message
    job.discard()
    assert not out.exists()
