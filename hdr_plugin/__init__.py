"""hdr_plugin: single-image LDR -> scene-linear HDR reconstruction.

Reverses the camera pipeline (Liu et al., CVPR 2020): Dequantization-Net,
Linearization-Net (inverse camera curve), Hallucination-Net (clipped highlights) and
Refinement-Net.  Public API::

    import hdr_plugin
    hdr = hdr_plugin.apply(bgr_uint8)                  # cv2 style, BGR in, float32 BGR out
    engine = hdr_plugin.load_engine(device="cuda")     # reusable Engine
    result = engine.reconstruct(rgb)                   # RGB in, HDRResult out

Heavy modules (torch) load on first use of an attribute that needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .plugins import LockedCurve, hookimpl, register_plugin, unregister_plugin

__version__ = "0.1.0"

_LAZY = {
    "apply": "hdr_plugin.api",
    "Engine": "hdr_plugin.pipeline",
    "load_engine": "hdr_plugin.pipeline",
    "HDRResult": "hdr_plugin.pipeline",
    "RunContext": "hdr_plugin.pipeline",
    "Cancelled": "hdr_plugin.pipeline",
    "NumericalError": "hdr_plugin.pipeline",
    "DeviceUnavailableError": "hdr_plugin.devices",
    "WeightsError": "hdr_plugin.weights",
    "read_ldr": "hdr_plugin.io",
    "read_hdr": "hdr_plugin.io",
    "write_exr": "hdr_plugin.io",
    "write_hdr": "hdr_plugin.io",
    "convert_shot": "hdr_plugin.shots",
}

__all__ = ["__version__", "hookimpl", "register_plugin", "unregister_plugin", "LockedCurve", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hdr_plugin' has no attribute {name!r}")
