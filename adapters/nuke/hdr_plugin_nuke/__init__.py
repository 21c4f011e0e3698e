"""Nuke toolset for hdr_plugin (the Python route: any Nuke version, any torch, any GPU).

``create_node()`` builds an **HDRReconstruct** Group::

    Input1 -> ToDisplay (Colorspace linear -> sRGB) -> RenderInput (Write: EXR, 32-bit float, raw)
    Result (Read: raw) -> Output1

and its **Reconstruct HDR** button runs :func:`reconstruct`:

1. renders the Group's input over the frame range to display-referred float EXRs with
   ``nuke.execute`` on the inner Write;
2. runs the engine *outside* Nuke (``engine Python`` knob or ``$HDR_PLUGIN_PYTHON``: an
   interpreter with ``hdr-plugin`` installed) as ``python -m hdr_plugin convert --pairs``
   over all the frames, under a ``nuke.ProgressTask``; *Cancel* terminates the engine
   process and nothing of that run is kept (results are staged and moved into place only
   when every frame succeeded);
3. points the inner Read at the scene-linear results (raw, no colour conversion) and
   reloads it.

Nuke's own Python never imports torch (DLL clashes, Python-version mismatches).  The module
only touches ``nuke`` inside functions, so it imports (and is tested) without Nuke.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading

__version__ = "0.1.0"

ENV_PYTHON = "HDR_PLUGIN_PYTHON"
ENV_CACHE = "HDR_PLUGIN_NUKE_CACHE"
MARKER = "hdr_plugin_nuke"

DEVICES = ["auto", "cpu", "cuda", "mps"]
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
#: hdr-plugin --output-space names, and what Nuke's OCIO configs call them (Read colorspace;
#: first offered wins).  lin-rec709 keeps the Read raw: the Group's working-space contract.
OUTPUT_SPACES = ["lin-rec709", "lin-rec2020", "lin-p3", "acescg", "aces2065-1"]
READ_COLORSPACES = {
    "lin-rec2020": ["Linear Rec.2020", "Utility - Linear - Rec.2020", "lin_rec2020"],
    "lin-p3": ["Linear P3-D65", "Utility - Linear - P3-D65", "lin_p3d65"],
    "acescg": ["ACEScg", "ACES - ACEScg", "acescg"],
    "aces2065-1": ["ACES2065-1", "ACES - ACES2065-1", "aces_interchange", "aces2065_1"],
}
LINEAR_NAMES = ["linear", "scene_linear", "Linear", "lin_srgb", "Utility - Linear - sRGB", "Linear Rec.709 (sRGB)"]
SRGB_NAMES = ["sRGB", "srgb_display", "sRGB Encoded Rec.709 (sRGB)", "Output - sRGB", "sRGB - Display", "srgb_tx", "Utility - sRGB - Texture"]
INSTALL_HELP = (
    "Install the engine into a Python environment of its own: 'python -m pip install torch==2.13.0 "
    "--index-url https://download.pytorch.org/whl/cpu' (for an NVIDIA GPU, the CUDA index pytorch.org lists "
    "for your driver), then "
    "'python -m pip install <the hdr-plugin checkout folder or hdr_plugin-VERSION-py3-none-any.whl>' "
    "(hdr-plugin is on no package index), and set the node's "
    "'engine Python' knob (or $HDR_PLUGIN_PYTHON) to that interpreter."
)


# --------------------------------------------------------------------------- building the Group
def _set_first_available(knob, names) -> str | None:
    """Set an enumeration knob to the first of ``names`` it offers (OCIO configs differ)."""
    try:
        offered = list(knob.values())
    except Exception:  # older Nuke: no values(); try blindly
        offered = names
    for name in names:
        if name in offered:
            try:
                knob.setValue(name)
                return name
            except (ValueError, RuntimeError):
                continue
    return None


def default_cache_dir() -> str:
    return os.environ.get(ENV_CACHE) or os.path.join(tempfile.gettempdir(), "hdr_plugin_nuke")


def create_node(name: str | None = None):
    """Create the HDRReconstruct Group (connected to the selected node, if any)."""
    import nuke

    selected = nuke.selectedNodes() if hasattr(nuke, "selectedNodes") else []
    group = nuke.nodes.Group(name=name) if name else nuke.nodes.Group()
    if not name:
        group.setName("HDRReconstruct1")
    group.begin()
    try:
        inp = nuke.nodes.Input(name="Input1")
        to_display = nuke.nodes.Colorspace(name="ToDisplay")
        to_display.setInput(0, inp)
        linear = _set_first_available(to_display["colorspace_in"], LINEAR_NAMES)
        srgb = _set_first_available(to_display["colorspace_out"], SRGB_NAMES)
        write = nuke.nodes.Write(name="RenderInput")
        write.setInput(0, to_display)
        write["file_type"].setValue("exr")
        write["datatype"].setValue("32 bit float")
        write["channels"].setValue("rgba")
        write["raw"].setValue(True)  # values are already display-referred: write them as they are
        write["create_directories"].setValue(True)
        write["disable"].setValue(True)  # only enabled while the button renders it
        read = nuke.nodes.Read(name="Result")
        read["raw"].setValue(True)  # scene-linear Rec.709 results, no conversion
        read["on_error"].setValue("black")
        out = nuke.nodes.Output(name="Output1")
        out.setInput(0, read)
    finally:
        group.end()

    group.addKnob(nuke.Tab_Knob("hdr_plugin", "HDR"))
    exposure = nuke.Double_Knob("exposure", "exposure (EV)")
    exposure.setRange(-10.0, 10.0)
    exposure.setValue(0.0)
    group.addKnob(exposure)
    group.addKnob(nuke.Enumeration_Knob("device", "device", DEVICES))
    group.addKnob(nuke.Enumeration_Knob("precision", "precision", PRECISIONS))
    space = nuke.Enumeration_Knob("output_space", "output space", OUTPUT_SPACES)
    space.setTooltip("colour space of the results; the inner Read is tagged with it (lin-rec709: raw)")
    group.addKnob(space)
    tile = nuke.Int_Knob("tile", "tile size")
    tile.setValue(0)
    tile.setTooltip("tile core size in pixels; 0 (default): automatic, sized from the engine's memory budget")
    group.addKnob(tile)
    root = nuke.root()
    first, last = nuke.Int_Knob("first_frame", "frame range"), nuke.Int_Knob("last_frame", "to")
    first.setValue(int(root.firstFrame()))
    last.setValue(int(root.lastFrame()))
    last.clearFlag(nuke.STARTLINE)
    group.addKnob(first)
    group.addKnob(last)
    python = nuke.File_Knob("engine_python", "engine Python")
    python.setValue(os.environ.get(ENV_PYTHON, ""))
    python.setTooltip("Python interpreter where hdr-plugin is installed (empty: $HDR_PLUGIN_PYTHON)")
    group.addKnob(python)
    cache = nuke.File_Knob("cache_dir", "cache folder")
    cache.setValue(default_cache_dir())
    group.addKnob(cache)
    button = nuke.PyScript_Knob("reconstruct", "Reconstruct HDR", "import hdr_plugin_nuke; hdr_plugin_nuke.reconstruct(nuke.thisNode())")
    button.setFlag(nuke.STARTLINE)
    group.addKnob(button)
    group.addKnob(nuke.Text_Knob("status", "", "not reconstructed yet"))
    marker = nuke.String_Knob(MARKER, MARKER)
    marker.setValue(__version__)
    marker.setFlag(nuke.INVISIBLE)
    group.addKnob(marker)
    if not (linear and srgb):
        group["status"].setValue("set ToDisplay (inside) to convert the working space to sRGB")
    if selected:
        group.setInput(0, selected[0])
    return group


# --------------------------------------------------------------------------- running it
def _space_problem(read, space: str) -> str | None:
    """Why the Read cannot be tagged with ``space`` in this project's OCIO config, or None."""
    if space == "lin-rec709":
        return None
    knob = read.knob("colorspace")
    names = READ_COLORSPACES.get(space, [])
    try:
        offered = list(knob.values()) if knob is not None else []
    except Exception:  # older Nuke: no values(); tag_read tries blindly
        offered = names
    if any(n in offered for n in names):
        return None
    return (
        f"this project's OCIO config has no colour space for {space} (looked for {', '.join(names)}): "
        "use an ACES config or output space lin-rec709"
    )


def tag_read(read, space: str) -> str | None:
    """Set the Read's colorspace for ``space`` (lin-rec709: raw); returns the name set (None: raw)."""
    if space == "lin-rec709":
        read["raw"].setValue(True)
        return None
    read["raw"].setValue(False)
    return _set_first_available(read.knob("colorspace"), READ_COLORSPACES.get(space, []))


def _knob(node, name, default=None):
    k = node.knob(name)
    return default if k is None else k.value()


def _paths(node, cache_dir: str):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", node.name())
    base = os.path.join(os.path.abspath(cache_dir), safe)  # absolute: the engine runs in another folder
    return base, os.path.join(base, "input"), os.path.join(base, "hdr"), safe


def engine_command(python: str, node, pairs_file: str) -> list:
    """The engine's own command line over ``pairs_file``: display-referred float EXRs in
    (alpha passes through), 32-bit float scene-linear EXRs out, JSON lines on stdout."""
    cmd = [python, "-m", "hdr_plugin", "convert", "--pairs", pairs_file, "--input-encoding", "display", "--json", "--float", "--overwrite"]
    cmd += ["--exposure", repr(float(_knob(node, "exposure", 0.0))), "--device", str(_knob(node, "device", "auto"))]
    cmd += ["--output-space", str(_knob(node, "output_space", "lin-rec709") or "lin-rec709")]
    tile = int(_knob(node, "tile", 0) or 0)
    return cmd + ["--precision", str(_knob(node, "precision", "auto")), "--tile", str(tile) if tile > 0 else "auto"]


def _pump(stream, q):
    for line in stream:
        q.put(line)
    q.put(None)


def _stage_fraction(event: dict) -> float:
    """The share of one frame done: the engine's cost-weighted ``fraction`` (JSON progress
    events carry it), else a fixed split per stage (older engines)."""
    if "fraction" in event:
        return float(event["fraction"])
    stage, done, total = event.get("stage", ""), int(event.get("done", 0)), int(event.get("total", 1))
    lo, hi = {"dequantize": (0.0, 0.45), "linearize": (0.45, 0.5), "reconstruct": (0.5, 1.0)}.get(stage, (0.0, 1.0))
    return lo + (hi - lo) * (done / total if total else 1.0)


def _fail(node, nuke, message: str) -> bool:
    node["status"].setValue("failed: " + message[:200])
    nuke.message(f"HDR Reconstruct: {message}")
    return False


def reconstruct(node) -> bool:
    """Render the input, run the engine over the frame range, load the results.

    Returns True on success, False when cancelled or failed (a message says why); a
    cancelled or failed run leaves the previous results and no partial files behind.
    """
    import nuke

    python = (_knob(node, "engine_python", "") or os.environ.get(ENV_PYTHON, "")).strip()
    if not python:
        return _fail(node, nuke, f"no engine Python is set. {INSTALL_HELP}")
    first, last = int(_knob(node, "first_frame")), int(_knob(node, "last_frame"))
    if last < first:
        return _fail(node, nuke, f"the frame range {first}-{last} is empty")
    base, in_dir, out_dir, stem = _paths(node, _knob(node, "cache_dir", "") or default_cache_dir())
    frames = list(range(first, last + 1))
    write, read = node.node("RenderInput"), node.node("Result")
    space = str(_knob(node, "output_space", "lin-rec709") or "lin-rec709")
    problem = _space_problem(read, space)  # before anything is rendered
    if problem is not None:
        return _fail(node, nuke, problem)
    os.makedirs(in_dir, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".staging-", dir=base)
    try:
        # 1. render the input (display-referred float EXR) with Nuke itself
        write["file"].setValue(os.path.join(in_dir, f"{stem}.####.exr").replace("\\", "/"))
        write["disable"].setValue(False)
        try:
            nuke.execute(write, first, last)
        except RuntimeError as e:  # Nuke raises on a cancelled or failed render
            node["status"].setValue(f"input render stopped: {e}")
            return False
        finally:
            write["disable"].setValue(True)
        pairs = [(os.path.join(in_dir, f"{stem}.{f:04d}.exr"), os.path.join(stage, f"{stem}.{f:04d}.exr")) for f in frames]
        pairs_file = os.path.join(stage, "pairs.json")
        with open(pairs_file, "w", encoding="utf-8") as fh:
            json.dump(pairs, fh)

        # 2. the engine, outside Nuke, under a cancellable progress task
        ok, detail = _run_engine(nuke, engine_command(python, node, pairs_file), frames, cwd=stage)
        if not ok:
            if detail == "cancelled":
                node["status"].setValue("cancelled: previous results kept")
                return False
            hint = f" {INSTALL_HELP}" if ("No module named" in detail or "could not be started" in detail) else ""
            return _fail(node, nuke, f"the engine ({python}) failed: {detail}{hint}")

        # 3. every frame succeeded: move the results into place, point the Read at them
        os.makedirs(out_dir, exist_ok=True)
        for _, staged in pairs:
            os.replace(staged, os.path.join(out_dir, os.path.basename(staged)))
        shutil.rmtree(in_dir, ignore_errors=True)  # the float input renders are no longer needed
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    read["file"].setValue(os.path.join(out_dir, f"{stem}.####.exr").replace("\\", "/"))
    for knob, value in (("first", first), ("last", last), ("origfirst", first), ("origlast", last)):
        read[knob].setValue(value)
    tag_read(read, space)
    read["reload"].execute()
    node["status"].setValue(f"frames {first}-{last} reconstructed")
    return True


def _run_engine(nuke, cmd: list, frames: list, cwd: str | None = None) -> tuple:
    """Run the engine command; returns (True, "") or (False, "cancelled" | error text).

    ``cwd``: where it runs (``python -m`` puts that folder first on ``sys.path``, so a stray
    ``hdr_plugin`` folder in Nuke's working folder cannot shadow the installed engine)."""
    task = nuke.ProgressTask("HDR Reconstruct")
    task.setMessage("starting the engine")
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=cwd, creationflags=flags
        )
    except OSError as e:
        del task
        return False, f"could not be started ({e})"
    lines: queue.Queue = queue.Queue()
    stderr: list = []
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    err_thread = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
    err_thread.start()
    errors, count = [], len(frames)
    try:
        while True:
            if task.isCancelled():
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                return False, "cancelled"
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "progress":
                i = int(event.get("index", 0))
                frac = (i + _stage_fraction(event)) / count
                task.setProgress(int(100 * frac))
                task.setMessage(f"frame {frames[i]} ({i + 1}/{count}): {event.get('stage')}")
            elif kind == "start":
                task.setMessage(f"engine on {event.get('device')} ({event.get('precision')})")
            elif kind == "error":
                errors.append(str(event.get("message", "")))
        code = proc.wait()
        err_thread.join(timeout=5)
        if code != 0 or errors:
            detail = "; ".join(e for e in errors if e) or "".join(stderr).strip()[-800:] or f"exit status {code}"
            return False, detail
        task.setProgress(100)
        return True, ""
    finally:
        if proc.poll() is None:  # any exception above: never leave the engine running
            proc.kill()
            proc.wait()
        del task


# --------------------------------------------------------------------------- Inference route helper
def export_torchscript(path: str | None = None, python: str | None = None) -> bool:
    """Write the TorchScript file for CatFileCreator with the engine's Python
    (``python -m hdr_plugin export-torchscript PATH --overwrite``)."""
    import nuke

    python = (python or os.environ.get(ENV_PYTHON, "")).strip()
    if not python:
        nuke.message(f"Set $HDR_PLUGIN_PYTHON first. {INSTALL_HELP}")
        return False
    path = path or nuke.getFilename("TorchScript file for CatFileCreator", "*.pt")
    if not path:
        return False
    r = subprocess.run([python, "-m", "hdr_plugin", "export-torchscript", path, "--overwrite"], capture_output=True, text=True)
    nuke.message((r.stdout if r.returncode == 0 else r.stderr).strip()[-1500:] or f"exit status {r.returncode}")
    return r.returncode == 0


__all__ = ["create_node", "reconstruct", "export_torchscript", "engine_command"]
