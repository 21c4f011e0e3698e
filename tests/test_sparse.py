"""Sparse Hallucination-Net (only tiles with over-exposed pixels) against the dense network,
and every runtime against PyTorch eager, with the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, ROOT, requires_shared_data

from hdr_plugin.evaluation.metrics import pu21_psnr
from hdr_plugin.io import read_ldr
from hdr_plugin.model import reconstruct
from hdr_plugin.pipeline import Engine
from hdr_plugin.plugins import make_plugin_manager
from hdr_plugin.runtime import available_runtimes
from hdr_plugin.tiling import pad_to_multiple

CPU = torch.device("cpu")
FAST = available_runtimes(CPU)[0]


def _dense_default_path(model, ldr: np.ndarray) -> np.ndarray:
    """The default quality's networks on the whole image at once: Hallucination-Net on every pixel."""
    from hdr_plugin.model import estimate_curve

    x = torch.from_numpy(np.ascontiguousarray(ldr.transpose(2, 0, 1)))[None]
    padded, (h, w) = pad_to_multiple(x, model.config.padding_multiple)
    with torch.no_grad():  # the curve from the unpadded image, as the Engine estimates it
        out = reconstruct(model, padded, curve=estimate_curve(model, x), use_deq=False, use_ref=False)
    return out["hdr"][0, :, :h, :w].numpy().transpose(1, 2, 0)


@requires_shared_data()
def test_sparse_tiles_agree_with_the_dense_network_on_every_validation_pair(shipped_weights):
    from hdr_plugin.training.synthesis import load_scenes, split_views, validation_pairs

    pairs = validation_pairs(load_scenes(SHARED_DATA, "val:v1"), size=384, views_per_scene=split_views("v1"), seed=2020)
    assert len(pairs) == 160
    pm = make_plugin_manager(load_entrypoints=False)
    sparse = Engine(shipped_weights, device="cpu", precision="fp32", runtime=FAST, tile=128, tile_overlap=96, plugin_manager=pm)
    assert sparse.quality.name == "standard"
    worst, skipped = np.inf, 0
    for pair in pairs:
        result = sparse.reconstruct(pair.ldr)
        dense = _dense_default_path(sparse.model, pair.ldr)
        worst = min(worst, pu21_psnr(result.image, dense))
        total = len(sparse.plan_dense(*pair.ldr.shape[:2]))
        skipped += total - int(result.metadata["hdrPluginHallucinatedTiles"])
    assert worst >= 50.0, worst
    assert skipped > 0  # tiles without over-exposed pixels really were skipped


def _sample():
    return read_ldr(ROOT / "hdr_plugin" / "data" / "sample.png").rgb


@pytest.mark.parametrize("runtime", [r for r in available_runtimes(CPU) if r != "torch"])
@pytest.mark.parametrize("quality", ["standard", "max"])
def test_every_runtime_agrees_with_eager(shipped_weights, runtime, quality, tmp_path, monkeypatch):
    monkeypatch.setenv("HDR_PLUGIN_CACHE", str(tmp_path / "cache"))
    pm = make_plugin_manager(load_entrypoints=False)
    rgb = _sample()
    eager = Engine(shipped_weights, device="cpu", precision="fp32", runtime="torch", quality=quality, plugin_manager=pm)
    other = eager.with_options(runtime=runtime, precision="fp32")
    assert other.runtime == runtime and eager.runtime == "torch"
    a, b = eager(rgb), other(rgb)
    assert a.max() > 1.5  # restored highlights are part of the comparison
    assert pu21_psnr(b, a) >= 50.0
    # the converted network is cached: a second engine loads it instead of converting again
    assert any((tmp_path / "cache").rglob("*"))
    again = Engine(shipped_weights, device="cpu", precision="fp32", runtime=runtime, quality=quality, plugin_manager=pm)
    np.testing.assert_allclose(again(rgb), b, rtol=1e-5, atol=1e-6)


def test_runtime_errors_name_the_fix():
    from hdr_plugin.runtime import RuntimeUnavailableError, resolve_runtime

    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        resolve_runtime("tensorrt", CPU)
    with pytest.raises(RuntimeUnavailableError, match="runs on the CPU only"):
        resolve_runtime("openvino", torch.device("cuda"))
    assert resolve_runtime("auto", torch.device("cuda")) == "torch"
    assert resolve_runtime("auto", CPU) == FAST


def test_info_names_the_runtime_and_isa(capsys):
    import json

    from hdr_plugin import cli

    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["runtime"].split()[0] == FAST and info["cpu_isa"] in ("amx", "avx512", "avx512+bf16", "avx2", "other")
    assert info["quality"].startswith("standard")
