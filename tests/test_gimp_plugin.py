"""The GIMP 3 plug-in's glue and pixel path against the real GEGL.

GIMP 3 itself cannot be installed on Debian 12, so the plug-in runs under the *system*
Python (Debian's python3-gi + gir1.2-gegl-0.4 + gir1.2-babl-0.1, installed by
``.ci/gimp_deps.sh``) with a small stand-in for the ``Gimp`` module only
(tests/gimp/gimp_stub.py).  Layer pixels live in real GEGL buffers, and the engine runs
through the plug-in's external-Python route with this test run's interpreter, exactly as
inside GIMP without torch.  The real-GIMP batch test is tests/test_gimp_real.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hdr_plugin.io import read_ldr

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "adapters" / "gimp" / "hdr_plugin_gimp"
HELPER = ROOT / "tests" / "gimp" / "run_plugin_with_stub.py"
SYSTEM_PYTHON = "/usr/bin/python3"
DEPS_HINT = "run .ci/gimp_deps.sh (apt-get install gir1.2-gegl-0.4 gir1.2-babl-0.1 python3-gi python3-numpy)"

pytestmark = pytest.mark.gimp


def _system_gegl_problem() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found; {DEPS_HINT}"
    probe = "import gi; gi.require_version('Gegl','0.4'); gi.require_version('Babl','0.1'); from gi.repository import Gegl, Babl; Gegl.init(None)"
    r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=120)
    if r.returncode:
        return f"system Python lacks GEGL/PyGObject ({r.stderr.strip().splitlines()[-1:]}); {DEPS_HINT}"
    return None


@pytest.fixture(scope="module")
def gegl_report(tmp_path_factory, sample_path_module, tiny_weights):
    """Run every scenario once in one system-Python process; returns (report by name, out dir)."""
    problem = _system_gegl_problem()
    if problem:
        pytest.skip(problem)
    out = tmp_path_factory.mktemp("gimp_stub")
    rgb = read_ldr(sample_path_module).rgb[224:288, 256:352]  # 96x64 with clipped highlights
    h, w = rgb.shape[:2]
    code = np.round(rgb * 255).astype(np.uint8)
    alpha = np.tile(np.linspace(40, 255, w).astype(np.uint8), (h, 1))
    np.dstack([code, alpha]).tofile(out / "rgba_u8.raw")
    rgba_f = np.dstack([rgb, np.ones((h, w), np.float32)]).astype(np.float32)
    rgba_f.tofile(out / "rgba_float.raw")
    u8 = {"width": w, "height": h, "precision": "U8_NON_LINEAR", "alpha": True, "pixels": str(out / "rgba_u8.raw"), "pixels_format": "R'G'B'A u8"}
    flt = {"width": w, "height": h, "precision": "FLOAT_NON_LINEAR", "alpha": False, "pixels": str(out / "rgba_float.raw"), "pixels_format": "R'G'B'A float"}
    scenarios = [
        {"name": "u8_rgba_external", "source": u8, "engine_python": sys.executable},
        {"name": "float_rgb_interactive", "source": flt, "env_python": sys.executable, "run_mode": "INTERACTIVE", "exposure": 1.0, "tile": 64},
        {"name": "dialog_cancelled", "source": u8, "engine_python": sys.executable, "run_mode": "INTERACTIVE", "dialog_accept": False},
        {"name": "engine_python_without_engine", "source": u8, "engine_python": SYSTEM_PYTHON},
        {"name": "engine_python_missing", "source": u8, "engine_python": str(out / "no-such-python")},
        {"name": "no_engine_anywhere", "source": u8},
        {"name": "two_drawables", "source": u8, "engine_python": sys.executable, "n_drawables": 2},
    ]
    (out / "scenarios.json").write_text(json.dumps(scenarios))
    env = dict(os.environ, HDR_PLUGIN_WEIGHTS=str(tiny_weights), HDR_PLUGIN_DISABLE_ENTRYPOINTS="1")
    env.pop("HDR_PLUGIN_PYTHON", None)
    cmd = [SYSTEM_PYTHON, str(HELPER), str(PLUGIN_DIR), str(out), str(out / "scenarios.json")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr
    reports = {rep["name"]: rep for rep in json.loads((out / "report.json").read_text())}
    for rep in reports.values():
        assert "crash" not in rep, rep.get("crash")
    return reports, out


@pytest.fixture(scope="module")
def sample_path_module() -> Path:
    return ROOT / "hdr_plugin" / "data" / "sample.png"


def _calls(rep, name):
    return [c for c in rep["calls"] if c[0] == name]


def _pixels(out: Path, name: str, kind: str, channels: int, rep) -> np.ndarray:
    h, w = rep["new_layer"]["height"], rep["new_layer"]["width"]
    return np.fromfile(out / f"{name}.{kind}.f32", dtype=np.float32).reshape(h, w, channels)


def test_procedure_registration(gegl_report):
    rep = gegl_report[0]["u8_rgba_external"]
    assert rep["procedures"] == ["plug-in-hdr-plugin-reconstruct"]
    p = rep["procedure"]
    assert p["menu_paths"] == ["<Image>/Filters/Enhance/"] and p["image_types"] == "RGB*, GRAY*"
    assert p["sensitivity_drawable"]
    assert set(p["arguments"]) == {"exposure", "device", "precision", "tile-size"}
    assert p["arguments"]["device"][1] == ["auto", "cpu", "cuda", "mps"]
    assert "engine-python" in p["aux_arguments"]  # the external Python lives in the plug-in's settings
    assert p["return_values"] == {"new-image": "image"}


@pytest.fixture
def engine(tiny_weights):
    """The reference engine as the plug-in runs it: its settings (cpu, fp32, whole image)
    and otherwise the engine's defaults (the plug-in has no quality setting), not the
    suite's all-networks ``engine`` fixture."""
    from hdr_plugin.pipeline import Engine
    from hdr_plugin.plugins import make_plugin_manager

    return Engine(tiny_weights, device="cpu", precision="fp32", tile=0, plugin_manager=make_plugin_manager(load_entrypoints=False))


def test_hdr_values_above_one_survive_into_new_float_linear_image(gegl_report, engine):
    reports, out = gegl_report
    rep = reports["u8_rgba_external"]
    assert rep["status"] == "SUCCESS"
    assert rep["returned_image_is_new"] and rep["new_precision"] == "FLOAT_LINEAR"
    assert rep["new_layer"]["alpha"] is True
    assert rep["new_count_above_1"] > 0 and rep["new_max"] > 1.0
    hdr = _pixels(out, "u8_rgba_external", "hdr", 4, rep)
    display = _pixels(out, "u8_rgba_external", "display", 3, rep)
    # GEGL gave the engine display-referred code values / 255, not linearised ones
    code = np.round(display * 255)
    assert np.abs(display - code / 255).max() < 1e-6
    ref = engine.reconstruct(display).image
    np.testing.assert_allclose(hdr[..., :3], ref, rtol=1e-5, atol=1e-6)  # float EXR both ways: exact
    expected_alpha = np.tile(np.linspace(40, 255, hdr.shape[1]).astype(np.uint8), (hdr.shape[0], 1)) / 255.0
    np.testing.assert_allclose(hdr[..., 3], expected_alpha, atol=1e-6)  # alpha kept


def test_source_untouched_and_no_display_in_batch_mode(gegl_report):
    rep = gegl_report[0]["u8_rgba_external"]
    assert rep["source_unchanged"] and rep["source_updates"] == []
    assert not _calls(rep, "get_shadow_buffer")
    assert not _calls(rep, "Display.new") and not _calls(rep, "ProcedureDialog.new")
    updates = [float(c[1]) for c in _calls(rep, "progress_update")]
    assert len(updates) >= 4 and updates == sorted(updates) and updates[-1] == 1.0
    assert _calls(rep, "progress_end")


def test_float_source_interactive_dialog_exposure_and_tiles(gegl_report, engine):
    reports, out = gegl_report
    rep = reports["float_rgb_interactive"]
    assert rep["status"] == "SUCCESS" and rep["new_precision"] == "FLOAT_LINEAR"
    assert rep["new_layer"]["alpha"] is False
    assert _calls(rep, "ProcedureDialog.new") and _calls(rep, "ProcedureDialog.fill") and _calls(rep, "Display.new")
    assert rep["source_unchanged"]
    hdr = _pixels(out, "float_rgb_interactive", "hdr", 3, rep)
    display = _pixels(out, "float_rgb_interactive", "display", 3, rep)
    ref = engine.reconstruct(display).image * 2.0  # exposure +1 EV; 64-px tiles stay close to whole-image
    assert hdr.max() > 1.0
    assert np.median(np.abs(hdr - ref) / (ref + 1e-3)) < 0.02


def test_cancelled_dialog_runs_nothing(gegl_report):
    rep = gegl_report[0]["dialog_cancelled"]
    assert rep["status"] == "CANCEL"
    assert not _calls(rep, "Image.new_with_precision") and not _calls(rep, "progress_init")
    assert rep["source_unchanged"]


@pytest.mark.parametrize(
    "name, needle",
    [
        ("engine_python_without_engine", "pip install torch==2.13.0"),
        ("engine_python_missing", "could not be started"),
        ("no_engine_anywhere", "pip install torch==2.13.0"),
    ],
)
def test_errors_are_reported_through_gimp_message_naming_what_to_install(gegl_report, name, needle):
    rep = gegl_report[0][name]
    assert rep["status"] == "EXECUTION_ERROR"
    messages = [c[1] for c in _calls(rep, "message")]
    assert messages and needle in messages[0], messages
    assert "Engine Python" in messages[0]
    assert not _calls(rep, "Image.new_with_precision") and rep["source_unchanged"]


def test_more_than_one_drawable_is_a_calling_error(gegl_report):
    rep = gegl_report[0]["two_drawables"]
    assert rep["status"] == "CALLING_ERROR" and _calls(rep, "message")
