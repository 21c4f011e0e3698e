"""``hdr-plugin bench``: throughput per stage and peak memory, fp32 vs the chosen precision.

Both precisions run in the same process on the same image (the bundled sample mirrored
out to the requested size), so the printed ratio is measured, not quoted.  The output
agreement between the two modes is reported as PU21-PSNR.
"""

from __future__ import annotations

import json
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

STAGES = ("dequantize", "linearize", "reconstruct", "total")


class PeakMemory:
    """Peak resident memory (CPU, sampled from /proc) or peak allocated memory (CUDA) during a block."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.01)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss())
        return False


def bench_image(width: int, height: int) -> np.ndarray:
    """The bundled sample (RGB [0, 1]) mirrored out to ``width`` x ``height`` (never resampled)."""
    from .io import read_ldr

    rgb = read_ldr(resources.files("hdr_plugin.data").joinpath("sample.png")).rgb
    reps_y, reps_x = -(-height // rgb.shape[0]), -(-width // rgb.shape[1])
    tiles = [[rgb[:: (-1 if y % 2 else 1), :: (-1 if x % 2 else 1)] for x in range(reps_x)] for y in range(reps_y)]
    mosaic = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
    return np.ascontiguousarray(mosaic[:height, :width])


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: --size takes WIDTHxHEIGHT, not {text!r}")
    if w < 1 or h < 1:
        raise SystemExit("error: --size must be positive")
    return w, h


def measure(engine, image: np.ndarray, repeat: int) -> tuple[dict, int, np.ndarray]:
    """Best-of-``repeat`` stage timings (s), peak memory (bytes) and the output."""
    best: dict[str, float] = {}
    peak = 0
    out = None
    for _ in range(max(1, repeat)):
        with PeakMemory(engine.device) as mem:
            result = engine.reconstruct(image)
        peak = max(peak, mem.peak)
        out = result.image
        for k in STAGES:
            best[k] = min(best.get(k, float("inf")), result.timings[k])
    return best, peak, out


def run_bench(args) -> int:
    from .evaluation.metrics import pu21_psnr
    from .pipeline import Engine

    width, height = _parse_size(args.size)
    engine = Engine(args.weights, device=args.device, precision=args.precision, tile=args.tile, tile_overlap=args.tile_overlap)
    chosen = engine.precision
    fp32 = engine.with_precision("fp32")
    image = bench_image(width, height)
    mp = width * height / 1e6
    fp32.reconstruct(image[: min(height, 256), : min(width, 256)])  # warm-up (allocator, kernels)
    if chosen != "fp32":
        engine.reconstruct(image[: min(height, 256), : min(width, 256)])
    t_fp32, m_fp32, out_fp32 = measure(fp32, image, args.repeat)
    if chosen != "fp32":
        t_low, m_low, out_low = measure(engine, image, args.repeat)
        agreement = pu21_psnr(out_low, out_fp32)
    else:
        t_low, m_low, agreement = t_fp32, m_fp32, float("inf")
    report = {
        "size": [width, height],
        "megapixels": mp,
        "device": str(engine.device),
        "device_name": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
        "tile": engine.tile,
        "precision": chosen,
        "seconds": {"fp32": t_fp32, chosen: t_low},
        "megapixels_per_second": {
            "fp32": {k: mp / v for k, v in t_fp32.items()},
            chosen: {k: mp / v for k, v in t_low.items()},
        },
        "speedup": {k: t_fp32[k] / t_low[k] for k in STAGES},
        "peak_memory_mib": {"fp32": m_fp32 / 2**20, chosen: m_low / 2**20},
        "agreement_pu21_db": agreement,
    }
    if getattr(args, "record", False) and chosen != "fp32" and engine.weights_info is not None:
        from .devices import precision_key
        from .weights import update_manifest

        key = precision_key(engine.device, chosen)
        update_manifest(engine.weights_info.path.parent, precision_checks={key: round(float(agreement), 2)})
        report["recorded"] = key
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"hdr-plugin bench: {width}x{height} ({mp:.2f} MP) on {report['device']} ({report['device_name']}), "
          f"{report['threads']} threads, tile {engine.tile or 'off'}")
    print(f"{'stage':<12} {'fp32 MP/s':>10} {chosen + ' MP/s':>11} {'speed-up':>9}")
    for k in STAGES:
        print(f"{k:<12} {mp / t_fp32[k]:>10.3f} {mp / t_low[k]:>11.3f} {t_fp32[k] / t_low[k]:>8.2f}x")
    print(f"{'peak memory':<12} {m_fp32 / 2**20:>9.0f}M {m_low / 2**20:>10.0f}M")
    if chosen != "fp32":
        print(f"{chosen} vs fp32 output agreement: {agreement:.1f} dB PU21-PSNR")
    if "recorded" in report:
        print(f"recorded as precision_checks.{report['recorded']} in the weights manifest (precision=auto uses it)")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
