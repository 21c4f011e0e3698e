"""Device and precision selection.

``device="auto"`` picks CUDA, then Apple MPS, then the CPU.  A device asked for by name
that is not available raises :class:`DeviceUnavailableError`; nothing falls back silently.

``precision="auto"`` picks reduced precision only where it is fast *and* measured to be
faithful: bf16 on CPUs with AMX (matrix units; on CPUs with AVX-512 BF16 but no AMX, bf16
measured *slower* than fp32 for our networks: 0.24 vs 0.27 MP/s for Hallucination-Net on
a Xeon with avx512_bf16 and no AMX), bf16 or fp16 on CUDA, and only when the weights'
manifest records that this mode's output agrees with fp32 to at least
``AUTO_PRECISION_MIN_DB`` PU21-PSNR; otherwise fp32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import torch

log = logging.getLogger("hdr_plugin")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTO_PRECISION_MIN_DB = 45.0
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceUnavailableError(RuntimeError):
    """The requested device does not exist on this machine."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into an available ``torch.device``."""
    if isinstance(device, torch.device):
        device = str(device)
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise DeviceUnavailableError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {device!r} requested but CUDA is not available "
                f"(torch {torch.__version__} {'has no CUDA support' if torch.version.cuda is None else 'found no GPU'}); "
                "use --device cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceUnavailableError(f"device {device!r} requested but Apple MPS is not available; use --device cpu or auto")
    elif dev.type != "cpu":
        raise DeviceUnavailableError(f"unsupported device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return dev


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs that advertise AMX-BF16 or AVX512-BF16 (read from /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_isa() -> str:
    """The widest vector/matrix ISA of this CPU that matters for our kernels: amx, avx512, avx2 or other."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "amx"
    if "avx512f" in flags:
        return "avx512" + ("+bf16" if "avx512_bf16" in flags else "")
    if "avx2" in flags:
        return "avx2"
    return "other"


def cpu_has_fast_bf16() -> bool:
    """True where bf16 is measured to beat fp32 on the CPU: AMX matrix units."""
    return "amx_bf16" in cpu_flags()


def precision_key(device: torch.device, precision: str, runtime: str = "torch") -> str:
    """Manifest key of a precision check, e.g. ``cpu_bf16`` (PyTorch) or ``cpu_openvino_bf16``."""
    return f"{device.type}_{precision}" if runtime == "torch" else f"{device.type}_{runtime}_{precision}"


def resolve_precision(
    precision: str, device: torch.device, measured_db: dict[str, float] | None = None, runtime: str = "torch"
) -> str:
    """Pick ``fp32``/``bf16``/``fp16`` for ``device``; see the module docstring for ``auto``."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is not supported on the CPU; use bf16 or fp32")
    if precision != "auto":
        return precision
    measured_db = measured_db or {}
    if device.type == "cpu":
        candidates = ["bf16"] if cpu_has_fast_bf16() and runtime != "onnxruntime" else []
    elif device.type == "cuda":
        candidates = (["bf16"] if torch.cuda.is_bf16_supported() else []) + ["fp16"]
    else:
        candidates = ["fp16"]
    for cand in candidates:
        db = measured_db.get(precision_key(device, cand, runtime))
        if db is not None and db >= AUTO_PRECISION_MIN_DB:
            return cand
    return "fp32"


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` (a no-op context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])
