"""Compare inference runtimes for the full-resolution networks, measured in one run.

For Hallucination-Net (the default path's network) and the U-Net of Dequantization- and
Refinement-Net (``--quality max``) on one window (default 1088x1920, a 1080p frame's
single tile), times every runtime this machine can run: PyTorch eager (NCHW and
channels_last; bf16 autocast where the CPU has native bf16), ``torch.compile`` (inductor),
ONNX Runtime and OpenVINO (fp32, and bf16 where the CPU has native bf16).  Prints seconds,
MP/s, the speed-up over eager fp32 and the output agreement with eager fp32 (PU21-PSNR of
the network output on a real frame, the bundled sample mirrored out).

    python tools/compare_runtimes.py [--size 1920x1088] [--repeat 3] [--no-compile]

The CPU model and ISA are printed first: every number belongs to that CPU.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch


from hdr_plugin.bench import bench_image, cpu_name
from hdr_plugin.color import srgb_to_linear
from hdr_plugin.devices import cpu_has_native_bf16, cpu_isa
from hdr_plugin.evaluation.metrics import pu21_psnr
from hdr_plugin.runtime import _module_for_export, available_runtimes, build_runner
from hdr_plugin.weights import load_model

CPU = torch.device("cpu")


def best_time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1920x1088", help="WIDTHxHEIGHT of the window (multiples of 64)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (its first call compiles for minutes)")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    model, info = load_model(None)
    frame = bench_image(w, h)
    display = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
    linear = torch.from_numpy(np.ascontiguousarray(srgb_to_linear(frame).transpose(2, 0, 1)))[None].float()
    inputs = {"hallucination": (linear,), "dequantization": (display,), "refinement": (linear, linear, display)}
    mp = w * h / 1e6
    print(f"{cpu_name()} ({cpu_isa()}), {torch.get_num_threads()} threads, torch {torch.__version__}, window {w}x{h}")
    print(f"{'network':<15} {'runtime':<26} {'seconds':>8} {'MP/s':>7} {'speed-up':>8} {'agreement dB':>12}")
    for network, xs in inputs.items():
        module = _module_for_export(model, network)
        with torch.inference_mode():
            reference = module(*xs).float()

        def row(name, fn, out=None):
            seconds = best_time(fn, args.repeat)
            out = fn() if out is None else out
            agreement = pu21_psnr(out[0].numpy().transpose(1, 2, 0), reference[0].numpy().transpose(1, 2, 0))
            return name, seconds, agreement

        rows = []
        with torch.inference_mode():
            rows.append(row("torch eager fp32", lambda: module(*xs).float()))
            cl = copy.deepcopy(module).to(memory_format=torch.channels_last)
            xcl = tuple(x.contiguous(memory_format=torch.channels_last) for x in xs)
            rows.append(row("torch eager channels_last", lambda: cl(*xcl).float()))
            if cpu_has_native_bf16():
                def bf16():
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return cl(*xcl).float()

                rows.append(row("torch eager bf16 (cl)", bf16))
        if not args.no_compile:
            try:
                compiled = torch.compile(copy.deepcopy(module), dynamic=False)
                with torch.inference_mode():
                    t = time.perf_counter()
                    compiled(*xs)
                    first = time.perf_counter() - t
                    rows.append(row(f"torch.compile (1st {first:.0f} s)", lambda: compiled(*xs).float()))
            except Exception as e:  # the inductor needs a C++ toolchain
                print(f"{network:<15} torch.compile failed: {type(e).__name__}: {str(e)[:80]}")
        for runtime in available_runtimes(CPU):
            if runtime == "torch":
                continue
            for precision in (["fp32", "bf16"] if runtime == "openvino" and cpu_has_native_bf16() else ["fp32"]):
                runner = build_runner(model, network, runtime, CPU, precision)
                rows.append(row(f"{runtime} {precision}", lambda: runner(*xs)))
        base = rows[0][1]
        for name, seconds, agreement in rows:
            print(f"{network:<15} {name:<26} {seconds:>8.3f} {mp / seconds:>7.2f} {base / seconds:>7.2f}x {agreement:>12.1f}")

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
