"""The status-bar line of a running reconstruction (no bpy: tested with plain Python).

    Reconstruct HDR: loading the engine, 4 s (Esc to cancel)
    Reconstruct HDR: frame 0001 (1/1) refine 1/1 - 63%, about 0:04 left (Esc to cancel)

The percentage is :attr:`jobs.Job.progress`, which follows the engine's cost-weighted
``fraction`` (reported per network per tile, so a one-tile frame moves too); the time
left is :attr:`jobs.Job.eta`, the average rate since the engine loaded.  While the
engine loads (importing torch takes seconds) the line says so and counts the seconds.
"""

from __future__ import annotations

import time


def duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def status_line(job, now: float | None = None) -> str:
    now = time.perf_counter() if now is None else now
    detail = getattr(job, "detail", "") or ""
    if not getattr(job, "ready_at", 0.0) and (job.stage == "loading the engine" or detail == "loading the engine"):
        waited = now - job.started_at if getattr(job, "started_at", 0.0) else 0.0
        where = "" if job.stage == "loading the engine" else f"{job.stage}: "
        return f"Reconstruct HDR: {where}loading the engine, {waited:.0f} s (Esc to cancel)"
    eta = getattr(job, "eta", None)
    left = f", about {duration(eta)} left" if eta is not None else ""
    text = f" {detail}" if detail else ""
    return f"Reconstruct HDR: {job.stage}{text} - {job.progress * 100:.0f}%{left} (Esc to cancel)"
