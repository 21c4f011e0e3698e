"""Pixel and engine core of the GIMP plug-in; importable without GIMP.

Everything here works on GEGL buffers and plain bytes, so it runs (and is tested) with
the system's GEGL through PyGObject and a stand-in for the ``Gimp`` module only:

* :func:`read_display_rgb` / :func:`read_alpha` read a drawable's buffer as
  ``"R'G'B'A float"``: display-referred values (an 8-bit layer's code value / 255), which
  is what the engine takes, whatever the layer's precision;
* :func:`write_linear` writes scene-linear ``"RGBA float"`` / ``"RGB float"`` into the
  new image's layer, which is FLOAT_LINEAR so values above 1 are stored as they are;
* :func:`reconstruct_pixels` runs the engine in this process when ``hdr_plugin`` imports,
  otherwise (or whenever an *engine Python* is configured) as ``python -m hdr_plugin
  convert`` under that interpreter, exchanging uncompressed float OpenEXR files (never
  8-bit PNG).

Pixels are passed as ``array.array('f')`` of interleaved RGB rows, top row first, so the
subprocess route needs neither numpy nor the OpenEXR package inside GIMP.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import hdr_gimp_exr

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
SETTINGS_FILE = os.path.join(PLUGIN_DIR, "hdr_plugin_gimp.json")
ENV_PYTHON = "HDR_PLUGIN_PYTHON"

FMT_DISPLAY_RGBA = "R'G'B'A float"
FMT_DISPLAY_RGB = "R'G'B' float"
FMT_LINEAR_RGBA = "RGBA float"
FMT_LINEAR_RGB = "RGB float"

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: progress(fraction in [0, 1], text or None)
ProgressFn = Callable[[float, Optional[str]], None]

INSTALL_HELP = (
    "Install the engine in a Python environment of its own: 'python3 -m venv ~/hdr-venv', then "
    "'~/hdr-venv/bin/python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu' "
    "(CPU; for an NVIDIA GPU use the CUDA index that pytorch.org lists for your driver), then "
    "'~/hdr-venv/bin/python -m pip install <hdr_plugin-VERSION-py3-none-any.whl or the hdr-plugin checkout folder>'. "
    "Then run 'adapters/gimp/install.py' with that Python (it records the interpreter), set "
    "$HDR_PLUGIN_PYTHON to it, or set 'Engine Python' in this filter's dialog."
)


class EngineError(RuntimeError):
    """The engine could not run; the message says what to install or set."""


# --------------------------------------------------------------------------- settings
def saved_settings() -> dict:
    """The settings file written by ``install.py`` next to the plug-in ({} when absent)."""
    try:
        with open(SETTINGS_FILE, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def default_engine_python() -> str:
    """``$HDR_PLUGIN_PYTHON``, else the interpreter recorded by ``install.py``, else ''."""
    return os.environ.get(ENV_PYTHON) or str(saved_settings().get("engine_python") or "")


@dataclass
class Settings:
    exposure: float = 0.0
    device: str = "auto"
    precision: str = "auto"
    tile: int = 1024
    engine_python: str = ""
    weights: str = ""

    @classmethod
    def from_config(cls, config) -> "Settings":
        """Read a ``Gimp.ProcedureConfig`` (or anything with ``get_property``)."""

        def get(name, default):
            try:
                value = config.get_property(name)
            except (TypeError, AttributeError):
                return default
            return default if value is None else value

        s = cls(
            exposure=float(get("exposure", 0.0)),
            device=str(get("device", "auto")),
            precision=str(get("precision", "auto")),
            tile=int(get("tile-size", 1024)),
            engine_python=str(get("engine-python", "") or "").strip(),
            weights=str(saved_settings().get("weights") or ""),
        )
        if s.device not in DEVICES:
            raise EngineError(f"unknown device {s.device!r}; choose one of {', '.join(DEVICES)}")
        if s.precision not in PRECISIONS:
            raise EngineError(f"unknown precision {s.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if s.tile != 0 and s.tile < 64:
            raise EngineError(f"tile size must be 0 (whole image) or at least 64, got {s.tile}")
        return s


# --------------------------------------------------------------------------- GEGL pixels
def gegl():
    """The Gegl module, initialised (GIMP has usually done so; a second init is harmless)."""
    import gi

    gi.require_version("Gegl", "0.4")
    from gi.repository import Gegl

    Gegl.init(None)
    return Gegl


def _floats(data: bytes) -> array.array:
    a = array.array("f")
    a.frombytes(bytes(data))
    return a


def read_display_rgb(buffer, x: int, y: int, width: int, height: int) -> array.array:
    """Display-referred RGB floats of a buffer region (``"R'G'B' float"``, alpha dropped)."""
    Gegl = gegl()
    rect = Gegl.Rectangle.new(x, y, width, height)
    return _floats(buffer.get(rect, 1.0, FMT_DISPLAY_RGB, Gegl.AbyssPolicy.CLAMP))


def read_alpha(buffer, x: int, y: int, width: int, height: int) -> array.array:
    """The alpha channel of a buffer region as floats."""
    Gegl = gegl()
    rect = Gegl.Rectangle.new(x, y, width, height)
    rgba = _floats(buffer.get(rect, 1.0, FMT_DISPLAY_RGBA, Gegl.AbyssPolicy.CLAMP))
    return rgba[3::4]


def interleave(rgb: array.array, alpha: array.array) -> array.array:
    """RGB + A -> RGBA (C-speed strided slices, no numpy)."""
    n = len(alpha)
    if len(rgb) != 3 * n:
        raise ValueError(f"RGB has {len(rgb)} floats but alpha {n}")
    out = array.array("f", bytes(16 * n))
    out[0::4], out[1::4], out[2::4], out[3::4] = rgb[0::3], rgb[1::3], rgb[2::3], alpha
    return out


def write_linear(buffer, x: int, y: int, width: int, height: int, rgb: array.array, alpha: array.array | None = None) -> None:
    """Write scene-linear RGB (and alpha) floats into ``buffer`` and flush it."""
    Gegl = gegl()
    rect = Gegl.Rectangle.new(x, y, width, height)
    if alpha is None:
        buffer.set(rect, FMT_LINEAR_RGB, rgb.tobytes())
    else:
        buffer.set(rect, FMT_LINEAR_RGBA, interleave(rgb, alpha).tobytes())
    buffer.flush()


# --------------------------------------------------------------------------- progress
# The engine's share of the plug-in's progress bar; before it: reading the layer and
# loading the engine, after it: building the new image.
ENGINE_SPAN = (0.05, 0.95)
# Fallback when the engine does not report ``fraction`` (its weighted share of the whole
# run): a span of one image per stage.  "reconstruct" is the older engines' name for
# hallucinate + refine.
_STAGES = {
    "dequantize": (0.0, 0.45),
    "linearize": (0.45, 0.5),
    "reconstruct": (0.5, 1.0),
    "hallucinate": (0.5, 0.85),
    "refine": (0.85, 1.0),
}
_LABELS = {
    "dequantize": "Removing quantization",
    "linearize": "Estimating the camera curve",
    "reconstruct": "Restoring highlights",
    "hallucinate": "Restoring highlights",
    "refine": "Refining",
}


def engine_fraction(stage: str, done: int, total: int, fraction=None) -> float:
    """The engine's progress in [0, 1]: its own ``fraction`` when given, else per stage."""
    if fraction is not None:
        try:
            f = float(fraction)
        except (TypeError, ValueError):
            f = None
        if f is not None and f == f:  # not NaN
            return min(1.0, max(0.0, f))
    lo, hi = _STAGES.get(stage, (0.0, 1.0))
    return lo + (hi - lo) * (min(done, total) / total if total else 1.0)


def stage_fraction(stage: str, done: int, total: int, fraction=None) -> float:
    """Where the plug-in's progress bar stands for an engine progress report."""
    lo, hi = ENGINE_SPAN
    return lo + (hi - lo) * engine_fraction(stage, done, total, fraction)


class MonotonicProgress:
    """Forwards to a :data:`ProgressFn`, never moving the bar backwards."""

    def __init__(self, progress: "ProgressFn"):
        self._progress = progress
        self.value = 0.0

    def __call__(self, fraction: float, text: Optional[str] = None) -> None:
        self.value = max(self.value, fraction)
        self._progress(self.value, text)


def _noop(fraction: float, text: Optional[str] = None) -> None:
    pass


# --------------------------------------------------------------------------- engines
def run_in_process(rgb: array.array, width: int, height: int, settings: Settings, progress: ProgressFn = _noop) -> array.array:
    """Run ``hdr_plugin`` inside this interpreter (needs numpy, torch and hdr_plugin here)."""
    import numpy as np

    import hdr_plugin

    image = np.frombuffer(rgb.tobytes(), dtype=np.float32).reshape(height, width, 3)
    image = np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    progress = MonotonicProgress(progress)
    progress(0.02, "Loading the engine")
    engine = hdr_plugin.load_engine(settings.weights or None, device=settings.device, precision=settings.precision, tile=settings.tile)

    class Hook:
        @hdr_plugin.hookimpl
        def hdr_progress(self, stage, done, total, context):
            progress(stage_fraction(stage, done, total, getattr(context, "fraction", None)), _LABELS.get(stage))

    hook = Hook()
    hdr_plugin.register_plugin(hook, name="hdr-plugin-gimp-progress", pm=engine.plugin_manager)
    try:
        hdr = engine.reconstruct(image, exposure=settings.exposure).image
    finally:
        hdr_plugin.unregister_plugin(hook, pm=engine.plugin_manager)
    return _floats(np.ascontiguousarray(hdr, dtype=np.float32).tobytes())


def engine_command(python: str, settings: Settings, pairs_file: str) -> list[str]:
    """The engine's own command line over ``pairs_file``: display-referred float EXRs in,
    uncompressed 32-bit float EXRs out (what :mod:`hdr_gimp_exr` reads back)."""
    cmd = [python, "-m", "hdr_plugin", "convert", "--pairs", pairs_file, "--input-encoding", "display"]
    cmd += ["--json", "--float", "--overwrite", "--compression", "none", "--exposure", repr(float(settings.exposure))]
    cmd += ["--device", settings.device, "--precision", settings.precision, "--tile", str(int(settings.tile))]
    return cmd + (["--weights", os.path.abspath(settings.weights)] if settings.weights else [])


def run_external(
    rgb: array.array, width: int, height: int, settings: Settings, python: str, progress: ProgressFn = _noop
) -> array.array:
    """Run the engine as ``python -m hdr_plugin convert`` on float EXRs in a temporary folder.

    If GIMP cancels the filter it kills this process: the engine then stops too (it is
    told to on Linux, and its next progress line hits a closed pipe everywhere), and the
    next run removes the temporary folder the killed run left.
    """
    sweep_stale_workdirs()
    progress = MonotonicProgress(progress)
    workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}_")
    try:
        src, dst = os.path.join(workdir, "input.exr"), os.path.join(workdir, "output.exr")
        pairs_file = os.path.join(workdir, "pairs.json")
        hdr_gimp_exr.write_rgb(src, rgb, width, height)
        with open(pairs_file, "w", encoding="utf-8") as f:
            json.dump([[src, dst]], f)
        progress(0.02, "Loading the engine")
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            proc = subprocess.Popen(
                engine_command(python, settings, pairs_file),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=workdir,  # -m puts the working folder first on sys.path: keep stray folders out
                creationflags=flags,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as e:
            raise EngineError(f"Engine Python {python!r} could not be started ({e}). {INSTALL_HELP}") from e
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
        reader.start()
        errors: list[str] = []
        try:
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                kind = event.get("event")
                if kind == "progress":
                    stage = event.get("stage", "")
                    f = stage_fraction(stage, int(event.get("done", 0)), int(event.get("total", 1)), event.get("fraction"))
                    eta = event.get("eta")
                    label = _LABELS.get(stage, stage)
                    progress(f, f"{label} (about {_seconds(eta)} left)" if isinstance(eta, (int, float)) else label)
                elif kind == "start":
                    progress(0.05, f"Engine on {event.get('device')} ({event.get('precision')})")
                elif kind == "error":
                    errors.append(str(event.get("message", "")))
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        reader.join(timeout=5)
        if code != 0 or not os.path.isfile(dst):
            detail = "; ".join(e for e in errors if e) or "".join(stderr).strip()[-800:] or f"exit status {code}"
            hint = f" {INSTALL_HELP}" if "No module named" in detail else ""
            raise EngineError(f"The HDR engine ({python}) failed: {detail.rstrip('.')}.{hint}")
        out, w, h = hdr_gimp_exr.read_rgb(dst)
        if (w, h) != (width, height):
            raise EngineError(f"the engine returned {w}x{h} pixels for a {width}x{height} image")
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


WORKDIR_PREFIX = "hdr_plugin_gimp_"


def _seconds(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM the engine when the plug-in dies (GIMP kills it on cancel)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep_stale_workdirs(tmp: str | None = None) -> list[str]:
    """Remove temporary folders of earlier runs whose plug-in process is gone (cancelled
    runs: GIMP kills the plug-in, which cannot clean up); returns what was removed."""
    tmp = tmp or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(WORKDIR_PREFIX):
            continue
        pid = name[len(WORKDIR_PREFIX):].split("_", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        path = os.path.join(tmp, name)
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    return removed


def in_process_available() -> bool:
    try:
        import hdr_plugin  # noqa: F401
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def reconstruct_pixels(
    rgb: array.array, width: int, height: int, settings: Settings, progress: ProgressFn = _noop
) -> tuple[array.array, str]:
    """Scene-linear RGB for display-referred ``rgb``; returns ``(pixels, route)``.

    Route: ``external`` when an engine Python is configured (dialog, ``$HDR_PLUGIN_PYTHON``
    or ``install.py``), else ``in-process`` when ``hdr_plugin`` imports here, else
    :class:`EngineError` naming what to install.
    """
    python = settings.engine_python or default_engine_python()
    if python:
        return run_external(rgb, width, height, settings, python, progress), "external"
    if in_process_available():
        return run_in_process(rgb, width, height, settings, progress), "in-process"
    raise EngineError(f"The HDR engine is not installed for GIMP's Python ({sys.executable}). {INSTALL_HELP}")
