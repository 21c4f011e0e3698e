"""Ray backend: one loaded Engine per worker actor, frames scheduled to whichever is free.

The driver (the ``hdr-plugin convert`` process) plans the shot exactly as the local
backend does — the same skip/overwrite checks, the same shot curve, estimated once before
any worker starts — then keeps up to two frames in flight per actor.  Workers read image
frames from the shared input folder themselves (video frames are decoded by the driver
and shipped through the object store) and write their EXR atomically (temporary file in
the target folder, then rename) into the shared output folder.

Failures: a frame whose task raised, or whose worker process died, is retried on another
worker up to ``retries`` times (a dead worker is replaced by a new actor), then reported by
number in the summary; the exit code is the local backend's (1 when frames failed).  If a
worker died *after* renaming its output, the finished file is kept and counted.
Temporary files a killed worker left behind are removed at the end of the run.

Temporal stabilisation (``temporal_radius`` R > 0, :mod:`hdr_plugin.temporal`): the frames
are handed out in contiguous chunks, each chunk's frames to one actor in order, with the
numbers (and sources) of each frame's neighbours (window and anchors); the actor keeps the
first passes of its last ``2R + 2 + K`` frames (the anchors stay, being used by every
frame), so a chunk of N frames costs about N + 2R passes plus K once per actor, and every
frame is the same function of its neighbours' first passes as on the local backend (same
bits).  Video frames are decoded by the driver: the anchors once, then the rest in order.

Cluster: ``address=None`` starts a local Ray instance for this run (or uses
``$RAY_ADDRESS``), ``"auto"`` joins the cluster running on this machine,
``"HOST:PORT"`` joins that one; a Ray session already initialised in this process is used
as it is.  Every node needs this package (and the weights at the same path, or the shipped
ones) installed, and the input and output folders mounted at the same paths.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Any

RAY_HINT = 'the ray backend needs Ray: pip install "ray>=2.40" (the [ray] extra: pip install -e ".[ray]" in a checkout)'
IN_FLIGHT_PER_WORKER = 2
DEFAULT_THREADS_PER_WORKER = 4


def _ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(RAY_HINT) from e
    return ray


class FrameWorker:
    """The actor: builds one Engine when it starts, then converts frames on request."""

    def __init__(self, engine_options, convert_options, curve, metadata: dict, threads: int, env: dict):
        os.environ.update(env)
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self.engine = engine_options.build()
        self.options = convert_options
        self.curve = curve
        self.metadata = metadata

    def info(self) -> dict:
        import socket

        return {"pid": os.getpid(), "node": socket.gethostname(), "device": str(self.engine.device), "precision": self.engine.precision}

    def _read(self, source: Any):
        from ..io import LDRImage, read_input

        if not isinstance(source, (LDRImage, str)):  # an ObjectRef nested in the window list
            import ray

            source = ray.get(source)
        if isinstance(source, LDRImage):
            return source
        return read_input(source, self.metadata.get("_input_encoding") or None)

    def _first_pass(self, number: int, source: Any, label: str, radius: int, window=None):
        """``(LDRImage, FirstPass)`` of frame ``number``, from the actor's small cache."""
        from collections import OrderedDict

        from ..temporal import engine_input, first_pass

        cache = self.__dict__.setdefault("_passes", OrderedDict())
        if number in cache:
            cache.move_to_end(number)
            return cache[number]
        image = self._read(source)
        fp = first_pass(self.engine, number, engine_input(image, self.options), curve=self.curve, exposure=self.options.exposure, source=label)
        cache[number] = (image, fp)
        while len(cache) > 2 * radius + 2 + len(window or ()):
            cache.popitem(last=False)
        return cache[number]

    def convert(self, number: int, source: Any, output: str, label: str, window: list | None = None, radius: int = 0,
                held_bytes_per_pixel: int = 0) -> tuple[int, float, int]:
        import time
        from pathlib import Path

        from ..shots import convert_frame

        meta = {k: v for k, v in self.metadata.items() if not k.startswith("_")}
        meta["hdrPluginFrame"] = str(number)
        if radius:
            from .. import temporal

            # the stabilisation buffers count in the memory plan, as on the local backend
            # (the plan sizes the tiles, so the first passes agree bit for bit)
            self.engine.held_bytes_per_pixel = held_bytes_per_pixel
            t0 = time.perf_counter()
            image, fp = self._first_pass(number, source, label, radius, window)
            neighbours = []
            for n, src, lab in window or []:
                try:
                    # as the local backend holds them (float16 fill), so the frames agree bit for bit
                    neighbours.append(temporal.compact(self._first_pass(n, src, lab, radius, window)[1]))
                except (ValueError, OSError, RuntimeError):  # left out, as on the local backend
                    pass
            self._first_pass(number, source, label, radius, window)  # keep frame t the most recent entry
            fused, alignments = temporal.stabilise(fp, neighbours)
            meta.update(temporal.metadata(radius, alignments))
            result = temporal.with_image(fp.result, fused)
            convert_frame(temporal._Precomputed(result), image, Path(output), self.curve, self.options, meta, label)
            return number, time.perf_counter() - t0, os.getpid()
        image = self._read(source)
        seconds = convert_frame(self.engine, image, Path(output), self.curve, self.options, meta, label)
        return number, seconds, os.getpid()


@dataclass
class _Slot:
    actor: Any
    generation: int = 0
    in_flight: int = 0
    alive: bool = True


def _is_actor_death(ray, e: BaseException) -> bool:
    return isinstance(e, (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError))


def _message(ray, e: BaseException) -> str:
    if isinstance(e, ray.exceptions.RayTaskError):
        cause = getattr(e, "cause", None)
        if cause is not None:
            return f"{type(cause).__name__}: {cause}"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def chunk_size(frames: int, workers: int, radius: int) -> int:
    """Frames per chunk with temporal stabilisation: at most one chunk per worker's share,
    at least ``8 R`` frames (margins under a quarter of the work) unless that leaves workers
    idle, and about four chunks per worker on long shots (so free workers take the rest)."""
    share = -(-frames // max(1, workers))
    return max(1, min(share, max(8 * radius, -(-frames // (4 * max(1, workers))))))


def run_ray(shot, jobs, plan, options, engine_options, report, progress, *, workers=None, address=None, gpus_per_worker=0.0, retries=2, temporal_radius=0) -> None:
    """Convert ``jobs`` on a Ray cluster; fills ``report`` like :func:`hdr_plugin.shots.run_local`."""
    from ..shots import iter_images, pending_jobs

    ray = _ray()
    started_here = False
    if not ray.is_initialized():
        ray.init(address=address or None, log_to_driver=False, logging_level="WARNING", include_dashboard=False)
        started_here = True
    try:
        todo = pending_jobs(jobs, options, report, progress)
        if not todo:
            return
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 1))
        gpus_per_worker = float(gpus_per_worker or 0.0)
        if workers is None:
            if gpus_per_worker > 0:
                workers = max(1, int(resources.get("GPU", 0) / gpus_per_worker))
            else:
                workers = max(1, cpus // DEFAULT_THREADS_PER_WORKER)
        workers = max(1, min(int(workers), len(todo)))
        threads = 1 if gpus_per_worker > 0 else max(1, cpus // workers)
        eng = engine_options.resolved()
        if gpus_per_worker > 0 and eng.device == "auto":
            eng.device = "cuda"
        metadata = {**shot.metadata(), **plan.metadata(), "_input_encoding": shot.input_encoding or ""}
        radius = int(temporal_radius or 0)
        if not radius:
            metadata["hdrPluginTemporalRadius"] = "0"
        env = {k: v for k, v in os.environ.items() if k.startswith("HDR_PLUGIN_")}
        actor_class = ray.remote(FrameWorker).options(num_cpus=threads if gpus_per_worker <= 0 else 1, num_gpus=gpus_per_worker, max_restarts=0)
        curve_ref = ray.put(plan.curve)
        options_ref = ray.put(options)

        def new_actor():
            return actor_class.remote(eng, options_ref, curve_ref, metadata, threads, env)

        slots = [_Slot(new_actor()) for _ in range(workers)]
        report.workers = workers
        replacements_left = workers * (retries + 1)
        info_refs = {s.actor.info.remote(): i for i, s in enumerate(slots)}
        pending: deque = deque()  # (job, attempt, payload or None)
        by_number = {j.number: j for j in todo}
        numbers = shot.numbers
        anchors: list = []
        held = 0
        if radius:
            from ..temporal import anchor_frames, held_bytes_per_pixel, needed_frames, window_of

            anchors = anchor_frames(numbers)
            held = held_bytes_per_pixel(radius, len(anchors))
            decode = [n for n in needed_frames(by_number, numbers, radius, anchors) if n not in set(anchors)]
        else:
            decode = [j.number for j in todo]
        video_frames = iter_images(shot, decode) if shot.kind == "video" else None
        video_refs: dict = {}  # frame number -> ObjectRef or the decoding error (video only)
        anchor_refs: dict = {}
        if video_frames is not None and anchors:
            anchor_refs = {m: image if isinstance(image, Exception) else ray.put(image) for m, image in iter_images(shot, anchors)}
        fresh = deque(todo)
        chunks: deque = deque()
        if radius:
            size = chunk_size(len(todo), workers, radius)
            chunks = deque(deque(todo[i : i + size]) for i in range(0, len(todo), size))
            fresh = deque()
        queues = [deque() for _ in range(workers)]  # each slot's chunk, in order
        in_flight: dict = {}  # ref -> (slot index, generation, job, attempt, payload)
        last_error = ""

        def label(n: int) -> str:
            src = shot.available.get(n)
            return str(src) if isinstance(src, os.PathLike) else f"{shot.text}#{n}"

        def source_of(n: int):
            """The frame's source for a worker: its path, or (video) a ref to the decoded frame."""
            if video_frames is None:
                return str(shot.available[n])
            if n in anchor_refs:
                return anchor_refs[n]
            while n not in video_refs:
                try:
                    m, image = next(video_frames)
                except StopIteration:
                    video_refs[n] = RuntimeError("the video ended before this frame")
                    break
                video_refs[m] = image if isinstance(image, Exception) else ray.put(image)
            return video_refs[n]

        def payload_of(job):
            src = source_of(job.number)
            if isinstance(src, Exception):
                return src
            if not radius:
                return src, None
            window = []
            for n in window_of(job.number, numbers, radius, anchors):
                s_n = source_of(n)
                if not isinstance(s_n, Exception):
                    window.append((n, s_n, label(n)))
            return src, window

        def drop_decoded() -> None:
            """Forget video frames no job still to be handed out needs (jobs in flight or
            waiting for a retry hold their own refs)."""
            if video_frames is None:
                return
            heads = [q[0].number for q in queues if q] + [c[0].number for c in chunks if c]
            heads += [item[0].number for item in pending] + ([fresh[0].number] if fresh else [])
            low = min(heads) - radius if heads else None
            for n in [n for n in video_refs if low is None or n < low]:
                del video_refs[n]

        def next_job(i: int):
            if pending:
                return pending.popleft()
            while True:
                if radius:
                    if not queues[i] and chunks:
                        queues[i] = chunks.popleft()
                    if not queues[i]:  # take over the rest of a chunk whose worker is gone for good
                        orphan = next((j for j, q in enumerate(queues) if q and not slots[j].alive), None)
                        if orphan is not None:
                            queues[i], queues[orphan] = queues[orphan], deque()
                    source = queues[i]
                else:
                    source = fresh
                if not source:
                    return None
                job = source.popleft()
                payload = payload_of(job)
                drop_decoded()
                if isinstance(payload, Exception):
                    report.frame_failed(job.number, str(payload), progress)
                    continue
                return job, 1, payload

        def replace(i: int, why: str) -> None:
            nonlocal replacements_left
            slot = slots[i]
            if not slot.alive:
                return
            slot.alive = False
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:
                pass
            if replacements_left > 0:
                replacements_left -= 1
                slots[i] = _Slot(new_actor(), slot.generation + 1)
                info_refs[slots[i].actor.info.remote()] = i
                progress(event="worker_lost", worker=i, message=why)

        while True:
            for i, slot in enumerate(slots):
                while slot.alive and slot.in_flight < IN_FLIGHT_PER_WORKER:
                    item = next_job(i)
                    if item is None:
                        break
                    job, attempt, payload = item
                    src, window = payload
                    ref = slot.actor.convert.remote(job.number, src, str(job.output), str(job.source or f"{shot.text}#{job.number}"), window, radius, held)
                    in_flight[ref] = (i, slot.generation, job, attempt, payload)
                    slot.in_flight += 1
            if not in_flight:
                if not any(s.alive for s in slots) and (pending or fresh or chunks or any(queues)):
                    rest = [item[0] for item in pending] + list(fresh) + [j for q in list(chunks) + queues for j in q]
                    for job in rest:
                        report.failed[job.number] = f"no worker could start: {last_error}"
                    pending.clear()
                    fresh.clear()
                    chunks.clear()
                    for q in queues:
                        q.clear()
                    report.error = f"Ray workers could not run: {last_error}"
                break
            ready, _ = ray.wait(list(in_flight) + list(info_refs), num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in info_refs:
                    i = info_refs.pop(ref)
                    try:
                        info = ray.get(ref)
                        progress(event="worker", worker=i, **info)
                    except Exception as e:  # the actor failed to start; its tasks report it too
                        last_error = _message(ray, e)
                    continue
                i, generation, job, attempt, payload = in_flight.pop(ref)
                if slots[i].generation == generation:
                    slots[i].in_flight -= 1
                try:
                    number, seconds, pid = ray.get(ref)
                except Exception as e:
                    died = _is_actor_death(ray, e)
                    why = _message(ray, e)
                    last_error = why
                    if died and slots[i].generation == generation:
                        replace(i, why)
                    if died and job.output.exists() and not options.overwrite:
                        # the worker renamed the finished file, then died before answering
                        _finish(report, job, 0.0, progress)
                        continue
                    if attempt <= retries:
                        progress(event="retry", frame=job.number, attempt=attempt + 1, message=why)
                        pending.append((job, attempt + 1, payload))
                    else:
                        report.frame_failed(job.number, f"failed after {attempt} attempts: {why}", progress)
                    continue
                _finish(report, job, seconds, progress)
    finally:
        for s in locals().get("slots", []) or []:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:
                pass
        if started_here:
            ray.shutdown()


def _finish(report, job, seconds: float, progress) -> None:
    report.frame_done(job, seconds, progress)
