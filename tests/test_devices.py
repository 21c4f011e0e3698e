"""Device and precision selection (hdr_plugin.devices) and how the Engine applies it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hdr_plugin import devices
from hdr_plugin.devices import AUTO_PRECISION_MIN_DB, DeviceUnavailableError, autocast, resolve_device, resolve_precision
from hdr_plugin.pipeline import Engine, NumericalError
from hdr_plugin.weights import update_manifest

CPU = torch.device("cpu")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a machine without CUDA")


@needs_no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA:1"])
def test_explicit_cuda_without_cuda_raises(name):
    with pytest.raises(DeviceUnavailableError, match=r"CUDA is not available.*use --device cpu or auto"):
        resolve_device(name)


@needs_no_cuda
def test_engine_never_falls_back_silently(tiny_weights):
    with pytest.raises(DeviceUnavailableError):
        Engine(tiny_weights, device="cuda")


@pytest.mark.parametrize("name,match", [("tpu", "unknown device 'tpu'"), ("gpu", "unknown device"), ("meta", "unsupported device 'meta'")])
def test_unknown_devices_raise(name, match):
    with pytest.raises(DeviceUnavailableError, match=match):
        resolve_device(name)


def test_mps_unavailable_raises():
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(DeviceUnavailableError, match="MPS is not available"):
        resolve_device("mps")


@needs_no_cuda
def test_auto_is_cpu_here():
    assert resolve_device("auto") == CPU
    assert resolve_device(None) == CPU
    assert resolve_device(" CPU ") == CPU
    assert resolve_device(torch.device("cpu")) == CPU


def test_device_and_precision_are_logged(tiny_weights, caplog):
    with caplog.at_level(logging.INFO, logger="hdr_plugin"):
        Engine(tiny_weights, device="cpu", precision="fp32")
    assert any("device=cpu runtime=" in r.getMessage() and "precision=fp32" in r.getMessage() for r in caplog.records)
    assert any("untrained" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- precision rules
def test_explicit_precisions():
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("BF16", CPU) == "bf16"
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU; use bf16 or fp32"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        resolve_precision("int8", CPU)


def test_fp16_on_cpu_rejected_by_engine(tiny_weights):
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        Engine(tiny_weights, device="cpu", precision="fp16")


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize(
    "measured,bf16_ok",
    [({}, False), ({"cpu_bf16": 44.99}, False), ({"cpu_bf16": AUTO_PRECISION_MIN_DB}, True), ({"cpu_bf16": 60.0}, True), ({"cuda_bf16": 60.0}, False)],
)
def test_auto_precision_on_cpu(monkeypatch, native, measured, bf16_ok):
    # the CPU feature probe is the only thing replaced: it reads /proc/cpuinfo
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: native)
    expected = "bf16" if (native and bf16_ok) else "fp32"
    assert resolve_precision("auto", CPU, measured) == expected


def test_auto_precision_uses_this_cpus_real_capability():
    # on this machine: bf16 iff the CPU has AMX (bf16 without AMX measured slower) and the measurement passes
    got = resolve_precision("auto", CPU, {"cpu_bf16": 50.0})
    assert got == ("bf16" if devices.cpu_has_fast_bf16() else "fp32")
    assert devices.cpu_has_fast_bf16() == ("amx_bf16" in devices.cpu_flags())
    assert resolve_precision("auto", CPU, {"cpu_bf16": 40.0}) == "fp32"


def test_engine_auto_precision_reads_the_manifest(tiny_weights, tmp_path):
    import shutil

    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    assert Engine(folder, device="cpu", runtime="torch").precision == "fp32"  # nothing measured
    update_manifest(folder, precision_checks={"cpu_bf16": 44.0})
    assert Engine(folder, device="cpu", runtime="torch").precision == "fp32"
    update_manifest(folder, precision_checks={"cpu_bf16": 46.0})
    assert Engine(folder, device="cpu", runtime="torch").precision == ("bf16" if devices.cpu_has_fast_bf16() else "fp32")


def test_precision_keys():
    assert devices.precision_key(CPU, "bf16") == "cpu_bf16"
    assert devices.precision_key(CPU, "bf16", "openvino") == "cpu_openvino_bf16"
    assert devices.precision_key(torch.device("cuda", 1), "fp16") == "cuda_fp16"


def test_autocast_contexts():
    x = torch.rand(1, 3, 8, 8)
    conv = torch.nn.Conv2d(3, 3, 3)
    with autocast(CPU, "fp32"):
        assert conv(x).dtype == torch.float32
    with autocast(CPU, "bf16"):
        assert conv(x).dtype == torch.bfloat16


def test_bf16_engine_output_stays_float32_and_close(engine, tiny_weights):
    rgb = np.random.default_rng(0).uniform(0, 1, (64, 96, 3)).astype(np.float32)
    bf16 = engine.with_precision("bf16")
    assert bf16.precision == "bf16" and engine.precision == "fp32" and bf16.model is engine.model
    a, b = engine(rgb), bf16(rgb)
    assert b.dtype == np.float32 and np.isfinite(b).all()
    from hdr_plugin.evaluation.metrics import pu21_psnr

    assert 30.0 < pu21_psnr(b, a) < 200.0  # reduced precision really ran, and it is close


def test_nan_output_is_reported(engine):
    bad = engine.with_precision("fp32")
    import copy

    bad.model = copy.deepcopy(engine.model)
    with torch.no_grad():
        bad.model.ref.unet.tail.bias.fill_(float("nan"))
    with pytest.raises(NumericalError, match="NaN/inf.*precision='fp32'"):
        bad(np.full((8, 8, 3), 0.5, np.float32))
