"""Inference runtimes for the full-resolution networks: PyTorch eager, OpenVINO, ONNX Runtime.

Dequantization-, Hallucination- and Refinement-Net run on every computed tile, so they
are where the time goes; Linearization-Net runs once per image on a 128-px copy and stays
in PyTorch.  ``runtime="auto"`` picks OpenVINO on the CPU when the ``openvino`` package is
installed (``pip install openvino``: the ``fast`` extra, ``pip install -e ".[fast]"`` in a checkout), else PyTorch eager; on CUDA/MPS it is
always PyTorch.  Why OpenVINO: measured on the networks we ship it is the fastest CPU
runtime (see ``tools/compare_runtimes.py`` and the README), on AVX2 and AVX-512 CPUs alike.

Every runner is a callable ``runner(*tensors) -> tensor`` on ``(1, C, H, W)`` float32
tensors with sides that are multiples of the padding multiple, returning float32.

Converted models are cached under ``$HDR_PLUGIN_CACHE`` (default
``~/.cache/hdr_plugin``), keyed by the weights' sha256, the network, the runtime version
and ours, so only the first engine start pays the conversion (about 2 s per network).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .devices import autocast
from .onnx_export import export_onnx, quiet_export

log = logging.getLogger("hdr_plugin")

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
EXTRA = "fast"
CACHE_ENV = "HDR_PLUGIN_CACHE"

Runner = Callable[..., torch.Tensor]


class RuntimeUnavailableError(RuntimeError):
    """The runtime asked for by name is not installed or cannot run on this device."""


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def available_runtimes(device: torch.device) -> list[str]:
    """Runtimes that can run on ``device`` here, fastest first."""
    if device.type != "cpu":
        return ["torch"]
    return [r for r, mod in (("openvino", "openvino"), ("onnxruntime", "onnxruntime")) if _has(mod)] + ["torch"]


def resolve_runtime(runtime: str | None, device: torch.device) -> str:
    """``auto`` -> the fastest available runtime; a named one must be usable or it is an error."""
    name = (runtime or "auto").strip().lower()
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    usable = available_runtimes(device)
    if name == "auto":
        return usable[0]
    if name not in usable:
        if device.type != "cpu":
            raise RuntimeUnavailableError(f"runtime {name!r} runs on the CPU only; on {device.type} use --runtime torch or auto")
        raise RuntimeUnavailableError(
            f"runtime {name!r} is not installed: pip install {name} (the [{EXTRA}] extra: pip install -e \".[{EXTRA}]\" in a checkout), "
            "or use --runtime torch"
        )
    return name


def runtime_version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino

        return openvino.__version__
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    return torch.__version__


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hdr_plugin"


# --------------------------------------------------------------------------- wrappers
class _Hallucinate(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, linear: torch.Tensor) -> torch.Tensor:
        return self.net(linear)


class _Refine(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, hallucinated: torch.Tensor, linear: torch.Tensor, dequantized: torch.Tensor) -> torch.Tensor:
        return self.net(hallucinated, linear, dequantized)


#: network name -> (attribute of HDRModel, number of 3-channel inputs)
NETWORKS = {"dequantization": ("deq", 1), "hallucination": ("hal", 1), "refinement": ("ref", 3)}


def _example(n_inputs: int, size: int = 64) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.rand(1, 3, size, size, generator=g) for _ in range(n_inputs))


def _module_for_export(model: nn.Module, network: str) -> nn.Module:
    attr, _ = NETWORKS[network]
    net = copy.deepcopy(getattr(model, attr)).float().eval().cpu()
    net = net.to(memory_format=torch.contiguous_format)
    for p in net.parameters():
        p.requires_grad_(False)
    return _Refine(net) if network == "refinement" else net


def _atomic_cache_write(write: Callable[[Path], None], target: Path) -> Path | None:
    """Write a cache entry through a temporary folder beside it; None when the cache is not writable."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            tmp_target = Path(tmp) / target.name
            write(tmp_target)
            for f in Path(tmp).iterdir():
                os.replace(f, target.parent / f.name)
        return target
    except OSError as e:
        log.info("hdr_plugin: runtime cache %s not writable (%s); converting in memory", target.parent, e)
        return None


def _cache_key(weights_key: str | None, network: str, runtime: str) -> str | None:
    if not weights_key:
        return None
    from . import __version__

    text = f"{weights_key}|{network}|{runtime}|{runtime_version(runtime)}|{__version__}|torch{torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# --------------------------------------------------------------------------- runners
def _torch_runner(model: nn.Module, network: str, device: torch.device, precision: str) -> Runner:
    attr, _ = NETWORKS[network]
    net = getattr(model, attr)
    # measured on a 1088x1920 window (tools/compare_runtimes.py): 1.6x for Hallucination-Net, 1.8x for the U-Nets
    channels_last = device.type == "cpu"

    def run(*xs: torch.Tensor) -> torch.Tensor:
        if channels_last:
            xs = tuple(x.contiguous(memory_format=torch.channels_last) for x in xs)
        with torch.inference_mode(), autocast(device, precision):
            return net(*xs).float().contiguous()

    if channels_last:
        net.to(memory_format=torch.channels_last)
    return run


def _openvino_runner(model: nn.Module, network: str, precision: str, weights_key: str | None) -> Runner:
    import openvino as ov

    _, n_inputs = NETWORKS[network]
    key = _cache_key(weights_key, network, "openvino")
    xml = cache_dir() / "openvino" / f"{network}-{key}.xml" if key else None
    core = ov.Core()
    if xml is not None and xml.is_file():
        ov_model = core.read_model(str(xml))
    else:
        with torch.no_grad(), quiet_export():
            ov_model = ov.convert_model(_module_for_export(model, network), example_input=_example(n_inputs))
        ov_model.reshape({inp.get_any_name(): [1, 3, -1, -1] for inp in ov_model.inputs})
        if xml is not None:
            _atomic_cache_write(lambda p: ov.save_model(ov_model, str(p), compress_to_fp16=False), xml)
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": max(1, torch.get_num_threads()),
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(ov_model, "CPU", config)
    request = compiled.create_infer_request()

    def run(*xs: torch.Tensor) -> torch.Tensor:
        arrays = [x.detach().float().cpu().contiguous().numpy() for x in xs]
        out = request.infer(arrays)[compiled.output(0)]
        return torch.from_numpy(out.copy())

    # OpenVINO keeps the scratch memory of the last window size until told otherwise
    run.release_memory = compiled.release_memory  # type: ignore[attr-defined]
    return run


def _onnxruntime_runner(model: nn.Module, network: str, weights_key: str | None) -> Runner:
    import onnxruntime as ort

    _, n_inputs = NETWORKS[network]
    key = _cache_key(weights_key, network, "onnxruntime")
    path = cache_dir() / "onnx" / f"{network}-{key}.onnx" if key else None
    if path is None or not path.is_file():
        tmp = None
        if path is not None:
            path = _atomic_cache_write(lambda p: export_onnx(_module_for_export(model, network), n_inputs, p), path)
        if path is None:
            tmp = tempfile.TemporaryDirectory()
            path = export_onnx(_module_for_export(model, network), n_inputs, Path(tmp.name) / f"{network}.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*xs: torch.Tensor) -> torch.Tensor:
        feeds = {n: x.detach().float().cpu().contiguous().numpy() for n, x in zip(names, xs)}
        return torch.from_numpy(session.run(None, feeds)[0])

    return run


def build_runner(model: nn.Module, network: str, runtime: str, device: torch.device, precision: str, weights_key: str | None = None) -> Runner:
    """A runner for one full-resolution network of ``model`` on ``runtime``."""
    if network not in NETWORKS:
        raise ValueError(f"no runner for network {network!r}")
    if runtime == "torch":
        return _torch_runner(model, network, device, precision)
    if runtime == "openvino":
        return _openvino_runner(model, network, precision, weights_key)
    if runtime == "onnxruntime":
        if precision != "fp32":
            raise ValueError("the onnxruntime runtime runs fp32 only; use --precision fp32 or another runtime")
        return _onnxruntime_runner(model, network, weights_key)
    raise ValueError(f"unknown runtime {runtime!r}")


class Runners:
    """The full-resolution networks of one engine on one runtime, built on first use."""

    def __init__(self, model: nn.Module, runtime: str, device: torch.device, precision: str, weights_key: str | None):
        self.model, self.runtime, self.device, self.precision, self.weights_key = model, runtime, device, precision, weights_key
        self._built: dict[str, Runner] = {}

    def __getitem__(self, network: str) -> Runner:
        if network not in self._built:
            self._built[network] = build_runner(self.model, network, self.runtime, self.device, self.precision, self.weights_key)
        return self._built[network]

    def release_memory(self) -> None:
        """Give back the runtimes' scratch memory between images (OpenVINO holds it otherwise)."""
        for runner in self._built.values():
            release = getattr(runner, "release_memory", None)
            if release is not None:
                release()

    @property
    def bytes_per_window_pixel(self) -> int:
        """Peak working memory per computed window pixel of the largest pass on this runtime
        (measured with /proc/self/status on 1-2 MP windows, shipped widths, fp32)."""
        return BYTES_PER_WINDOW_PIXEL.get(self.runtime, max(BYTES_PER_WINDOW_PIXEL.values()))


#: measured on the shipped networks (8K frame, 1.3-2 MP windows): OpenVINO's scratch
#: buffers are the largest; PyTorch eager frees its activations as it goes
BYTES_PER_WINDOW_PIXEL = {"openvino": 1200, "onnxruntime": 1200, "torch": 1000}
