"""Shared fixtures.

Every test runs against *tiny seeded random weights* (written once per session and
selected through ``$HDR_PLUGIN_WEIGHTS``, which subprocesses inherit), so the suite is
fast and independent of training.  Tests about the trained weights we ship use the
``shipped_weights`` fixture, which skips when none are present.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED_DATA = Path(os.environ.get("HDR_PLUGIN_DATA", ROOT.parent / "shared" / "data"))

TINY_CONFIG = {
    "name": "tiny-test",
    "dequantization": {"widths": [4, 8, 8, 8, 8]},
    "linearization": {"width": 4, "n_weights": 11, "anchor": "srgb", "input_size": 64},
    "hallucination": {"width": 4, "mask_threshold": 0.88},
    "refinement": {"widths": [4, 8, 8, 8, 8], "log_range": 1.0},
    "padding_multiple": 64,
}


def tiny_model(seed: int = 0):
    """A tiny HDRModel with seeded random weights; its networks are perturbed away from
    identity so every stage visibly changes the image."""
    import torch

    from hdr_plugin.model import HDRModel, ModelConfig

    torch.manual_seed(seed)
    model = HDRModel(ModelConfig(dict(TINY_CONFIG)))
    with torch.no_grad():
        for unet in (model.deq.unet, model.ref.unet):
            unet.tail.weight.normal_(0, 0.01)
        model.lin.head.weight.normal_(0, 0.01)
        model.hal.out.bias.fill_(0.5)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    from hdr_plugin.weights import save_weights

    folder = tmp_path_factory.mktemp("tiny_weights")
    save_weights(tiny_model(), folder, trained=False, dtype=__import__("torch").float32)
    return folder


@pytest.fixture(autouse=True)
def _tiny_weights_everywhere(tiny_weights, monkeypatch):
    monkeypatch.setenv("HDR_PLUGIN_WEIGHTS", str(tiny_weights))
    monkeypatch.setenv("HDR_PLUGIN_CACHE", str(tiny_weights.parent / "runtime-cache"))
    monkeypatch.setenv("HDR_PLUGIN_DISABLE_ENTRYPOINTS", "1")
    from hdr_plugin import pipeline

    pipeline._ENGINES.clear()
    yield
    pipeline._ENGINES.clear()


@pytest.fixture
def shipped_weights() -> Path:
    """The trained weights in ``weights/``; skips if they are missing or untrained."""
    from hdr_plugin.weights import WeightsError, read_manifest, shipped_weights_dir

    folder = shipped_weights_dir()
    try:
        info = read_manifest(folder)
    except WeightsError:
        pytest.skip("no shipped weights in weights/")
    if not info.trained:
        pytest.skip("shipped weights are not trained")
    return folder


@pytest.fixture
def sample_path() -> Path:
    return ROOT / "hdr_plugin" / "data" / "sample.png"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def engine(tiny_weights):
    from hdr_plugin.pipeline import Engine
    from hdr_plugin.plugins import make_plugin_manager

    return Engine(
        tiny_weights, device="cpu", precision="fp32", tile=0, quality="max", runtime="torch",
        plugin_manager=make_plugin_manager(load_entrypoints=False),
    )


def requires_shared_data():
    return pytest.mark.skipif(not (SHARED_DATA / "hdr" / "INDEX.csv").is_file(), reason=f"training data not found at {SHARED_DATA}")


@pytest.fixture
def default_engine(tiny_weights):
    """What the CLI, ``apply`` and the host adapters run by default (quality ``auto``, i.e.
    standard), on PyTorch eager in fp32: the reference their outputs are compared with (the
    runtimes agree with eager to far better than those comparisons' tolerances)."""
    from hdr_plugin.pipeline import Engine
    from hdr_plugin.plugins import make_plugin_manager

    return Engine(tiny_weights, device="cpu", precision="fp32", runtime="torch", plugin_manager=make_plugin_manager(load_entrypoints=False))

