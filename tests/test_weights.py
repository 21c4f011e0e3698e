"""Weights files (hdr_plugin.weights): safetensors, strict keys, sha256 manifest."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_CONFIG, tiny_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from hdr_plugin.model import HDRModel, ModelConfig
from hdr_plugin.pipeline import Engine
from hdr_plugin.weights import (
    FORMAT,
    MANIFEST,
    WeightsError,
    default_weights_dir,
    load_model,
    read_manifest,
    save_weights,
    sha256_of,
    shipped_weights_dir,
    update_manifest,
)


@pytest.fixture
def saved32(tmp_path):
    model = tiny_model(seed=3)
    info = save_weights(model, tmp_path / "w", trained=False, dtype=torch.float32, extra={"note": "test"})
    return model, info


def test_round_trip_float32_is_exact(saved32):
    model, info = saved32
    loaded, info2 = load_model(info.path.parent)
    assert info2.sha256 == sha256_of(info.path) and len(info2.sha256) == 64
    assert info2.trained is False and info2.config.raw == TINY_CONFIG and info2.manifest["note"] == "test"
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not loaded.training  # returned in eval mode
    # the same weights give the same reconstruction
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.deq(x), model.deq(x), rtol=0, atol=0)


def test_manifest_contents(saved32):
    _, info = saved32
    manifest = yaml.safe_load((info.path.parent / MANIFEST).read_text())
    assert manifest["format"] == FORMAT
    assert manifest["file"] == info.path.name == "hdr_plugin.safetensors"
    assert manifest["bytes"] == info.path.stat().st_size
    assert manifest["dtype"] == "float32"
    assert ModelConfig.from_text(manifest["model_config"]).raw == TINY_CONFIG
    assert not list(info.path.parent.glob("*.partial"))


def test_paths_to_folder_manifest_or_file_resolve_the_same(saved32):
    _, info = saved32
    folder = info.path.parent
    for p in (folder, folder / MANIFEST, info.path):
        assert read_manifest(p).path == info.path


def test_fp16_storage(tmp_path):
    model = tiny_model(seed=4)
    info = save_weights(model, tmp_path / "h", trained=False)  # default dtype: float16
    assert info.manifest["dtype"] == "float16"
    with safe_open(str(info.path), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes <= {torch.float16, torch.int64}
    assert torch.float16 in dtypes
    full = save_weights(model, tmp_path / "f", trained=False, dtype=torch.float32)
    assert info.path.stat().st_size < 0.6 * full.path.stat().st_size
    loaded, _ = load_model(info.path.parent)
    for k, v in model.state_dict().items():
        got = loaded.state_dict()[k]
        if v.is_floating_point():
            assert got.dtype == torch.float32  # loaded back as float32
            torch.testing.assert_close(got, v.half().float(), rtol=0, atol=0)
        else:
            assert torch.equal(got, v)


def test_sha256_mismatch_is_actionable(saved32):
    _, info = saved32
    data = bytearray(info.path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor byte
    info.path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"corrupt or was replaced: sha256 .* does not match the manifest .* Reinstall hdr-plugin or re-export"):
        load_model(info.path.parent)
    loaded, _ = load_model(info.path.parent, verify=False)  # explicit opt-out still loads
    assert isinstance(loaded, HDRModel)


def test_missing_weights_file_message(saved32):
    _, info = saved32
    info.path.unlink()
    with pytest.raises(WeightsError, match=r"weights file .*hdr_plugin.safetensors is missing; reinstall hdr-plugin or re-export"):
        load_model(info.path.parent)


def test_missing_manifest_message(tmp_path):
    with pytest.raises(WeightsError, match=r"no manifest.yaml in .*empty. Reinstall hdr-plugin .* --weights / \$HDR_PLUGIN_WEIGHTS"):
        read_manifest(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no manifest.yaml"):
        Engine(tmp_path / "empty", device="cpu")


def test_unknown_manifest_format(saved32):
    _, info = saved32
    update_manifest(info.path.parent, format="something/2")
    with pytest.raises(WeightsError, match=r"unknown format 'something/2'"):
        load_model(info.path.parent)


def _resave(info, state):
    save_file(state, str(info.path))
    update_manifest(info.path.parent, sha256=sha256_of(info.path))


def test_strict_keys_extra_key(saved32):
    _, info = saved32
    state = load_file(str(info.path))
    state["deq.extra.weight"] = torch.zeros(2)
    _resave(info, state)
    with pytest.raises(WeightsError, match=r"(?s)does not match model config 'tiny-test'.*Unexpected key.*deq.extra.weight"):
        load_model(info.path.parent)


def test_strict_keys_missing_key(saved32):
    _, info = saved32
    state = load_file(str(info.path))
    del state["ref.unet.tail.bias"]
    _resave(info, state)
    with pytest.raises(WeightsError, match=r"(?s)Missing key.*ref.unet.tail.bias"):
        load_model(info.path.parent)


def test_weights_for_another_config_are_rejected(saved32):
    _, info = saved32
    cfg = dict(TINY_CONFIG, dequantization={"widths": [8, 8, 8, 8, 8]})
    update_manifest(info.path.parent, model_config=yaml.safe_dump(cfg))
    with pytest.raises(WeightsError, match="size mismatch"):
        load_model(info.path.parent)


def test_update_manifest_merges_dicts(saved32):
    _, info = saved32
    update_manifest(info.path.parent, precision_checks={"cpu_bf16": 47.5})
    update_manifest(info.path.parent, precision_checks={"cuda_fp16": 51.0})
    assert read_manifest(info.path.parent).precision_checks == {"cpu_bf16": 47.5, "cuda_fp16": 51.0}


def test_env_variable_selects_weights(tiny_weights, monkeypatch, tmp_path):
    assert default_weights_dir() == tiny_weights  # set by conftest for every test
    monkeypatch.delenv("HDR_PLUGIN_WEIGHTS")
    assert default_weights_dir() == shipped_weights_dir()
    # the shipped folder is found on disk (not through importlib.resources, which fails
    # because hdr_plugin.weights is also a module name)
    from conftest import ROOT

    assert shipped_weights_dir() == ROOT / "weights"  # source checkout / editable install
    copy = tmp_path / "copy"
    shutil.copytree(tiny_weights, copy)
    monkeypatch.setenv("HDR_PLUGIN_WEIGHTS", str(copy))
    model, info = load_model()
    assert info.path.parent == copy and isinstance(model, HDRModel)
    np.testing.assert_equal(info.trained, False)
