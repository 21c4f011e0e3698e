"""Engine jobs for the Blender adapter: run hdr_plugin off Blender's main thread.

This module does not import ``bpy`` (it is tested with plain Python too).  The operator
collects what to bake on the main thread -- a list of :class:`Frame` -- then a
:class:`Job` runs the engine either

* **in process** (``route="in_process"``): ``hdr_plugin`` imported in Blender's own
  Python, :func:`hdr_plugin.convert_shot` run in a worker thread (one curve per shot or
  per frame, the frame loop, the EXR writer); per-stage progress comes from an
  ``hdr_progress`` hook, cancel goes through ``convert_shot(cancel=...)``;
* **as a subprocess** (``route="subprocess"``): ``<python> -m hdr_plugin convert --json``
  (and ``estimate-curve`` for a shot curve) with the interpreter from the preferences;
  cancel terminates the process.

Every EXR goes to a hidden staging folder inside the output folder first.  Only
:meth:`Job.commit`, called on the main thread once everything succeeded, moves the files
to their final names; :meth:`Job.discard` (cancel, error) removes the staging folder and
the output folder too if the job created it.  So a cancelled or failed run leaves the
output folder exactly as it was.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROUTES = ("in_process", "subprocess")
LDR_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
STAGING_PREFIX = ".hdr_plugin_staging_"
# modules the in-process route needs inside Blender's Python
IN_PROCESS_MODULES = ("hdr_plugin", "torch", "numpy", "pluggy", "OpenEXR", "cv2", "safetensors", "yaml")
# share of one frame's progress per engine stage, used only when the engine reports no
# ``fraction`` (its cost-weighted share of the frame); "reconstruct" is older engines' name
_STAGE_SPAN = {"dequantize": (0.0, 0.45), "linearize": (0.45, 0.5), "reconstruct": (0.5, 1.0),
               "hallucinate": (0.5, 0.85), "refine": (0.85, 1.0)}


class EngineUnavailable(RuntimeError):
    """No usable engine: the message says what to install where."""


class JobError(RuntimeError):
    """The engine ran but could not produce the frames."""


# --------------------------------------------------------------------------- data
@dataclass
class Frame:
    """One image to reconstruct.

    ``output`` is the final EXR path.  The pixels come from ``rgb`` (display-referred RGB
    float32 in [0, 1], top row first; ``alpha`` optional) or from the LDR file ``path``.
    """

    label: str
    output: Path
    path: Path | None = None
    rgb: np.ndarray | None = None
    alpha: np.ndarray | None = None
    staged: Path | None = None


@dataclass
class Settings:
    """How to run the engine (from the add-on preferences and the scene settings)."""

    route: str = "in_process"
    python: str = ""
    device: str = "auto"
    precision: str = "auto"
    tile: str | int = "auto"
    shot_curve: bool = False
    curve_frames: int = 8
    exposure: float = 0.0
    env: dict = field(default_factory=dict)
    #: hdr-plugin --output-space of the EXRs (the image is tagged with the matching Blender space)
    output_space: str = "lin-rec709"

    def engine_args(self) -> list[str]:
        return ["--device", str(self.device), "--precision", str(self.precision), "--tile", str(self.tile)]


# --------------------------------------------------------------------------- engine discovery
def missing_in_process_modules() -> list[str]:
    """Modules the in-process route needs that Blender's Python cannot find (no import)."""
    missing = []
    for name in IN_PROCESS_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


# hdr-plugin is on no package index: it installs from its wheel or a checkout, torch first
INSTALL_TORCH = "{python} -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
INSTALL_ENGINE = "{python} -m pip install <the hdr-plugin checkout folder or hdr_plugin-VERSION-py3-none-any.whl>"


def install_hint(problem: str, python: str = "") -> str:
    """A message saying exactly what to install where."""
    blender_py = sys.executable or "<Blender's python>"
    lines = [problem.rstrip(".") + "."]
    lines.append(
        "Fix it one of two ways: (1) point Preferences > Add-ons > HDR Reconstruct > "
        "'Python interpreter' at a Python 3.10+ that has the engine "
        f"(in that environment: {INSTALL_TORCH.format(python='python')}, then {INSTALL_ENGINE.format(python='python')})"
        + (f"; now set to {python}" if python else "")
        + "; or (2) install the engine into Blender's own Python: "
        + f"{INSTALL_TORCH.format(python=repr(blender_py))}, then {INSTALL_ENGINE.format(python=repr(blender_py))}"
        + ". For an NVIDIA GPU use the CUDA index pytorch.org lists for your driver instead of .../whl/cpu"
    )
    return " ".join(lines)


def check_python(python: str) -> str | None:
    """Why ``python`` cannot be used as the external interpreter, or None if it looks usable."""
    if not python:
        return "no external Python interpreter is set"
    p = Path(python)
    if not p.exists():
        return f"the external Python interpreter {python} does not exist"
    if p.is_dir():
        return f"the external Python interpreter {python} is a folder; choose the python executable inside it (bin/python or python.exe)"
    if os.name != "nt" and not os.access(p, os.X_OK):
        return f"the external Python interpreter {python} is not executable"
    return None


def choose_route(preference: str, python: str) -> str:
    """``preference`` is ``auto`` | ``in_process`` | ``subprocess``; raises EngineUnavailable."""
    preference = preference.lower()
    missing = missing_in_process_modules()
    if preference == "in_process":
        if missing:
            raise EngineUnavailable(install_hint(f"Blender's Python ({sys.executable}) cannot import {', '.join(missing)}", python))
        return "in_process"
    if preference == "subprocess":
        problem = check_python(python)
        if problem:
            raise EngineUnavailable(install_hint(problem, python))
        return "subprocess"
    if not missing:
        return "in_process"
    problem = check_python(python)
    if problem is None:
        return "subprocess"
    raise EngineUnavailable(
        install_hint(f"hdr-plugin is not usable in Blender's Python ({sys.executable}: missing {', '.join(missing)}) and {problem}", python)
    )


def subprocess_env(extra: dict | None = None) -> dict:
    """Blender's environment minus what would make another Python load Blender's stdlib."""
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- files
_FRAME_RE = re.compile(r"^(.*?)(\d+)(\D*)$")


def sequence_frame_path(first: str | os.PathLike, frame: int) -> Path:
    """The file of ``frame`` in the sequence that ``first`` belongs to (Blender's rule:
    the last group of digits in the file name is the frame number, zero-padded)."""
    p = Path(first)
    m = _FRAME_RE.match(p.name)
    if not m:
        raise ValueError(f"{p.name}: an image sequence file name must contain a frame number")
    head, digits, tail = m.groups()
    return p.with_name(f"{head}{frame:0{len(digits)}d}{tail}")


def sequence_stem(first: str | os.PathLike) -> tuple[str, int]:
    """(name before the frame number, digit count) of a sequence file name."""
    m = _FRAME_RE.match(Path(first).name)
    if not m:
        raise ValueError(f"{Path(first).name}: no frame number in the file name")
    head = m.group(1).rstrip("._- ") or "frame"
    return head, len(m.group(2))


def clean_stem(name: str) -> str:
    stem = Path(name).stem if Path(name).suffix.lower() in LDR_SUFFIXES + (".exr", ".hdr") else name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "image"
    return stem


def unique_outputs(folder: Path, stem: str, frames: list[int] | None, digits: int = 4) -> list[Path]:
    """Output EXR paths that do not exist yet: ``<stem>_hdr.exr`` for a still, or
    ``<stem>_hdr.<frame>.exr`` for each frame; ``_hdr_2``, ``_hdr_3``... if taken."""
    digits = max(digits, 4)
    for n in range(1, 10000):
        base = f"{stem}_hdr" if n == 1 else f"{stem}_hdr_{n}"
        if frames is None:
            paths = [folder / f"{base}.exr"]
        else:
            paths = [folder / f"{base}.{f:0{digits}d}.exr" for f in frames]
        if not any(p.exists() for p in paths):
            return paths
    raise JobError(f"no free output name for {stem} in {folder}")


def write_png16(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None) -> Path:
    """Write RGB(A) float [0, 1] (top row first) as a 16-bit PNG (lossless for 8-bit data)."""
    a = np.asarray(rgb, dtype=np.float32)
    if alpha is not None:
        a = np.concatenate([a, np.asarray(alpha, dtype=np.float32)[:, :, None]], axis=2)
    h, w, c = a.shape
    data = np.round(np.clip(a, 0.0, 1.0) * 65535.0).astype(">u2").reshape(h, w * c)
    raw = np.zeros((h, 1 + w * c * 2), np.uint8)  # filter byte 0 per row
    raw[:, 1:] = data.view(np.uint8).reshape(h, w * c * 2)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    color_type = 6 if c == 4 else 2
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")
    path = Path(path)
    path.write_bytes(png)
    return path


def curve_picks(n: int, most: int) -> list[int]:
    """Indices of at most ``most`` evenly spaced frames out of ``n`` (first and last kept)."""
    if n <= most or most <= 1:
        return list(range(n)) if most > 1 or n <= 1 else [0]
    return sorted({int(round(i * (n - 1) / (most - 1))) for i in range(most)})


def snapshot_folder(folder: str | os.PathLike) -> list[str] | None:
    """Sorted relative paths under ``folder`` (None if it does not exist); for tests."""
    folder = Path(folder)
    if not folder.exists():
        return None
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------- the job
class Job:
    """Reconstruct ``frames`` into a staging folder inside ``output_dir``; see module doc."""

    def __init__(self, frames: list[Frame], settings: Settings, output_dir: str | os.PathLike):
        if not frames:
            raise ValueError("nothing to reconstruct")
        if settings.route not in ROUTES:
            raise ValueError(f"unknown route {settings.route!r}")
        self.frames = frames
        self.settings = settings
        self.output_dir = Path(output_dir)
        self.state = "pending"  # pending | running | done | failed | cancelled
        self.message = ""
        self.stage = "starting"
        self.detail = ""
        self._created_dirs: list[Path] = []
        self.staging: Path | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._discard_lock = threading.Lock()
        self._phase_units = 1.0
        self._curve_units = len(curve_picks(len(frames), settings.curve_frames)) * 0.5 if self._use_shot_curve else 0.0
        self._units_done = 0.0
        self._frame_fraction = 0.0
        self.events: "queue.Queue[tuple[str, str]]" = queue.Queue()
        self.started_at = 0.0
        self.finished_at = 0.0
        self.ready_at = 0.0  # when the engine had loaded (0: still loading)

    # ---------------------------------------------------------------- public
    @property
    def _use_shot_curve(self) -> bool:
        return self.settings.shot_curve and len(self.frames) > 1

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def progress(self) -> float:
        """Overall fraction in [0, 1]."""
        total = self._curve_units + len(self.frames)
        with self._lock:
            return min(1.0, (self._units_done + self._frame_fraction) / total) if total else 0.0

    def start(self) -> "Job":
        self._make_staging()
        self.state = "running"
        self.started_at = time.perf_counter()
        target = self._run_in_process if self.settings.route == "in_process" else self._run_subprocess
        self._thread = threading.Thread(target=self._main, args=(target,), name="hdr_plugin-job", daemon=True)
        self._thread.start()
        return self

    def cancel(self, wait: float = 30.0) -> None:
        """Stop the engine (the hook refuses the next tile, or the process is terminated).

        Waits up to ``wait`` seconds for the worker; staged files are removed by whichever
        of this call and the worker ends last, so nothing is left in the output folder.
        """
        self._cancel.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        finished = self.wait(wait)
        if not finished and proc is not None and proc.poll() is None:
            proc.kill()
            finished = self.wait(5.0)
        if self.state in ("pending", "running", "done"):
            self.state = "cancelled"
        self.message = "cancelled: nothing was written"
        if finished:
            self.discard()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def commit(self) -> list[Path]:
        """Move the staged EXRs to their final names (main thread, after ``done``)."""
        if self.state != "done":
            raise JobError(f"cannot commit a job that is {self.state}")
        taken = [f.output for f in self.frames if f.output.exists()]
        if taken:
            self.discard()
            raise JobError(f"{taken[0]} appeared while the job ran; nothing was replaced")
        for f in self.frames:
            if f.staged is None or not f.staged.is_file():
                self.discard()
                raise JobError(f"the engine did not write frame {f.label}")
        for f in self.frames:
            f.output.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f.staged, f.output)
            f.staged = None
        self._remove_staging()
        return [f.output for f in self.frames]

    def discard(self) -> None:
        """Remove staged files, and folders this job created if they are empty."""
        with self._discard_lock:
            self._remove_staging()
            for d in reversed(self._created_dirs):
                try:
                    d.rmdir()
                except OSError:
                    pass
            self._created_dirs = []

    # ---------------------------------------------------------------- internals
    def _make_staging(self) -> None:
        missing = []
        d = self.output_dir
        while not d.exists():
            missing.append(d)
            if d.parent == d:
                break
            d = d.parent
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._created_dirs = list(reversed(missing))
        self.staging = self.output_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:10]}"
        self.staging.mkdir()

    def _remove_staging(self) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    def _main(self, target) -> None:
        try:
            target()
            if self._cancel.is_set():
                self.state, self.message = "cancelled", "cancelled: nothing was written"
            else:
                self.state = "done"
                self.message = f"{len(self.frames)} frame(s) reconstructed"
        except EngineUnavailable as e:
            self.state, self.message = "failed", str(e)
        except Exception as e:  # reported to the user, never raised in Blender's UI
            if self._cancel.is_set() or type(e).__name__ == "Cancelled":
                self.state, self.message = "cancelled", "cancelled: nothing was written"
            else:
                self.state, self.message = "failed", f"{type(e).__name__}: {e}"
        finally:
            self.finished_at = time.perf_counter()
            if self._cancel.is_set():
                self.discard()

    def _begin_phase(self, stage: str, units: float) -> None:
        with self._lock:
            self._phase_units = units
            self._frame_fraction = 0.0
        self.stage = stage
        self.detail = ""

    def _stage_progress(self, stage: str, done: int, total: int, fraction=None) -> None:
        if not self.ready_at:
            self.ready_at = time.perf_counter()
        try:
            f = min(1.0, max(0.0, float(fraction)))
        except (TypeError, ValueError):
            lo, hi = _STAGE_SPAN.get(stage, (0.0, 1.0))
            f = lo + (hi - lo) * (min(done, total) / total if total else 1.0)
        with self._lock:  # never backwards within a frame
            self._frame_fraction = max(self._frame_fraction, self._phase_units * f)
        self.detail = f"{stage} {done}/{total}"

    @property
    def eta(self) -> float | None:
        """Seconds left at the average rate since the engine loaded (None: unknown yet)."""
        p = self.progress
        if not self.ready_at or p <= 0.0 or self.finished:
            return None
        elapsed = time.perf_counter() - self.ready_at
        return elapsed * (1.0 - p) / p if elapsed >= 0.5 else None

    def _frame_finished(self) -> None:
        with self._lock:
            self._units_done += self._phase_units
            self._frame_fraction = 0.0

    def _pixels(self, f: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        if f.rgb is not None:
            return f.rgb, f.alpha
        from hdr_plugin.io import read_ldr

        image = read_ldr(f.path)
        return image.rgb, image.alpha

    def _input_files(self) -> list[Path]:
        """The frames as files for the engine: LDR files as they are; Blender's pixels (and a
        file whose name an earlier frame has) as 16-bit PNGs in the staging folder, lossless
        for 8-bit data."""
        inputs_dir = self.staging / "inputs"
        inputs: list[Path] = []
        stems = set()
        for i, f in enumerate(self.frames):
            if f.rgb is None and f.path is not None and f.path.stem not in stems:
                src = Path(f.path)
            else:
                inputs_dir.mkdir(exist_ok=True)
                src = write_png16(inputs_dir / f"{i:05d}.png", *self._pixels(f))
            stems.add(src.stem)
            inputs.append(src)
        return inputs

    def _begin_frame(self, i: int) -> None:
        self._begin_phase(f"frame {self.frames[i].label} ({i + 1}/{len(self.frames)})", 1.0)

    def _frame_staged(self, i: int, staged: Path) -> None:
        """Frame ``i`` is written to ``staged``: count it, announce it, start the next one."""
        self.frames[i].staged = staged
        self._frame_finished()
        self.events.put(("done", self.frames[i].label))
        if i + 1 < len(self.frames):
            self._begin_frame(i + 1)
        self.detail = ""

    # in process -------------------------------------------------------------
    def _run_in_process(self) -> None:
        """``hdr_plugin.convert_shot`` on the frames (one curve per shot or per frame), the
        EXRs into the staging folder; stage progress from an ``hdr_progress`` hook, cancel
        through ``convert_shot(cancel=...)``."""
        try:
            import hdr_plugin

            hdr_plugin.Cancelled  # noqa: B018 - imports torch now, inside the worker
        except Exception as e:
            raise EngineUnavailable(install_hint(f"importing hdr_plugin in Blender's Python failed: {type(e).__name__}: {e}", self.settings.python))
        s = self.settings
        self._begin_phase("loading the engine", 0.0)
        engine = hdr_plugin.load_engine(device=s.device, precision=s.precision, tile=s.tile)
        self.ready_at = time.perf_counter()
        job = self

        class BlenderProgress:
            @hdr_plugin.hookimpl
            def hdr_progress(self, stage, done, total, context):
                job._stage_progress(stage, done, total, getattr(context, "fraction", None))

        inputs = self._input_files()
        errors: list[str] = []
        if self._use_shot_curve:
            self._begin_phase(f"shot curve from {len(curve_picks(len(self.frames), s.curve_frames))} frames", self._curve_units)
        else:
            self._begin_frame(0)

        def on_event(event: str, **e) -> None:
            if event == "start" and self._use_shot_curve:
                self._frame_finished()
                self._begin_frame(0)
            elif event == "done":
                self._frame_staged(int(e["frame"]), Path(e["output"]))
            elif event == "error":
                label = self.frames[e["frame"]].label if isinstance(e.get("frame"), int) else "?"
                errors.append(f"frame {label}: {e.get('message', '')}")

        hook = BlenderProgress()
        hdr_plugin.register_plugin(hook)
        try:
            report = hdr_plugin.convert_shot(
                dict(enumerate(inputs)),
                str(self.staging / "out" / "frame.%05d.exr"),
                engine=engine,
                curve_per_frame=not self._use_shot_curve,
                curve_frames=s.curve_frames,
                exposure=s.exposure,
                input_space="srgb",  # as Blender shows byte images
                output_space=s.output_space,  # the image is tagged with the matching Blender space
                temporal_radius=0,  # each frame as a still, as the subprocess route converts them
                overwrite=True,
                progress=on_event,
                cancel=self._cancel.is_set,
            )
        finally:
            hdr_plugin.unregister_plugin(hook)
        if report.cancelled or self._cancel.is_set():
            self._cancel.set()
            return
        if report.failed or report.error:
            raise JobError("; ".join(errors) or report.error or f"frames {sorted(report.failed)} failed")

    # subprocess -------------------------------------------------------------
    def _popen(self, args: list[str], log: Path) -> subprocess.Popen:
        python = self.settings.python
        try:
            with open(log, "wb") as err:
                proc = subprocess.Popen(
                    [python, "-m", "hdr_plugin", *args],
                    stdout=subprocess.PIPE,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=subprocess_env(self.settings.env),
                    text=True,
                    bufsize=1,
                )
        except OSError as e:
            raise EngineUnavailable(install_hint(f"could not start {python}: {e}", python))
        self._proc = proc
        if self._cancel.is_set():
            proc.terminate()
        return proc

    def _subprocess_failure(self, what: str, rc: int, log: Path, errors: list[str]) -> Exception:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log.exists() else []
        text = "\n".join(tail)
        python = self.settings.python
        if "No module named hdr_plugin" in text or "No module named 'hdr_plugin'" in text:
            return EngineUnavailable(install_hint(f"{python} has no hdr-plugin installed", python))
        if "No module named" in text:
            mod = re.findall(r"No module named '?([\w.]+)'?", text)
            return EngineUnavailable(
                install_hint(f"hdr-plugin in {python} is broken: missing module {mod[-1] if mod else '?'}", python)
            )
        detail = "; ".join(errors) or (tail[-1] if tail else f"exit code {rc}")
        return JobError(f"{what} failed (exit code {rc}): {detail}")

    def _run_subprocess(self) -> None:
        s = self.settings
        out_dir = self.staging / "out"
        inputs = self._input_files()
        by_input = {str(p): i for i, p in enumerate(inputs)}
        curve_args: list[str] = []
        if self._use_shot_curve:
            picks = curve_picks(len(self.frames), s.curve_frames)
            self._begin_phase(f"shot curve from {len(picks)} frames", self._curve_units)
            curve = self.staging / "curve.npy"
            log = self.staging / "estimate-curve.log"
            proc = self._popen(
                ["estimate-curve", *[str(inputs[i]) for i in picks], "-o", str(curve), "--overwrite",
                 "--max-frames", str(len(picks)), *s.engine_args()],
                log,
            )
            self.detail = "external Python"
            proc.stdout.read()
            rc = proc.wait()
            if self._cancel.is_set():
                return
            if rc != 0 or not curve.is_file():
                raise self._subprocess_failure("estimate-curve", rc, log, [])
            self._frame_finished()
            curve_args = ["--curve", str(curve)]
        if self._cancel.is_set():
            return
        log = self.staging / "convert.log"
        proc = self._popen(
            ["convert", *map(str, inputs), "-o", str(out_dir), "--overwrite", "--json",
             "--exposure", repr(float(s.exposure)), "--output-space", s.output_space,
             "--input-space", "srgb",  # as Blender shows byte images, and as the in-process route reads them
             *curve_args, *s.engine_args()],
            log,
        )
        errors: list[str] = []
        self._begin_frame(0)
        self.detail = "loading the engine"
        current = 0
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            i = by_input.get(str(event.get("file" if kind == "progress" else "input")))
            if i is not None and i != current and kind in ("progress", "done"):
                current = i
                self._begin_frame(i)
            if kind == "start":
                self.ready_at = time.perf_counter()
                self.detail = ""
            if kind == "progress":
                self._stage_progress(str(event.get("stage")), int(event.get("done", 0)), int(event.get("total", 1)), event.get("fraction"))
            elif kind == "done" and i is not None:
                self._frame_staged(i, Path(event["output"]))
                current = min(i + 1, len(self.frames) - 1)
            elif kind == "error":
                errors.append(f"{Path(str(event.get('input', '?'))).name}: {event.get('message', '')}")
        rc = proc.wait()
        if self._cancel.is_set() or rc == 130:
            self._cancel.set()
            return
        if rc != 0:
            raise self._subprocess_failure("hdr_plugin convert", rc, log, errors)
