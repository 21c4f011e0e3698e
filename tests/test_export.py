"""TorchScript export for Nuke's CatFileCreator / Inference node (hdr_plugin.export).

The exported file must load with plain ``torch.jit.load`` in a fresh process (no
hdr_plugin import) and give the engine's own pixels on the sample (>= 50 dB PU21-PSNR).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hdr_plugin import export
from hdr_plugin.color import linear_to_srgb, srgb_to_linear
from hdr_plugin.evaluation.metrics import pu21_psnr
from hdr_plugin.io import read_ldr
from hdr_plugin.tiling import pad_to_multiple

from conftest import tiny_model

ROOT = Path(__file__).resolve().parent.parent

# torch 2.x marks torch.jit deprecated; Nuke's CatFileCreator still takes TorchScript only.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hdr_plugin", *args], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_weights) -> Path:
    """``hdr-plugin export-torchscript`` run once, through the real CLI, on the tiny weights."""
    out = tmp_path_factory.mktemp("ts") / "hdr_plugin.pt"
    env = dict(os.environ, HDR_PLUGIN_DISABLE_ENTRYPOINTS="1")
    r = _cli("export-torchscript", str(out), "--weights", str(tiny_weights), "--check-size", "96x80", env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "PU21-PSNR" in r.stdout and "rgba.red, rgba.green, rgba.blue" in r.stdout
    return out


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t[0].float().numpy().transpose(1, 2, 0)


# --------------------------------------------------------------------------- the acceptance test
FRESH_PROCESS = textwrap.dedent(
    """
    import sys, numpy as np, torch
    assert "hdr_plugin" not in sys.modules
    m = torch.jit.load(sys.argv[1])          # plain torch.jit.load, nothing else imported
    x = torch.from_numpy(np.load(sys.argv[2]))
    with torch.no_grad():
        y = m(x)
    assert "hdr_plugin" not in sys.modules, "loading the TorchScript file imported hdr_plugin"
    assert tuple(y.shape) == tuple(x.shape) and y.dtype == x.dtype, (y.shape, y.dtype)
    np.save(sys.argv[3], y.numpy())
    """
)


def test_torchscript_loads_in_fresh_process_and_matches_engine(exported, engine, sample_path, tmp_path):
    rgb = read_ldr(sample_path).rgb  # display-referred, what the engine takes
    linear = srgb_to_linear(rgb).astype(np.float32)  # what Nuke hands the Inference node
    np.save(tmp_path / "in.npy", _to_tensor(linear).numpy())
    r = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(exported), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # not the repository: hdr_plugin must not be needed
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert r.returncode == 0, r.stderr
    ts = np.load(tmp_path / "out.npy")[0].transpose(1, 2, 0)
    ref = engine.reconstruct(rgb).image  # fp32, tile=0: the engine reflect-pads the same way
    assert ts.shape == ref.shape
    assert (ref > 1.0).any(), "sample should produce highlights above 1"
    psnr = pu21_psnr(ts, ref)
    assert psnr >= 50.0, f"PU21-PSNR {psnr:.1f} dB"


def test_exported_file_records_torch_version_and_knobs(exported):
    meta = export.read_metadata(exported)
    assert meta["torch"] == torch.__version__
    assert set(meta["knobs"]) == {"exposure", "linear_input"}
    m = torch.jit.load(str(exported))
    assert m.exposure == 0.0 and m.linear_input == 1  # knobs: plain attributes


# --------------------------------------------------------------------------- the contract, in-process
@pytest.fixture(scope="module")
def scripted():
    return export.torchscript_module(tiny_model())


def test_sizes_not_multiple_of_64_match_engine(scripted, engine, sample_path):
    rgb = read_ldr(sample_path).rgb[:70, :100]
    out = _to_numpy(scripted(_to_tensor(srgb_to_linear(rgb).astype(np.float32))))
    ref = engine.reconstruct(rgb).image
    assert out.shape == (70, 100, 3)
    assert pu21_psnr(out, ref) >= 50.0


def test_raw_input_knob_and_exposure_knob(scripted, engine, sample_path):
    rgb = read_ldr(sample_path).rgb[:64, :96]
    ref = engine.reconstruct(rgb).image
    scripted.linear_input = 0  # a Read node with Raw Data: display-referred values come in
    try:
        raw = _to_numpy(scripted(_to_tensor(rgb)))
        np.testing.assert_allclose(raw, ref, rtol=1e-5, atol=1e-6)
        scripted.exposure = 1.5
        brighter = _to_numpy(scripted(_to_tensor(rgb)))
        np.testing.assert_allclose(brighter, ref * 2**1.5, rtol=1e-5, atol=1e-6)
    finally:
        scripted.linear_input, scripted.exposure = 1, 0.0


def test_output_follows_input_dtype_and_out_of_range_input(scripted):
    x = torch.rand(1, 3, 40, 48) * 3.0 - 0.5  # Nuke linear: negatives and values above 1
    x[0, 0, 0, 0] = float("nan")
    y = scripted(x.half())
    assert y.dtype == torch.float16 and tuple(y.shape) == (1, 3, 40, 48)
    y32 = scripted(x)
    assert y32.dtype == torch.float32 and torch.isfinite(y32).all() and (y32 >= 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_tensors_follow_input_device(scripted):
    m = scripted.cuda()
    try:
        y = m(torch.rand(1, 3, 64, 80, device="cuda"))
        assert y.device.type == "cuda"
    finally:
        scripted.cpu()


def test_half_weights_are_refused_with_a_message():
    m = export.torchscript_module(tiny_model()).half()  # what 'Optimize for Speed and Memory' does
    with pytest.raises(Exception, match="Optimize for Speed and Memory"):
        m(torch.rand(1, 3, 64, 64).half())


def test_wrong_channel_count_is_refused(scripted):
    with pytest.raises(Exception, match="1 x 3 x H x W"):
        scripted(torch.rand(1, 4, 64, 64))


@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (64, 64), (100, 30), (2, 200)])
def test_engine_padding_scripts_to_the_same_result(hw):
    """The export reuses the engine's padding; its TorchScript form must pad identically."""
    x = torch.rand(1, 3, *hw)
    a, size = pad_to_multiple(x, 64)
    b, size_b = torch.jit.script(pad_to_multiple)(x, 64)
    assert torch.equal(a, b) and size == tuple(size_b)


@pytest.mark.parametrize("hw", [(384, 512), (100, 37), (250, 1000), (1000, 251)])
def test_engine_downscale_scripts_to_the_same_result(hw):
    from hdr_plugin.model import downscale_longest_side

    x = torch.rand(1, 3, *hw)
    out = downscale_longest_side(x, 64)
    assert max(out.shape[-2:]) == 64
    assert torch.equal(out, torch.jit.script(downscale_longest_side)(x, 64))


def test_srgb_oetf_matches_color_module():
    x = torch.linspace(-0.5, 8.0, 2001)
    assert torch.allclose(export.srgb_oetf(x), linear_to_srgb(x), atol=1e-6)


def test_model_is_not_modified():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export.torchscript_module(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------- CLI behaviour
def _run_cli_in_process(capsys, *argv: str) -> tuple[int, str, str]:
    from hdr_plugin.cli import build_parser

    args = build_parser().parse_args(list(argv))
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_refuses_existing_output_and_bad_sizes(tmp_path, tiny_weights, capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"keep")
    code, _, err = _run_cli_in_process(capsys, "export-torchscript", str(out), "--weights", str(tiny_weights))
    assert code == 1 and "--overwrite" in err
    assert out.read_bytes() == b"keep"
    code, _, err = _run_cli_in_process(capsys, "export-torchscript", str(tmp_path / "n.pt"), "--check-size", "big")
    assert code == 2 and "WIDTHxHEIGHT" in err
    code, _, err = _run_cli_in_process(capsys, "export-torchscript", str(tmp_path / "n.cat"))
    assert code == 2 and ".pt" in err
    code, _, err = _run_cli_in_process(capsys, "export-torchscript", str(tmp_path / "n.pt"), "--weights", str(tmp_path / "nowhere"))
    assert code == 2 and "error" in err
    assert not list(tmp_path.glob("n*")) and not list(tmp_path.glob(".*partial*"))


def test_metadata_is_json_serialisable():
    meta = export.metadata(tiny_model(), "abc")
    assert json.loads(json.dumps(meta))["weights_sha256"] == "abc"
