"""The four networks of the method, pure ``nn.Module``s with no I/O or plugin logic."""

from .hallucination import HallucinationNet, overexposure_mask
from .linearization import LinearizationNet, linearization_features
from .unet import DequantizationNet, RefinementNet, UNet

__all__ = [
    "DequantizationNet",
    "HallucinationNet",
    "LinearizationNet",
    "RefinementNet",
    "UNet",
    "linearization_features",
    "overexposure_mask",
]
