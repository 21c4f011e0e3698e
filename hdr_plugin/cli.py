"""Command-line interface: ``hdr-plugin <command>`` (or ``python -m hdr_plugin``).

Commands: ``convert`` (LDR files -> EXR/HDR), ``estimate-curve`` (one inverse camera
curve for a shot), ``info``, ``bench``, ``train``, ``eval`` and ``export-torchscript``.
Heavy imports happen inside commands so ``--help`` and ``--version`` stay instant.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .plugins import hookimpl

log = logging.getLogger("hdr_plugin")

LDR_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


# --------------------------------------------------------------------------- progress
class Progress:
    """Progress reporting for the CLI: one bar with an ETA when tqdm is available (else
    plain lines), or one JSON object per line (``--json``, read by the host adapters).

    Phases, reported as such: *loading the engine* (from construction to the ``start``
    event: importing torch and reading the weights take seconds; on a terminal the
    seconds count up), then the images.  Within an image the bar follows the engine's
    ``context.fraction`` (its share of the run's work, weighted by measured cost, set
    before each ``hdr_progress`` call, which comes per network per tile) and falls back
    to a fixed split per stage of ``done / total``; it never moves backwards.  The ETA is
    the time left at the average rate since the engine was ready.
    """

    #: share of one image per stage, used only when the engine gives no ``fraction``
    #: ("reconstruct" is older engines' name for hallucinate + refine)
    STAGE_SPAN = {
        "dequantize": (0.0, 0.45),
        "linearize": (0.45, 0.5),
        "reconstruct": (0.5, 1.0),
        "hallucinate": (0.5, 0.85),
        "refine": (0.85, 1.0),
    }
    LOADING_DELAY = 0.3  # s before "loading the engine" shows (usage errors never see it)

    def __init__(self, mode: str, stream=None, clock=time.perf_counter):
        self.mode = mode  # "bar" | "plain" | "json" | "none"
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.position = (0, 1)  # (index, count) of the image in progress
        self._bar = None
        self._created = clock()
        self._ready_at: float | None = None  # when the engine was ready ("start")
        self._image_key: tuple | None = None
        self._image_fraction = 0.0
        self._last_plain = -1.0
        self._ready = threading.Event()
        self.load_seconds: float | None = None
        if mode == "bar":
            try:
                import tqdm  # noqa: F401
            except ImportError:
                self.mode = "plain"
        if self.mode in ("bar", "plain"):
            import weakref

            threading.Thread(
                target=Progress._show_loading, args=(weakref.ref(self), self._ready, self.stream), daemon=True
            ).start()

    # ---------------------------------------------------------------- phases
    @staticmethod
    def _show_loading(ref, ready: threading.Event, stream) -> None:
        """Show "loading the engine" until the engine is ready (or the run is gone)."""
        if ready.wait(Progress.LOADING_DELAY):
            return
        me = ref()
        if me is None:
            return
        tty = bool(getattr(stream, "isatty", lambda: False)())
        created = me._created
        del me
        try:
            if not tty:
                print("loading the engine (PyTorch and the weights) ...", file=stream, flush=True)
                return
            while not ready.wait(0.5):
                if ref() is None:
                    break
                stream.write(f"\rloading the engine (PyTorch and the weights) ... {time.perf_counter() - created:.0f} s")
                stream.flush()
            stream.write("\r\033[K")
            stream.flush()
        except (OSError, ValueError):  # the stream was closed under us
            pass

    def _engine_ready(self, event: dict) -> None:
        if self._ready_at is None:
            self._ready_at = self.clock()
            self.load_seconds = self._ready_at - self._created
            event.setdefault("load_seconds", round(self.load_seconds, 3))
        self._ready.set()

    def emit(self, **event: Any) -> None:
        kind = event.get("event")
        if kind == "start":
            self._engine_ready(event)
            if self.mode in ("bar", "plain"):
                print(
                    f"engine ready on {event.get('device')} ({event.get('precision')}) in {self.load_seconds:.1f} s",
                    file=self.stream,
                    flush=True,
                )
        elif kind in ("error", "cancelled", "summary"):
            self._ready.set()
            if kind != "error":
                self.close_tiles(final=True)
        elif kind == "done" and self._bar is not None:
            self._bar.clear()  # the CLI prints "a.png -> a.exr" next; the bar redraws after it
        if self.mode == "json":
            print(json.dumps(event), flush=True)

    def images(self, items: list):
        return items

    # ---------------------------------------------------------------- fractions
    def image_fraction(self, stage: str, done: int, total: int, context=None) -> float:
        """Fraction of the current image in [0, 1]: ``context.fraction`` when the engine
        sets it, else the stage's span; never lower than the last one for this image."""
        f = getattr(context, "fraction", None)
        try:
            f = float(f) if f is not None else None
        except (TypeError, ValueError):
            f = None
        if f is None or f != f:
            lo, hi = self.STAGE_SPAN.get(stage, (0.0, 1.0))
            f = lo + (hi - lo) * (min(done, total) / total if total else 1.0)
        key = (self.position, getattr(context, "source", None))
        if key != self._image_key:
            self._image_key, self._image_fraction = key, 0.0
        self._image_fraction = max(self._image_fraction, min(1.0, max(0.0, f)))
        return self._image_fraction

    def overall(self, image_fraction: float) -> float:
        index, count = self.position
        return min(1.0, (index + image_fraction) / max(count, 1))

    def eta(self, overall: float) -> float | None:
        """Seconds left at the average rate since the engine was ready (None: too early)."""
        if self._ready_at is None or overall <= 0.0:
            return None
        elapsed = self.clock() - self._ready_at
        if elapsed < 0.5:
            return None
        return elapsed * (1.0 - overall) / overall

    # the hook implementation the CLI registers while converting
    @hookimpl
    def hdr_progress(self, stage, done, total, context):
        if self._ready_at is None:  # used without a "start" event (library use)
            self._engine_ready({})
        index, count = self.position
        f = self.image_fraction(stage, done, total, context)
        overall = self.overall(f)
        eta = self.eta(overall)
        event = dict(event="progress", file=getattr(context, "source", None), stage=stage, done=done, total=total, index=index, count=count)
        event["fraction"] = round(f, 4)
        event["overall"] = round(overall, 4)
        if eta is not None:
            event["eta"] = round(eta, 1)
        self.emit(**event)
        label = f"image {index + 1}/{count} {stage}" if count > 1 else stage
        left = f"ETA {_duration(eta)}" if eta is not None else "ETA ..."
        if self.mode == "bar":
            from tqdm import tqdm

            if self._bar is None:
                self._bar = tqdm(  # tqdm puts ", " before the postfix itself
                    total=1000, desc=label, leave=False, dynamic_ncols=True, file=self.stream, postfix=left,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed{postfix}",
                )
            self._bar.set_description_str(label, refresh=False)
            self._bar.set_postfix_str(left, refresh=False)
            self._bar.n = int(round(overall * 1000))
            self._bar.refresh()
        elif self.mode == "plain":
            now = self.clock()
            if now - self._last_plain >= 1.0 or overall >= 1.0:
                self._last_plain = now
                print(f"  {label}: {overall * 100:3.0f}% ({left})", file=self.stream, flush=True)
        return None

    def close_tiles(self, final: bool = False) -> None:
        """End of an image (the bar stays for the next one) or, ``final``, of the run."""
        index, count = self.position
        if self._bar is not None and (final or index + 1 >= count):
            self._bar.close()
            self._bar = None


def _duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# --------------------------------------------------------------------------- inputs
def _missing_reason(p: Path) -> str:
    """Why a named input is neither a file nor a folder, in words."""
    import errno
    import os

    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (the link points back at itself)"
        if p.is_symlink():
            return f"broken symbolic link (its target {os.readlink(p)} does not exist)"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if e.errno != errno.ENOENT:
            return f"cannot be read ({e.strerror})"
        return "no such file or folder"
    except ValueError as e:
        return f"not a valid file name ({e})"
    return "not a regular file or folder (a device, pipe or socket)"


def expand_inputs(inputs: Iterable[str], recursive: bool) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files from paths, folders and globs (expanded here so they work on Windows too).

    Returns ``(files, problems)``: each file comes with its folder relative to the folder
    input it was found under (``.`` for files and globs), so ``-r -o DIR`` mirrors the
    tree instead of flattening it.  A name that matches nothing is a problem, not a crash.
    """
    files: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in LDR_SUFFIXES)
            if not found:
                problems.append(f"{item}: no images found" + ("" if recursive else " (use --recursive for subfolders)"))
            files += [(f, f.parent.relative_to(p)) for f in found]
        elif p.is_file():
            files.append((p, Path(".")))
        elif glob.has_magic(item):
            found = sorted(Path(f) for f in glob.glob(item, recursive=recursive) if Path(f).is_file())
            if not found:
                problems.append(f"{item}: pattern matches no files")
            files += [(f, Path(".")) for f in found]
        else:
            problems.append(f"{item}: {_missing_reason(p)}")
    seen: set[Path] = set()
    unique = []
    for f, rel in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, rel))
    return unique, problems


def output_path(src: Path, rel: Path, out: str | None, fmt: str, suffix: str, many: bool) -> Path:
    """Where ``src`` is written: ``-o FILE`` for one input, else ``<dir>/<rel>/<stem><suffix>.<fmt>``."""
    name = f"{src.stem}{suffix}.{fmt}"
    if out is not None:
        o = Path(out)
        if not many and o.suffix.lower() in (".exr", ".hdr") and not o.is_dir():
            return o
        return o / rel / name
    return src.with_name(name)


# --------------------------------------------------------------------------- commands
def _engine_from_args(args):
    from .shots import EngineOptions  # the shot path and its Ray workers build theirs the same way

    return EngineOptions.from_args(args).build()


def _load_curve(path: str):
    """An inverse camera curve file (``.npy`` or text), checked; errors name the file."""
    import numpy as np

    from .crf import N_SAMPLES

    p = Path(path)
    try:
        if p.is_dir():
            raise ValueError("is a folder, not a curve file")
        if p.suffix == ".npy":
            curve = np.load(p, allow_pickle=False)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy warns about empty files; we say it below
                curve = np.loadtxt(p, dtype=np.float64, ndmin=1)
        curve = np.asarray(curve, dtype=np.float64).reshape(-1)
    except FileNotFoundError:
        raise ValueError(f"--curve {path}: no such file") from None
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
        why = str(e) if isinstance(e, ValueError) and str(e).startswith("is a folder") else (
            f"not a readable {'.npy array' if p.suffix == '.npy' else 'text file of numbers'} ({type(e).__name__}: {str(e)[:160]})"
        )
        raise ValueError(f"--curve {path}: {why}") from None
    if curve.size != N_SAMPLES:
        raise ValueError(f"--curve {path}: holds {curve.size} samples, an inverse camera curve has {N_SAMPLES} (make one with estimate-curve)")
    if not np.isfinite(curve).all():
        raise ValueError(f"--curve {path}: contains NaN or infinite values")
    if np.any(np.diff(curve) < 0) or abs(curve[0]) > 1e-6 or abs(curve[-1] - 1) > 1e-6:
        raise ValueError(f"--curve {path}: not an inverse camera curve (it must rise monotonically from 0 to 1)")
    return curve.astype(np.float32)


def _read_one(src: Path, args):
    """Read one input with the bad-input options; corrupt-data warnings (--allow-corrupt) are printed."""
    from .io import DEFAULT_MAX_PIXELS, read_input

    allow = bool(getattr(args, "allow_corrupt", False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_input(src, args.input_encoding, max_pixels=getattr(args, "max_pixels", DEFAULT_MAX_PIXELS), allow_corrupt=allow)
    for w in caught:  # CorruptImageWarning and anything else the decoders said
        if not getattr(args, "json", False):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            log.warning("%s", w.message)
    return image


def _is_out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


def _file_error(src: Path, e: BaseException) -> str:
    """What went wrong with one file, in words, without repeating its name."""
    if _is_out_of_memory(e):
        return (
            f"out of memory ({type(e).__name__}: {str(e)[:200] or 'no details'}); lower --max-memory or --tile, "
            "or refuse such images with a lower --max-pixels"
        )
    text = str(e) or type(e).__name__
    prefix = f"{src}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _internal_error(src: Path | None, e: BaseException, args) -> str:
    """An unexpected exception: one line naming the file, the traceback only with --debug."""
    if getattr(args, "debug", False):
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    where = f" while converting {src}" if src is not None else ""
    return (
        f"internal error{where} ({type(e).__name__}: {str(e)[:300]}); this is a bug in hdr-plugin "
        f"{__version__}: please report it with the output of the same command with --debug"
    )


def _jobs(args) -> tuple[list[tuple[Path, Path]], list[str], str]:
    """``(input, output)`` pairs from the positional inputs and/or ``--pairs``, problems, format."""
    inputs = list(args.inputs or [])
    files, problems = expand_inputs(inputs, args.recursive) if inputs else ([], [])
    suffix = Path(args.output).suffix.lower() if args.output else ""
    fmt = args.format or (suffix.lstrip(".") if suffix in (".exr", ".hdr") else "exr")
    many = len(files) > 1 or len(inputs) > 1 or any(Path(i).is_dir() for i in inputs)
    if args.output and many and suffix in (".exr", ".hdr"):
        problems.append(f"-o {args.output} names one file but there are {len(files)} inputs; give a folder")
        files = []
    jobs = [(src, output_path(src, rel, args.output, fmt, args.suffix, many)) for src, rel in files]
    if args.pairs:
        try:
            listed = json.loads(Path(args.pairs).read_text())
            jobs += [(Path(a), Path(b)) for a, b in listed]
        except (OSError, ValueError, TypeError) as e:
            problems.append(f"--pairs {args.pairs}: expected a JSON list of [input, output] pairs ({e})")
    return jobs, problems, fmt


def _colour_from_args(args, fmt: str):
    """The colour options of ``convert`` (see hdr_plugin.frame_color), checked for ``fmt``."""
    from .frame_color import ColorOptions

    colour = ColorOptions.from_args(args)
    colour.check(fmt)
    return colour


def _colour_input(image, args, colour):
    """The input's colour (file tags or --input-space) and the RGB the engine gets."""
    rgb, in_colour = colour.engine_image(image)
    log.info("hdr-plugin: %s: input colour %s", image.path, in_colour.summary())
    if in_colour.note and args.input_space in (None, "auto") and not args.quiet and not args.json and in_colour.source != "untagged":
        print(f"note: {image.path}: {in_colour.note}", file=sys.stderr)
    return rgb, in_colour


def cmd_convert(args) -> int:
    from .io import DEFAULT_MAX_PIXELS, ImageReadError, check_pixel_limit, probe_image, write_image
    from .pipeline import Cancelled
    from .plugins import register_plugin, unregister_plugin

    from .shots import cli_convert, wants_shot

    if wants_shot(args):  # frame patterns, video, --frames, --backend ray: see hdr_plugin/shots.py
        return cli_convert(args)
    progress = Progress("json" if args.json else ("none" if args.quiet else "bar"))
    jobs, problems, fmt = _jobs(args)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not jobs:
        print("error: nothing to convert", file=sys.stderr)
        return 2
    try:
        curve = _load_curve(args.curve) if args.curve else None
        colour = _colour_from_args(args, fmt)
        collector = colour.collector()
        engine = _engine_from_args(args)
    except Exception as e:  # device missing, weights corrupt, bad colour options: nothing can run
        print(f"error: {e}", file=sys.stderr)
        progress.emit(event="error", message=str(e))
        return 2
    register_plugin(progress, name="hdr-plugin-cli-progress", pm=engine.plugin_manager)
    if collector is not None:
        register_plugin(collector, name="hdr-plugin-cli-passes", pm=engine.plugin_manager)
    converted, skipped, failed = [], [], []
    t0 = time.perf_counter()
    try:
        progress.emit(event="start", count=len(jobs), device=str(engine.device), precision=engine.precision)
        for index, (src, dst) in enumerate(progress.images(jobs)):
            progress.position = (index, len(jobs))
            if dst.exists() and args.skip_existing:
                skipped.append(src)
                progress.emit(event="skipped", input=str(src), output=str(dst), index=index)
                continue
            if dst.exists() and not args.overwrite:
                failed.append((src, f"{dst} exists (use --overwrite or --skip-existing)"))
                progress.emit(event="error", input=str(src), message=failed[-1][1], index=index)
                continue
            try:
                if dst.resolve() == src.resolve():
                    raise ValueError("output would replace the input")
                head = probe_image(src)  # the memory plan from the header, before anything is decoded
                check_pixel_limit(head, src, getattr(args, "max_pixels", DEFAULT_MAX_PIXELS))
                engine.check_memory(head.height, head.width)
                image = _read_one(src, args)
                rgb_in, in_colour = _colour_input(image, args, colour)
                if collector is not None:
                    collector.reset()
                result = engine.reconstruct(rgb_in, exposure=args.exposure, curve=curve, source=str(src))
                rgb_out, exr_options = colour.output(result, in_colour, collector)
                write_image(
                    dst,
                    rgb_out,
                    image.alpha,
                    half=not args.float,
                    compression=args.compression,
                    overwrite=args.overwrite,
                    premultiply=not image.alpha_associated,
                    **(exr_options if fmt == "exr" else {}),
                )
                seconds = result.timings.get("total", 0.0)
                converted.append((src, dst, seconds))
                progress.emit(event="done", input=str(src), output=str(dst), index=index, seconds=round(seconds, 3))
                if progress.mode in ("plain", "bar") and not args.quiet:
                    print(f"{src} -> {dst} ({seconds:.1f} s)", file=sys.stderr)
            except (Cancelled, BrokenPipeError):
                raise
            except (ImageReadError, ValueError, OSError, RuntimeError, MemoryError) as e:  # this file only
                failed.append((src, _file_error(src, e)))
                progress.emit(event="error", input=str(src), message=f"{src}: {failed[-1][1]}", index=index)
                print(f"error: {src}: {failed[-1][1]}", file=sys.stderr)
            except Exception as e:  # a bug: said per file, and the batch goes on
                failed.append((src, _internal_error(src, e, args)))
                progress.emit(event="error", input=str(src), message=f"{src}: {failed[-1][1]}", index=index, internal=True)
                print(f"error: {src}: {failed[-1][1]}", file=sys.stderr)
            finally:
                progress.close_tiles()
    except (Cancelled, KeyboardInterrupt, BrokenPipeError):
        print("cancelled: the image in progress was not written", file=sys.stderr)
        try:
            progress.emit(event="cancelled")
        except BrokenPipeError:
            pass
        return 130
    finally:
        unregister_plugin(progress, pm=engine.plugin_manager)
        if collector is not None:
            unregister_plugin(collector, pm=engine.plugin_manager)
    elapsed = time.perf_counter() - t0
    summary = f"{len(converted)} converted, {len(skipped)} skipped, {len(failed) + len(problems)} failed in {elapsed:.1f} s"
    progress.emit(event="summary", converted=len(converted), skipped=len(skipped), failed=len(failed) + len(problems))
    if not args.quiet and not args.json:
        print(summary, file=sys.stderr)
        for src, why in failed:
            print(f"  failed: {src}: {why}", file=sys.stderr)
    return 1 if failed or problems else 0


def cmd_estimate_curve(args) -> int:
    import numpy as np

    from .frame_color import ColorOptions
    from .io import ImageReadError, read_input
    from .shots import cli_estimate_curve

    shot_rc = cli_estimate_curve(args)  # a frame pattern or video, or --frames
    if shot_rc is not None:
        return shot_rc
    files, problems = expand_inputs(args.inputs, False)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not files:
        return 2
    step = max(1, len(files) // args.max_frames) if args.max_frames else 1
    try:
        colour = ColorOptions.make(args.input_space)
        frames = [colour.engine_image(read_input(f, args.input_encoding))[0] for f, _ in files[::step]]
        engine = _engine_from_args(args)
    except (ImageReadError, RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    curve = engine.shot_curve(frames)
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists (use --overwrite)", file=sys.stderr)
        return 1
    np.save(out, curve) if out.suffix == ".npy" else np.savetxt(out, curve)
    print(f"{out}: inverse curve from {len(frames)} frame(s)")
    return 0


def cmd_info(args) -> int:
    import platform

    import torch

    from .bench import cpu_name
    from .devices import cpu_has_fast_bf16, cpu_has_native_bf16, cpu_isa, resolve_device, resolve_precision
    from .plugins import get_plugin_manager, plugin_names, rejected_plugins
    from .quality import resolve_quality
    from .runtime import available_runtimes, resolve_runtime, runtime_version
    from .weights import WeightsError, read_manifest

    info: dict[str, Any] = {
        "hdr_plugin": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cpu": cpu_name(),
        "cpu_isa": cpu_isa(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "threads": torch.get_num_threads(),
    }
    runtime = None
    try:
        device = resolve_device(args.device)
        info["device"] = str(device)
        if device.type == "cuda":
            info["device_name"] = torch.cuda.get_device_name(device)
        runtime = resolve_runtime(args.runtime, device)
        info["runtime"] = f"{runtime} {runtime_version(runtime)}"
        info["runtimes_available"] = available_runtimes(device)
    except Exception as e:
        device = None
        info["device" if "device" not in info else "runtime"] = f"unavailable: {e}"
    try:
        w = read_manifest(args.weights)
        info["weights"] = {
            "path": str(w.path),
            "sha256": w.sha256,
            "trained": w.trained,
            "bytes": w.path.stat().st_size if w.path.is_file() else None,
            "precision_checks": w.precision_checks,
        }
        info["model_config"] = w.config.raw
        if device is not None and runtime is not None:
            info["precision"] = resolve_precision(args.precision, device, w.precision_checks, runtime)
        quality = resolve_quality(args.quality, w.manifest)
        info["quality"] = f"{quality.name} ({', '.join(quality.networks)})"
    except WeightsError as e:
        info["weights"] = f"error: {e}"
    pm = get_plugin_manager()
    info["plugins"] = plugin_names(pm)
    info["rejected_plugins"] = rejected_plugins()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    for key, value in info.items():
        if isinstance(value, dict) and key == "model_config":
            import yaml

            print("model_config:")
            print("  " + yaml.safe_dump(value, sort_keys=False).replace("\n", "\n  ").rstrip())
        elif isinstance(value, list):
            print(f"{key}:")
            for v in value:
                print(f"  - {v}")
        else:
            print(f"{key}: {value}")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    return run_bench(args)


def cmd_export_onnx(args) -> int:
    from .onnx_export import export_onnx_cli

    return export_onnx_cli(args)


def cmd_export_torchscript(args) -> int:
    from .export import export_torchscript_cli

    return export_torchscript_cli(args)


# --------------------------------------------------------------------------- parser
def _exposure(value: str) -> float:
    try:
        ev = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--exposure takes a number of EV stops such as -1.5, not {value!r}")
    if ev != ev or abs(ev) > 64:
        raise argparse.ArgumentTypeError(f"--exposure must be a finite number of EV between -64 and 64, not {value!r}")
    return ev


def _suffix(value: str) -> str:
    if any(c in value for c in "/\\\0") or value in (".", ".."):
        raise argparse.ArgumentTypeError(f"--suffix is added to file names and cannot contain a path separator: {value!r}")
    return value


def _temporal_radius(text: str) -> int:
    from .temporal import check_radius

    try:
        return check_radius(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _max_pixels(value: str) -> int:
    """``120000000``, ``120M``, ``1.5G`` or ``none`` (no limit) -> pixels."""
    text = value.strip().lower().replace("_", "")
    if text in ("none", "0", "unlimited"):
        return None
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(text[-1:], 1)
    try:
        n = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-pixels takes a pixel count such as 200000000 or 200M (or none), not {value!r}")
    if not n >= 1 or n != n or n == float("inf"):
        raise argparse.ArgumentTypeError(f"--max-pixels must be a positive pixel count, not {value!r}")
    return int(n)


def _tile(value: str):
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile takes a pixel count, 0 (whole image) or auto, not {value!r}")
    if n < 0 or 0 < n < 64:
        raise argparse.ArgumentTypeError("--tile must be 0 or at least 64")
    return n


def _overlap(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile-overlap takes a pixel count, not {value!r}")
    if n < 0:
        raise argparse.ArgumentTypeError(f"--tile-overlap must be 0 or more pixels, not {n}")
    return n


def _memory(value: str) -> int:
    """``3G``, ``1500M``, ``2.5GiB`` or a byte count -> bytes."""
    text = value.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    try:
        n = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"--max-memory takes a size such as 3G or 1500M, not {value!r}")
    if not n > 0 or n != n:
        raise argparse.ArgumentTypeError(f"--max-memory must be positive, not {value!r}")
    return int(n)


def add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps; an unavailable device is an error")
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="network precision (default: auto, see README)")
    g.add_argument("--quality", default="auto", choices=["auto", "standard", "max"],
                   help="standard: Linearization- and Hallucination-Net (on clipped tiles only); max: all four networks "
                        "(about 5x the compute for +0.01 dB with the shipped weights); auto: the weights' default (standard)")
    g.add_argument("--runtime", default="auto", choices=["auto", "torch", "openvino", "onnxruntime"],
                   help="auto: OpenVINO on the CPU when installed (pip install openvino: the [fast] extra), else PyTorch")
    g.add_argument("--tile", type=_tile, default="auto", help="tile core size in pixels, 0 for whole image, auto (default: sized from --max-memory)")
    g.add_argument("--tile-overlap", type=_overlap, default=96, help="context pixels around each tile (default 96)")
    g.add_argument("--max-memory", type=_memory, default=None, metavar="SIZE",
                   help="peak-memory budget of one conversion, e.g. 3G or 1500M (default 3G); tiles are sized to stay inside it")
    g.add_argument("--weights", default=None, help="weights folder or .safetensors (default: shipped weights, or $HDR_PLUGIN_WEIGHTS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hdr-plugin", description="Single-image LDR -> scene-linear HDR reconstruction.")
    parser.add_argument("--version", action="version", version=f"hdr-plugin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log device, precision and timings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("convert", help="convert 8/16-bit images to scene-linear OpenEXR or Radiance HDR")
    c.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    c.add_argument("--pairs", help="JSON file with a list of [input, output] pairs (frame ranges from host adapters)")
    c.add_argument(
        "--input-encoding",
        choices=["display", "linear"],
        help="for float .exr/.hdr inputs: display-referred values in [0, 1], or scene-linear (sRGB-encoded first)",
    )
    c.add_argument("-o", "--output", help="output file (one input) or folder (default: next to each input)")
    c.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders")
    c.add_argument("--format", choices=["exr", "hdr"], help="output format (default: from -o, else exr)")
    half = c.add_mutually_exclusive_group()
    half.add_argument("--half", dest="float", action="store_false", help="16-bit half-float EXR (default; float32 is used automatically above 65504)")
    half.add_argument("--float", dest="float", action="store_true", help="32-bit float EXR")
    c.add_argument("--compression", default="zip", choices=["zip", "piz", "none", "zips", "rle", "dwaa", "dwab"], help="EXR compression (default zip; dwaa/dwab are lossy)")
    c.add_argument("--suffix", type=_suffix, default="", help="appended to each output file name stem")
    c.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    c.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    c.add_argument("--exposure", type=_exposure, default=0.0, help="exposure adjustment in EV added to the output")
    c.add_argument("--curve", help="use this inverse camera curve (.npy or text, 1024 samples) instead of estimating one")
    col = c.add_argument_group("colour (see README, Colour)")
    col.add_argument(
        "--input-space",
        default="auto",
        choices=["auto", "srgb", "display-p3", "adobe-rgb", "rec709", "rec2020"],
        help="the input's colour space (default auto: from the file's ICC profile / PNG / EXIF tags; untagged = srgb)",
    )
    col.add_argument(
        "--output-space",
        default="lin-rec709",
        choices=["lin-rec709", "lin-rec2020", "lin-p3", "acescg", "aces2065-1"],
        help="scene-linear output space, written into the EXR chromaticities (default lin-rec709)",
    )
    col.add_argument("--ocio", metavar="CONFIG", help="OpenColorIO config file or built-in URI (e.g. ocio://default); needs --ocio-space")
    col.add_argument("--ocio-space", metavar="NAME", help="colour space of the --ocio config to write (e.g. ACEScct)")
    col.add_argument("--passes", metavar="LIST", help="extra EXR layers: any of mask,linear,hallucinated,curve (or all)")
    col.add_argument("--multipart", action="store_true", help="write --passes as parts of a multi-part EXR instead of layers")
    c.add_argument("--json", action="store_true", help="machine-readable progress: one JSON object per line on stdout")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    bad = c.add_argument_group("bad input (see README 'Bad input and limits')")
    bad.add_argument(
        "--max-pixels",
        type=_max_pixels,
        default=120_000_000,
        metavar="N",
        help="refuse inputs whose header claims more pixels (default 120M: 8K frames and 100-MP photos pass; none: no limit)",
    )
    bad.add_argument("--allow-corrupt", action="store_true", help="convert files the decoder reports as corrupt (with a warning) instead of failing them")
    bad.add_argument("--debug", action="store_true", help="print the traceback of internal errors")
    s = c.add_argument_group("shots (image sequences and video; see README 'Shots and farms')")
    s.add_argument("--frames", help="frames of a pattern/video input: 1001-1100, 1001-1100x2, 1,5,9-12 (default: all on disk)")
    s.add_argument("--curve-per-frame", action="store_true", help="estimate a camera curve per frame instead of one per shot")
    s.add_argument(
        "--temporal-radius", type=_temporal_radius, default=None, metavar="R",
        help="stabilise restored highlights over the R frames either side (default 2; 0: off; see README 'Flicker')",
    )
    s.add_argument("--backend", choices=["local", "ray"], default="local", help="where frames are converted (default local; ray: pip install ray, the [ray] extra)")
    s.add_argument("--ray-address", help="Ray cluster: auto, HOST:PORT (default: $RAY_ADDRESS, else a local instance for this run)")
    s.add_argument("--workers", type=int, help="Ray worker actors, one Engine each (default: GPUs / --gpus-per-worker, else CPUs / 4)")
    s.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray worker (fractions share a GPU; default 0: CPU)")
    add_engine_options(c)
    c.set_defaults(func=cmd_convert, float=False)

    e = sub.add_parser("estimate-curve", help="estimate one inverse camera curve for several frames of a shot")
    e.add_argument("inputs", nargs="+", metavar="INPUT")
    e.add_argument("-o", "--output", required=True, help="curve file to write (.npy, or text)")
    e.add_argument("--max-frames", type=int, default=8, help="use at most this many evenly spaced frames")
    e.add_argument("--input-encoding", choices=["display", "linear"], help="for float .exr/.hdr frames (see convert)")
    e.add_argument("--input-space", default="auto", choices=["auto", "srgb", "display-p3", "adobe-rgb", "rec709", "rec2020"],
                   help="the frames' colour space, as for convert (the curve is estimated on what the engine is given)")
    e.add_argument("--frames", help="frames of a pattern/video input to spread the estimate over (default: all on disk)")
    e.add_argument("--overwrite", action="store_true")
    add_engine_options(e)
    e.set_defaults(func=cmd_estimate_curve)

    i = sub.add_parser("info", help="version, device, precision, weights, model config and plugins")
    i.add_argument("--json", action="store_true")
    add_engine_options(i)
    i.set_defaults(func=cmd_info)

    b = sub.add_parser("bench", help="seconds, MP/s, kMAC/px and GMAC/s per stage, peak memory; --against another checkout")
    b.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT (default 1920x1080)")
    b.add_argument("--repeat", type=int, default=2, help="timed runs per configuration, alternated (best is reported)")
    b.add_argument("--clipped", type=float, default=None, metavar="FRACTION",
                   help="re-expose the frame so this fraction of pixels is clipped (0: none; default: the sample's own ~10 %%)")
    b.add_argument("--against", metavar="PATH",
                   help="another checkout (folder with hdr_plugin/, run with its .venv) or weights folder, measured in the same run")
    b.add_argument("--json", action="store_true")
    b.add_argument(
        "--record",
        action="store_true",
        help="write the measured agreement into the weights manifest, so precision=auto may use this mode on this device type",
    )
    add_engine_options(b)
    b.set_defaults(func=cmd_bench)

    from .training.cli import add_train_parser

    add_train_parser(sub)

    from .evaluation.cli import add_eval_parser

    add_eval_parser(sub, add_engine_options)

    o = sub.add_parser("export-onnx", help="the reconstruction as one ONNX graph (display RGB in, scene-linear RGB out) for other hosts")
    o.add_argument("output", help="the .onnx file to write")
    o.add_argument("--weights", default=None)
    o.add_argument("--quality", default="standard", choices=["standard"],
                   help="which networks the graph holds: the default path, Linearization- and Hallucination-Net")
    o.add_argument("--overwrite", action="store_true")
    o.add_argument("--check-size", default="320x192", help="WIDTHxHEIGHT (multiples of 64) of the ONNX Runtime self-check")
    o.set_defaults(func=cmd_export_onnx)

    x = sub.add_parser("export-torchscript", help="TorchScript of the whole pipeline for Nuke's CatFileCreator / Inference node")
    x.add_argument("output", help="the .pt file to write")
    x.add_argument("--weights", default=None)
    x.add_argument("--overwrite", action="store_true")
    x.add_argument("--check-size", default="256x192", help="WIDTHxHEIGHT of the self-check run after export")
    x.set_defaults(func=cmd_export_torchscript)
    return parser


@contextlib.contextmanager
def _terminate_gracefully():
    """Turn SIGTERM (how host adapters cancel us) into KeyboardInterrupt while a command
    runs, so cleanup happens: the file in progress is discarded, nothing partial is left."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _terminate_gracefully():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (hdr-plugin info | head): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # no second complaint when Python flushes stdout at exit
        except OSError:
            pass
        return 141
    except Exception as e:  # outside the per-file handling: one line, the traceback with --debug
        from .io import ImageReadError
        from .weights import WeightsError

        if isinstance(e, (ImageReadError, WeightsError)):
            print(f"error: {e}", file=sys.stderr)
        else:
            print(f"error: {_internal_error(None, e, args)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
