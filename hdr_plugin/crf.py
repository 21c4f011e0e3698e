"""Camera-curve math: EMoR / inverse-EMoR bases, DoRF curves, curve construction,
inversion, per-pixel application and the forward camera simulation.

Conventions
-----------
* A *curve* is sampled at ``N_SAMPLES`` = 1024 evenly spaced points on [0, 1].
* A *forward* curve (camera response, CRF) maps scene-linear irradiance in [0, 1]
  to display-encoded brightness in [0, 1]; an *inverse* curve maps brightness back to
  irradiance.  Both are monotonic with ``curve[0] == 0`` and ``curve[-1] == 1``.
* Images passed to the torch functions are ``(N, C, H, W)`` tensors, channel order
  irrelevant (the same curve is applied to every channel).  Curve math stays float32.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch

N_SAMPLES = 1024
#: The sample grid shared by every curve (irradiance for forward, brightness for inverse).
GRID = np.linspace(0.0, 1.0, N_SAMPLES)

#: Number of inverse-EMoR basis vectors Linearization-Net predicts weights for (paper: 11).
N_EMOR_WEIGHTS = 11


# --------------------------------------------------------------------------- data files
def _data_text(name: str) -> str:
    return resources.files("hdr_plugin.data").joinpath(name).read_text(encoding="ascii")


def parse_emor_text(text: str) -> dict[str, np.ndarray]:
    """Parse an ``emor.txt`` / ``invemor.txt`` file into ``{label: (1024,) float64}``.

    The format is blocks of one label line (``"E ="``, ``"h(3)="`` ...) followed by 256
    lines of four numbers each.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    blocks: dict[str, np.ndarray] = {}
    i = 0
    while i < len(lines):
        label = lines[i]
        if label.endswith("="):
            values = " ".join(lines[i + 1 : i + 257]).split()
            if len(values) != N_SAMPLES:
                raise ValueError(f"EMoR block {label!r} has {len(values)} values, expected {N_SAMPLES}")
            blocks[label.replace(" ", "").rstrip("=")] = np.asarray(values, dtype=np.float64)
            i += 257
        else:
            i += 1
    return blocks


@lru_cache(maxsize=None)
def emor_basis() -> tuple[np.ndarray, np.ndarray]:
    """Forward EMoR model: mean response ``f0`` (1024,) and PCA basis ``h`` (25, 1024)."""
    b = parse_emor_text(_data_text("emor.txt"))
    h = np.stack([b[f"h({n})"] for n in range(1, 26)])
    return b["f0"], h


@lru_cache(maxsize=None)
def inverse_emor_basis() -> tuple[np.ndarray, np.ndarray]:
    """Inverse EMoR model: mean inverse response ``g0`` (1024,) and basis ``hinv`` (25, 1024)."""
    b = parse_emor_text(_data_text("invemor.txt"))
    hinv = np.stack([b[f"hinv({n})"] for n in range(1, 26)])
    return b["g0"], hinv


@lru_cache(maxsize=None)
def dorf_curves() -> np.ndarray:
    """The 201 measured DoRF forward response curves, float64 (201, 1024) on ``GRID``."""
    with resources.files("hdr_plugin.data").joinpath("dorf_201_curves.npz").open("rb") as f:
        curves = np.load(f)["B"].astype(np.float64)
    curves[:, 0], curves[:, -1] = 0.0, 1.0
    return np.maximum.accumulate(curves, axis=1)


@lru_cache(maxsize=None)
def dorf_split() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """SingleHDR's DoRF train/test split as row indices ``(train, test)``.

    The database repeats some curves; train rows identical to a test curve are dropped
    so that no test curve is ever trained on.
    """
    rows: dict[str, list[int]] = {}
    for line in _data_text("singlehdr_dorf_split.txt").splitlines():
        if ":" in line and not line.startswith("#"):
            key, vals = line.split(":", 1)
            rows[key.strip()] = [int(v) for v in vals.split()]
    train, test = rows["train_rows"], rows["test_rows"]
    curves = dorf_curves()
    test_set = curves[test]
    train = [r for r in train if np.abs(test_set - curves[r]).max(axis=1).min() > 1e-6]
    return tuple(train), tuple(test)


# --------------------------------------------------------------------------- numpy curve helpers
def invert_curve(curve: np.ndarray) -> np.ndarray:
    """Invert sampled monotonic curve(s) ``(..., 1024)`` on ``GRID``; flat runs are split evenly."""
    curve = np.asarray(curve, dtype=np.float64)
    flat = curve.reshape(-1, curve.shape[-1])
    out = np.empty_like(flat)
    ramp = GRID * 1e-9  # makes flat runs strictly increasing without visibly moving them
    for k, c in enumerate(flat):
        c = np.maximum.accumulate(c) + ramp
        c = (c - c[0]) / (c[-1] - c[0])
        out[k] = np.interp(GRID, c, GRID)
    return out.reshape(curve.shape)


def apply_curve_np(x: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Apply one sampled curve to an array of values in [0, 1] (linear interpolation, float32).

    Exploits the uniform grid (index arithmetic instead of a search), which makes it several
    times faster than ``np.interp`` on training-sized batches.
    """
    curve = np.asarray(curve, np.float32)
    k = curve.shape[-1]
    pos = np.clip(np.asarray(x, np.float32), 0.0, 1.0) * np.float32(k - 1)
    i0 = np.minimum(pos.astype(np.int32), k - 2)
    frac = pos - i0.astype(np.float32)
    v0 = curve[i0]
    return v0 + frac * (curve[i0 + 1] - v0)


def fit_inverse_emor_weights(inverse_curve: np.ndarray, n: int = N_EMOR_WEIGHTS) -> np.ndarray:
    """Least-squares inverse-EMoR weights ``w`` so that ``g0 + w @ hinv[:n]`` ≈ ``inverse_curve``."""
    g0, hinv = inverse_emor_basis()
    w, *_ = np.linalg.lstsq(hinv[:n].T, np.asarray(inverse_curve, np.float64) - g0, rcond=None)
    return w


def fit_emor_weights(forward_curve: np.ndarray, n: int) -> np.ndarray:
    """Least-squares forward-EMoR weights for a forward curve (used to sample EMoR curves)."""
    f0, h = emor_basis()
    w, *_ = np.linalg.lstsq(h[:n].T, np.asarray(forward_curve, np.float64) - f0, rcond=None)
    return w


def quantize(x, bits: int = 8):
    """``Q(x) = floor((2^bits - 1) x + 0.5) / (2^bits - 1)`` on values clipped to [0, 1]."""
    levels = float(2**bits - 1)
    if isinstance(x, torch.Tensor):
        return torch.floor(x.clamp(0, 1) * levels + 0.5) / levels
    return (np.floor(np.clip(x, 0, 1) * levels + 0.5) / levels).astype(np.float32)


def simulate_camera(linear: np.ndarray, forward_curve: np.ndarray, bits: int = 8):
    """Forward camera model on an exposure-scaled scene-linear image.

    Returns ``(encoded, quantized)``: ``F(clip(H))`` before quantization (the
    Dequantization-Net target) and the ``bits``-bit image ``Q(F(clip(H)))``.
    """
    encoded = apply_curve_np(linear, forward_curve)
    return encoded, quantize(encoded, bits)


# --------------------------------------------------------------------------- torch curve ops
def make_monotonic(curve: torch.Tensor) -> torch.Tensor:
    """Force sampled curve(s) ``(..., K)`` monotonic with ``g(0)=0`` and ``g(1)=1``.

    Slopes are shifted up by the most negative slope (so every sample keeps a gradient),
    renormalised to sum to one and integrated.
    """
    slopes = curve[..., 1:] - curve[..., :-1]
    shift = torch.relu(-slopes.amin(dim=-1, keepdim=True))
    slopes = slopes + shift + 1e-12
    slopes = slopes / slopes.sum(dim=-1, keepdim=True)
    zero = torch.zeros_like(curve[..., :1])
    return torch.cat([zero, torch.cumsum(slopes, dim=-1)], dim=-1)


def apply_curve(x: torch.Tensor, curve: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Apply per-image sampled curves by linear interpolation, differentiably, in float32.

    ``x``: ``(N, C, H, W)`` values in [0, 1] (clamped); ``curve``: ``(N, K)`` or ``(K,)``.
    Returns float32 ``(N, C, H, W)``.  ``dtype=torch.float64`` computes in double
    precision instead (for ``torch.autograd.gradcheck``).
    """
    x = x.to(dtype).clamp(0.0, 1.0)
    curve = curve.to(device=x.device, dtype=dtype)
    n = x.shape[0]
    if curve.dim() == 1:
        curve = curve.unsqueeze(0).expand(n, -1)
    k = curve.shape[-1]
    pos = x.reshape(n, -1) * (k - 1)
    i0 = pos.detach().floor().clamp(0, k - 2).long()
    frac = pos - i0.to(pos.dtype)
    v0 = torch.gather(curve, 1, i0)
    v1 = torch.gather(curve, 1, i0 + 1)
    return (v0 + frac * (v1 - v0)).reshape(x.shape)


def emor_curve_from_weights(weights: torch.Tensor) -> torch.Tensor:
    """Inverse curve ``g0 + w @ hinv[:n]`` for weights ``(N, n)``, forced monotonic."""
    g0, hinv = inverse_emor_basis()
    n = weights.shape[-1]
    g0_t = torch.as_tensor(g0, dtype=torch.float32, device=weights.device)
    h_t = torch.as_tensor(hinv[:n], dtype=torch.float32, device=weights.device)
    return make_monotonic(g0_t + weights.float() @ h_t)
