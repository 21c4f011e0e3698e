"""The Nuke toolset (adapters/nuke) against a stand-in ``nuke`` module that records calls.

Nuke is proprietary and cannot be installed here, so tests/nuke/nuke_stub.py models the
nodes, knobs, ``nuke.execute`` and ``nuke.ProgressTask`` the toolset uses; the engine
itself is real: ``python -m hdr_plugin convert`` runs under this test run's interpreter.
The engine command's own contract (``--pairs``, ``--input-encoding``, alpha, SIGTERM) is
tested in tests/test_cli.py.
"""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hdr_plugin.color import linear_to_srgb
from hdr_plugin.io import read_hdr

ROOT = Path(__file__).resolve().parent.parent
NUKE_DIR = ROOT / "adapters" / "nuke"
sys.path.insert(0, str(ROOT / "tests" / "nuke"))

import nuke_stub  # noqa: E402


@pytest.fixture
def nuke(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nuke", nuke_stub)
    monkeypatch.syspath_prepend(str(NUKE_DIR))
    monkeypatch.setenv("HDR_PLUGIN_PYTHON", sys.executable)
    monkeypatch.setenv("HDR_PLUGIN_NUKE_CACHE", str(tmp_path / "cache"))
    nuke_stub.reset()
    yield nuke_stub
    nuke_stub.reset()


@pytest.fixture
def toolset(nuke):
    sys.modules.pop("hdr_plugin_nuke", None)
    import hdr_plugin_nuke

    return hdr_plugin_nuke


def _frames(n: int, h: int = 40, w: int = 48, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = {}
    for f in range(1, n + 1):
        rgb = rng.random((h, w, 3)).astype(np.float32) * 0.6
        rgb[5:15, 10:25] = 3.0 + f  # over the clipping level: clipped once converted to display
        alpha = np.tile(np.linspace(0.2, 1.0, w, dtype=np.float32), (h, 1))
        frames[f] = np.dstack([rgb, alpha])
    return frames


def _calls(name):
    return [c for c in nuke_stub.CALLS if c[0] == name]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --------------------------------------------------------------------------- the Group
def test_group_wiring_and_knobs(toolset, nuke):
    g = toolset.create_node()
    assert g.Class() == "Group" and g.name() == "HDRReconstruct1"
    inp, cs, write, read, out = (g.node(n) for n in ("Input1", "ToDisplay", "RenderInput", "Result", "Output1"))
    assert cs.input(0) is inp and write.input(0) is cs and out.input(0) is read
    assert (cs["colorspace_in"].value(), cs["colorspace_out"].value()) == ("linear", "sRGB")
    assert write["file_type"].value() == "exr" and write["datatype"].value() == "32 bit float"
    assert write["raw"].value() and write["disable"].value()  # only enabled while rendering
    assert read["raw"].value()
    for knob in ("exposure", "device", "precision", "tile", "first_frame", "last_frame", "engine_python", "cache_dir", "reconstruct"):
        assert g.knob(knob) is not None, knob
    assert (g["first_frame"].value(), g["last_frame"].value()) == (1, 3)  # from the root
    assert "hdr_plugin_nuke.reconstruct(nuke.thisNode())" in g["reconstruct"].command
    assert g["engine_python"].value() == sys.executable


def test_ocio_names_are_picked_from_what_the_knob_offers(toolset, nuke, monkeypatch):
    monkeypatch.setattr(nuke_stub, "COLORSPACES", ["ACES - ACEScg", "scene_linear", "Output - sRGB"])
    g = toolset.create_node()
    cs = g.node("ToDisplay")
    assert (cs["colorspace_in"].value(), cs["colorspace_out"].value()) == ("scene_linear", "Output - sRGB")
    monkeypatch.setattr(nuke_stub, "COLORSPACES", ["ACES - ACEScg", "ACES - ACES2065-1"])
    g = toolset.create_node("HDRReconstruct2")
    assert "ToDisplay" in g["status"].value()


# --------------------------------------------------------------------------- reconstruct
def test_reconstruct_renders_runs_engine_and_reads_back(toolset, nuke, default_engine, tmp_path, monkeypatch):
    engine = default_engine
    # a stray hdr_plugin folder in Nuke's working folder must not shadow the installed engine
    (tmp_path / "cwd" / "hdr_plugin").mkdir(parents=True)
    (tmp_path / "cwd" / "hdr_plugin" / "__main__.py").write_text("raise SystemExit('shadowed')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    nuke.FRAMES.update(_frames(3))
    g = toolset.create_node()
    assert toolset.reconstruct(g) is True, _calls("message")
    assert [c for c in _calls("execute") if c[1] == "RenderInput"] == [("execute", "RenderInput", 1, 3)]
    assert g.node("RenderInput")["disable"].value()
    read = g.node("Result")
    pattern = read["file"].value()
    assert pattern.endswith("HDRReconstruct1.####.exr") and read["raw"].value()
    assert (read["first"].value(), read["last"].value()) == (1, 3)
    assert ("execute", "reload") in nuke.CALLS
    for f in (1, 2, 3):
        out = read_hdr(pattern.replace("####", f"{f:04d}"))
        display = np.clip(linear_to_srgb(nuke.FRAMES[f][..., :3]), 0, 1).astype(np.float32)
        np.testing.assert_allclose(out, engine.reconstruct(display).image, rtol=1e-5, atol=1e-6)
        assert out.max() > 1.0
    import OpenEXR

    with OpenEXR.File(pattern.replace("####", "0002"), separate_channels=True) as fh:
        np.testing.assert_allclose(fh.parts[0].channels["A"].pixels, nuke.FRAMES[2][..., 3], atol=1e-3)  # alpha passed through
    progress = [c[1] for c in _calls("ProgressTask.setProgress")]
    assert progress and progress == sorted(progress) and progress[-1] == 100
    assert _calls("ProgressTask.end")
    cache = tmp_path / "cache" / "HDRReconstruct1"
    assert _files(cache) == [f"hdr/HDRReconstruct1.000{f}.exr" for f in (1, 2, 3)]  # no inputs, staging or partials left
    assert "reconstructed" in g["status"].value()


def test_cancel_terminates_engine_and_keeps_previous_results(toolset, nuke, tmp_path):
    nuke.FRAMES.update(_frames(4, h=64, w=64))
    g = toolset.create_node()
    previous = tmp_path / "cache" / "HDRReconstruct1" / "hdr" / "HDRReconstruct1.0001.exr"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"previous result")
    nuke.CANCEL_AFTER_PROGRESS[0] = 1  # the user presses Cancel once the engine reports progress
    t0 = time.monotonic()
    assert toolset.reconstruct(g) is False
    assert time.monotonic() - t0 < 120
    assert _calls("ProgressTask.cancel") and _calls("ProgressTask.end")
    hdr = tmp_path / "cache" / "HDRReconstruct1" / "hdr"
    assert _files(hdr) == ["HDRReconstruct1.0001.exr"] and previous.read_bytes() == b"previous result"
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".staging-" in str(p) or ".partial" in p.name]
    assert g.node("Result")["file"].value() == ""  # the Read was not repointed
    assert "cancelled" in g["status"].value() and not _calls("message")


def test_cancelled_input_render_runs_no_engine(toolset, nuke):
    nuke.FRAMES.update(_frames(2))
    nuke.CANCEL_EXECUTE[0] = True
    g = toolset.create_node()
    assert toolset.reconstruct(g) is False
    assert not _calls("ProgressTask") and g.node("RenderInput")["disable"].value()


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a Python without hdr_plugin")
def test_engine_python_without_the_engine_names_what_to_install(toolset, nuke, tmp_path):
    nuke.FRAMES.update(_frames(1))
    g = toolset.create_node()
    g["engine_python"].setValue("/usr/bin/python3")
    g["last_frame"].setValue(1)
    assert toolset.reconstruct(g) is False
    (text,) = [c[1] for c in _calls("message")]
    assert "pip install torch==2.13.0" in text and "pip install hdr-plugin" not in text and "engine Python" in text
    assert _files(tmp_path / "cache" / "HDRReconstruct1" / "hdr") == []


def test_no_engine_python_anywhere(toolset, nuke, monkeypatch):
    monkeypatch.delenv("HDR_PLUGIN_PYTHON")
    g = toolset.create_node()
    assert toolset.reconstruct(g) is False
    assert "engine Python" in _calls("message")[0][1] and not _calls("execute")


def test_menu_and_init(nuke, toolset):
    runpy.run_path(str(NUKE_DIR / "init.py"))
    runpy.run_path(str(NUKE_DIR / "menu.py"))
    items = nuke_stub.menu("Nodes").items["HDR Plugin"].items
    assert items["HDR Reconstruct"] == "hdr_plugin_nuke.create_node()"
    assert "hdr_plugin_nuke.export_torchscript()" in items.values()


def test_acescg_output_tags_the_read_acescg(toolset, nuke, monkeypatch):
    """Output space ACEScg: the engine writes ACEScg (AP1 chromaticities) and the inner Read's
    colorspace is the project's ACEScg; a config without it is refused with the reason."""
    import OpenEXR

    monkeypatch.setattr(nuke, "READ_COLORSPACES", ["ACES - ACES2065-1", "ACES - ACEScg", "Utility - Linear - sRGB"])
    nuke.FRAMES.update(_frames(1))
    g = toolset.create_node()
    g["first_frame"].setValue(1)
    g["last_frame"].setValue(1)
    g["output_space"].setValue("acescg")
    assert toolset.reconstruct(g) is True, _calls("message")
    read = g.node("Result")
    assert read["colorspace"].value() == "ACES - ACEScg" and not read["raw"].value()
    with OpenEXR.File(read["file"].value().replace("####", "0001")) as fh:
        header = dict(fh.header())
    np.testing.assert_allclose(header["chromaticities"], (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767), atol=1e-6)
    assert header["hdrPluginColorSpace"] == "acescg"


def test_output_space_missing_from_the_config_is_refused(toolset, nuke):
    nuke.FRAMES.update(_frames(1))
    g = toolset.create_node()  # the stub's default (nuke-default) config has no ACES spaces
    g["output_space"].setValue("aces2065-1")
    assert toolset.reconstruct(g) is False
    assert "no colour space for aces2065-1" in g["status"].value()
    assert not _calls("execute")  # refused before rendering anything
