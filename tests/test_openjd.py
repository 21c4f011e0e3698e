"""The Open Job Description template (farm/openjd/hdr_plugin_shot.yaml) run for real with
``openjd run`` (openjd-cli from PyPI): step 1 estimates the shot curve, step 2 converts
chunks of frames in separate sessions' processes, and every chunk uses that one curve."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hdr_plugin import shots
from test_shots import _header, _pixels, write_plate

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "farm" / "openjd" / "hdr_plugin_shot.yaml"
OPENJD = shutil.which("openjd") or str(Path(sys.executable).with_name("openjd"))
HDR_PLUGIN = shutil.which("hdr-plugin") or str(Path(sys.executable).with_name("hdr-plugin"))
pytestmark = pytest.mark.skipif(not Path(OPENJD).exists(), reason='openjd-cli is not installed (pip install openjd-cli, the [farm] extra)')


def _openjd(*args, timeout=600):
    proc = subprocess.run([OPENJD, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    doc = proc.stdout[proc.stdout.find("{"):] if "{" in proc.stdout else ""
    result = json.JSONDecoder().raw_decode(doc)[0] if doc else {}
    return proc, result


def test_template_validates():
    proc, result = _openjd("check", str(TEMPLATE), "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result.get("status") == "success"


def test_template_runs_curve_then_chunks(tmp_path):
    plate = write_plate(tmp_path / "plates", range(1001, 1008))
    out = tmp_path / "out"
    params = {
        "Input": str(plate / "plate.%04d.png"),
        "Output": str(out / "plate.%04d.exr"),
        "Curve": str(out / "plate.curve.npy"),
        "Frames": "1001-1007",
        "ChunkSize": "3",
        "Device": "cpu",
        "Precision": "fp32",
        "HdrPlugin": HDR_PLUGIN,
    }
    args = ["run", str(TEMPLATE), "--step", "Convert", "--run-dependencies", "--output", "json"]
    for k, v in params.items():
        args += ["-p", f"{k}={v}"]
    proc, result = _openjd(*args)
    messages = [entry.get("message", "") for entry in result.get("logs", [])]
    assert proc.returncode == 0 and result.get("status") == "success", "\n".join(messages[-30:]) + proc.stderr
    # 1 curve task + 3 chunks (OpenJD balances 7 frames into chunks of at most 3)
    assert result["chunks_run"] == 4
    chunk_sizes = sorted(int(m.split(": ")[1].split()[0]) for m in messages if m.startswith("shot plate:"))
    assert chunk_sizes == [2, 2, 3]
    curve = np.load(out / "plate.curve.npy")
    sha = shots.curve_sha256(curve)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"plate.{n}.exr" for n in range(1001, 1008)] + ["plate.curve.npy"])
    # the chunks equal one local run with the same curve, frame for frame
    ref = shots.convert_shot(params["Input"], str(tmp_path / "ref" / "plate.%04d.exr"), curve=str(out / "plate.curve.npy"),
                             device="cpu", precision="fp32")
    assert ref.exit_code == 0
    for n in range(1001, 1008):
        h = _header(out / f"plate.{n}.exr")
        assert h["hdrPluginCurveMode"] == "file" and h["hdrPluginCurveSha256"] == sha
        assert _pixels(out / f"plate.{n}.exr").tobytes() == _pixels(tmp_path / "ref" / f"plate.{n}.exr").tobytes()
    # the curve step spread K=8 (here all 7) frames over the shot, as convert would
    assert np.array_equal(curve, shots.estimate_shot_curve(shots.EngineOptions(device="cpu", precision="fp32").build(),
                                                           shots.open_shot(params["Input"]))[0])
