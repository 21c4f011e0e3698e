"""The real GIMP 3 plug-in, headless, through ``gimp-console-3.0`` batch mode.

Runs wherever GIMP 3 is installed (Debian 13: ``apt-get install gimp``).  Debian 12
ships GIMP 2.10 only, so there this test is skipped with a reason that says so.  It
installs the plug-in with ``adapters/gimp/install.py`` into a throw-away GIMP profile
(``GIMP3_DIRECTORY``), loads the sample PNG with GIMP, runs the procedure through the PDB
with this interpreter as the engine Python, and checks the new image's float pixels
against the engine's own output.
"""

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

from hdr_plugin.io import read_ldr

ROOT = Path(__file__).resolve().parent.parent
GIMP_CONSOLE = next((shutil.which(n) for n in ("gimp-console-3.0", "gimp-console-3.2", "gimp-console-3") if shutil.which(n)), None)


def _os_release() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "this system"
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return fields.get("PRETTY_NAME", "this system").strip('"')


SKIP_REASON = (
    f"GIMP 3 is not installed (no gimp-console-3.0 on PATH): GIMP 3 is not installable on Debian 12 "
    f"(bookworm ships GIMP 2.10 only; this machine: {_os_release()}). On Debian 13 'apt-get install gimp' "
    "provides gimp-console-3.0 and this test runs."
)

BATCH = textwrap.dedent(
    """
    import json, os
    import gi
    gi.require_version('Gimp', '3.0')
    gi.require_version('Gegl', '0.4')
    from gi.repository import Gimp, Gio, Gegl
    src, out, python = os.environ['HDR_TEST_SRC'], os.environ['HDR_TEST_OUT'], os.environ['HDR_TEST_PYTHON']
    report = {}
    try:
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(src))
        layer = image.get_layers()[0]
        w, h = layer.get_width(), layer.get_height()
        rect = Gegl.Rectangle.new(0, 0, w, h)
        before = bytes(layer.get_buffer().get(rect, 1.0, "R'G'B'A float", Gegl.AbyssPolicy.NONE))
        proc = Gimp.get_pdb().lookup_procedure('plug-in-hdr-plugin-reconstruct')
        report['registered'] = proc is not None
        config = proc.create_config()
        config.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
        config.set_property('image', image)
        config.set_core_object_array('drawables', [layer])
        config.set_property('device', 'cpu')
        config.set_property('precision', 'fp32')
        config.set_property('tile-size', 0)
        config.set_property('engine-python', python)
        result = proc.run(config)
        report['status'] = result.index(0).value_nick
        new = result.index(1)
        report['precision'] = new.get_precision().value_nick
        nl = new.get_layers()[0]
        report['size'] = [nl.get_width(), nl.get_height()]
        report['alpha'] = bool(nl.has_alpha())
        data = nl.get_buffer().get(rect, 1.0, 'RGB float', Gegl.AbyssPolicy.NONE)
        with open(out + '.f32', 'wb') as f:
            f.write(bytes(data))
        after = bytes(layer.get_buffer().get(rect, 1.0, "R'G'B'A float", Gegl.AbyssPolicy.NONE))
        report['source_unchanged'] = before == after
    except Exception as e:
        import traceback
        report['error'] = traceback.format_exc()
    with open(out + '.json', 'w') as f:
        json.dump(report, f)
    """
)


def _gimp_python_problem() -> str | None:
    probe = "import gi; gi.require_version('Gimp', '3.0'); from gi.repository import Gimp"
    r = subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, text=True, timeout=120)
    if r.returncode:
        return f"{GIMP_CONSOLE} is installed but GIMP's Python support is not (install gimp-python3 / gir1.2-gimp-3.0)"
    return None


@pytest.mark.gimp
@pytest.mark.slow
@pytest.mark.skipif(GIMP_CONSOLE is None, reason=SKIP_REASON)
def test_real_gimp_batch_mode(tmp_path, sample_path, tiny_weights, engine):
    problem = _gimp_python_problem()
    if problem:
        pytest.skip(problem)
    profile = tmp_path / "gimp-profile"
    r = subprocess.run(
        [sys.executable, str(ROOT / "adapters" / "gimp" / "install.py"), "--dest", str(profile / "plug-ins"), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    src = tmp_path / "plate.png"
    shutil.copy(sample_path, src)
    env = dict(
        os.environ,
        GIMP3_DIRECTORY=str(profile),
        HDR_TEST_SRC=str(src),
        HDR_TEST_OUT=str(tmp_path / "result"),
        HDR_TEST_PYTHON=sys.executable,
        HDR_PLUGIN_WEIGHTS=str(tiny_weights),
    )
    r = subprocess.run(
        [GIMP_CONSOLE, "-i", "--batch-interpreter=python-fu-eval", "-b", "-", "--quit"],
        input=BATCH,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    report_path = tmp_path / "result.json"
    assert report_path.is_file(), f"GIMP produced no report (rc {r.returncode}):\n{r.stdout}\n{r.stderr}"
    report = json.loads(report_path.read_text())
    assert "error" not in report, report["error"] + r.stderr
    assert report["registered"] and report["status"] == "success"
    assert report["precision"] == "float-linear" and report["source_unchanged"]
    w, h = report["size"]
    hdr = np.fromfile(tmp_path / "result.f32", dtype=np.float32).reshape(h, w, 3)
    assert hdr.max() > 1.0
    ref = engine.reconstruct(read_ldr(sample_path).rgb).image
    np.testing.assert_allclose(hdr, ref, rtol=1e-4, atol=1e-5)
