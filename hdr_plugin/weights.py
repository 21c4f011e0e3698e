"""Loading and saving network weights: safetensors, strict keys, sha256 manifest.

A weights folder holds ``manifest.yaml`` and one ``.safetensors`` file.  The manifest
records the file's sha256, the model config the weights were trained with, whether they
are trained (tests write untrained seeded weights and say so) and measured facts such as
the bf16-vs-fp32 agreement used by ``precision="auto"``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .model import HDRModel, ModelConfig

MANIFEST = "manifest.yaml"
FORMAT = "hdr-plugin-weights/1"
ENV_WEIGHTS = "HDR_PLUGIN_WEIGHTS"


class WeightsError(RuntimeError):
    """Weights are missing, corrupt or do not match the model."""


@dataclass
class WeightsInfo:
    """What a manifest says about a weights file."""

    path: Path
    sha256: str
    config: ModelConfig
    trained: bool
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def precision_checks(self) -> dict[str, float]:
        return dict(self.manifest.get("precision_checks") or {})


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shipped_weights_dir() -> Path:
    """The ``weights/`` folder shipped with the package.

    A wheel installs it as ``hdr_plugin/shipped_weights/`` (see pyproject.toml); in a
    source checkout (editable install) it is the repository's ``weights/``.
    """
    here = Path(__file__).resolve().parent
    installed = here / "shipped_weights"
    return installed if installed.is_dir() else here.parent / "weights"


def default_weights_dir() -> Path:
    """``$HDR_PLUGIN_WEIGHTS`` if set, else the shipped weights."""
    env = os.environ.get(ENV_WEIGHTS)
    return Path(env) if env else shipped_weights_dir()


def read_manifest(weights: str | Path | None = None) -> WeightsInfo:
    """Resolve a weights folder, manifest or ``.safetensors`` path and read its manifest."""
    p = Path(weights) if weights is not None else default_weights_dir()
    folder = p.parent if p.is_file() else p
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise WeightsError(
            f"no {MANIFEST} in {folder}. Reinstall hdr-plugin (the wheel ships trained weights), "
            f"or point --weights / ${ENV_WEIGHTS} at a folder made by 'hdr-plugin train export'."
        )
    manifest = yaml.safe_load(manifest_path.read_text()) or {}
    if manifest.get("format") != FORMAT:
        raise WeightsError(f"{manifest_path}: unknown format {manifest.get('format')!r}, expected {FORMAT!r}")
    name = p.name if p.suffix == ".safetensors" else manifest["file"]
    return WeightsInfo(
        path=folder / name,
        sha256=str(manifest["sha256"]),
        config=ModelConfig.from_text(manifest["model_config"]),
        trained=bool(manifest.get("trained", False)),
        manifest=manifest,
    )


def load_model(weights: str | Path | None = None, verify: bool = True) -> tuple[HDRModel, WeightsInfo]:
    """Build the model from a weights folder's config and load its weights strictly (float32)."""
    from safetensors.torch import load_file

    info = read_manifest(weights)
    if not info.path.is_file():
        raise WeightsError(f"weights file {info.path} is missing; reinstall hdr-plugin or re-export the weights")
    if verify:
        actual = sha256_of(info.path)
        if actual != info.sha256:
            raise WeightsError(
                f"{info.path} is corrupt or was replaced: sha256 {actual[:16]}... does not match the manifest "
                f"({info.sha256[:16]}...). Reinstall hdr-plugin or re-export the weights."
            )
    model = HDRModel(info.config)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(info.path)).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{info.path} does not match model config {info.config.name!r}: {e}") from e
    return model.eval(), info


def save_weights(
    model: HDRModel,
    folder: str | Path,
    *,
    trained: bool,
    filename: str = "hdr_plugin.safetensors",
    dtype: torch.dtype = torch.float16,
    extra: dict[str, Any] | None = None,
) -> WeightsInfo:
    """Write ``model`` as a safetensors file (floats stored as ``dtype``) plus its manifest."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous() for k, v in model.state_dict().items()}
    path = folder / filename
    tmp = path.with_suffix(".partial")
    save_file(state, str(tmp))
    os.replace(tmp, path)
    manifest = {
        "format": FORMAT,
        "file": filename,
        "sha256": sha256_of(path),
        "bytes": path.stat().st_size,
        "dtype": str(dtype).replace("torch.", ""),
        "trained": trained,
        "model_config": model.config.to_text(),
    }
    manifest.update(extra or {})
    (folder / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return read_manifest(folder)


def update_manifest(folder: str | Path, **fields: Any) -> None:
    """Merge ``fields`` into an existing manifest (e.g. measured precision checks)."""
    path = Path(folder) / MANIFEST
    manifest = yaml.safe_load(path.read_text())
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key].update(value)
        else:
            manifest[key] = value
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
