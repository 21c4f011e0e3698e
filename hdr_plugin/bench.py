"""``hdr-plugin bench``: throughput per stage, compute, peak memory, and ratios measured in one run.

The frame is the bundled sample mirrored out to the requested size (never resampled);
``--clipped 0`` darkens it so no pixel is over-exposed, ``--clipped 0.3`` brightens it so
30 % of the pixels are clipped (both re-quantized to 8 bits).  Reported per stage: the
seconds, megapixels per second, kMAC per frame pixel and the achieved GMAC/s; for the
run: peak memory and the clipped fraction.  Where the chosen precision is not fp32 the
fp32 run is measured too, with the output agreement as PU21-PSNR.  ``--against PATH``
measures another checkout (a folder with ``hdr_plugin/``, run with its own ``.venv`` if
it has one) or another weights folder on the same frame in the same run, alternating
runs, and prints the speed ratio and the output agreement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

STAGES = ("dequantize", "linearize", "hallucinate", "refine", "total")
_WORK_STAGE = {"dequantize": "dequantize", "linearize": "linearize", "hallucinate": "hallucinate", "refine": "refine"}


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


def bench_image(width: int, height: int, clipped: float | None = None) -> np.ndarray:
    """The bundled sample (RGB [0, 1]) mirrored out to ``width`` x ``height`` (never resampled).

    ``clipped``: None keeps the sample's exposure; 0 darkens it so no pixel is near the clip;
    a fraction in (0, 1) brightens it so that fraction of the pixels clips.  Re-quantized
    to 8-bit code values either way.
    """
    from .io import read_ldr

    rgb = read_ldr(resources.files("hdr_plugin.data").joinpath("sample.png")).rgb
    reps_y, reps_x = -(-height // rgb.shape[0]), -(-width // rgb.shape[1])
    tiles = [[rgb[:: (-1 if y % 2 else 1), :: (-1 if x % 2 else 1)] for x in range(reps_x)] for y in range(reps_y)]
    mosaic = np.ascontiguousarray(np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)[:height, :width])
    if clipped is None:
        return mosaic
    if not 0.0 <= clipped < 1.0:
        raise ValueError(f"--clipped takes a fraction in [0, 1), not {clipped}")
    peak = mosaic.max(axis=2)
    gain = 0.8 / max(float(peak.max()), 1e-6) if clipped == 0 else 1.0 / max(float(np.quantile(peak, 1.0 - clipped)), 1e-3)
    return np.ascontiguousarray(np.floor(np.clip(mosaic * gain, 0.0, 1.0) * 255.0 + 0.5) / 255.0, dtype=np.float32)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: --size takes WIDTHxHEIGHT, not {text!r}")
    if w < 1 or h < 1:
        raise SystemExit("error: --size must be positive")
    return w, h


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


_cpu_name = cpu_name  # older name


def measure_once(engine, image: np.ndarray) -> tuple[dict, dict, int, np.ndarray]:
    """One timed run: stage seconds, MACs per stage, peak memory (bytes) and the output."""
    with PeakMemory(engine.device) as mem:
        result = engine.reconstruct(image)
    return dict(result.timings), dict(result.work), mem.peak, result.image


class _Best:
    """Best-of-N stage timings with the work and memory of the runs."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.work: dict[str, float] = {}
        self.peak = 0
        self.out = None
        self.clipped = 0.0

    def add(self, timings, work, peak, out):
        for k in STAGES:
            if k in timings:
                self.seconds[k] = min(self.seconds.get(k, float("inf")), timings[k])
        self.work = work
        self.peak = max(self.peak, peak)
        self.out = out
        self.clipped = timings.get("clipped_fraction", self.clipped)


# --------------------------------------------------------------------------- another checkout
_OTHER_SCRIPT = r"""
import json, sys, time, threading, numpy as np
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from hdr_plugin.pipeline import Engine
image = np.load(sys.argv[2])
engine = Engine(None, device=sys.argv[4])
engine.reconstruct(image[:256, :256])
peak = [0]
stop = threading.Event()
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss()); time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
result = engine.reconstruct(image)
seconds = time.perf_counter() - t
stop.set()
np.save(sys.argv[3], result.image)
import hdr_plugin
print(json.dumps({"seconds": seconds, "peak": peak[0], "precision": engine.precision,
                  "version": getattr(hdr_plugin, "__version__", "?"), "timings": result.timings}))
"""


def _other_python(checkout: Path) -> str:
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def run_other_checkout(checkout: Path, image_path: Path, out_path: Path, device: str) -> dict:
    """Time one reconstruction by another checkout's engine, in its own process and venv."""
    env = dict(os.environ)
    env.pop("HDR_PLUGIN_WEIGHTS", None)
    proc = subprocess.run(
        [_other_python(checkout), "-c", _OTHER_SCRIPT, str(checkout), str(image_path), str(out_path), device],
        capture_output=True, text=True, env=env, cwd=str(checkout), check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: --against {checkout}: the other engine failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the command
def run_bench(args) -> int:
    from .devices import cpu_isa
    from .evaluation.metrics import pu21_psnr
    from .pipeline import Engine

    width, height = _parse_size(args.size)
    engine = Engine(
        args.weights, device=args.device, precision=args.precision, tile=args.tile, tile_overlap=args.tile_overlap,
        quality=args.quality, runtime=args.runtime, max_memory=args.max_memory,
    )
    chosen = engine.precision
    fp32 = engine.with_options(precision="fp32") if chosen != "fp32" else None
    image = bench_image(width, height, args.clipped)
    mp = width * height / 1e6
    warm = image[: min(height, 256), : min(width, 256)]
    engine.reconstruct(warm)  # allocator, kernels, runtime conversion
    if fp32 is not None:
        fp32.reconstruct(warm)

    against = Path(args.against) if getattr(args, "against", None) else None
    other_engine = None
    tmp = tempfile.TemporaryDirectory()
    image_path = Path(tmp.name) / "frame.npy"
    if against is not None:
        if (against / "hdr_plugin").is_dir():
            np.save(image_path, image)
        else:  # a weights folder: same code, other weights
            other_engine = Engine(
                against, device=args.device, precision=args.precision, tile=args.tile, tile_overlap=args.tile_overlap,
                quality=args.quality, runtime=args.runtime, max_memory=args.max_memory,
            )
            other_engine.reconstruct(warm)

    ours, low32, other = _Best(), _Best(), {"seconds": float("inf"), "peak": 0}
    for i in range(max(1, args.repeat)):  # alternate so both see the same machine load
        ours.add(*measure_once(engine, image))
        if fp32 is not None:
            low32.add(*measure_once(fp32, image))
        if against is not None and other_engine is None:
            r = run_other_checkout(against, image_path, Path(tmp.name) / "other.npy", str(engine.device))
            if r["seconds"] < other["seconds"]:
                other = r
            other["peak"] = max(other.get("peak", 0), r["peak"])
        elif other_engine is not None:
            timings, _, peak, out = measure_once(other_engine, image)
            if timings["total"] < other["seconds"]:
                other = {"seconds": timings["total"], "peak": peak, "precision": other_engine.precision}
            other["out"] = out
    if against is not None and other_engine is None:
        other["out"] = np.load(Path(tmp.name) / "other.npy")

    stages = {}
    for k in STAGES:
        seconds = ours.seconds.get(k, 0.0)
        macs = ours.work.get(_WORK_STAGE.get(k, ""), None) if k != "total" else sum(ours.work.values())
        stages[k] = {
            "seconds": seconds,
            "megapixels_per_second": mp / seconds if seconds > 0 else None,
            "kmac_per_pixel": (macs / (width * height) / 1e3) if macs else 0.0,
            "gmac_per_second": (macs / seconds / 1e9) if macs and seconds > 0 else None,
        }
    report = {
        "size": [width, height],
        "megapixels": mp,
        "clipped_fraction": ours.clipped,
        "device": str(engine.device),
        "device_name": torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else cpu_name(),
        "isa": cpu_isa() if engine.device.type == "cpu" else None,
        "threads": torch.get_num_threads(),
        "runtime": engine.runtime,
        "quality": engine.quality.name,
        "precision": chosen,
        "tile": engine.tile if engine.tile is not None else "auto",
        "stages": stages,
        "peak_memory_mib": ours.peak / 2**20,
    }
    if fp32 is not None:
        report["fp32_seconds"] = low32.seconds.get("total")
        report["speedup_vs_fp32"] = low32.seconds["total"] / ours.seconds["total"]
        report["agreement_vs_fp32_pu21_db"] = pu21_psnr(ours.out, low32.out)
    if against is not None:
        report["against"] = {
            "path": str(against),
            "seconds": other["seconds"],
            "precision": other.get("precision"),
            "peak_memory_mib": other.get("peak", 0) / 2**20,
            "speed_ratio": other["seconds"] / ours.seconds["total"],
            "agreement_pu21_db": pu21_psnr(ours.out, other["out"]),
        }
    if getattr(args, "record", False) and fp32 is not None and engine.weights_info is not None:
        from .devices import precision_key
        from .weights import update_manifest

        key = precision_key(engine.device, chosen, engine.runtime)
        update_manifest(engine.weights_info.path.parent, precision_checks={key: round(float(report["agreement_vs_fp32_pu21_db"]), 2)})
        report["recorded"] = key
    tmp.cleanup()
    if args.json:
        print(json.dumps(report, indent=2, default=float))
        return 0
    _print_report(report, engine)
    return 0


def _print_report(report: dict, engine) -> None:
    width, height = report["size"]
    isa = f", {report['isa']}" if report["isa"] else ""
    print(f"hdr-plugin bench: {width}x{height} ({report['megapixels']:.2f} MP, {100 * report['clipped_fraction']:.1f} % clipped) "
          f"on {report['device']} ({report['device_name']}{isa}), {report['threads']} threads")
    print(f"runtime {report['runtime']}, precision {report['precision']}, quality {report['quality']} "
          f"({', '.join(engine.quality.networks)}), tile {report['tile']}")
    print(f"{'stage':<12} {'seconds':>8} {'MP/s':>8} {'kMAC/px':>8} {'GMAC/s':>8}")
    for k, s in report["stages"].items():
        if (k == "dequantize" and not engine.quality.dequantize) or (k == "refine" and not engine.quality.refine):
            print(f"{k:<12} {'-':>8} {'(off)':>8} {0:>8.1f} {'-':>8}")
            continue
        mps = f"{s['megapixels_per_second']:.3f}" if s["megapixels_per_second"] else "-"
        gmacs = f"{s['gmac_per_second']:.1f}" if s["gmac_per_second"] else "-"
        print(f"{k:<12} {s['seconds']:>8.3f} {mps:>8} {s['kmac_per_pixel']:>8.1f} {gmacs:>8}")
    print(f"peak memory  {report['peak_memory_mib']:.0f} MiB")
    if "speedup_vs_fp32" in report:
        print(f"{report['precision']} vs fp32: {report['speedup_vs_fp32']:.2f}x faster, "
              f"agreement {report['agreement_vs_fp32_pu21_db']:.1f} dB PU21-PSNR")
    if "against" in report:
        a = report["against"]
        print(f"against {a['path']} ({a['precision'] or '?'}): {a['seconds']:.2f} s, peak {a['peak_memory_mib']:.0f} MiB -> "
              f"this run is {a['speed_ratio']:.2f}x faster; output agreement {a['agreement_pu21_db']:.1f} dB PU21-PSNR")
    if "recorded" in report:
        print(f"recorded as precision_checks.{report['recorded']} in the weights manifest (precision=auto uses it)")
