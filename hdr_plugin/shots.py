"""Shots: image sequences and video in, one camera curve per shot, EXR sequences out.

A *shot* is a numbered run of frames: a file pattern (``plate.%04d.jpg``,
``plate.####.jpg``, ``plate.@.jpg``), an explicit list of files, or a video file
(:mod:`hdr_plugin.video`, the ``video`` extra).  :func:`convert_shot` converts the
frames of a shot to an EXR (or ``.hdr``) sequence whose names keep the frame numbers::

    import hdr_plugin
    report = hdr_plugin.convert_shot("plates/sh010.%04d.jpg", "out/sh010.%04d.exr", frames="1001-1100")
    report.converted, report.failed, report.missing, report.curve_path

**Frame tokens.** ``%d`` / ``%0Nd`` (printf), ``#`` and ``@`` (one digit of padding per
character: ``####`` = ``@@@@`` = ``%04d``; a single ``@`` or ``#`` is unpadded).  Numbers
longer than the padding are fine (``plate.10000.jpg`` for ``####``); negative frames
are written the printf way (``-001`` for ``%04d``) and read in either form (``-001``,
``-0001``).  Files whose digits do not match the padding (``plate.01.jpg`` next to
``plate.0001.jpg``) are reported as mixed padding and left out, never silently merged.

**Frame ranges** (``--frames``): ``1001-1100``, ``1001-1100x2`` (or ``1001-1100:2``, the
Open Job Description spelling), single frames and comma lists (``1,5,10-20``), negative
numbers (``-10--1``, ``-5-5``).  Requested frames that are not on disk are *gaps*:
reported (``report.missing``), never fatal.

**One curve per shot.** Unless told otherwise the inverse camera curve is estimated once
from ``K = 8`` frames spread evenly over the *whole* shot on disk (first and last
included), not over the ``--frames`` chunk, so farm chunks that estimate it on their own
still agree; it is saved next to the outputs as ``<shot>.curve.npy`` and reused by later
runs (``--skip-existing`` resumes, other chunks) unless ``overwrite``.  Every EXR records
the curve's mode, SHA-256, file and source frames in its header.  ``curve=<file or
array>`` forces a curve (farm chunks: ``--curve shot.curve.npy``); ``curve="per-frame"``
estimates one per frame (the single-image behaviour; flickers, see the README).
K = 8: the curve is a mean of per-frame Linearization-Net curves, so 8 samples spread over
the shot average out per-frame estimation noise while costing 8 extra dequantization
passes — under 1 % of a 1000-frame shot.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .frame_color import ColorOptions
from .plugins import hookimpl

CURVE_FRAMES = 8
CURVE_SUFFIX = ".curve.npy"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v", ".avi", ".webm", ".mxf", ".mts", ".m2ts")
OUTPUT_SUFFIXES = (".exr", ".hdr")

_TOKEN_RE = re.compile(r"%(0?)(\d*)d|#+|@+")
_RANGE_RE = re.compile(r"^\s*(-?\d+)(?:\s*-\s*(-?\d+)(?:\s*[x:]\s*(-?\d+))?)?\s*$")


class ShotError(ValueError):
    """A shot cannot be set up (bad pattern, range, curve or output); nothing was converted."""


# --------------------------------------------------------------------------- patterns
@dataclass(frozen=True)
class FramePattern:
    """A file name pattern with one frame-number token in the file name."""

    text: str
    head: str  # path text before the token
    tail: str  # text after the token
    padding: int  # minimum digits (1 = unpadded)

    def format(self, frame: int) -> str:
        """The frame number as written (printf ``%0Nd``: ``-001`` for -1 at padding 4)."""
        return f"{int(frame):0{self.padding}d}"

    def path(self, frame: int) -> Path:
        return Path(f"{self.head}{self.format(frame)}{self.tail}")

    @property
    def folder(self) -> Path:
        return Path(self.head).parent if self.head else Path(".")

    @property
    def name_head(self) -> str:
        return Path(self.head + "x").name[:-1]

    @property
    def shot_name(self) -> str:
        """``plate`` for ``plates/plate.%04d.jpg`` (``shot`` if the name starts with the token)."""
        return self.name_head.rstrip("._- ") or "shot"

    def number_of(self, name: str) -> int | None:
        """The frame number in file name ``name``, or None if it is not a frame of this pattern
        (padding must match: see :meth:`padding_ok`)."""
        m = self._name_re().match(name)
        return int(m.group(1)) if m else None

    def padding_ok(self, digits: str) -> bool:
        n = int(digits)
        if digits == self.format(n):
            return True
        body = digits.lstrip("-")
        return n < 0 and body == f"{-n:0{self.padding}d}"  # -0001 for padding 4

    def _name_re(self) -> re.Pattern:
        tail_name = self.tail
        return re.compile("^" + re.escape(self.name_head) + r"(-?\d+)" + re.escape(tail_name) + "$")

    def scan(self) -> tuple[dict[int, Path], list[str]]:
        """Frames on disk: ``({frame: path}, problems)`` (mixed padding, duplicate numbers)."""
        found: dict[int, Path] = {}
        problems: list[str] = []
        folder = self.folder
        if not folder.is_dir():
            return found, [f"{self.text}: folder {folder} does not exist"]
        rx = self._name_re()
        bad: list[str] = []
        for entry in sorted(os.listdir(folder)):
            m = rx.match(entry)
            if not m or not (folder / entry).is_file():
                continue
            digits = m.group(1)
            if not self.padding_ok(digits):
                bad.append(entry)
                continue
            n = int(digits)
            if n in found:
                problems.append(f"frame {n}: both {found[n].name} and {entry} exist; using {found[n].name}")
                continue
            found[n] = folder / entry
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            problems.append(f"mixed padding: {shown} do not match the {self.padding}-digit padding of {self.text}; left out")
        return dict(sorted(found.items())), problems


def parse_pattern(text: str | os.PathLike) -> FramePattern | None:
    """A :class:`FramePattern` if ``text`` has a frame token in its file name, else None.

    Raises :class:`ShotError` for two tokens, or a token in a folder name.
    """
    text = str(text)
    name_start = max(text.rfind("/"), text.rfind(os.sep)) + 1
    tokens = list(_TOKEN_RE.finditer(text))
    if not tokens:
        return None
    if tokens[0].start() < name_start:
        raise ShotError(f"{text}: the frame token must be in the file name, not a folder name")
    if len(tokens) > 1:
        raise ShotError(f"{text}: more than one frame token ({', '.join(t.group(0) for t in tokens)})")
    t = tokens[0]
    token = t.group(0)
    if token.startswith("%"):
        zero, width = t.group(1), t.group(2)
        if width and not zero and int(width) > 1:
            raise ShotError(f"{text}: space-padded {token} is not a file-name padding; use %0{width}d")
        padding = max(1, int(width or 1))
    else:
        padding = len(token)
    return FramePattern(text, text[: t.start()], text[t.end():], padding)


def parse_frames(spec: str | Iterable[int] | None) -> list[int] | None:
    """Frame numbers from ``1001-1100``, ``1001-1100x2``, ``1-10:3``, ``1,5,7-9``, ``-10--1``.

    Returns a sorted list without duplicates (None for None).  Raises :class:`ShotError`.
    """
    if spec is None:
        return None
    if not isinstance(spec, str):
        return sorted({int(f) for f in spec})
    frames: set[int] = set()
    parts = [p for p in spec.split(",")]
    if not spec.strip():
        raise ShotError("empty frame range")
    for part in parts:
        m = _RANGE_RE.match(part)
        if not m:
            raise ShotError(f"bad frame range {part.strip()!r}: use START-END, START-ENDxSTEP or a frame number")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        step = int(m.group(3)) if m.group(3) is not None else 1
        if end < start:
            raise ShotError(f"bad frame range {part.strip()!r}: the end is before the start")
        if step < 1:
            raise ShotError(f"bad frame range {part.strip()!r}: the step must be at least 1")
        frames.update(range(start, end + 1, step))
    return sorted(frames)


def format_ranges(frames: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"``."""
    out: list[str] = []
    nums = sorted(set(frames))
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(out)


def curve_picks(n: int, k: int = CURVE_FRAMES) -> list[int]:
    """Indices of at most ``k`` evenly spaced items out of ``n`` (first and last kept)."""
    if n <= 0:
        return []
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [0]
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def is_video(path: str | os.PathLike) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def is_shot_input(item: Any) -> bool:
    """Whether ``item`` names a shot (a frame pattern or a video file) rather than files."""
    if isinstance(item, (list, tuple)):
        return False
    try:
        return parse_pattern(str(item)) is not None or is_video(item)
    except ShotError:
        return True  # a malformed pattern: let the shot code report it


# --------------------------------------------------------------------------- the shot
@dataclass
class FrameJob:
    """One frame to convert: its number, where its pixels come from and where it goes."""

    number: int
    output: Path
    source: Path | None = None  # an image file
    video_index: int | None = None  # or the index of a frame in the shot's video


@dataclass
class Shot:
    """The frames of a shot: which exist (``available``), which were asked for and missing."""

    name: str
    kind: str  # "pattern" | "files" | "video"
    available: dict[int, Path | int]  # frame number -> file, or video frame index
    problems: list[str] = field(default_factory=list)
    video: Any = None  # hdr_plugin.video.VideoSource
    pattern: FramePattern | None = None
    input_encoding: str | None = None
    text: str = ""

    @property
    def numbers(self) -> list[int]:
        return sorted(self.available)

    def gaps(self) -> list[int]:
        """Frames missing between the first and last frame on disk."""
        nums = self.numbers
        if not nums:
            return []
        have = set(nums)
        return [n for n in range(nums[0], nums[-1] + 1) if n not in have]

    def select(self, frames: list[int] | None) -> tuple[list[int], list[int]]:
        """``(present, missing)`` for the requested frame numbers (all frames if None)."""
        if frames is None:
            return self.numbers, []
        present = [f for f in frames if f in self.available]
        return present, [f for f in frames if f not in self.available]

    def read(self, number: int):
        """The frame as an :class:`hdr_plugin.io.LDRImage` (display-referred RGB [0, 1])."""
        src = self.available[number]
        if self.kind == "video":
            return self.video.read([int(src)])[int(src)]
        from .io import read_input

        return read_input(src, self.input_encoding)

    def read_many(self, numbers: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """Frames in order (one sequential decode for video)."""
        if self.kind == "video":
            index = {int(self.available[n]): n for n in numbers}
            for i, image in self.video.iter_frames(set(index)):
                yield index[i], image
            return
        for n in numbers:
            yield n, self.read(n)

    def metadata(self) -> dict[str, str]:
        meta = {"hdrPluginShot": self.name}
        if self.video is not None:
            meta.update(self.video.metadata())
        return meta


def open_shot(
    frames_or_pattern: Any, *, input_encoding: str | None = None, first_frame: int = 1
) -> Shot:
    """A :class:`Shot` from a pattern, a video file, a list of image files, or a mapping
    ``{frame number: image file}``.

    Lists take their frame numbers from the last group of digits in each file name
    (their position, from ``first_frame``, when a name has none or numbers repeat).
    """
    if isinstance(frames_or_pattern, Mapping):
        numbered = sorted((int(n), Path(p)) for n, p in frames_or_pattern.items())
        frames_or_pattern = [p for _, p in numbered]
    else:
        numbered = None
    if isinstance(frames_or_pattern, (list, tuple)):
        paths = [Path(p) for p in frames_or_pattern]
        if not paths:
            raise ShotError("no frames given")
        numbers = []
        for p in paths:
            m = re.search(r"(-?\d+)(?=\D*$)", p.stem + "")
            numbers.append(int(m.group(1)) if m else None)
        if numbered is not None:
            numbers = [n for n, _ in numbered]
        elif None in numbers or len(set(numbers)) != len(numbers):
            numbers = list(range(first_frame, first_frame + len(paths)))
        problems = [f"{p}: no such file" for p in paths if not p.is_file()]
        available = {n: p for n, p in zip(numbers, paths) if p.is_file()}
        name = _common_stem(paths)
        return Shot(name, "files", dict(sorted(available.items())), problems, input_encoding=input_encoding, text=str(paths[0]))
    text = str(frames_or_pattern)
    pattern = parse_pattern(text)
    if pattern is not None:
        available, problems = pattern.scan()
        if not available and not problems:
            problems.append(f"{text}: no frames on disk match this pattern")
        return Shot(pattern.shot_name, "pattern", available, problems, pattern=pattern, input_encoding=input_encoding, text=text)
    if is_video(text):
        from .video import VideoSource

        video = VideoSource(text)
        count = video.frame_count()
        available = {first_frame + i: i for i in range(count)}
        return Shot(Path(text).stem, "video", available, [], video=video, text=text)
    if Path(text).is_file():
        raise ShotError(f"{text}: a single image, not a shot; give a frame pattern such as plate.%04d.jpg")
    raise ShotError(f"{text}: neither a frame pattern (plate.%04d.jpg, plate.####.jpg, plate.@.jpg) nor a video file")


def _common_stem(paths: list[Path]) -> str:
    stems = [p.stem for p in paths]
    prefix = os.path.commonprefix(stems)
    prefix = re.sub(r"-?\d+$", "", prefix).rstrip("._- ")
    return prefix or "shot"


def output_for(shot: Shot, number: int, out: str | os.PathLike | None, fmt: str = "exr", suffix: str = "") -> Path:
    """Where frame ``number`` goes: an output pattern keeps the number; a folder gets the
    input's own file name (frame number included) with the output extension; no ``out``:
    next to the input (video: next to the video, ``<video>.%04d.exr``)."""
    if out is not None:
        pattern = parse_pattern(out)
        if pattern is not None:
            return pattern.path(number)
    src = shot.available[number]
    if shot.kind == "video" or not isinstance(src, Path):
        digits = max(4, len(str(max(shot.numbers or [1]))))
        name = f"{shot.name}{suffix}.{number:0{digits}d}.{fmt}"
        folder = Path(out) if out is not None else Path(shot.text).parent
        return folder / name
    if shot.pattern is not None:
        name = f"{shot.pattern.name_head}{shot.pattern.format(number)}{suffix}{_strip_ext(shot.pattern.tail)}.{fmt}"
    else:
        name = f"{src.stem}{suffix}.{fmt}"
    return (Path(out) if out is not None else src.parent) / name


def _strip_ext(tail: str) -> str:
    return tail[: -len(Path("x" + tail).suffix)] if Path("x" + tail).suffix else tail


def curve_path_for(shot: Shot, out: str | os.PathLike | None, first_output: Path) -> Path:
    """``<shot>.curve.npy`` in the output folder (named after the output pattern if any)."""
    if out is not None:
        pattern = parse_pattern(out)
        if pattern is not None:
            return pattern.folder / f"{pattern.shot_name}{CURVE_SUFFIX}"
    return first_output.parent / f"{shot.name}{CURVE_SUFFIX}"


# --------------------------------------------------------------------------- curves
def load_curve(path: str | os.PathLike) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise ShotError(f"curve file {p} does not exist")
    curve = np.load(p) if p.suffix == ".npy" else np.loadtxt(p)
    return np.asarray(curve, dtype=np.float32).reshape(-1)


def save_curve(path: str | os.PathLike, curve: np.ndarray) -> Path:
    """Write ``curve`` (float32) atomically; ``.npy`` or text by extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        curve = np.asarray(curve, dtype=np.float32)
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, curve)
        else:
            np.savetxt(tmp, curve)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def curve_sha256(curve: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(curve, dtype=np.float32).tobytes()).hexdigest()


def estimate_shot_curve(
    engine, shot: Shot, k: int = CURVE_FRAMES, frames: Sequence[int] | None = None, color: ColorOptions | None = None
) -> tuple[np.ndarray, list[int]]:
    """One inverse curve from ``k`` frames spread over ``frames`` (default: the whole shot).

    The curve is estimated on what the engine is given for each frame (``color``'s input
    space: the same display-referred RGB a single-image conversion reconstructs).
    Returns ``(curve, frame numbers used)``.
    """
    numbers = sorted(frames) if frames is not None else shot.numbers
    numbers = [n for n in numbers if n in shot.available]
    if not numbers:
        raise ShotError("no frames to estimate the shot curve from")
    picks = [numbers[i] for i in curve_picks(len(numbers), k)]
    color = color or ColorOptions()
    images = [color.engine_image(image)[0] for _, image in shot.read_many(picks)]
    return engine.shot_curve(images), picks


@dataclass
class CurvePlan:
    """The curve every frame of a run uses, and how it is described in the EXR headers."""

    mode: str  # "shot" | "file" | "per-frame"
    curve: np.ndarray | None = None
    path: Path | None = None
    frames: list[int] = field(default_factory=list)
    reused: bool = False

    def metadata(self) -> dict[str, str]:
        meta = {"hdrPluginCurveMode": self.mode}
        if self.curve is not None:
            meta["hdrPluginCurveSha256"] = curve_sha256(self.curve)
            # 17 samples of the inverse curve, enough to see which camera curve was used
            meta["hdrPluginCurve17"] = " ".join(f"{v:.5f}" for v in self.curve[:: (len(self.curve) - 1) // 16][:17])
        if self.path is not None:
            meta["hdrPluginCurveFile"] = self.path.name
        if self.frames:
            meta["hdrPluginCurveFrames"] = ",".join(map(str, self.frames))
        return meta


def plan_curve(
    engine_factory: Callable[[], Any],
    shot: Shot,
    curve: Any,
    curve_file: Path,
    *,
    overwrite: bool = False,
    k: int = CURVE_FRAMES,
    log: Callable[[str], None] = lambda s: None,
    color: ColorOptions | None = None,
) -> CurvePlan:
    """Decide the run's curve: ``curve`` is None (shot curve: reuse ``curve_file`` if it
    exists and not ``overwrite``, else estimate and save it), ``"per-frame"``, a path or an array."""
    from .pipeline import _check_curve

    if isinstance(curve, str) and curve == "per-frame":
        return CurvePlan("per-frame")
    if curve is not None:
        if isinstance(curve, (str, os.PathLike)):
            path = Path(curve)
            array = load_curve(path)
        else:
            path, array = None, np.asarray(curve, dtype=np.float32).reshape(-1)
        try:
            array = _check_curve(array)
        except ValueError as e:
            raise ShotError(f"curve {path or '(array)'}: {e}")
        return CurvePlan("file", array, path)
    if curve_file.is_file() and not overwrite:
        try:
            array = _check_curve(load_curve(curve_file))
        except (ValueError, OSError) as e:
            raise ShotError(f"{curve_file}: not a usable curve ({e}); remove it or pass --overwrite")
        log(f"shot curve: reusing {curve_file}")
        return CurvePlan("shot", array, curve_file, reused=True)
    array, picks = estimate_shot_curve(engine_factory(), shot, k, color=color)
    save_curve(curve_file, array)
    log(f"shot curve: estimated from frames {format_ranges(picks) if len(picks) > 8 else ', '.join(map(str, picks))} -> {curve_file}")
    return CurvePlan("shot", array, curve_file, picks)


# --------------------------------------------------------------------------- converting
@dataclass
class ConvertOptions:
    """How each frame is written (the same for every backend)."""

    exposure: float = 0.0
    half: bool = True
    compression: str = "zip"
    overwrite: bool = False
    skip_existing: bool = False
    fmt: str = "exr"
    color: ColorOptions = field(default_factory=ColorOptions)


@dataclass
class EngineOptions:
    """How each worker builds its Engine."""

    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    tile: Any = "auto"
    tile_overlap: int = 96
    quality: str = "auto"
    runtime: str = "auto"
    max_memory: Any = None

    @classmethod
    def from_args(cls, args) -> "EngineOptions":
        """From the engine options of ``convert`` / ``estimate-curve`` (as a single-image run builds its Engine)."""
        return cls(args.weights, args.device, args.precision, args.tile, args.tile_overlap,
                   getattr(args, "quality", "auto"), getattr(args, "runtime", "auto"), getattr(args, "max_memory", None))

    def resolved(self) -> "EngineOptions":
        """With the weights path made explicit (workers on other processes need it)."""
        from dataclasses import replace

        weights = self.weights or os.environ.get("HDR_PLUGIN_WEIGHTS") or None
        return replace(self, weights=str(Path(weights).resolve()) if weights else None)

    def build(self):
        from .pipeline import Engine

        return Engine(self.weights, device=self.device, precision=self.precision, tile=self.tile, tile_overlap=self.tile_overlap,
                      quality=self.quality, runtime=self.runtime, max_memory=self.max_memory)


def convert_frame(engine, image, dst: Path, curve: np.ndarray | None, options: ConvertOptions, metadata: dict[str, str], source: str) -> float:
    """Reconstruct one decoded frame and write it atomically; returns seconds spent.

    Colour (``options.color``) as a single-image conversion: input space, output space or
    OCIO, passes; the EXR gets the same chromaticities and attributes, plus ``metadata``.
    """
    from .io import write_image
    from .plugins import register_plugin, unregister_plugin

    t0 = time.perf_counter()
    rgb, in_color = options.color.engine_image(image)
    collector = options.color.collector()
    if collector is not None:
        register_plugin(collector, pm=engine.plugin_manager)
    try:
        result = engine.reconstruct(rgb, exposure=options.exposure, curve=curve, source=source)
    finally:
        if collector is not None:
            unregister_plugin(collector, pm=engine.plugin_manager)
    rgb, exr_options = options.color.output(result, in_color, collector)
    exr_options["attributes"].update(metadata)
    write_image(
        dst,
        rgb,
        image.alpha,
        half=options.half,
        compression=options.compression,
        overwrite=options.overwrite,
        premultiply=not image.alpha_associated,
        **(exr_options if dst.suffix.lower() == ".exr" else {}),
    )
    return time.perf_counter() - t0


def remove_partials(outputs: Iterable[Path]) -> list[Path]:
    """Delete temporary files a killed writer left beside ``outputs`` (``.<stem>.*.partial<ext>``,
    the names :func:`hdr_plugin.io.atomic_output` uses); returns what was removed."""
    removed = []
    by_folder: dict[Path, set[str]] = {}
    for o in outputs:
        by_folder.setdefault(o.parent, set()).add(o.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in os.listdir(folder):
            if not entry.startswith(".") or ".partial" not in entry:
                continue
            for name in names:
                p = Path(name)
                if entry.startswith(f".{p.stem}.") and entry.endswith(f".partial{p.suffix}"):
                    try:
                        (folder / entry).unlink()
                        removed.append(folder / entry)
                    except FileNotFoundError:
                        pass
                    break
    return removed


@dataclass
class ShotReport:
    """What a shot run did; ``exit_code`` is the CLI's (0 ok, 1 frames failed, 2 nothing ran)."""

    shot: str = ""
    total: int = 0
    converted: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    outputs: dict[int, Path] = field(default_factory=dict)
    curve_mode: str = ""
    curve_path: Path | None = None
    backend: str = "local"
    workers: int = 1
    elapsed: float = 0.0
    seconds: dict[int, float] = field(default_factory=dict)
    error: str = ""
    cancelled: bool = False

    @property
    def done(self) -> int:
        """Frames finished either way (converted, skipped or failed)."""
        return len(self.converted) + len(self.skipped) + len(self.failed)

    def frame_failed(self, number: int, message: str, progress: Progress) -> None:
        """Record a failed frame and report it (every backend goes through here)."""
        self.failed[number] = message
        progress(event="error", frame=number, message=message, done=self.done, total=self.total)

    def frame_done(self, job: FrameJob, seconds: float, progress: Progress) -> None:
        """Record a written frame once (a retried frame that finished twice counts once)."""
        if job.number in self.converted:
            return
        self.converted.append(job.number)
        self.outputs[job.number] = job.output
        self.seconds[job.number] = seconds
        progress(event="done", frame=job.number, output=str(job.output), seconds=round(seconds, 3), done=self.done, total=self.total)

    @property
    def exit_code(self) -> int:
        if self.cancelled:
            return 130
        if self.error or (self.total == 0 and not self.skipped):
            return 2
        return 1 if self.failed else 0

    def summary(self) -> str:
        text = f"{len(self.converted)} converted, {len(self.skipped)} skipped, {len(self.failed)} failed in {self.elapsed:.1f} s"
        if self.missing:
            text += f"; {len(self.missing)} missing from disk: {format_ranges(self.missing)}"
        return text

    def lines(self) -> list[str]:
        out = [self.summary()]
        if self.failed:
            out.append(f"  failed frames: {format_ranges(self.failed)}")
            for n, why in sorted(self.failed.items()):
                out.append(f"  failed: frame {n}: {why}")
        return out

    def frames_per_second(self) -> float:
        return len(self.converted) / self.elapsed if self.elapsed > 0 else 0.0


Progress = Callable[..., None]


def _no_progress(**event: Any) -> None:
    pass


def plan_jobs(shot: Shot, frames: list[int] | None, out: str | os.PathLike | None, fmt: str, suffix: str = "") -> tuple[list[FrameJob], list[int]]:
    present, missing = shot.select(frames)
    jobs = []
    for n in present:
        src = shot.available[n]
        jobs.append(
            FrameJob(
                n,
                output_for(shot, n, out, fmt, suffix),
                source=src if isinstance(src, Path) else None,
                video_index=src if shot.kind == "video" else None,
            )
        )
    return jobs, missing


def run_local(
    engine,
    shot: Shot,
    jobs: list[FrameJob],
    plan: CurvePlan,
    options: ConvertOptions,
    report: ShotReport,
    progress: Progress = _no_progress,
    temporal_radius: int = 0,
) -> None:
    """Convert ``jobs`` one after another with ``engine`` (frames decoded in order);
    ``temporal_radius > 0``: through :func:`hdr_plugin.temporal.run_local_temporal`."""
    if temporal_radius:
        from .temporal import run_local_temporal

        return run_local_temporal(engine, shot, jobs, plan, options, report, progress, temporal_radius)
    base_meta = {**shot.metadata(), **plan.metadata(), "hdrPluginTemporalRadius": "0"}
    todo = pending_jobs(jobs, options, report, progress)
    by_number = {j.number: j for j in todo}
    for number, image in iter_images(shot, [j.number for j in todo]):
        if isinstance(image, Exception):  # a frame that cannot be read or decoded
            report.frame_failed(number, str(image), progress)
            continue
        job = by_number[number]
        try:
            meta = {**base_meta, "hdrPluginFrame": str(number)}
            seconds = convert_frame(engine, image, job.output, plan.curve, options, meta, str(job.source or f"{shot.text}#{number}"))
        except (ValueError, OSError, RuntimeError) as e:
            if type(e).__name__ == "Cancelled":
                raise
            report.frame_failed(number, str(e), progress)
            continue
        report.frame_done(job, seconds, progress)


def iter_images(shot: Shot, numbers: Sequence[int]) -> Iterator[tuple[int, Any]]:
    """``(number, LDRImage or the exception that reading it raised)`` in order; a video
    that stops decoding fails its remaining frames."""
    if shot.kind != "video":
        for n in numbers:
            try:
                yield n, shot.read(n)
            except (OSError, ValueError, RuntimeError) as e:
                yield n, e
        return
    pending = list(numbers)
    try:
        for n, image in shot.read_many(numbers):
            pending.remove(n)
            yield n, image
    except (OSError, ValueError, RuntimeError) as e:
        for n in pending:
            yield n, RuntimeError(f"video decoding failed before this frame: {e}")
        return
    for n in pending:
        yield n, RuntimeError("the video ended before this frame")


def pending_jobs(jobs: list[FrameJob], options: ConvertOptions, report: ShotReport, progress: Progress) -> list[FrameJob]:
    """The jobs still to convert: frames whose output exists are skipped (``--skip-existing``)
    or reported as failed (neither ``--skip-existing`` nor ``--overwrite``), both counted in
    ``report`` and announced through ``progress``.  Shared by every backend."""
    todo: list[FrameJob] = []
    for job in jobs:
        status = _existing(job, options)
        if status == "skip":
            report.skipped.append(job.number)
            progress(event="skipped", frame=job.number, output=str(job.output), done=report.done, total=report.total)
        elif status:
            report.frame_failed(job.number, status, progress)
        else:
            todo.append(job)
    return todo


def _existing(job: FrameJob, options: ConvertOptions) -> str | None:
    """None (convert), "skip", or why the frame fails before it starts."""
    if job.output.exists():
        if options.skip_existing:
            return "skip"
        if not options.overwrite:
            return f"{job.output} exists (use --overwrite or --skip-existing)"
    if job.source is not None and job.output.resolve() == job.source.resolve():
        return "output would replace the input"
    return None


def convert_shot(
    frames_or_pattern: Any,
    out_pattern: str | os.PathLike | None = None,
    *,
    frames: str | Iterable[int] | None = None,
    curve: Any = None,
    curve_per_frame: bool = False,
    curve_frames: int = CURVE_FRAMES,
    engine=None,
    weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    tile: Any = "auto",
    tile_overlap: int = 96,
    quality: str = "auto",
    runtime: str = "auto",
    max_memory: Any = None,
    exposure: float = 0.0,
    half: bool = True,
    compression: str = "zip",
    overwrite: bool = False,
    skip_existing: bool = False,
    suffix: str = "",
    input_encoding: str | None = None,
    first_frame: int = 1,
    backend: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    retries: int = 2,
    temporal_radius: int | None = None,
    progress: Progress | None = None,
    input_space: str = "auto",
    output_space: str = "lin-rec709",
    ocio: str | None = None,
    ocio_space: str | None = None,
    passes: str | Sequence[str] | None = None,
    multipart: bool = False,
    cancel: Callable[[], bool] | None = None,
) -> ShotReport:
    """Convert a shot to a frame-numbered EXR/HDR sequence; see the module documentation.

    ``frames_or_pattern``: a pattern (``plate.%04d.jpg``), a video file, a list of files, or
    a mapping ``{frame number: file}``.
    ``out_pattern``: an output pattern (``out/plate.%04d.exr``), a folder, or None (next to
    the inputs).  ``frames``: a range string or numbers (default: every frame on disk).
    ``curve``: None (one curve per shot, saved as ``<shot>.curve.npy``), a curve file or
    array; ``curve_per_frame=True`` estimates one per frame.  ``backend``: ``"local"`` or
    ``"ray"`` (``workers``, ``ray_address``, ``gpus_per_worker``, ``retries``).  ``weights``,
    ``device``, ``precision``, ``tile``, ``tile_overlap``, ``quality``, ``runtime`` and
    ``max_memory`` build each Engine as :class:`hdr_plugin.Engine` takes them.
    ``temporal_radius``: stabilise the hallucinated highlights over the frames this many
    frame numbers either side (:mod:`hdr_plugin.temporal`; None: its ``DEFAULT_RADIUS``, 0: off).
    ``progress(**event)`` receives ``start``/``curve``/``done``/``skipped``/``error``/
    ``summary`` events with ``frame``, ``done`` and ``total``.  Returns a :class:`ShotReport`;
    frames that fail are reported there (and retried first on Ray), never raised.

    Colour, as for single images (:mod:`hdr_plugin.frame_color`): ``input_space``
    (``auto``: each file's tags, untagged = sRGB; video: Rec.709), ``output_space`` or
    ``ocio`` + ``ocio_space``, ``passes`` (``"mask,linear"``, ``"all"`` or a list) and
    ``multipart``; the shot curve is estimated on the frames as the engine is given them.
    ``cancel()``: checked after every frame event (and, on the local backend, between the
    engine's tiles); once it returns True the run stops, frames in progress are not
    written and ``report.cancelled`` is True.
    """
    progress = progress or _no_progress
    if cancel is not None:
        progress = _cancellable(progress, cancel)
    t0 = time.perf_counter()
    report = ShotReport(backend=backend)
    if backend not in ("local", "ray"):
        raise ShotError(f"unknown backend {backend!r}: use local or ray")
    if curve_per_frame and curve is not None:
        raise ShotError("curve and curve_per_frame exclude each other")
    from . import temporal

    try:
        radius = temporal.DEFAULT_RADIUS if temporal_radius is None else temporal.check_radius(temporal_radius)
    except ValueError as e:
        raise ShotError(str(e)) from None
    fmt = "exr"
    if out_pattern is not None and Path(str(out_pattern)).suffix.lower() in OUTPUT_SUFFIXES:
        fmt = Path(str(out_pattern)).suffix.lower()[1:]
        if parse_pattern(out_pattern) is None and not Path(out_pattern).is_dir():
            raise ShotError(f"-o {out_pattern} names one file; give an output pattern such as out/plate.%04d.exr, or a folder")
    try:
        colour = ColorOptions.make(input_space, output_space, ocio, ocio_space, passes, multipart)
        colour.check(fmt)
    except ValueError as e:  # an unknown space or pass, OpenColorIO missing, --passes with .hdr
        raise ShotError(str(e)) from None
    if colour.passes and radius:
        raise ShotError("--passes come from one engine run per frame and temporal stabilisation changes the frames after it; "
                        "add --temporal-radius 0 (temporal_radius=0) to write passes")
    if backend == "ray":
        from .distributed.ray_backend import _ray

        _ray()  # fail now, naming the extra, before any curve is estimated
    shot = open_shot(frames_or_pattern, input_encoding=input_encoding, first_frame=first_frame)
    report.shot = shot.name
    report.problems += shot.problems
    wanted = parse_frames(frames)
    jobs, missing = plan_jobs(shot, wanted, out_pattern, fmt, suffix)
    report.missing = missing
    if wanted is None:
        report.missing = shot.gaps()  # reported, nothing was asked for them
    report.total = len(jobs)
    outputs = [j.output for j in jobs]
    if len(set(outputs)) != len(outputs):
        raise ShotError(f"several frames would be written to the same file (is {out_pattern} missing a frame token?)")
    options = ConvertOptions(exposure, half, compression, overwrite, skip_existing, fmt, colour)
    eng_opts = EngineOptions(weights, device, precision, tile, tile_overlap, quality, runtime, max_memory)
    if not jobs:
        report.error = "nothing to convert" + (f": frames {format_ranges(missing)} are not on disk" if missing else "")
        report.elapsed = time.perf_counter() - t0
        progress(event="summary", **_summary_event(report))
        return report
    remove_partials(outputs)
    engine_box: list = [engine]

    cancel_hook = _CancelHook(cancel) if cancel is not None and backend == "local" else None

    def engine_factory():
        if engine_box[0] is None:
            engine_box[0] = eng_opts.build()
        if cancel_hook is not None:
            cancel_hook.attach(engine_box[0])
        return engine_box[0]

    curve_file = curve_path_for(shot, out_pattern, jobs[0].output)
    plan = plan_curve(
        engine_factory,
        shot,
        "per-frame" if curve_per_frame else curve,
        curve_file,
        overwrite=overwrite,
        k=curve_frames,
        log=lambda s: progress(event="log", message=s),
        color=colour,
    )
    report.curve_mode, report.curve_path = plan.mode, plan.path
    progress(
        event="start", shot=shot.name, total=report.total, backend=backend, curve=plan.mode,
        curve_file=str(plan.path) if plan.path else None, missing=report.missing,
    )
    try:
        if backend == "local":
            run_local(engine_factory(), shot, jobs, plan, options, report, progress, temporal_radius=radius)
        else:
            from .distributed import run_ray

            run_ray(shot, jobs, plan, options, eng_opts, report, progress,
                    workers=workers, address=ray_address, gpus_per_worker=gpus_per_worker, retries=retries,
                    temporal_radius=radius)
    except KeyboardInterrupt:
        report.cancelled = True
    except Exception as e:
        if type(e).__name__ != "Cancelled":
            raise
        report.cancelled = True
    finally:
        if cancel_hook is not None:
            cancel_hook.detach()
        remove_partials(outputs)
        report.elapsed = time.perf_counter() - t0
    report.converted.sort()
    progress(event="summary", **_summary_event(report))
    return report


def _cancellable(progress: Progress, cancel: Callable[[], bool]) -> Progress:
    """``progress`` that stops the run (raises Cancelled) after a frame event once ``cancel()`` is true."""

    def checked(**event: Any) -> None:
        progress(**event)
        if event.get("event") in ("done", "skipped", "error", "retry") and cancel():
            from .pipeline import Cancelled

            raise Cancelled("cancelled")

    return checked


class _CancelHook:
    """An ``hdr_progress`` plugin that refuses the engine's next tile once ``cancel()`` is true."""

    def __init__(self, cancel: Callable[[], bool]):
        self.cancel, self.engine = cancel, None

    @hookimpl
    def hdr_progress(self, stage, done, total, context):
        return False if self.cancel() else None

    def attach(self, engine) -> None:
        if self.engine is None:
            from .plugins import register_plugin

            register_plugin(self, pm=engine.plugin_manager)
            self.engine = engine

    def detach(self) -> None:
        if self.engine is not None:
            from .plugins import unregister_plugin

            unregister_plugin(self, pm=self.engine.plugin_manager)
            self.engine = None


def _summary_event(report: ShotReport) -> dict:
    return {
        "converted": len(report.converted),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "failed_frames": sorted(report.failed),
        "missing": report.missing,
        "total": report.total,
        "seconds": round(report.elapsed, 3),
        "curve": report.curve_mode,
        "curve_file": str(report.curve_path) if report.curve_path else None,
    }


# --------------------------------------------------------------------------- CLI glue
def wants_shot(args) -> bool:
    """Whether ``hdr-plugin convert`` arguments describe a shot run."""
    inputs = list(getattr(args, "inputs", None) or [])
    return (
        any(is_shot_input(i) for i in inputs)
        or getattr(args, "frames", None) is not None
        or getattr(args, "backend", "local") != "local"
        or bool(getattr(args, "curve_per_frame", False))
    )


def cli_convert(args) -> int:
    """``hdr-plugin convert`` for shots (patterns, video, ``--frames``, ``--backend ray``)."""
    import json

    inputs = list(args.inputs or [])
    quiet, as_json = bool(getattr(args, "quiet", False)), bool(args.json)
    json_out, saved_fd = sys.stdout, None
    if as_json and args.backend == "ray":
        # Ray's own messages ("(raylet) A worker died ...") go to file descriptor 1; keep
        # stdout pure JSON lines by giving the events a copy of it and Ray stderr.
        try:
            sys.stdout.flush()
            saved_fd = os.dup(1)
            json_out = os.fdopen(os.dup(1), "w", buffering=1)
            os.dup2(2, 1)
        except (OSError, ValueError, AttributeError):  # no real file descriptors (embedded)
            json_out, saved_fd = sys.stdout, None

    def progress(**event: Any) -> None:
        if as_json:
            print(json.dumps(event, default=str), file=json_out, flush=True)
            return
        if quiet:
            return
        kind = event.get("event")
        if kind == "log":
            print(event["message"], file=sys.stderr, flush=True)
        elif kind == "start":
            extra = f", frames missing from disk: {format_ranges(event['missing'])}" if event.get("missing") else ""
            print(f"shot {event['shot']}: {event['total']} frame(s), curve {event['curve']}, backend {event['backend']}{extra}", file=sys.stderr, flush=True)
        elif kind == "done":
            print(f"[{event['done']}/{event['total']}] frame {event['frame']} -> {event['output']} ({event.get('seconds', 0):.1f} s)", file=sys.stderr, flush=True)
        elif kind == "skipped":
            print(f"[{event['done']}/{event['total']}] frame {event['frame']} skipped ({event['output']} exists)", file=sys.stderr, flush=True)
        elif kind == "error":
            print(f"[{event.get('done', '?')}/{event.get('total', '?')}] error: frame {event.get('frame')}: {event.get('message')}", file=sys.stderr, flush=True)
        elif kind == "retry":
            print(f"retrying frame {event['frame']} (attempt {event['attempt']}): {event['message']}", file=sys.stderr, flush=True)
        elif kind == "worker":
            print(f"worker {event.get('worker')} ready on {event.get('node')} (pid {event.get('pid')})", file=sys.stderr, flush=True)

    if args.pairs:
        print("error: --pairs cannot be combined with frame patterns, video, --frames or --backend", file=sys.stderr)
        return 2
    if len(inputs) == 1 and is_shot_input(inputs[0]):
        source: Any = inputs[0]
    else:
        from .cli import expand_inputs

        files, problems = expand_inputs(inputs, args.recursive)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        if any(is_shot_input(i) for i in inputs):
            print("error: give one frame pattern or video per run", file=sys.stderr)
            return 2
        if not files:
            print("error: nothing to convert", file=sys.stderr)
            return 2
        source = [f for f, _ in files]
    out = args.output
    if out is not None and args.format and parse_pattern(out) is None and Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
        pass  # a folder; the format applies to the file names
    curve_arg: Any = args.curve
    try:
        report = convert_shot(
            source,
            out,
            frames=args.frames,
            curve=curve_arg,
            curve_per_frame=args.curve_per_frame,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            tile=args.tile,
            tile_overlap=args.tile_overlap,
            quality=getattr(args, "quality", "auto"),
            runtime=getattr(args, "runtime", "auto"),
            max_memory=getattr(args, "max_memory", None),
            exposure=args.exposure,
            half=not args.float,
            compression=args.compression,
            overwrite=args.overwrite,
            skip_existing=args.skip_existing,
            suffix=args.suffix,
            input_encoding=args.input_encoding,
            backend=args.backend,
            workers=args.workers,
            ray_address=args.ray_address,
            gpus_per_worker=args.gpus_per_worker,
            temporal_radius=getattr(args, "temporal_radius", None),
            progress=progress,
            input_space=getattr(args, "input_space", "auto"),
            output_space=getattr(args, "output_space", "lin-rec709"),
            ocio=getattr(args, "ocio", None),
            ocio_space=getattr(args, "ocio_space", None),
            passes=getattr(args, "passes", None),
            multipart=bool(getattr(args, "multipart", False)),
        )
    except (ShotError, ImportError) as e:
        _restore_stdout(saved_fd)
        print(f"error: {e}", file=sys.stderr)
        progress(event="error", message=str(e)) if as_json else None
        return 2
    except Exception as e:  # device missing, weights corrupt, cluster unreachable
        _restore_stdout(saved_fd)
        if type(e).__name__ in ("DeviceUnavailableError", "WeightsError", "ConnectionError", "RaySystemError"):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    _restore_stdout(saved_fd)
    for p in report.problems:
        print(f"warning: {p}", file=sys.stderr)
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
    if report.cancelled:
        print("cancelled: frames in progress were not written", file=sys.stderr)
    elif not as_json and not quiet:
        for line in report.lines():
            print(line, file=sys.stderr)
    elif report.failed and not as_json:
        print(f"failed frames: {format_ranges(report.failed)}", file=sys.stderr)
    return report.exit_code


def _restore_stdout(saved_fd: int | None) -> None:
    if saved_fd is not None:
        sys.stdout.flush()
        os.dup2(saved_fd, 1)
        os.close(saved_fd)


def cli_estimate_curve(args) -> int | None:
    """``hdr-plugin estimate-curve PATTERN [--frames R]``; None when the inputs are plain files."""
    inputs = list(args.inputs or [])
    if not (len(inputs) == 1 and is_shot_input(inputs[0])) and getattr(args, "frames", None) is None:
        return None
    try:
        shot = open_shot(inputs[0] if len(inputs) == 1 and is_shot_input(inputs[0]) else inputs, input_encoding=args.input_encoding)
        for p in shot.problems:
            print(f"warning: {p}", file=sys.stderr)
        present, missing = shot.select(parse_frames(getattr(args, "frames", None)))
        if missing:
            print(f"warning: frames missing from disk: {format_ranges(missing)}", file=sys.stderr)
        if not present:
            print("error: no frames to estimate the curve from", file=sys.stderr)
            return 2
        out = Path(args.output)
        if out.exists() and not args.overwrite:
            print(f"error: {out} exists (use --overwrite)", file=sys.stderr)
            return 1
        engine = EngineOptions.from_args(args).build()
        color = ColorOptions.make(getattr(args, "input_space", None))
        curve, picks = estimate_shot_curve(engine, shot, args.max_frames or CURVE_FRAMES, present, color=color)
    except (ShotError, ImportError, OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_curve(out, curve)
    print(f"{out}: inverse curve from {len(picks)} frame(s): {', '.join(map(str, picks))}")
    return 0
