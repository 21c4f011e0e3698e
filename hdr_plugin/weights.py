"""Loading and saving network weights: safetensors, strict keys, sha256 manifest.

A weights folder holds ``manifest.yaml`` and one ``.safetensors`` file.  The manifest
records the file's sha256, the model config the weights were trained with and that
config's own sha256 (``config_sha256``; exports also store it inside the safetensors
metadata, so the file's hash covers the config too), whether they are trained (tests
write untrained seeded weights and say so) and measured facts such as the bf16-vs-fp32
agreement used by ``precision="auto"``.  Everything is validated before a network is
built: the manifest's schema, the config's ranges, both hashes, and the file's tensor
names and shapes against the config (on the meta device, without allocating).
Manifests from before ``config_sha256`` still load; their config is range-checked.
"""

from __future__ import annotations

import hashlib
import json
import math
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


CONFIG_SHA_KEY = "hdr_plugin_config_sha256"  # also stored in the safetensors metadata
#: the most parameters a manifest's model_config may ask for (the shipped model has 5.9 M)
MAX_PARAMETERS = 64_000_000
_FIX = "Reinstall hdr-plugin (the wheel ships trained weights) or re-export the weights with 'hdr-plugin train export'"


def config_sha256(text: str) -> str:
    """The sha256 of a manifest's ``model_config`` text (recorded as ``config_sha256``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where} must be a whole number, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{where} = {value} is outside {lo}..{hi}")
    return value


def _float(where: str, value: Any, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, not {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (open_lo and v == lo):
        raise ValueError(f"{where} = {value!r} is outside {'(' if open_lo else '['}{lo}, {hi}]")
    return v


def validate_model_config(raw: Any) -> None:
    """Check a model config's schema and ranges before any network is built.

    Raises ``ValueError`` saying which field is wrong.  The limits keep a hostile or broken
    manifest from building networks that take gigabytes, or that cannot run (a
    ``padding_multiple`` that the networks' five 2x2 poolings do not divide).
    """
    from .crf import N_EMOR_WEIGHTS

    if not isinstance(raw, dict):
        raise ValueError(f"model_config must be a mapping, not {type(raw).__name__}")
    missing = [s for s in ("dequantization", "linearization", "hallucination", "refinement") if not isinstance(raw.get(s), dict)]
    if missing:
        raise ValueError(f"model_config lacks the sections {missing}")
    if not isinstance(raw.get("name", ""), str) or len(str(raw.get("name", ""))) > 200:
        raise ValueError("model_config name must be a short string")
    for stage in ("dequantization", "refinement"):
        widths = raw[stage].get("widths")
        if not isinstance(widths, list) or len(widths) != 5:
            raise ValueError(f"{stage}.widths must be a list of 5 channel widths, not {widths!r}")
        for i, w in enumerate(widths):
            _int(f"{stage}.widths[{i}]", w, 1, 512)
    lin = raw["linearization"]
    _int("linearization.width", lin.get("width"), 1, 256)
    _int("linearization.n_weights", lin.get("n_weights", N_EMOR_WEIGHTS), 1, N_EMOR_WEIGHTS)
    if lin.get("anchor", "srgb") not in ("srgb", "emor"):
        raise ValueError(f"linearization.anchor must be 'srgb' or 'emor', not {lin.get('anchor')!r}")
    _float("linearization.snap_threshold", lin.get("snap_threshold", 0.5), 0.0, 2.0)
    _int("linearization.input_size", lin.get("input_size", 256), 32, 1024)
    hal = raw["hallucination"]
    _int("hallucination.width", hal.get("width"), 1, 128)
    _float("hallucination.mask_threshold", hal.get("mask_threshold", 0.88), 0.0, 1.0, open_lo=True)
    _float("refinement.log_range", raw["refinement"].get("log_range", 1.0), 0.0, 10.0, open_lo=True)
    pm = _int("padding_multiple", raw.get("padding_multiple", 64), 32, 512)
    if pm % 32:
        raise ValueError(f"padding_multiple = {pm} must be a multiple of 32 (the networks pool 2x2 five times)")


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WeightsError(f"{path} is not a text file (not UTF-8); {_FIX}.") from None
    except OSError as e:
        raise WeightsError(f"{path} cannot be read ({e.strerror or e}); check its permissions or {_FIX[0].lower() + _FIX[1:]}.") from None
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:  # !!python/object and other code tags
        raise WeightsError(f"{path} contains a YAML tag that is not plain data ({e.problem}); refusing it. {_FIX}.") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise WeightsError(f"{path} is not valid YAML{line} ({getattr(e, 'problem', None) or e}); {_FIX}.") from None


def read_manifest(weights: str | Path | None = None) -> WeightsInfo:
    """Resolve a weights folder, manifest or ``.safetensors`` path and read its manifest.

    The manifest is validated (schema, the model config's ranges, the config's sha256)
    before anything uses it; every problem is a :class:`WeightsError` naming the file.
    """
    p = Path(weights) if weights is not None else default_weights_dir()
    folder = p.parent if p.is_file() else p
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        where = "" if folder.is_dir() else f" ({folder} does not exist or is not a folder)"
        raise WeightsError(
            f"no {MANIFEST} in {folder}. Reinstall hdr-plugin (the wheel ships trained weights), "
            f"or point --weights / ${ENV_WEIGHTS} at a folder made by 'hdr-plugin train export'.{where}"
        )
    manifest = _load_yaml(manifest_path)
    if not isinstance(manifest, dict):
        raise WeightsError(f"{manifest_path} is not a mapping of fields (got {type(manifest).__name__}); {_FIX}.")
    if manifest.get("format") != FORMAT:
        raise WeightsError(f"{manifest_path}: unknown format {manifest.get('format')!r}, expected {FORMAT!r}. {_FIX}.")
    for key, kind in (("file", str), ("sha256", str), ("model_config", str)):
        if not isinstance(manifest.get(key), kind):
            got = "missing" if key not in manifest else f"a {type(manifest[key]).__name__}"
            raise WeightsError(f"{manifest_path}: the field {key!r} must be a {kind.__name__} ({got}). {_FIX}.")
    file_name = manifest["file"]
    if Path(file_name).name != file_name or file_name in ("", ".", "..") or not file_name.endswith(".safetensors"):
        raise WeightsError(f"{manifest_path}: 'file' must name a .safetensors file in the same folder, not {file_name!r}. {_FIX}.")
    for key in ("sha256", "config_sha256"):
        value = manifest.get(key)
        if value is not None and (not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
            raise WeightsError(f"{manifest_path}: {key!r} must be 64 lowercase hex digits, not {value!r}. {_FIX}.")
    config_text = manifest["model_config"]
    expected = manifest.get("config_sha256")
    if expected is not None and config_sha256(config_text) != expected:
        raise WeightsError(
            f"{manifest_path}: model_config was changed after export (its sha256 {config_sha256(config_text)[:16]}... "
            f"does not match config_sha256 {expected[:16]}...). {_FIX}."
        )
    try:
        raw = yaml.safe_load(config_text)
    except yaml.YAMLError as e:
        raise WeightsError(f"{manifest_path}: model_config is not valid YAML ({getattr(e, 'problem', None) or e}). {_FIX}.") from None
    try:
        validate_model_config(raw)
    except ValueError as e:
        raise WeightsError(f"{manifest_path}: invalid model_config: {e}. {_FIX}.") from None
    checks = manifest.get("precision_checks") or {}
    if not isinstance(checks, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for k, v in checks.items()
    ):
        raise WeightsError(f"{manifest_path}: precision_checks must map names to measured dB values. {_FIX}.")
    name = p.name if p.suffix == ".safetensors" else file_name
    return WeightsInfo(
        path=folder / name,
        sha256=manifest["sha256"],
        config=ModelConfig(raw),
        trained=bool(manifest.get("trained", False)),
        manifest=manifest,
    )


def _safetensors_header(path: Path) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str]]:
    """Tensor names -> (dtype, shape) and the metadata of a safetensors file, read without
    loading any tensor; a :class:`WeightsError` naming the file if the header is damaged."""
    size = path.stat().st_size
    bad = f"{path} is not a valid safetensors file"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsError(f"{bad} (only {size} bytes). {_FIX}.")
        n = int.from_bytes(head, "little")
        if n <= 1 or n > min(size - 8, 100 << 20):
            raise WeightsError(f"{bad} (header length {n} for a {size}-byte file: truncated or not safetensors). {_FIX}.")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise WeightsError(f"{bad} (its header is not JSON: {e}). {_FIX}.") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{bad} (its header is not a mapping). {_FIX}.")
    meta = header.pop("__metadata__", None) or {}
    tensors: dict[str, tuple[str, list[int]]] = {}
    for key, t in header.items():
        try:
            dtype, shape, (lo, hi) = t["dtype"], [int(d) for d in t["shape"]], t["data_offsets"]
            if not (0 <= lo <= hi <= size - 8 - n) or any(d < 0 for d in shape):
                raise ValueError("offsets outside the file")
        except (KeyError, TypeError, ValueError) as e:
            raise WeightsError(f"{bad} (entry {key!r}: {e}; truncated or damaged). {_FIX}.") from None
        tensors[key] = (str(dtype), shape)
    return tensors, meta if isinstance(meta, dict) else {}


def _check_against_config(info: WeightsInfo, tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str]) -> None:
    """Compare the file's tensors with what the manifest's config builds, before building it."""
    with torch.device("meta"):  # shapes only: no memory is allocated
        skeleton = HDRModel(info.config)
    want = {k: list(v.shape) for k, v in skeleton.state_dict().items()}
    params = sum(math.prod(s) for s in want.values())
    if params > MAX_PARAMETERS:
        raise WeightsError(
            f"{info.path.parent / MANIFEST}: model_config {info.config.name!r} asks for {params / 1e6:.0f} M parameters, "
            f"above the limit of {MAX_PARAMETERS / 1e6:.0f} M. {_FIX}."
        )
    missing = sorted(set(want) - set(tensors))
    unexpected = sorted(set(tensors) - set(want))
    mismatched = [f"size mismatch for {k}: the file has {tensors[k][1]}, the config needs {want[k]}" for k in sorted(set(want) & set(tensors)) if tensors[k][1] != want[k]]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"Missing key(s): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"Unexpected key(s): {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
        parts += mismatched[:8]
        raise WeightsError(
            f"{info.path} does not match model config {info.config.name!r} of its manifest: " + "; ".join(parts) + f". {_FIX}."
        )
    recorded = meta.get(CONFIG_SHA_KEY)
    if recorded is not None and recorded != config_sha256(info.manifest["model_config"]):
        raise WeightsError(
            f"{info.path.parent / MANIFEST}: model_config is not the config these weights were exported with "
            f"({info.path.name} records config sha256 {str(recorded)[:16]}...). {_FIX}."
        )


def load_model(weights: str | Path | None = None, verify: bool = True) -> tuple[HDRModel, WeightsInfo]:
    """Build the model from a weights folder's config and load its weights strictly (float32).

    Order: manifest and config validated, file sha256 checked (``verify``), the file's
    tensor names and shapes compared with the config on the meta device, and only then
    are the networks built and the tensors read.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = read_manifest(weights)
    if not info.path.is_file():
        raise WeightsError(f"weights file {info.path} is missing; reinstall hdr-plugin or re-export the weights")
    if verify:
        try:
            actual = sha256_of(info.path)
        except OSError as e:
            raise WeightsError(f"{info.path} cannot be read ({e.strerror or e}). {_FIX}.") from None
        if actual != info.sha256:
            raise WeightsError(
                f"{info.path} is corrupt or was replaced: sha256 {actual[:16]}... does not match the manifest "
                f"({info.sha256[:16]}...). Reinstall hdr-plugin or re-export the weights."
            )
    tensors, meta = _safetensors_header(info.path)
    _check_against_config(info, tensors, meta)
    model = HDRModel(info.config)
    try:
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(info.path)).items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"{info.path} cannot be loaded ({e}). {_FIX}.") from None
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
    config_text = model.config.to_text()
    save_file(state, str(tmp), metadata={CONFIG_SHA_KEY: config_sha256(config_text)})
    os.replace(tmp, path)
    manifest = {
        "format": FORMAT,
        "file": filename,
        "sha256": sha256_of(path),
        "bytes": path.stat().st_size,
        "dtype": str(dtype).replace("torch.", ""),
        "trained": trained,
        "model_config": config_text,
        "config_sha256": config_sha256(config_text),
    }
    manifest.update(extra or {})
    (folder / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return read_manifest(folder)


def update_manifest(folder: str | Path, **fields: Any) -> None:
    """Merge ``fields`` into an existing manifest (e.g. measured precision checks)."""
    path = Path(folder) / MANIFEST
    manifest = _load_yaml(path) if path.is_file() else None
    if not isinstance(manifest, dict):
        raise WeightsError(f"{path} is missing or not a manifest; {_FIX}.")
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key].update(value)
        else:
            manifest[key] = value
    if "model_config" in fields:  # an intended change of the config: its hash follows
        manifest["config_sha256"] = config_sha256(str(manifest["model_config"]))
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
