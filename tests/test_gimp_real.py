"""The real GIMP 3 plug-in, headless, through ``gimp-console-3.0`` batch mode.

Runs wherever GIMP 3 is installed: on Debian 13 ``apt-get install gimp``; on the
project's Debian 12 CI machine ``.ci/gimp3_root.sh`` runs this file inside a cached
Debian 13 root with GIMP 3.0.4 (``.ci/run`` calls it).  Anywhere else it skips and says
why.

GIMP runs once for the module (``tests/gimp/real_gimp_batch.py``).  The plug-in is
installed with ``adapters/gimp/install.py --python <this interpreter>`` into a throw-away
profile (``GIMP3_DIRECTORY``), exactly as a user installs it; the batch script passes
only the procedure's real arguments (a caller cannot set the auxiliary "Engine Python"),
so the engine is found through the installer's settings file.  Cases: an 8-bit RGB, an
8-bit RGBA, a 16-bit RGB and an 8-bit grayscale PNG, each compared with the engine run
on GIMP's own decoded pixels; GIMP's EXR export of the result; and cancel (GIMP kills a
plug-in whose progress the user cancels), after which nothing may be left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hdr_plugin.io import read_ldr

ROOT = Path(__file__).resolve().parent.parent
BATCH = ROOT / "tests" / "gimp" / "real_gimp_batch.py"
GIMP_CONSOLE = next((shutil.which(n) for n in ("gimp-console-3.0", "gimp-console-3.2", "gimp-console-3") if shutil.which(n)), None)


def _os_release() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "this system"
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return fields.get("PRETTY_NAME", "this system").strip('"')


SKIP_REASON = (
    f"GIMP 3 is not installed here (no gimp-console-3.0 on PATH; this machine: {_os_release()}). "
    "Debian 12 ships GIMP 2.10 only: there .ci/gimp3_root.sh (called by .ci/run) runs this file inside a "
    "cached Debian 13 root with real GIMP 3. On Debian 13, 'apt-get install gimp' provides gimp-console-3.0."
)

pytestmark = [pytest.mark.gimp, pytest.mark.slow, pytest.mark.skipif(GIMP_CONSOLE is None, reason=SKIP_REASON)]


def _gimp_python_problem() -> str | None:
    probe = "import gi; gi.require_version('Gimp', '3.0'); from gi.repository import Gimp"
    r = subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, text=True, timeout=120)
    if r.returncode:
        return f"{GIMP_CONSOLE} is installed but GIMP's Python support is not (Debian 13: gir1.2-gimp-3.0 python3-gi): {r.stderr[-300:]}"
    return None


def _write_inputs(folder: Path, sample: Path) -> list[dict]:
    import cv2

    bgr = cv2.imread(str(sample), cv2.IMREAD_UNCHANGED)
    h, w = bgr.shape[:2]
    crop = bgr[h // 4 : h // 4 + 160, w // 4 : w // 4 + 224]  # has clipped highlights
    ch, cw = crop.shape[:2]
    yy, xx = np.mgrid[0:ch, 0:cw]
    alpha = np.clip((xx * 255) // (cw - 1), 0, 255).astype(np.uint8)
    alpha[: ch // 4] = 0
    # 16-bit: the 8-bit codes plus a smooth sub-code ramp, so values are not multiples of 1/255
    ramp = ((xx + yy) % 200).astype(np.uint16)[..., None]
    u16 = np.clip(crop.astype(np.uint16) * 257 - ramp, 0, 65535).astype(np.uint16)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    files = {
        "rgb8": crop,
        "rgba8": np.dstack([crop, alpha]),
        "rgb16": u16,
        "gray8": gray,
        "cancel": cv2.resize(bgr, (w * 3, h * 3), interpolation=cv2.INTER_CUBIC),
        "after_cancel": crop,
    }
    for name, pixels in files.items():
        assert cv2.imwrite(str(folder / f"{name}.png"), pixels)
    cases = [{"name": n, "src": str(folder / f"{n}.png"), "tile": 0} for n in files]
    for c in cases:
        if c["name"] in ("rgb8", "rgba8"):
            c["exr"] = True
        if c["name"] == "cancel":
            c.update(cancel=True, tile=256, cancel_delay=2.0)
        if c["name"] == "rgba8":
            c["exposure"] = 1.0
    return cases


@pytest.fixture(scope="module")
def gimp(tmp_path_factory, tiny_weights):
    """Install the plug-in, run GIMP once over all cases; returns (report, output folder)."""
    problem = _gimp_python_problem()
    if problem:
        pytest.skip(problem)
    base = tmp_path_factory.mktemp("real_gimp")
    profile, out, tmp = base / "gimp-profile", base / "out", base / "tmp"
    out.mkdir()
    tmp.mkdir()
    r = subprocess.run(
        [sys.executable, str(ROOT / "adapters" / "gimp" / "install.py"), "--dest", str(profile / "plug-ins"), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, HDR_PLUGIN_WEIGHTS=str(tiny_weights)),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    settings = json.loads((profile / "plug-ins" / "hdr_plugin_gimp" / "hdr_plugin_gimp.json").read_text())
    assert settings["engine_python"] == sys.executable
    cases = _write_inputs(base, ROOT / "hdr_plugin" / "data" / "sample.png")
    (base / "cases.json").write_text(json.dumps(cases))
    env = {k: v for k, v in os.environ.items() if k != "HDR_PLUGIN_PYTHON"}  # only the installer's record
    env.update(
        GIMP3_DIRECTORY=str(profile),
        HOME=str(base),
        TMPDIR=str(tmp),
        HDR_TEST_OUT=str(out),
        HDR_TEST_CASES=str(base / "cases.json"),
        HDR_PLUGIN_WEIGHTS=str(tiny_weights),  # the engine's documented variable; the engine subprocess inherits it
        HDR_PLUGIN_DISABLE_ENTRYPOINTS="1",
    )
    r = subprocess.run(
        [GIMP_CONSOLE, "-i", "--batch-interpreter=python-fu-eval", "-b", "-", "--quit"],
        input=BATCH.read_text(),
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    report_path = out / "report.json"
    assert report_path.is_file(), f"GIMP produced no report (rc {r.returncode}):\n{r.stdout}\n{r.stderr}"
    report = json.loads(report_path.read_text())
    report["_log"] = r.stdout[-3000:] + r.stderr[-3000:]
    return report, out


@pytest.fixture(scope="module")
def reference_engine(tiny_weights):
    from hdr_plugin.pipeline import Engine
    from hdr_plugin.plugins import make_plugin_manager

    return Engine(tiny_weights, device="cpu", precision="fp32", tile=0, plugin_manager=make_plugin_manager(load_entrypoints=False))


def _case(gimp, name) -> dict:
    report, _ = gimp
    rep = report["cases"].get(name)
    assert rep is not None, f"GIMP did not reach case {name}: {report['_log']}"
    assert "error" not in rep, rep["error"] + report["_log"]
    return rep


def _array(out: Path, name: str, what: str, channels: int, rep: dict) -> np.ndarray:
    w, h = rep["size"]
    return np.fromfile(out / f"{name}.{what}.f32", dtype=np.float32).reshape(h, w, channels)


def _check_against_engine(gimp, name, engine, exposure=0.0) -> tuple[dict, np.ndarray]:
    rep = _case(gimp, name)
    out = gimp[1]
    assert rep["status"] == "success", rep
    assert rep["precision"] == "float-linear" and rep["base"] == "rgb"
    assert rep["result_size"] == rep["size"] and rep["source_unchanged"]
    hdr = _array(out, name, "hdr", 4, rep)
    display = _array(out, name, "display", 3, rep)
    ref = engine.reconstruct(display, exposure=exposure).image
    np.testing.assert_allclose(hdr[..., :3], ref, rtol=1e-4, atol=1e-5)
    assert hdr[..., :3].max() > 1.0, "no restored highlights above 1.0"
    return rep, hdr


def test_plugin_registers_in_real_gimp(gimp):
    report, _ = gimp
    assert report["registered"], report["_log"]
    assert report["gimp_version"].startswith("3."), report["gimp_version"]


def test_rgb_8bit(gimp, reference_engine):
    rep, hdr = _check_against_engine(gimp, "rgb8", reference_engine)
    assert rep["source_precision"] == "u8-non-linear" and not rep["source_alpha"]
    assert not rep["result_alpha"] and np.all(hdr[..., 3] == 1.0)
    assert rep["result_name"] == "HDR (+0.0 EV)"
    display = _array(gimp[1], "rgb8", "display", 3, rep)
    np.testing.assert_array_equal(np.round(display * 255) / 255, display)  # code / 255: display-referred


def test_rgba_8bit_keeps_alpha(gimp, reference_engine):
    rep, hdr = _check_against_engine(gimp, "rgba8", reference_engine, exposure=1.0)
    assert rep["source_alpha"] and rep["result_alpha"]
    source_alpha = _array(gimp[1], "rgba8", "source_rgba", 4, rep)[..., 3]
    # alpha passes through; code/255 computed on either side of GIMP may differ by one float32 ulp
    np.testing.assert_allclose(hdr[..., 3], source_alpha, rtol=0, atol=2e-7)
    assert source_alpha.min() == 0.0 and source_alpha.max() == 1.0
    assert rep["result_name"] == "HDR (+1.0 EV)"


def test_rgb_16bit_keeps_the_extra_precision(gimp, reference_engine):
    rep, _ = _check_against_engine(gimp, "rgb16", reference_engine)
    assert rep["source_precision"].startswith("u16"), rep["source_precision"]
    display = _array(gimp[1], "rgb16", "display", 3, rep)
    codes = display * 65535
    np.testing.assert_allclose(codes, np.round(codes), atol=2e-3)  # exactly the 16-bit codes ...
    assert np.mean(np.abs(display * 255 - np.round(display * 255)) > 1e-3) > 0.5  # ... not 8-bit ones


def test_grayscale_is_converted(gimp, reference_engine):
    rep, hdr = _check_against_engine(gimp, "gray8", reference_engine)
    assert rep["source_base"] == "gray"
    display = _array(gimp[1], "gray8", "display", 3, rep)
    assert np.array_equal(display[..., 0], display[..., 1]) and np.array_equal(display[..., 1], display[..., 2])
    gray = read_ldr(gimp[1].parent / "gray8.png").rgb[..., 0]
    np.testing.assert_array_equal(display[..., 0], gray)  # GIMP's gray, replicated into R'G'B'


@pytest.mark.parametrize("name", ["rgb8", "rgba8"])
def test_gimp_exports_the_result_as_exr(gimp, name):
    import OpenEXR

    rep = _case(gimp, name)
    assert rep.get("exr_saved"), rep
    hdr = _array(gimp[1], name, "hdr", 4, rep)
    with OpenEXR.File(str(gimp[1] / f"{name}.exr"), separate_channels=True) as f:
        channels = {k: np.asarray(v.pixels) for k, v in f.channels().items()}
    assert set("RGB") <= set(channels), sorted(channels)
    assert all(c.dtype == np.float32 for c in channels.values()), {k: v.dtype for k, v in channels.items()}
    data = np.dstack([channels[c] for c in "RGBA" if c in channels])
    assert data.shape[:2] == hdr.shape[:2]
    assert data[..., :3].max() > 1.0
    if name == "rgb8":
        np.testing.assert_array_equal(data[..., :3], hdr[..., :3])  # float32 pixels, bit for bit
    else:
        assert data.shape[2] == 4
        # EXR alpha is associated: GIMP (babl) multiplies colour by alpha on export, with
        # alpha floored at 1/65536 so colour survives fully transparent pixels
        np.testing.assert_array_equal(data[..., 3], hdr[..., 3])
        floor = np.maximum(hdr[..., 3:], np.float32(1 / 65536))
        np.testing.assert_array_equal(data[..., :3], hdr[..., :3] * floor)


def test_cancel_leaves_nothing_behind(gimp):
    rep = _case(gimp, "cancel")
    assert rep.get("plugin_pid") and rep.get("engine_alive_at_kill"), f"the engine was not caught running: {rep}"
    assert rep["status"] != "success"
    assert rep["new_images"] == 0, "a cancelled run must not create an image"
    assert rep["source_unchanged"]
    assert not rep["engine_alive_after"], "the engine kept running after GIMP killed the plug-in"
    assert rep["engine_exit_seconds"] < 30


def test_after_cancel_the_next_run_works_and_cleans_up(gimp, reference_engine):
    killed = _case(gimp, "cancel")
    assert killed["workdirs_after_cancel"], "the killed plug-in could not have cleaned up its folder"
    _check_against_engine(gimp, "after_cancel", reference_engine)
    rep = _case(gimp, "after_cancel")
    assert rep["workdirs"] == [], f"temporary folders left behind: {rep['workdirs']}"
