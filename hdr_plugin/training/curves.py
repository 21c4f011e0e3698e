"""Camera-curve families sampled by the training and validation data synthesis.

Real inputs are mostly sRGB/Rec.709 camera JPEGs and renders, often with an extra
S-shaped "look", so the prior mixes five families (forward curves on ``crf.GRID``):

* ``srgb``   - the exact sRGB OETF;
* ``gamma``  - Rec.709 OETF or a pure power law with exponent 1/g, g in [1.6, 2.8];
* ``scurve`` - an sRGB or gamma encoding followed by an S-shaped tone curve of random strength;
* ``dorf``   - measured DoRF camera curves (train rows for training, the held-out test rows
  of ``crf.dorf_split()`` for validation - never the other way round);
* ``emor``   - random EMoR-model curves drawn from a Gaussian fitted to the DoRF training curves.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import crf
from ..color import linear_to_srgb, rec709_oetf

FAMILIES = ("srgb", "gamma", "scurve", "dorf", "emor")

#: How often each family is drawn for training, and how the validation mix is weighted.
#: sRGB and sRGB + tone curve dominate real inputs; measured curves keep the model general.
PRIOR_WEIGHTS = {"srgb": 0.30, "scurve": 0.25, "gamma": 0.15, "dorf": 0.15, "emor": 0.15}

GAMMA_RANGE = (1.6, 2.8)
EMOR_COMPONENTS = 6


def srgb_curve() -> np.ndarray:
    return linear_to_srgb(crf.GRID)


def gamma_curve(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.2:
        return rec709_oetf(crf.GRID)
    return crf.GRID ** (1.0 / rng.uniform(*GAMMA_RANGE))


def s_tone_curve(y: np.ndarray, strength: float, slope: float, midpoint: float) -> np.ndarray:
    """Blend of identity and a normalised logistic; monotonic with fixed endpoints."""
    sig = 1.0 / (1.0 + np.exp(-slope * (y - midpoint)))
    lo = 1.0 / (1.0 + np.exp(slope * midpoint))
    hi = 1.0 / (1.0 + np.exp(-slope * (1.0 - midpoint)))
    return (1.0 - strength) * y + strength * (sig - lo) / (hi - lo)


def scurve_curve(rng: np.random.Generator) -> np.ndarray:
    base = srgb_curve() if rng.random() < 0.6 else gamma_curve(rng)
    return s_tone_curve(base, rng.uniform(0.2, 1.0), rng.uniform(4.0, 10.0), rng.uniform(0.35, 0.6))


@lru_cache(maxsize=None)
def _emor_prior() -> tuple[np.ndarray, np.ndarray]:
    train, _ = crf.dorf_split()
    coeffs = np.stack([crf.fit_emor_weights(c, EMOR_COMPONENTS) for c in crf.dorf_curves()[list(train)]])
    return coeffs.mean(axis=0), np.cov(coeffs, rowvar=False)


def emor_curve(rng: np.random.Generator) -> np.ndarray:
    f0, h = crf.emor_basis()
    mean, cov = _emor_prior()
    for _ in range(100):
        c = rng.multivariate_normal(mean, cov)
        f = f0 + c @ h[:EMOR_COMPONENTS]
        if np.diff(f).min() > -1e-4 and f.min() > -1e-3 and f.max() < 1 + 1e-3:
            break
    f = np.maximum.accumulate(np.clip(f, 0.0, 1.0))
    return (f - f[0]) / (f[-1] - f[0])


def dorf_curve(rng: np.random.Generator, split: str) -> np.ndarray:
    train, test = crf.dorf_split()
    rows = train if split == "train" else test
    return crf.dorf_curves()[rows[rng.integers(len(rows))]].copy()


def sample_forward_curve(family: str, rng: np.random.Generator, split: str = "train") -> np.ndarray:
    """A forward camera curve of ``family``; ``split`` selects the DoRF rows (``train``/``val``)."""
    if family == "srgb":
        f = srgb_curve()
    elif family == "gamma":
        f = gamma_curve(rng)
    elif family == "scurve":
        f = scurve_curve(rng)
    elif family == "dorf":
        f = dorf_curve(rng, split)
    elif family == "emor":
        f = emor_curve(rng)
    else:
        raise ValueError(f"unknown curve family {family!r}; choose from {FAMILIES}")
    f = np.maximum.accumulate(np.asarray(f, np.float64))
    f[0], f[-1] = 0.0, 1.0
    return f


def sample_family(rng: np.random.Generator, weights: dict[str, float] | None = None) -> str:
    weights = weights or PRIOR_WEIGHTS
    names = list(weights)
    p = np.asarray([weights[n] for n in names], np.float64)
    return names[rng.choice(len(names), p=p / p.sum())]
