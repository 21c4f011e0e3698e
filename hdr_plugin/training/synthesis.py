"""Training/validation pairs made from real HDR scenes by simulating a camera.

HDR scene -> perspective view (panoramas are reprojected, away from the poles) ->
random exposure hitting a target clip fraction -> sensor noise -> white-balance jitter ->
clip -> random camera curve -> 8-bit quantization -> optional JPEG.

All arrays are RGB float32 (H, W, 3).  Nothing is downloaded: scenes come from a data
folder laid out like ``../shared/data`` (``hdr/INDEX.csv`` plus the image files).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
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


VALIDATION_SPLITS = ("v1", "v2")


def validation_split_paths(splits: dict, name: str) -> list[str]:
    """The scene list of validation split ``name`` (``v1`` or ``v2``) from ``splits.yaml``."""
    if name == "v1":
        return list(splits["validation"])
    if name == "v2":
        return list(splits["validation"]) + list(splits.get("validation_v2_added", []))
    raise ValueError(f"unknown validation split {name!r}; choose from {VALIDATION_SPLITS}")


def _split_name(split: str) -> str:
    """``val`` -> the training validation split; ``val:v2`` / ``v2`` -> ``v2``."""
    if split == "val":
        return load_splits().get("training_validation", "v1")
    return split.split(":", 1)[1] if split.startswith("val:") else split


def split_views(split: str) -> int:
    """Default views per scene of a validation split (``splits.yaml`` ``views``)."""
    return int(load_splits().get("views", {}).get(_split_name(split), 2))


def scene_paths(data_root: str | Path, split: str) -> list[str]:
    """Relative paths of the scenes in ``split``, per ``splits.yaml``, in INDEX.csv order.

    ``train``: CC0/BSD scenes minus every validation scene (v1 and v2) and the excluded;
    ``v1``/``val:v1`` and ``v2``/``val:v2``: those validation splits; ``val``: the one
    training validates on (``training_validation``).
    """
    splits = load_splits()
    excluded = set(splits["excluded"])
    rows = index_rows(data_root)
    if split != "train":
        val = set(validation_split_paths(splits, _split_name(split)))
        return [r["path"] for r in rows if r["path"] in val]
    held_out = set().union(*(validation_split_paths(splits, v) for v in VALIDATION_SPLITS))
    ok = tuple(splits["permissive_licences"])
    return [
        r["path"]
        for r in rows
        if r["path"] not in held_out and r["path"] not in excluded and r["license"].startswith(ok) and float(r["max"]) > 1.0
    ]


def load_scenes(data_root: str | Path, split: str, limit: int | None = None) -> list[Scene]:
    """Read the split's HDR images, normalised so their 99th percentile peak is 1.

    Panoramas stored squeezed to 1:2 (``equirect (1:2 squeezed)``) are stretched back to
    2:1 and treated as panoramas.
    """
    import cv2

    root = Path(data_root) / "hdr"
    rows = {r["path"]: r for r in index_rows(data_root)}
    scenes = []
    for rel in scene_paths(data_root, split)[:limit]:
        img = np.nan_to_num(read_hdr(root / rel), nan=0.0, posinf=0.0, neginf=0.0)
        img = np.maximum(img, 0.0)
        projection = rows[rel].get("projection", "")
        if projection.startswith("equirect") and "squeezed" in projection:
            h = max(img.shape[:2])
            img = cv2.resize(img, (2 * h, h), interpolation=cv2.INTER_LINEAR)
        scale = np.percentile(img.max(axis=2), 99.0)
        img = (img / max(scale, 1e-8)).astype(np.float32)
        scenes.append(Scene(rel, img, projection.startswith("equirect"), rows[rel]["license"]))
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


def _jpeg(encoded8: np.ndarray, quality: int, subsampling: str | None = None) -> np.ndarray:
    """Encode + decode an 8-bit RGB image as JPEG (OpenCV/libjpeg; default 4:2:0 chroma)."""
    import cv2

    bgr = np.round(encoded8[:, :, ::-1] * 255).astype(np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if subsampling is not None:
        factors = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                   "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factors[subsampling]]
    ok, buf = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0


def sharpen(encoded: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """In-camera unsharp mask on the display-encoded image: ``x + amount (x - blur(x))``,
    clipped to [0, 1] (the halos cameras add along edges)."""
    import cv2

    if amount <= 0:
        return encoded
    k = 2 * int(np.ceil(3 * sigma)) + 1
    blurred = cv2.GaussianBlur(encoded.astype(np.float32), (k, k), sigma, borderType=cv2.BORDER_REFLECT)
    return np.clip(encoded + amount * (encoded - blurred), 0.0, 1.0).astype(np.float32)


@dataclass
class CameraJPEG:
    """How a camera or a web pipeline writes its JPEG: in-camera sharpening, a little
    noise in the encoded image (demosaicing/processing residue), 8-bit rounding, then
    JPEG at some quality with 4:2:0 or 4:4:4 chroma.  Each knob is drawn per image."""

    quality: tuple[int, int] = (60, 100)
    subsampling_444_probability: float = 0.3
    sharpen_probability: float = 0.6
    sharpen_amount: tuple[float, float] = (0.1, 0.6)
    sharpen_sigma: tuple[float, float] = (0.7, 1.5)
    noise_probability: float = 0.5
    max_noise: float = 1.0 / 255

    def apply(self, encoded: np.ndarray, rng: np.random.Generator, quality: tuple[int, int] | None = None) -> tuple[np.ndarray, int]:
        """``encoded`` (continuous, [0, 1]) -> the decoded JPEG and its quality (drawn from
        ``quality``, default ``self.quality``)."""
        from .. import crf

        x = encoded
        if self.sharpen_probability > 0 and rng.random() < self.sharpen_probability:
            x = sharpen(x, rng.uniform(*self.sharpen_amount), rng.uniform(*self.sharpen_sigma))
        if self.noise_probability > 0 and rng.random() < self.noise_probability:
            sigma = rng.uniform(0, self.max_noise)
            x = np.clip(x + sigma * rng.standard_normal(x.shape).astype(np.float32), 0.0, 1.0)
        lo, hi = quality or self.quality
        q = int(rng.integers(lo, hi + 1))
        sub = "444" if self.subsampling_444_probability > 0 and rng.random() < self.subsampling_444_probability else "420"
        return _jpeg(crf.quantize(x).astype(np.float32), q, sub), q


#: The evaluation's camera-JPEG variant: quality 60-90, always 4:2:0, light sharpening,
#: no added noise (the validation pairs are noise-free).
EVAL_CAMERA_JPEG = CameraJPEG(quality=(60, 90), subsampling_444_probability=0.0, sharpen_probability=1.0,
                              sharpen_amount=(0.1, 0.3), sharpen_sigma=(0.8, 1.2), noise_probability=0.0)


def camera_jpeg_variant(pair: Pair, seed, options: CameraJPEG = EVAL_CAMERA_JPEG) -> Pair:
    """The same validation pair with its input re-made as a camera JPEG (from the clean
    camera output ``encoded``; ground truth, curve and linear image unchanged).  Seeded."""
    rng = np.random.default_rng(seed)
    ldr, quality = options.apply(pair.encoded, rng)
    return replace(pair, ldr=ldr, jpeg_quality=quality)


@dataclass
class SynthesisOptions:
    """Randomisation ranges of the simulated camera (defaults: training)."""

    clip_range: tuple[float, float] = (0.01, 0.20)
    noise_probability: float = 0.7
    max_signal_noise: float = 0.08 / 6
    max_constant_noise: float = 0.005
    white_balance_jitter: float = 0.15
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 100)
    augment: bool = True
    #: how the JPEG is made: camera-style (sharpening, noise, 4:2:0 or 4:4:4; see
    #: CameraJPEG) at ``jpeg_quality``; None: plain libjpeg 4:2:0 at ``jpeg_quality`` (the
    #: v1 validation protocol, and what training used before camera JPEGs)
    camera: CameraJPEG | None = field(default_factory=CameraJPEG)

    @classmethod
    def validation(cls) -> "SynthesisOptions":
        """METRICS.md protocol: 5-15% clipped, no noise or WB jitter, JPEG (quality 90-100,
        plain libjpeg) on a third of pairs.  Kept exactly as it was so the v1 validation
        pairs stay byte-identical."""
        return cls((0.05, 0.15), 0.0, 0.0, 0.0, 0.0, 1 / 3, (90, 100), False, None)


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
        if options.camera is not None:
            ldr, quality = options.camera.apply(encoded, rng, options.jpeg_quality)
        else:
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
