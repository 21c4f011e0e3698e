"""Training/validation pairs made from real HDR scenes by simulating a camera.

HDR scene -> perspective view (panoramas are reprojected, away from the poles) ->
random exposure hitting a target clip fraction -> sensor noise -> white-balance jitter ->
clip -> random camera curve -> 8-bit quantization -> optional JPEG.

All arrays are RGB float32 (H, W, 3).  Nothing is downloaded: scenes come from a data
folder laid out like ``../shared/data`` (``hdr/INDEX.csv`` plus the image files).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from .. import crf
from ..io import read_hdr
from .curves import FAMILIES, PRIOR_WEIGHTS, sample_family, sample_forward_curve

DEFAULT_DATA_ROOT = Path("../shared/data")


@dataclass
class Scene:
    """One HDR image: RGB float32 scene-linear pixels and its INDEX.csv row."""

    path: str
    image: np.ndarray
    equirect: bool
    license: str


@dataclass
class Pair:
    """A synthetic training/validation example (all RGB float32, (H, W, 3) unless noted).

    ``ldr``: the 8-bit camera output (after JPEG if any); ``encoded``: ``F(clip(H))``
    before quantization; ``linear``: the clipped linear sensor image; ``hdr``: the
    exposure-scaled scene (clip level 1.0); ``inverse_curve``: (1024,) true inverse CRF.
    """

    ldr: np.ndarray
    encoded: np.ndarray
    linear: np.ndarray
    hdr: np.ndarray
    inverse_curve: np.ndarray
    family: str
    scene: str
    jpeg_quality: int = 0


def load_splits() -> dict:
    return yaml.safe_load(resources.files("hdr_plugin.training").joinpath("splits.yaml").read_text())


def index_rows(data_root: str | Path) -> list[dict]:
    index = Path(data_root) / "hdr" / "INDEX.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: pass --data pointing at a folder with hdr/INDEX.csv")
    with open(index, newline="") as f:
        return list(csv.DictReader(f))


def scene_paths(data_root: str | Path, split: str) -> list[str]:
    """Relative paths of the scenes in ``split`` (``train`` or ``val``), per ``splits.yaml``."""
    splits = load_splits()
    val, excluded = set(splits["validation"]), set(splits["excluded"])
    rows = index_rows(data_root)
    if split == "val":
        return [r["path"] for r in rows if r["path"] in val]
    if split != "train":
        raise ValueError(f"unknown split {split!r}")
    ok = tuple(splits["permissive_licences"])
    return [
        r["path"]
        for r in rows
        if r["path"] not in val and r["path"] not in excluded and r["license"].startswith(ok) and float(r["max"]) > 1.0
    ]


def load_scenes(data_root: str | Path, split: str, limit: int | None = None) -> list[Scene]:
    """Read the split's HDR images, normalised so their 99th percentile peak is 1."""
    root = Path(data_root) / "hdr"
    rows = {r["path"]: r for r in index_rows(data_root)}
    scenes = []
    for rel in scene_paths(data_root, split)[:limit]:
        img = np.nan_to_num(read_hdr(root / rel), nan=0.0, posinf=0.0, neginf=0.0)
        img = np.maximum(img, 0.0)
        scale = np.percentile(img.max(axis=2), 99.0)
        img = (img / max(scale, 1e-8)).astype(np.float32)
        scenes.append(Scene(rel, img, rows[rel]["projection"] == "equirect", rows[rel]["license"]))
    return scenes


# --------------------------------------------------------------------------- views
def equirect_view(pano: np.ndarray, yaw: float, pitch: float, hfov: float, size: int) -> np.ndarray:
    """Gnomonic (perspective) view of an equirectangular panorama; angles in radians."""
    import cv2

    h, w = pano.shape[:2]
    f = (size / 2.0) / np.tan(hfov / 2.0)
    u, v = np.meshgrid(np.arange(size) - size / 2 + 0.5, np.arange(size) - size / 2 + 0.5)
    d = np.stack([u, -v, np.full_like(u, f)], axis=-1)
    cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    d = d @ (ry @ rx).T
    lon = np.arctan2(d[..., 0], d[..., 2])
    lat = np.arcsin(d[..., 1] / np.linalg.norm(d, axis=-1))
    map_x = ((lon / (2 * np.pi) + 0.5) * w - 0.5).astype(np.float32)
    map_y = ((0.5 - lat / np.pi) * h - 0.5).astype(np.float32)
    return cv2.remap(pano, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def sample_view(scene: Scene, size: int, rng: np.random.Generator, augment: bool = True) -> np.ndarray:
    """A random ``size`` x ``size`` view: reprojected from panoramas, cropped+scaled otherwise."""
    import cv2

    if scene.equirect:
        view = equirect_view(
            scene.image,
            rng.uniform(-np.pi, np.pi),
            np.deg2rad(rng.uniform(-25, 25)),
            np.deg2rad(rng.uniform(60, 100)),
            size,
        )
    else:
        h, w = scene.image.shape[:2]
        side = int(rng.uniform(0.5, 1.0) * min(h, w))
        side = max(min(side, min(h, w)), min(size, min(h, w)))
        y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = scene.image[y0 : y0 + side, x0 : x0 + side]
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        view = cv2.resize(crop, (size, size), interpolation=interp)
    if augment:
        view = np.rot90(view, rng.integers(4))
        if rng.random() < 0.5:
            view = view[:, ::-1]
    return np.ascontiguousarray(np.maximum(view, 0.0), dtype=np.float32)


def expose(view: np.ndarray, clip_fraction: float) -> np.ndarray | None:
    """Scale so that ``clip_fraction`` of pixels have a channel above 1; None if impossible."""
    peak = view.max(axis=2)
    level = np.quantile(peak, 1.0 - clip_fraction)
    if level <= 1e-6:
        return None
    return (view / level).astype(np.float32)


def clip_fraction_of(hdr: np.ndarray) -> float:
    return float((hdr.max(axis=2) > 1.0).mean())


def _jpeg(encoded8: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    bgr = np.round(encoded8[:, :, ::-1] * 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0


@dataclass
class SynthesisOptions:
    """Randomisation ranges of the simulated camera (defaults: training)."""

    clip_range: tuple[float, float] = (0.01, 0.20)
    noise_probability: float = 0.7
    max_signal_noise: float = 0.08 / 6
    max_constant_noise: float = 0.005
    white_balance_jitter: float = 0.15
    jpeg_probability: float = 0.3
    jpeg_quality: tuple[int, int] = (90, 100)
    augment: bool = True

    @classmethod
    def validation(cls) -> "SynthesisOptions":
        """METRICS.md protocol: 5-15% clipped, no noise or WB jitter, JPEG on a third of pairs."""
        return cls((0.05, 0.15), 0.0, 0.0, 0.0, 0.0, 1 / 3, (90, 100), False)


def make_pair(
    view: np.ndarray,
    forward_curve: np.ndarray,
    family: str,
    rng: np.random.Generator,
    options: SynthesisOptions,
    scene: str = "",
) -> Pair | None:
    """Simulate the camera on one view; returns None for views that cannot be exposed sensibly."""
    if options.white_balance_jitter:
        gains = 1.0 + rng.uniform(-options.white_balance_jitter, options.white_balance_jitter, 3)
        view = view * (gains / gains[1]).astype(np.float32)
    hdr = expose(view, rng.uniform(*options.clip_range))
    if hdr is None:
        return None
    sensor = hdr
    if rng.random() < options.noise_probability:
        s_sig = rng.uniform(0, options.max_signal_noise, 3).astype(np.float32)
        s_const = rng.uniform(0, options.max_constant_noise, 3).astype(np.float32)
        sigma = np.sqrt((s_sig * np.minimum(hdr, 1.0)) ** 2 + s_const**2)
        sensor = np.maximum(hdr + sigma * rng.standard_normal(hdr.shape).astype(np.float32), 0.0)
    linear = np.clip(sensor, 0.0, 1.0)
    encoded, ldr = crf.simulate_camera(linear, forward_curve)
    gray = ldr.mean(axis=2)
    if (gray >= 249 / 255).mean() > 0.5 or (gray <= 6 / 255).mean() > 0.5:
        return None
    quality = 0
    if rng.random() < options.jpeg_probability:
        quality = int(rng.integers(options.jpeg_quality[0], options.jpeg_quality[1] + 1))
        ldr = _jpeg(ldr, quality)
    return Pair(
        ldr=ldr,
        encoded=encoded,
        linear=linear.astype(np.float32),
        hdr=hdr,
        inverse_curve=crf.invert_curve(forward_curve).astype(np.float32),
        family=family,
        scene=scene,
        jpeg_quality=quality,
    )


def random_pair(scenes: list[Scene], size: int, rng: np.random.Generator, options: SynthesisOptions | None = None) -> Pair:
    """One training pair from a random scene, view, exposure and camera curve."""
    options = options or SynthesisOptions()
    while True:
        scene = scenes[rng.integers(len(scenes))]
        family = sample_family(rng)
        pair = make_pair(
            sample_view(scene, size, rng, options.augment),
            sample_forward_curve(family, rng, "train"),
            family,
            rng,
            options,
            scene.path,
        )
        if pair is not None:
            return pair


def validation_pairs(
    scenes: list[Scene], size: int = 384, views_per_scene: int = 3, seed: int = 2020, families=FAMILIES
) -> list[Pair]:
    """The fixed validation set: every view of every held-out scene under every curve family.

    DoRF pairs use only the held-out DoRF test curves.  Fully determined by ``seed``.
    """
    options = SynthesisOptions.validation()
    pairs = []
    for si, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, si])
        views = []
        while len(views) < views_per_scene:
            views.append(sample_view(scene, size, rng, augment=False))
        for vi, view in enumerate(views):
            for fi, family in enumerate(families):
                prng = np.random.default_rng([seed, si, vi, fi])
                for _ in range(20):
                    pair = make_pair(view, sample_forward_curve(family, prng, "val"), family, prng, options, scene.path)
                    if pair is not None:
                        pairs.append(pair)
                        break
    return pairs


def family_weight(family: str) -> float:
    return PRIOR_WEIGHTS[family]
