"""The GIMP plug-in's GIMP-free parts, in the project's Python: the minimal EXR codec, the
engine routes (in-process, and external through ``python -m hdr_plugin convert``), settings
and the installer."""

from __future__ import annotations

import array
import json
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hdr_plugin.io import read_hdr, read_ldr, write_exr

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "adapters" / "gimp" / "hdr_plugin_gimp"
INSTALLER = ROOT / "adapters" / "gimp" / "install.py"
sys.path.insert(0, str(PLUGIN_DIR))

import hdr_gimp_core as core  # noqa: E402
import hdr_gimp_exr as exr  # noqa: E402


def _arr(a: np.ndarray) -> array.array:
    return array.array("f", np.ascontiguousarray(a, dtype=np.float32).tobytes())


def _np(a: array.array, h: int, w: int) -> np.ndarray:
    return np.frombuffer(a.tobytes(), dtype=np.float32).reshape(h, w, 3)


@pytest.fixture
def small_display(sample_path) -> np.ndarray:
    return read_ldr(sample_path).rgb[224:288, 256:352]  # 96x64, clipped highlights


# --------------------------------------------------------------------------- minimal EXR
def test_exr_written_by_plugin_reads_bit_exact_with_openexr(tmp_path, rng):
    a = (rng.random((7, 9, 3)) * 40 - 1).astype(np.float32)
    exr.write_rgb(str(tmp_path / "a.exr"), _arr(a), 9, 7)
    assert np.array_equal(read_hdr(tmp_path / "a.exr"), a)


def test_exr_written_by_engine_reads_bit_exact(tmp_path, rng):
    a = (rng.random((5, 11, 3)) * 1000).astype(np.float32)
    write_exr(tmp_path / "b.exr", a, np.ones((5, 11), np.float32), half=False, compression="none", attributes={"hdrPluginVersion": "x"})
    data, w, h = exr.read_rgb(str(tmp_path / "b.exr"))
    assert (w, h) == (11, 5) and np.array_equal(_np(data, h, w), a)


def test_exr_reader_refuses_what_it_cannot_read(tmp_path):
    a = np.ones((4, 4, 3), np.float32)
    write_exr(tmp_path / "zip.exr", a, half=False)
    with pytest.raises(exr.ExrError, match="compression none"):
        exr.read_rgb(str(tmp_path / "zip.exr"))
    write_exr(tmp_path / "half.exr", a, half=True, compression="none")
    with pytest.raises(exr.ExrError, match="32-bit float"):
        exr.read_rgb(str(tmp_path / "half.exr"))
    (tmp_path / "png.exr").write_bytes(b"\x89PNG....")
    with pytest.raises(exr.ExrError, match="not an OpenEXR"):
        exr.read_rgb(str(tmp_path / "png.exr"))
    with pytest.raises(ValueError):
        exr.write_rgb(str(tmp_path / "bad.exr"), array.array("f", [0.0] * 5), 2, 1)


def test_interleave_alpha():
    rgb = array.array("f", [1, 2, 3, 4, 5, 6])
    assert list(core.interleave(rgb, array.array("f", [0.5, 0.25]))) == [1, 2, 3, 0.5, 4, 5, 6, 0.25]


@pytest.fixture
def engine(tiny_weights):
    """The reference engine as the plug-in runs it: its settings (cpu, fp32, whole image)
    and otherwise the engine's defaults (the plug-in has no quality setting), not the
    suite's all-networks ``engine`` fixture."""
    from hdr_plugin.pipeline import Engine
    from hdr_plugin.plugins import make_plugin_manager

    return Engine(tiny_weights, device="cpu", precision="fp32", tile=0, plugin_manager=make_plugin_manager(load_entrypoints=False))


# --------------------------------------------------------------------------- engine routes
def test_in_process_route_matches_engine(small_display, engine):
    h, w = small_display.shape[:2]
    seen = []
    out = core.run_in_process(_arr(small_display), w, h, core.Settings(device="cpu", precision="fp32", tile=0), lambda f, t=None: seen.append(f))
    np.testing.assert_allclose(_np(out, h, w), engine.reconstruct(small_display).image, rtol=1e-5, atol=1e-6)
    assert seen == sorted(seen) and seen[-1] >= 0.95


def test_external_route_matches_engine_exactly(small_display, engine, tmp_path, monkeypatch):
    # a stray hdr_plugin folder where GIMP runs must not shadow the installed engine
    (tmp_path / "hdr_plugin").mkdir()
    (tmp_path / "hdr_plugin" / "__main__.py").write_text("raise SystemExit('shadowed')\n")
    monkeypatch.chdir(tmp_path)
    h, w = small_display.shape[:2]
    seen = []
    settings = core.Settings(exposure=0.5, device="cpu", precision="fp32", tile=0)
    out = core.run_external(_arr(small_display), w, h, settings, sys.executable, lambda f, t=None: seen.append((f, t)))
    ref = engine.reconstruct(small_display).image * 2**0.5
    np.testing.assert_allclose(_np(out, h, w), ref, rtol=1e-6, atol=1e-7)
    assert any(t and "Restoring" in t for _, t in seen)
    assert any(t and t.startswith("Engine on cpu") for _, t in seen)


def test_external_route_command_is_the_engine_cli():
    settings = core.Settings(exposure=-1.5, device="cuda", precision="bf16", tile=512, weights="w")
    cmd = core.engine_command("/py", settings, "/tmp/pairs.json")
    assert cmd[:6] == ["/py", "-m", "hdr_plugin", "convert", "--pairs", "/tmp/pairs.json"]
    text = " ".join(cmd)
    for flags in ("--input-encoding display", "--json", "--float", "--overwrite", "--compression none", "--exposure -1.5", "--tile 512"):
        assert flags in text
    assert cmd[-2:] == ["--weights", str(Path("w").resolve())]


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a Python without hdr_plugin")
def test_external_route_without_the_engine_names_what_to_install():
    px = array.array("f", [0.5] * 3)
    with pytest.raises(core.EngineError, match="No module named hdr_plugin") as e:
        core.run_external(px, 1, 1, core.Settings(device="cpu"), "/usr/bin/python3")
    assert "pip install torch==2.13.0" in str(e.value) and "Engine Python" in str(e.value)


def test_route_selection(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(core, "run_external", lambda rgb, w, h, s, python, p: calls.append(("external", python)) or rgb)
    monkeypatch.setattr(core, "run_in_process", lambda rgb, w, h, s, p: calls.append(("in-process",)) or rgb)
    monkeypatch.setattr(core, "SETTINGS_FILE", str(tmp_path / "settings.json"))
    monkeypatch.delenv(core.ENV_PYTHON, raising=False)
    px = array.array("f", [0.5] * 3)
    assert core.reconstruct_pixels(px, 1, 1, core.Settings(engine_python="/opt/py"))[1] == "external"
    monkeypatch.setenv(core.ENV_PYTHON, "/env/py")
    core.reconstruct_pixels(px, 1, 1, core.Settings())
    monkeypatch.delenv(core.ENV_PYTHON)
    (tmp_path / "settings.json").write_text(json.dumps({"engine_python": "/installed/py"}))
    core.reconstruct_pixels(px, 1, 1, core.Settings())
    (tmp_path / "settings.json").unlink()
    assert core.reconstruct_pixels(px, 1, 1, core.Settings())[1] == "in-process"  # hdr_plugin imports here
    monkeypatch.setattr(core, "in_process_available", lambda: False)
    with pytest.raises(core.EngineError, match="pip install torch==2.13.0"):
        core.reconstruct_pixels(px, 1, 1, core.Settings())
    assert calls == [("external", "/opt/py"), ("external", "/env/py"), ("external", "/installed/py"), ("in-process",)]


def test_settings_from_config_validates():
    class Cfg(dict):
        def get_property(self, name):
            return self[name]

    s = core.Settings.from_config(Cfg({"exposure": 1, "device": "cuda", "precision": "bf16", "tile-size": 0, "engine-python": " /p "}))
    assert (s.exposure, s.device, s.precision, s.tile, s.engine_python) == (1.0, "cuda", "bf16", 0, "/p")
    with pytest.raises(core.EngineError, match="tile size"):
        core.Settings.from_config(Cfg({"exposure": 0, "device": "cpu", "precision": "fp32", "tile-size": 10, "engine-python": ""}))


# --------------------------------------------------------------------------- installer
def _install(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(INSTALLER), *args], capture_output=True, text=True, timeout=300, env=env)


def test_installer_copies_plugin_folder_marks_it_executable_and_records_python(tmp_path):
    r = _install("--dest", str(tmp_path), "--no-check")
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "hdr_plugin_gimp"
    main = folder / "hdr_plugin_gimp.py"
    assert main.is_file() and main.stat().st_mode & stat.S_IXUSR
    for name in ("hdr_gimp_core.py", "hdr_gimp_exr.py"):
        assert (folder / name).is_file()
    assert not (folder / "hdr_exr_runner.py").exists()  # the engine's own CLI does that job
    assert not list(folder.rglob("__pycache__"))
    settings = json.loads((folder / "hdr_plugin_gimp.json").read_text())
    assert settings["engine_python"] == sys.executable
    assert str(folder) in r.stdout and "Filters > Enhance > Reconstruct HDR" in r.stdout
    # reinstalling replaces the folder; --python '' selects GIMP's own Python
    r = _install("--dest", str(tmp_path), "--python", "", "--no-check")
    assert r.returncode == 0 and json.loads((folder / "hdr_plugin_gimp.json").read_text())["engine_python"] == ""


def test_installer_checks_the_engine_python(tmp_path):
    r = _install("--dest", str(tmp_path), "--python", sys.executable)
    assert r.returncode == 0, r.stderr
    assert "hdr_plugin" in r.stdout and "torch" in r.stdout
    if Path("/usr/bin/python3").exists():
        r = _install("--dest", str(tmp_path / "x"), "--python", "/usr/bin/python3")
        assert r.returncode == 1 and "pip install torch==2.13.0" in r.stderr


@pytest.mark.parametrize(
    "system, env, expected",
    [
        ("Linux", {}, ".config/GIMP/3.0/plug-ins"),
        ("Linux", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/GIMP/3.0/plug-ins"),
        ("Darwin", {}, "Library/Application Support/GIMP/3.0/plug-ins"),
        ("Windows", {"APPDATA": "C:/Users/u/AppData/Roaming"}, "C:/Users/u/AppData/Roaming/GIMP/3.0/plug-ins"),
        ("Linux", {"GIMP3_DIRECTORY": "/custom/gimp"}, "/custom/gimp/plug-ins"),
    ],
)
def test_default_plugin_folders(system, env, expected, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("hdr_plugin_gimp_install", INSTALLER)
    install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install)
    got = install.default_plugins_dir(system=system, env=env, home=tmp_path)
    assert got.as_posix().endswith(expected)
