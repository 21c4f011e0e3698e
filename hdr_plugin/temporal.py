"""Temporal stabilisation of the hallucinated highlights of a shot (``--temporal-radius R``).

Hallucination-Net invents the radiance of clipped areas one frame at a time, so a lamp
or a sky that is clipped in every frame gets a slightly different guess each frame, and
its guess does not follow an exposure change of the shot (the well-exposed picture gets
1 EV brighter, the restored lamp about 0.45 EV): after the exposure is taken out, the
highlights jitter and drift (``tools/flicker_bench.py`` measures both).  This module
replaces, in the pixels hallucinated in frame ``t``, the log RGB of the engine's output by
a robust weighted mean over the outputs of its *neighbours*, each aligned to frame ``t``:
the shot's frames numbered ``t-R .. t+R`` (the jitter) and ``K = 8`` *anchor* frames spread
over the whole shot on disk, first and last included (the drift: every frame is pulled to
the same shot-wide estimate of the highlight wherever the anchors see it).

1. **Motion**: one global translation per neighbour, by phase correlation of the log
   luminance of the *linear input* (the frame through the inverse camera curve, clipped
   areas included: they move with the scene); the sub-pixel estimate or the nearest
   whole-pixel shift, whichever fits better.  Estimates with a weak correlation peak
   (response < 0.05), a shift over half the frame, or a poor fit after alignment (median
   error of the well-exposed log luminance over 0.25 stops) are rejected: that neighbour
   is not used.  A locked-off camera gives shift 0 (the anchors then see everything).
2. **Exposure**: the neighbour's log2 exposure offset is the median over pixels well
   exposed in both frames of ``log2 L_t - log2 L_n`` (a geometric-mean ratio, robust).
3. **Fusion**: in the pixels with over-exposure mask ``alpha_t > 0`` (the engine's soft
   mask ``clip((max_c(linear) - thr) / (1 - thr), 0, 1)``), every neighbour whose aligned
   pixel is inside its frame and hallucinated there too contributes its exposure-matched
   log RGB with weight ``alpha_n`` times a Cauchy weight around the per-pixel median of
   the candidates (scale 1 stop: a mis-aligned neighbour does not drag the mean); frame
   ``t`` itself always counts with weight 1.  The result is blended with frame ``t``'s own
   value by ``alpha_t`` (a smooth mask edge).  Every pixel with ``alpha_t == 0`` keeps its
   bits.

**Determinism and chunks.** Frame ``t``'s output depends only on the per-frame (first
pass) results of its neighbours, which are fixed by the shot on disk — not by which frames
a run or a farm chunk was asked for: a chunk ``--frames a-b`` computes the first passes of
the anchors and of up to ``R`` frames beyond each end, and writes only ``a..b``, so a shot
gives the same bits in one chunk or in three.  Locally the anchors' first passes are kept
for the run and the others in a ring buffer of ``2R + 1`` (no temporary files).

**Memory.** A buffered neighbour is a :class:`Neighbour`, only what alignment and fusion
read of it: the motion guide (float32: a float16 one moves the sub-pixel shift estimates),
the well-exposed mask as bits, and the radiance and mask of its hallucinated pixels
(``alpha > 0``, grown by one pixel for the bilinear warp) in float16 — ``4.25 + 8 f`` bytes a
pixel for a hallucinated fraction ``f`` (4K, 12 % clipped: about 45 MB instead of 174 MB for
a full float32 first pass).  Only the frames waiting for
their window's end (``R`` while the engine runs) keep their full first pass and decoded frame.  An
anchor that is also to be written is therefore computed twice (once as an anchor, once in
order): a run of ``N`` frames costs at most ``N + 2R + K`` passes (``N + K`` when it is the
whole shot).  The worst case (every pixel hallucinated) is reserved in the engine's memory
plan (:func:`held_bytes_per_pixel`, ``Engine.held_bytes_per_pixel``), so a shot's peak stays
inside ``--max-memory``; a frame size that does not fit is refused before any frame is written.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

DEFAULT_RADIUS = 2
#: correlation peak below which a motion estimate is rejected (cv2.phaseCorrelate response)
MIN_RESPONSE = 0.05
#: rejected when the aligned neighbour's well-exposed log luminance differs by more (median, stops)
MAX_RESIDUAL = 0.25
#: the largest shift trusted, as a fraction of the frame's width (x) and height (y)
MAX_SHIFT = 0.5
#: scale of the Cauchy weights around the per-pixel median (stops)
ROBUST_SCALE = 1.0
#: anchor frames spread over the whole shot that every frame is also fused with
ANCHOR_FRAMES = 8
_EPS = 1e-8
_REC709 = np.array([0.2126, 0.7152, 0.0722], np.float32)


def check_radius(radius: Any) -> int:
    """``radius`` as an int >= 0; ValueError otherwise."""
    try:
        r = int(radius)
    except (TypeError, ValueError):
        raise ValueError(f"temporal radius must be a whole number of frames >= 0, got {radius!r}") from None
    if r != radius and not (isinstance(radius, str) and str(r) == radius.strip()):
        raise ValueError(f"temporal radius must be a whole number of frames >= 0, got {radius!r}")
    if r < 0:
        raise ValueError(f"temporal radius must be >= 0 (0 turns stabilisation off), got {r}")
    return r


# --------------------------------------------------------------------------- per frame
@dataclass
class FirstPass:
    """One frame's per-frame result and what stabilisation needs of it."""

    number: int
    result: Any  # hdr_plugin.pipeline.HDRResult
    alpha: np.ndarray  # (H, W) float32 soft over-exposure mask
    guide: np.ndarray  # (H, W) float32 log2 luminance of the linear input
    well: np.ndarray  # (H, W) bool: well exposed (alpha == 0 and not too dark)

    @property
    def image(self) -> np.ndarray:
        return self.result.image


#: bytes a buffered :class:`Neighbour` holds per frame pixel, fixed part (float32 guide,
#: well-exposed bits, hallucinated-pixel bits) and per stored (hallucinated) pixel
#: (float16 RGB radiance and float16 alpha)
NEIGHBOUR_FIXED_BYTES = 4 + 1 / 8 + 1 / 8
NEIGHBOUR_STORED_BYTES = 3 * 2 + 2
#: bytes a frame waiting for its window holds per pixel: its first pass (float32 image,
#: alpha, guide; bool well) and its decoded float32 frame
PENDING_BYTES = 12 + 4 + 4 + 1 + 12


@dataclass
class Neighbour:
    """What alignment and fusion read of a neighbour's first pass, compactly (see the
    module's *Memory*): ``guide`` float32 (H, W), ``well`` and ``stored`` packed bits,
    ``image`` (P, 3) and ``alpha`` (P,) float16 at the ``stored`` pixels (``alpha > 0`` grown
    by one pixel), the radiance divided by ``2 ** scale`` so that it fits float16."""

    number: int
    shape: tuple[int, int]
    guide: np.ndarray  # float32: the motion and exposure estimates read it at full precision
    well_bits: np.ndarray
    stored_bits: np.ndarray
    image16: np.ndarray
    alpha16: np.ndarray
    scale: int = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.guide, self.well_bits, self.stored_bits, self.image16, self.alpha16))

    def _unpack(self, bits: np.ndarray) -> np.ndarray:
        h, w = self.shape
        return np.unpackbits(bits, count=h * w).view(bool).reshape(h, w)

    @property
    def well(self) -> np.ndarray:
        return self._unpack(self.well_bits)

    def planes(self) -> tuple[np.ndarray, np.ndarray]:
        """Full-frame float32 ``(alpha, image)``: the stored pixels, 0 elsewhere (where alpha
        is 0, so a bilinear warp of them is what the first pass would give wherever the warped
        alpha is > 0)."""
        h, w = self.shape
        stored = self._unpack(self.stored_bits)
        alpha = np.zeros((h, w), np.float32)
        alpha[stored] = self.alpha16
        image = np.zeros((h, w, 3), np.float32)
        image[stored] = self.image16.astype(np.float32) * np.float32(2.0**self.scale)
        return alpha, image


def compact(fp: "FirstPass | Neighbour") -> Neighbour:
    """The :class:`Neighbour` of a first pass (itself if it is one already)."""
    if isinstance(fp, Neighbour):
        return fp
    import cv2

    hallucinated = (fp.alpha > 0.0).astype(np.uint8)
    stored = cv2.dilate(hallucinated, np.ones((3, 3), np.uint8)).view(bool) if hallucinated.any() else hallucinated.view(bool)
    image = np.asarray(fp.image, np.float32)[stored]
    peak = float(np.nanmax(image)) if image.size else 0.0
    scale = max(0, int(np.ceil(np.log2(peak / 32768.0)))) if np.isfinite(peak) and peak > 32768.0 else 0
    image16 = (image * np.float32(2.0**-scale)).astype(np.float16) if scale else image.astype(np.float16)
    return Neighbour(
        fp.number, fp.alpha.shape, np.asarray(fp.guide, np.float32), np.packbits(fp.well, axis=None),
        np.packbits(stored, axis=None), image16, fp.alpha[stored].astype(np.float16), scale,
    )


def held_bytes_per_pixel(radius: int, anchors: int | None = None) -> int:
    """Host bytes per frame pixel that stabilisation holds at most, beside what the engine
    itself counts, while the engine runs on frame ``t + R``, in the worst case (every pixel
    hallucinated): ``2R + K`` neighbours (``t - R .. t + R - 1`` and the anchors) and the ``R``
    frames ``t .. t + R - 1`` waiting in full.  (The frame being computed is the engine's own;
    once its pass is done the engine's working memory is free for the fusion.)  0 when
    ``radius`` is 0."""
    if radius <= 0:
        return 0
    k = ANCHOR_FRAMES if anchors is None else int(anchors)
    return int(np.ceil((2 * radius + k) * (NEIGHBOUR_FIXED_BYTES + NEIGHBOUR_STORED_BYTES) + radius * PENDING_BYTES))


def overexposure_alpha(linear: np.ndarray, threshold: float) -> np.ndarray:
    """The engine's soft mask ``clip((max_c(linear) - t) / (1 - t), 0, 1)`` (numpy, float32)."""
    peak = linear.max(axis=2)
    return np.clip((peak - np.float32(threshold)) / np.float32(1.0 - threshold), 0.0, 1.0).astype(np.float32)


def analyse(number: int, rgb: np.ndarray, result: Any, threshold: float) -> FirstPass:
    """A :class:`FirstPass` from the display-referred input ``rgb`` and the engine's result
    (its ``curve`` gives the linear image, hence the mask and the motion guide)."""
    from .crf import apply_curve_np

    x = np.asarray(rgb)
    if x.dtype.kind in "ui":
        x = x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max)
    linear = apply_curve_np(np.asarray(x, np.float32), result.curve)
    alpha = overexposure_alpha(linear, threshold)
    lum = linear @ _REC709
    guide = np.log2(np.maximum(lum, 1e-3)).astype(np.float32)
    well = (alpha <= 0.0) & (lum > 0.02) & (linear.max(axis=2) < threshold)
    return FirstPass(number, result, alpha, guide, well)


def engine_input(image, options) -> np.ndarray:
    """What :func:`hdr_plugin.shots.convert_frame` gives the engine for a decoded frame
    (the frame in the engine's input space when the options carry colour settings)."""
    color = getattr(options, "color", None)
    return color.engine_image(image)[0] if color is not None else image.rgb


def first_pass(engine, number: int, rgb: np.ndarray, *, curve=None, exposure: float = 0.0, source: str | None = None) -> FirstPass:
    """Run the engine on one frame (``rgb``: :func:`engine_input`, what
    :func:`hdr_plugin.shots.convert_frame` reconstructs) and analyse it."""
    result = engine.reconstruct(rgb, exposure=exposure, curve=curve, source=source)
    threshold = float(getattr(getattr(getattr(engine, "model", None), "hal", None), "mask_threshold", 0.88))
    return analyse(number, rgb, result, threshold)


# --------------------------------------------------------------------------- alignment
def estimate_shift(ref: np.ndarray, mov: np.ndarray) -> tuple[float, float, float]:
    """``(dx, dy, response)``: ``mov`` shows the content of ``ref`` moved by ``(dx, dy)``
    pixels (``mov(x + dx, y + dy) ~ ref(x, y)``); phase correlation with a Hann window."""
    import cv2

    a = np.asarray(ref, np.float64)
    b = np.asarray(mov, np.float64)
    a = a - a.mean()
    b = b - b.mean()
    h, w = a.shape
    if h < 8 or w < 8:
        return 0.0, 0.0, 0.0
    window = cv2.createHanningWindow((w, h), cv2.CV_64F)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    return float(dx), float(dy), float(response)


def warp(image: np.ndarray, dx: float, dy: float, *, nearest: bool = False) -> np.ndarray:
    """``image`` moved by ``(-dx, -dy)`` (a neighbour brought onto frame ``t``'s pixels); outside: 0."""
    import cv2

    if dx == 0 and dy == 0:
        return image
    h, w = image.shape[:2]
    m = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], np.float64)
    if float(dx).is_integer() and float(dy).is_integer():
        out = np.zeros_like(image)
        ix, iy = int(dx), int(dy)
        ys, yd = (slice(iy, h), slice(0, h - iy)) if iy >= 0 else (slice(0, h + iy), slice(-iy, h))
        xs, xd = (slice(ix, w), slice(0, w - ix)) if ix >= 0 else (slice(0, w + ix), slice(-ix, w))
        out[yd, xd] = image[ys, xs]
        return out
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def exposure_offset(ref_log: np.ndarray, mov_log: np.ndarray, valid: np.ndarray) -> float | None:
    """Median of ``ref_log - mov_log`` over ``valid`` (log2 exposure ratio), None if too few pixels."""
    if int(valid.sum()) < 16:
        return None
    return float(np.median(ref_log[valid] - mov_log[valid]))


@dataclass
class Alignment:
    """How one neighbour maps onto frame ``t``."""

    number: int
    dx: float = 0.0
    dy: float = 0.0
    response: float = 0.0
    offset: float = 0.0  # log2 exposure ratio t / neighbour
    residual: float = float("nan")
    used: bool = False
    why: str = ""


def align(center: FirstPass, other: FirstPass) -> Alignment:
    """Motion and exposure of ``other`` (a :class:`FirstPass` is read as its :class:`Neighbour`)
    relative to ``center``, with the rejection rules."""
    other = compact(other)
    a = Alignment(other.number)
    if tuple(other.shape) != center.guide.shape:
        a.why = "frame size differs"
        return a
    h, w = center.guide.shape
    other_guide, other_well = other.guide, other.well
    a.dx, a.dy, a.response = estimate_shift(center.guide, other_guide)
    if a.response < MIN_RESPONSE:
        a.why = f"weak correlation ({a.response:.3f})"
        return a
    if abs(a.dx) > MAX_SHIFT * w or abs(a.dy) > MAX_SHIFT * h:
        a.why = f"shift ({a.dx:.1f}, {a.dy:.1f}) too large"
        return a
    # the sub-pixel estimate or the nearest whole-pixel shift (an exact copy, no resampling
    # blur), whichever fits the well-exposed pixels better
    best = None
    for dx, dy in dict.fromkeys([(float(round(a.dx)), float(round(a.dy))), (a.dx, a.dy)]):
        inside = warp(np.ones((h, w), np.float32), dx, dy) > 0.999
        well = center.well & (warp(other_well.astype(np.float32), dx, dy, nearest=True) > 0.5) & inside
        guide = warp(other_guide, dx, dy)
        offset = exposure_offset(center.guide, guide, well)
        if offset is None:
            continue
        residual = float(np.median(np.abs(center.guide[well] - guide[well] - offset)))
        if best is None or residual < best[0] - 1e-6:
            best = (residual, dx, dy, offset)
    if best is None:
        a.why = "too few well-exposed pixels in common"
        return a
    a.residual, a.dx, a.dy, a.offset = best
    if a.residual > MAX_RESIDUAL:
        a.why = f"poor fit after alignment ({a.residual:.2f} stops)"
        return a
    a.used = True
    return a


# --------------------------------------------------------------------------- fusion
def stabilise(center: FirstPass, neighbours: Sequence["FirstPass | Neighbour"]) -> tuple[np.ndarray, list[Alignment]]:
    """Frame ``center``'s image with its hallucinated pixels fused over ``neighbours`` (each
    read as its :class:`Neighbour`, whichever form is given: the same bits on every backend).

    Returns ``(image, alignments)``; pixels with ``alpha == 0`` are bit-identical to the
    first pass, and so is the whole frame when no neighbour could be aligned.
    """
    image = center.image
    sel = center.alpha > 0.0
    neighbours = [compact(n) for n in neighbours]
    alignments = [align(center, n) for n in neighbours]
    used = [(n, a) for n, a in zip(neighbours, alignments) if a.used]
    if not sel.any() or not used:
        return image, alignments
    own = np.log2(np.maximum(image[sel], _EPS)).astype(np.float32)  # (P, 3)
    values = [own]
    weights = [np.ones(own.shape[0], np.float32)]
    h, w = sel.shape
    for n, a in used:
        inside = warp(np.ones((h, w), np.float32), a.dx, a.dy)[sel] > 0.999
        n_alpha, n_image = n.planes()
        alpha_n = warp(n_alpha, a.dx, a.dy)[sel] * inside
        img_n = warp(n_image, a.dx, a.dy)[sel]
        del n_alpha, n_image
        values.append((np.log2(np.maximum(img_n, _EPS)) + np.float32(a.offset)).astype(np.float32))
        weights.append(np.where(inside, alpha_n, 0.0).astype(np.float32))
    v = np.stack(values)  # (K, P, 3)
    wt = np.stack(weights)  # (K, P)
    lum = v @ _REC709  # log-RGB luminance proxy, (K, P)
    masked = np.where(wt > 0, lum, np.nan)
    med = np.nanmedian(masked, axis=0)  # frame t always valid, so never all-NaN
    d = (lum - med[None]) / np.float32(ROBUST_SCALE)
    wt = wt / (1.0 + d * d)
    fused = (wt[..., None] * v).sum(axis=0) / wt.sum(axis=0)[..., None]
    a_t = center.alpha[sel][:, None]
    out_log = own + a_t * (fused - own)
    out = image.copy()
    out[sel] = np.exp2(out_log).astype(np.float32)
    return out, alignments


def anchor_frames(available: Sequence[int], k: int | None = None) -> list[int]:
    """The shot's anchor frames: ``k`` frames spread evenly over the whole shot on disk
    (first and last included; the frames the shot curve is estimated from), whatever
    part of the shot a run converts."""
    from .shots import curve_picks

    k = ANCHOR_FRAMES if k is None else int(k)
    nums = sorted(available)
    return [nums[i] for i in curve_picks(len(nums), k)] if k > 0 else []


def window_of(number: int, available: Sequence[int], radius: int, anchors: Sequence[int] = ()) -> list[int]:
    """Frame ``number``'s neighbours, in order: the shot's frames within ``radius`` frame
    numbers of it and the ``anchors`` (itself excluded; none when ``radius`` is 0)."""
    if radius <= 0:
        return []
    near = {n for n in available if abs(n - number) <= radius}
    return sorted((near | set(anchors)) - {number})


def needed_frames(todo: Iterable[int], available: Sequence[int], radius: int, anchors: Sequence[int] = ()) -> list[int]:
    """Every frame whose first pass the frames ``todo`` need, in order."""
    have = set(available)
    out: set[int] = set(anchors) if radius > 0 else set()
    for t in todo:
        out.add(t)
        out.update(n for n in range(t - radius, t + radius + 1) if n in have)
    return sorted(out)


def stabilised(
    todo: Sequence[int],
    available: Sequence[int],
    radius: int,
    frames: Iterable[tuple[int, Any]],
    compute: Callable[[int, Any], FirstPass],
    anchors: Sequence[int] = (),
) -> Iterator[tuple[int, Any, Any, Any]]:
    """Yield ``(number, LDR image, FirstPass | Exception, (stabilised image, alignments) | None)``
    for each of ``todo`` in order.

    ``frames`` yields ``(number, LDRImage or Exception)``: the ``anchors`` first, then the
    rest of :func:`needed_frames` in order, the anchors that are in ``todo`` included again
    (an anchor's full first pass is not kept: it is computed again when its turn comes);
    ``compute(number, image)`` makes the first pass.  Every first pass is kept as its
    :class:`Neighbour` (the anchors' for the whole run, the others in a ring buffer of the
    ``2 R + 1`` still needed); only the frames of ``todo`` waiting for their window's end
    keep the full one.  A neighbour that fails to read or convert is left out of the
    windows; the frame itself is yielded with its exception.
    """
    todo = sorted(todo)
    want = set(todo)
    avail = sorted(available)
    anchor_set = set(anchors)
    cache: dict[int, Any] = {}  # Neighbour | Exception
    full: dict[int, Any] = {}  # FirstPass | Exception, frames of todo until written
    images: dict[int, Any] = {}
    queue = list(todo)
    anchors_left = set(anchor_set)

    def emit_ready(upto: int | None):
        if anchors_left and upto is not None:
            return
        while queue and (upto is None or queue[0] + radius <= upto):
            t = queue.pop(0)
            fp = full.pop(t, None)
            if fp is None and isinstance(cache.get(t), Exception):
                fp = cache[t]
            if isinstance(fp, FirstPass):
                nbrs = [cache[n] for n in window_of(t, avail, radius, anchors) if isinstance(cache.get(n), Neighbour)]
                image, al = stabilise(fp, nbrs)
                del nbrs
                yield t, images.pop(t, None), fp, (image, al)
                del image, al
            else:
                yield t, images.pop(t, None), fp if fp is not None else RuntimeError("frame was not read"), None
            fp = None
            images.pop(t, None)
            lowest = queue[0] - radius if queue else None
            for n in [n for n in cache if n not in anchor_set and (lowest is None or n < lowest)]:
                del cache[n]

    for n, image in frames:
        as_anchor = n in anchors_left  # an anchor's first arrival: kept as a Neighbour only
        anchors_left.discard(n)
        if isinstance(image, Exception):
            fp = image
        else:
            try:
                fp = compute(n, image)
            except (ValueError, OSError, RuntimeError) as e:
                if type(e).__name__ in ("Cancelled", "ShotError"):
                    raise
                fp = e
        if n not in cache or isinstance(cache[n], Exception):
            cache[n] = compact(fp) if isinstance(fp, FirstPass) else fp
        if n in want and not as_anchor:
            full[n] = fp
            if not isinstance(image, Exception):
                images[n] = image
        fp = image = None
        if n not in anchor_set or not as_anchor:  # the anchors come first; nothing is ready before they are done
            yield from emit_ready(n)
    yield from emit_ready(None)


class _Precomputed:
    """Stands in for the Engine in :func:`hdr_plugin.shots.convert_frame`: its ``reconstruct``
    returns a result computed (and stabilised) already, so the frame is written exactly as
    every other frame is."""

    def __init__(self, result):
        self.result = result

    def reconstruct(self, *args, **kwargs):
        return self.result


def with_image(result, image: np.ndarray):
    import copy

    out = copy.copy(result)
    out.image = image
    out.metadata = dict(result.metadata)
    return out


def metadata(radius: int, alignments: Sequence[Alignment] | None) -> dict[str, str]:
    meta = {"hdrPluginTemporalRadius": str(radius)}
    if alignments is not None:
        meta["hdrPluginTemporalFrames"] = ",".join(str(a.number) for a in alignments if a.used)
    return meta


# --------------------------------------------------------------------------- the local backend
def run_local_temporal(engine, shot, jobs, plan, options, report, progress, radius: int) -> None:
    """:func:`hdr_plugin.shots.run_local` with stabilisation: first passes of the frames in
    and ``radius`` around the jobs, in order, through a ring buffer; each job written when
    its window is complete."""
    from .shots import iter_images, pending_jobs

    base_meta = {**shot.metadata(), **plan.metadata()}
    todo = pending_jobs(jobs, options, report, progress)
    by_number = {j.number: j for j in todo}
    numbers = shot.numbers
    anchors = anchor_frames(numbers)
    needed = needed_frames(by_number, numbers, radius, anchors)
    rest = [n for n in needed if n not in set(anchors) or n in by_number]  # anchors to write: again, in order
    started: dict[int, float] = {}
    held = held_bytes_per_pixel(radius, len(anchors))
    checked: set[tuple[int, int]] = set()

    def label(n: int) -> str:
        job = by_number.get(n)
        src = job.source if job is not None else shot.available.get(n)
        return str(src if src is not None and not isinstance(src, int) else f"{shot.text}#{n}")

    def compute(n: int, image) -> FirstPass:
        rgb = engine_input(image, options)
        if not checked:  # the first frame: refuse the shot, before anything is written, if it cannot fit
            checked.add(rgb.shape[:2])
            check_memory(engine, *rgb.shape[:2], radius, len(anchors))
        started[n] = time.perf_counter()
        fp = first_pass(engine, n, rgb, curve=plan.curve, exposure=options.exposure, source=label(n))
        started[n] = time.perf_counter() - started[n]
        return fp

    frames = itertools.chain(iter_images(shot, anchors), iter_images(shot, rest))
    before = getattr(engine, "held_bytes_per_pixel", 0)
    engine.held_bytes_per_pixel = before + held  # the buffers count in the engine's memory plan
    try:
        _write_stabilised(engine, stabilised(list(by_number), numbers, radius, frames, compute, anchors),
                          by_number, base_meta, radius, plan, options, report, progress, label, started)
    finally:
        engine.held_bytes_per_pixel = before


def check_memory(engine, height: int, width: int, radius: int, anchors: int | None = None) -> None:
    """Raise :class:`hdr_plugin.shots.ShotError` when a frame of this size cannot be stabilised
    inside the engine's ``max_memory`` (its plan counting :func:`held_bytes_per_pixel`)."""
    from .shots import ShotError
    from .tiling import MemoryBudgetError

    check = getattr(engine, "check_memory", None)
    if check is None or not radius:
        return
    try:
        check(height, width)
    except MemoryBudgetError as e:
        k = ANCHOR_FRAMES if anchors is None else anchors
        held = held_bytes_per_pixel(radius, k) * height * width
        raise ShotError(
            f"{e}; temporal stabilisation (--temporal-radius {radius}, {k} anchors) reserves up to {held / 2**30:.2f} GiB "
            f"of it for {width}x{height} frames: raise --max-memory, or lower --temporal-radius (0: off)"
        ) from None


def _write_stabilised(engine, results, by_number, base_meta, radius, plan, options, report, progress, label, started) -> None:
    for number, image, fp, fused in results:
        _write_one(number, image, fp, fused, by_number, base_meta, radius, plan, options, report, progress, label, started)
        image = fp = fused = None  # nothing of this frame is held while the next ones are computed


def _write_one(number, image, fp, fused, by_number, base_meta, radius, plan, options, report, progress, label, started) -> None:
    from .shots import convert_frame

    if isinstance(fp, Exception):
        report.frame_failed(number, str(fp), progress)
        return
    job = by_number[number]
    out_image, alignments = fused
    try:
        t0 = time.perf_counter()
        meta = {**base_meta, "hdrPluginFrame": str(number), **metadata(radius, alignments)}
        convert_frame(_Precomputed(with_image(fp.result, out_image)), image, job.output, plan.curve, options, meta, label(number))
        seconds = started.get(number, 0.0) + time.perf_counter() - t0
    except (ValueError, OSError, RuntimeError) as e:
        if type(e).__name__ == "Cancelled":
            raise
        report.frame_failed(number, str(e), progress)
        return
    report.frame_done(job, seconds, progress)
