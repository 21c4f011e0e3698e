"""Honest progress: it moves during a one-tile conversion, the engine-loading phase is
reported as such, and the CLI bar and Blender's status line give a time left.

The engine calls ``hdr_progress`` per network per tile and sets ``context.fraction``
(its cost-weighted share of the run) before each call; the consumers here (the CLI's
``Progress``, the ``--json`` stream the host adapters read, Blender's ``Job``) are driven
by the real engine through recording hooks, and their ETA arithmetic by a fake clock.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hdr_plugin import cli, hookimpl, register_plugin, unregister_plugin
from hdr_plugin.io import read_ldr

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "hdr_plugin" / "data" / "sample.png"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


jobs = _load("hdr_blender_jobs_progress", ROOT / "adapters" / "blender" / "jobs.py")
status = _load("hdr_blender_status", ROOT / "adapters" / "blender" / "status.py")


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


class Recorder:
    """Records what the engine reports and what the CLI's Progress makes of it."""

    def __init__(self, progress):
        self.progress = progress
        self.calls = []

    @hookimpl
    def hdr_progress(self, stage, done, total, context):
        engine_fraction = getattr(context, "fraction", None)
        shown = self.progress.image_fraction(stage, done, total, context)
        self.calls.append((stage, done, total, engine_fraction, shown))


def _moves(values) -> list[float]:
    """The distinct values strictly inside (0, 1), after checking they never go back."""
    assert all(b >= a for a, b in zip(values, values[1:])), f"progress went backwards: {values}"
    return sorted({round(v, 6) for v in values if 0.0 < v < 1.0})


@pytest.fixture
def small_rgb():
    return np.ascontiguousarray(read_ldr(SAMPLE).rgb[:128, :192])


# --------------------------------------------------------------------------- engine -> CLI Progress
def test_progress_moves_during_a_one_tile_conversion(engine, small_rgb):
    progress = cli.Progress("none")
    recorder = Recorder(progress)
    register_plugin(recorder, name="test-recorder", pm=engine.plugin_manager)
    try:
        engine.reconstruct(small_rgb)  # tile=0: the whole image is one tile
    finally:
        unregister_plugin(recorder, pm=engine.plugin_manager)
    stages = [c[0] for c in recorder.calls]
    assert stages and all(total == 1 for _, _, total, _, _ in recorder.calls), recorder.calls
    shown = [c[4] for c in recorder.calls]
    assert len(_moves(shown)) >= 2, f"a one-tile image must move between networks: {recorder.calls}"
    assert shown[-1] == pytest.approx(1.0)
    given = [c[3] for c in recorder.calls]
    if all(g is not None for g in given):  # the engine's weighted fraction is what is shown
        np.testing.assert_allclose(shown, np.maximum.accumulate(np.clip(given, 0, 1)), atol=1e-9)
        assert len(_moves(given)) >= 3, f"per-network reports expected: {recorder.calls}"


def test_fallback_without_engine_fraction_splits_by_stage():
    p = cli.Progress("none")
    ctx = SimpleNamespace(source="a.png")  # an engine without context.fraction
    seen = [p.image_fraction(s, d, t, ctx) for s, d, t in [("dequantize", 1, 2), ("dequantize", 2, 2), ("linearize", 1, 1), ("reconstruct", 1, 2), ("reconstruct", 2, 2)]]
    assert seen == pytest.approx([0.225, 0.45, 0.5, 0.75, 1.0])
    # a new image starts from zero again; a lower report within an image never moves back
    ctx2 = SimpleNamespace(source="b.png", fraction=0.3)
    assert p.image_fraction("dequantize", 1, 1, ctx2) == pytest.approx(0.3)
    assert p.image_fraction("linearize", 1, 1, SimpleNamespace(source="b.png", fraction=0.2)) == pytest.approx(0.3)


def test_eta_is_the_average_rate_since_the_engine_was_ready():
    clock = FakeClock()
    p = cli.Progress("none", clock=clock)
    clock.t += 4.0  # loading the engine
    p.emit(event="start", count=2, device="cpu", precision="fp32")
    assert p.load_seconds == pytest.approx(4.0)
    p.position = (0, 2)
    assert p.eta(p.overall(0.0)) is None
    clock.t += 3.0
    overall = p.overall(p.image_fraction("dequantize", 1, 1, SimpleNamespace(source="a", fraction=0.5)))
    assert overall == pytest.approx(0.25)
    assert p.eta(overall) == pytest.approx(9.0)  # 3 s for a quarter: 9 s for the rest
    p.position = (1, 2)
    clock.t += 3.0
    overall = p.overall(p.image_fraction("refine", 1, 1, SimpleNamespace(source="b", fraction=0.5)))
    assert overall == pytest.approx(0.75) and p.eta(overall) == pytest.approx(2.0)


def test_bar_shows_stage_percentage_and_time_left():
    pytest.importorskip("tqdm")
    clock = FakeClock()
    out = io.StringIO()
    p = cli.Progress("bar", stream=out, clock=clock)
    clock.t += 2.5
    p.emit(event="start", count=1, device="cpu", precision="bf16")
    clock.t += 2.0
    p.hdr_progress("hallucinate", 1, 1, SimpleNamespace(source="a.png", fraction=0.25))
    p.emit(event="summary", converted=1, skipped=0, failed=0)
    text = out.getvalue()
    assert "engine ready on cpu (bf16) in 2.5 s" in text
    assert "hallucinate" in text and " 25%" in text and "ETA 0:06" in text, text


def test_engine_loading_is_reported_as_such():
    out = io.StringIO()
    p = cli.Progress("plain", stream=out)
    time.sleep(cli.Progress.LOADING_DELAY + 0.4)
    assert "loading the engine" in out.getvalue()
    p.emit(event="start", count=1, device="cpu", precision="fp32")
    assert "engine ready on cpu (fp32) in" in out.getvalue()
    # a run that ends at once (usage error) never shows the loading line
    out2 = io.StringIO()
    q = cli.Progress("plain", stream=out2)
    del q
    time.sleep(cli.Progress.LOADING_DELAY + 0.3)
    assert out2.getvalue() == ""


def _convert_accepts(option: str) -> bool:
    import argparse

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return option in sub.choices["convert"]._option_string_actions


# standard quality runs two networks on a one-tile image (one report between them),
# max quality four (three reports before the last)
@pytest.mark.parametrize("quality, moves", [("standard", 1), ("max", 3)])
def test_cli_json_stream_moves_on_a_one_tile_image(tmp_path, capsys, quality, moves):
    src = tmp_path / "plate.png"
    import cv2

    cv2.imwrite(str(src), cv2.imread(str(SAMPLE))[:128, :192])
    args = ["convert", str(src), "-o", str(tmp_path / "plate.exr"), "--json", "--tile", "0"]
    if _convert_accepts("--quality"):
        args += ["--quality", quality]
    elif quality != "standard":
        pytest.skip("this engine has no --quality option (it runs all networks, like 'max')")
    assert cli.main(args) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    start = next(e for e in events if e["event"] == "start")
    assert start["load_seconds"] >= 0.0
    progress = [e for e in events if e["event"] == "progress"]
    fractions = [e["fraction"] for e in progress]
    assert len(_moves(fractions)) >= moves, progress
    assert fractions[-1] == pytest.approx(1.0) and progress[-1]["overall"] == pytest.approx(1.0)
    assert all(e["total"] == 1 for e in progress)


# --------------------------------------------------------------------------- Blender
def _recording_job(frame, settings, out):
    job = jobs.Job([frame], settings, out)
    seen = []
    original = job._stage_progress

    def record(*args, **kw):
        original(*args, **kw)
        seen.append(job.progress)

    job._stage_progress = record
    return job, seen


@pytest.mark.parametrize("route", ["in_process", "subprocess"])
def test_blender_job_progress_moves_on_a_one_tile_frame(tmp_path, small_rgb, route):
    out = tmp_path / "hdr"
    frame = jobs.Frame("still", out / "still_hdr.exr", rgb=small_rgb)
    settings = jobs.Settings(route=route, python=sys.executable if route == "subprocess" else "", device="cpu", precision="fp32", tile=0)
    job, seen = _recording_job(frame, settings, out)
    job.start()
    assert job.wait(300) and job.state == "done", job.message
    assert len(_moves(seen)) >= 1, f"{route}: progress {seen}"  # standard quality: two networks
    assert job.progress == pytest.approx(1.0) and job.ready_at >= job.started_at > 0
    job.discard()


def test_blender_status_line_says_loading_then_gives_time_left():
    now = 50.0
    loading = SimpleNamespace(stage="frame still (1/1)", detail="loading the engine", progress=0.0, eta=None, ready_at=0.0, started_at=now - 4.2)
    assert status.status_line(loading, now) == "Reconstruct HDR: frame still (1/1): loading the engine, 4 s (Esc to cancel)"
    running = SimpleNamespace(stage="frame still (1/1)", detail="refine 1/1", progress=0.63, eta=4.4, ready_at=now - 7, started_at=now - 11)
    assert status.status_line(running, now) == "Reconstruct HDR: frame still (1/1) refine 1/1 - 63%, about 0:04 left (Esc to cancel)"
    early = SimpleNamespace(stage="frame still (1/1)", detail="", progress=0.0, eta=None, ready_at=now, started_at=now - 3)
    assert status.status_line(early, now) == "Reconstruct HDR: frame still (1/1) - 0% (Esc to cancel)"


def test_blender_job_eta_from_its_own_progress(tmp_path, small_rgb):
    job = jobs.Job([jobs.Frame("still", tmp_path / "x.exr", rgb=small_rgb)], jobs.Settings(device="cpu"), tmp_path)
    assert job.eta is None  # not started
    job.state = "running"
    job.ready_at = time.perf_counter() - 6.0
    job._stage_progress("hallucinate", 1, 1, 0.25)
    assert job.progress == pytest.approx(0.25)
    assert job.eta == pytest.approx(18.0, abs=0.5)
