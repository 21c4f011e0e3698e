"""Batch script for tests/test_gimp_real.py, run by real GIMP 3:

    gimp-console-3.0 -i --batch-interpreter=python-fu-eval -b - --quit < this file

It calls the installed plug-in the way a user's batch script does: through the PDB, with
only the procedure's real arguments (exposure, device, precision, tile size).  The engine
Python comes from what ``install.py`` recorded, never from the config (a caller cannot set
auxiliary arguments).  ``$HDR_TEST_CASES`` is a JSON list of cases; for each one the
source and result pixels are written next to ``$HDR_TEST_OUT`` and a report of what GIMP
said goes to ``$HDR_TEST_OUT/report.json``.

Case keys: ``name``, ``src`` (file GIMP loads), ``tile``, ``exr`` (also export the result
with GIMP's own EXR exporter), ``cancel`` (kill the plug-in while its engine runs, which
is what GIMP does when the user cancels the progress bar).
"""

import json
import os
import signal
import tempfile
import threading
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROC = "plug-in-hdr-plugin-reconstruct"
out_dir = os.environ["HDR_TEST_OUT"]
cases = json.load(open(os.environ["HDR_TEST_CASES"]))
report = {"gimp_version": Gimp.version(), "cases": {}}


def save(name, data):
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(bytes(data))


def pixels(drawable, fmt):
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE))


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def find_engine():
    """(engine pid, plug-in pid) of a running ``python -m hdr_plugin convert --pairs``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        args = cmdline(entry)
        if b"hdr_plugin" in args and b"convert" in args and b"--pairs" in args:
            ppid = parent(entry)
            if ppid and any(a.endswith(b"hdr_plugin_gimp.py") for a in cmdline(ppid)):
                return int(entry), ppid
    return None


def killer(state, delay):
    """Kill the plug-in ``delay`` s after its engine started, as GIMP's cancel does."""
    deadline = time.time() + 300
    while time.time() < deadline and not state.get("stop"):
        found = find_engine()
        if found:
            time.sleep(delay)
            state["engine_pid"], state["plugin_pid"] = found
            state["engine_alive_at_kill"] = alive(found[0])
            os.kill(found[1], signal.SIGKILL)
            return
        time.sleep(0.05)


def workdirs():
    tmp = tempfile.gettempdir()
    return sorted(n for n in os.listdir(tmp) if n.startswith("hdr_plugin_gimp_"))


pdb = Gimp.get_pdb()
report["registered"] = pdb.lookup_procedure(PROC) is not None
for case in cases:
    name = case["name"]
    rep = report["cases"][name] = {}
    try:
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["src"]))
        layer = image.get_layers()[0]
        rep["source_precision"] = image.get_precision().value_nick
        rep["source_base"] = image.get_base_type().value_nick
        rep["source_alpha"] = bool(layer.has_alpha())
        rep["size"] = [layer.get_width(), layer.get_height()]
        before = pixels(layer, "R'G'B'A float")
        save(f"{name}.display.f32", pixels(layer, "R'G'B' float"))
        save(f"{name}.source_rgba.f32", before)
        proc = pdb.lookup_procedure(PROC)
        config = proc.create_config()
        config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
        config.set_property("image", image)
        config.set_core_object_array("drawables", [layer])
        config.set_property("exposure", float(case.get("exposure", 0.0)))
        config.set_property("device", "cpu")
        config.set_property("precision", "fp32")
        config.set_property("tile-size", int(case.get("tile", 0)))
        images_before = len(Gimp.get_images())
        state = {}
        if case.get("cancel"):
            watcher = threading.Thread(target=killer, args=(state, float(case.get("cancel_delay", 2.0))), daemon=True)
            watcher.start()
        t0 = time.time()
        result = proc.run(config)
        rep["seconds"] = round(time.time() - t0, 2)
        rep["status"] = result.index(0).value_nick
        if case.get("cancel"):
            state["stop"] = True
            watcher.join(10)
            rep.update({k: v for k, v in state.items() if k != "stop"})
            pid = state.get("engine_pid")
            t = time.time()
            while pid and alive(pid) and time.time() - t < 60:
                time.sleep(0.1)
            rep["engine_alive_after"] = bool(pid and alive(pid))
            rep["engine_exit_seconds"] = round(time.time() - t, 2)
            rep["new_images"] = len(Gimp.get_images()) - images_before
            rep["workdirs_after_cancel"] = workdirs()
        elif rep["status"] == "success":
            new = result.index(1)
            rep["precision"] = new.get_precision().value_nick
            rep["base"] = new.get_base_type().value_nick
            nl = new.get_layers()[0]
            rep["result_size"] = [nl.get_width(), nl.get_height()]
            rep["result_alpha"] = bool(nl.has_alpha())
            rep["result_name"] = nl.get_name()
            save(f"{name}.hdr.f32", pixels(nl, "RGBA float"))
            if case.get("exr"):
                exr = os.path.join(out_dir, f"{name}.exr")
                rep["exr_saved"] = bool(Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, new, Gio.File.new_for_path(exr), None))
            new.delete()
        rep["source_unchanged"] = pixels(layer, "R'G'B'A float") == before
        rep["workdirs"] = workdirs()
        image.delete()
    except Exception:
        rep["error"] = traceback.format_exc()
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
