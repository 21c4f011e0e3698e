"""The four networks (hdr_plugin.arch) and the model container (hdr_plugin.model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG, tiny_model

from hdr_plugin import crf
from hdr_plugin.arch import DequantizationNet, LinearizationNet, RefinementNet, linearization_features, overexposure_mask
from hdr_plugin.arch.linearization import N_FEATURES
from hdr_plugin.color import srgb_to_linear
from hdr_plugin.model import HDRModel, ModelConfig, downscale_longest_side, reconstruct


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=7)


def _ldr(n=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    x[:, :, : h // 4] = 1.0  # a clipped band
    return torch.floor(x * 255 + 0.5) / 255


# --------------------------------------------------------------------------- config
def test_channel_widths_come_from_the_yaml_config():
    cfg = ModelConfig.load()
    m = HDRModel(cfg)
    deq_widths = cfg.raw["dequantization"]["widths"]
    assert m.deq.unet.head[0].out_channels == deq_widths[0]
    assert [blk[0].out_channels for blk in m.deq.unet.down] == deq_widths[1:]
    assert m.lin.stem[0].out_channels == cfg.raw["linearization"]["width"]
    assert m.hal.encoder[0][0].out_channels == cfg.raw["hallucination"]["width"]
    assert m.ref.unet.head[0].in_channels == 9
    assert m.lin.basis.shape == (11, 1024)  # 11 inverse-EMoR weights -> 1024-sample curve
    # overriding a width in the config changes the network
    small = HDRModel(cfg.with_overrides(dequantization={"widths": [3, 5, 7, 9, 11]}))
    assert [blk[0].out_channels for blk in small.deq.unet.down] == [5, 7, 9, 11]
    assert ModelConfig.from_text(cfg.to_text()).raw == cfg.raw


def test_config_missing_a_stage_is_rejected(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("dequantization: {widths: [4, 8, 8, 8, 8]}\n")
    with pytest.raises(ValueError, match="lacks sections.*linearization"):
        ModelConfig.load(p)


# --------------------------------------------------------------------------- shapes and dtypes
@torch.no_grad()
def test_output_shapes_and_dtypes(model):
    x = _ldr(2, 64, 96)
    deq = model.deq(x)
    assert deq.shape == x.shape and deq.dtype == torch.float32
    assert deq.min() >= 0 and deq.max() <= 1
    curve = model.lin(deq)
    assert curve.shape == (2, 1024) and curve.dtype == torch.float32
    linear = crf.apply_curve(deq, curve)
    hal = model.hal(linear)
    assert hal.shape == x.shape and hal.dtype == torch.float32
    ref = model.ref(hal, linear, deq)
    assert ref.shape == x.shape and ref.dtype == torch.float32
    out = reconstruct(model, x, curve=curve)
    assert set(out) == {"deq", "curve", "linear", "hallucinated", "hdr"}
    assert torch.equal(out["deq"], deq) and torch.equal(out["hdr"], ref)
    # without a given curve, the curve comes from a downscaled copy of the whole image
    small = downscale_longest_side(deq, model.config.linearization_input_size)
    assert max(small.shape[-2:]) == TINY_CONFIG["linearization"]["input_size"]
    torch.testing.assert_close(reconstruct(model, x)["curve"], model.lin(small))


def test_networks_keep_float32_outputs_under_bf16_autocast(model):
    x = _ldr(1, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        deq = model.deq(x)
        curve = model.lin(deq)
        linear = crf.apply_curve(deq, curve)
        hal = model.hal(linear)
        ref = model.ref(hal, linear, deq)
    for t in (deq, curve, linear, hal, ref):
        assert t.dtype == torch.float32


def test_linearization_features_have_102_channels():
    x = _ldr(1, 32, 48)
    f = linearization_features(x)
    assert N_FEATURES == 102 and f.shape == (1, 102, 32, 48)
    assert torch.equal(f[:, :3], x)
    # soft-histogram memberships of each channel sum to one per bin count (a partition of unity)
    hist = f[:, 9:].view(1, 3, 4 + 1 + 8 + 1 + 16 + 1, 32, 48)
    for lo, hi in ((0, 5), (5, 14), (14, 31)):
        torch.testing.assert_close(hist[:, :, lo:hi].sum(2), torch.ones(1, 3, 32, 48))


# --------------------------------------------------------------------------- Dequantization-Net
def test_dequantization_residual_is_added_in_float32_under_bf16():
    net = DequantizationNet([4, 8, 8, 8, 8]).eval()  # zero-initialised tail: residual == 0
    x = _ldr(1, 64, 64, seed=1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.float32
    # a bf16 add would round the 8-bit codes (bf16 has 8 mantissa bits, errors up to 2^-9 here)
    assert torch.equal(out, x)
    assert not torch.equal(x.bfloat16().float(), x)


def test_dequantization_changes_values_by_a_bounded_residual(model):
    from hdr_plugin.arch.unet import RESIDUAL_CODES

    x = _ldr(1, 64, 64, seed=2)
    with torch.no_grad():
        out = model.deq(x)
    change = (out - x).abs()
    assert 0 < change.max() <= RESIDUAL_CODES / 255 + 1e-7


def test_dequantization_sees_local_contrast_in_code_units():
    """A one-code step is visible to the U-Net as a contrast of order one, whatever the level."""
    from hdr_plugin.arch.unet import _local_contrast

    codes = torch.full((1, 1, 9, 9), 200.0)
    codes[..., 4, 4] += 1.0  # one code above its neighbours
    contrast = _local_contrast(codes, 3)
    assert contrast[0, 0, 4, 4].item() == pytest.approx(-8 / 9, abs=1e-4)  # float32 sum of 200s
    assert contrast[0, 0, 4, 2].item() == 0.0


# --------------------------------------------------------------------------- Linearization-Net
def test_linearization_curve_is_monotonic_with_fixed_endpoints():
    torch.manual_seed(0)
    net = LinearizationNet(width=4).eval()
    with torch.no_grad():
        net.head.weight.normal_(0, 3.0)  # wild head outputs
        net.head.bias.normal_(0, 3.0)
        curves = net(_ldr(4, 64, 64, seed=3))
    assert curves.shape == (4, 1024) and curves.dtype == torch.float32
    assert torch.all(curves[:, 0] == 0)
    torch.testing.assert_close(curves[:, -1], torch.ones(4), atol=1e-5, rtol=0)
    assert torch.all(curves[:, 1:] - curves[:, :-1] >= 0)
    assert not torch.allclose(curves[0], curves[1])  # depends on the image


def test_linearization_zero_head_is_exactly_inverse_srgb():
    torch.manual_seed(0)
    net = LinearizationNet(width=4, anchor="srgb").eval()  # head is zero-initialised
    with torch.no_grad():
        curves = net(_ldr(2, 64, 64, seed=4))
    expected = torch.as_tensor(srgb_to_linear(crf.GRID), dtype=torch.float32)
    for c in curves:
        torch.testing.assert_close(c, expected, atol=2e-7, rtol=0)


def test_linearization_emor_anchor_zero_head_is_mean_inverse_emor():
    net = LinearizationNet(width=4, anchor="emor").eval()
    with torch.no_grad():
        curve = net(_ldr(1, 64, 64))[0]
    g0, _ = crf.inverse_emor_basis()
    torch.testing.assert_close(curve, torch.as_tensor(g0, dtype=torch.float32), atol=2e-6, rtol=0)
    with pytest.raises(ValueError, match="unknown curve anchor"):
        LinearizationNet(width=4, anchor="gamma")


def test_linearization_srgb_head_parameters():
    """Head layout (anchor="srgb"): [log-gamma, n inverse-EMoR weights, sRGB-confidence logit]."""
    net = LinearizationNet(width=4)
    n = net.basis.shape[0]
    assert net.head.out_features == n + 2
    base = torch.as_tensor(np.maximum(srgb_to_linear(crf.GRID), 1e-8), dtype=torch.float32)
    params = torch.zeros(1, n + 2)
    params[0, -1] = -40.0  # confidence 0: the curve is the gamma/EMoR part alone
    params[0, 0] = float(np.log(1.5))  # anchor ** 1.5
    torch.testing.assert_close(net.curve_from_parameters(params)[0], crf.make_monotonic(base**1.5), atol=1e-6, rtol=0)
    params[0, 0], params[0, 2] = 0.0, 0.05  # second inverse-EMoR basis vector
    _, hinv = crf.inverse_emor_basis()
    expected = crf.make_monotonic(base + 0.05 * torch.as_tensor(hinv[1], dtype=torch.float32))
    torch.testing.assert_close(net.curve_from_parameters(params)[0], expected, atol=1e-6, rtol=0)
    # a confident sRGB logit snaps to exact inverse sRGB whatever the other outputs say
    params[0, -1] = 3.0
    exact = torch.as_tensor(srgb_to_linear(crf.GRID), dtype=torch.float32)
    torch.testing.assert_close(net.curve_from_parameters(params)[0], exact, atol=0, rtol=0)
    soft = net.curve_from_parameters(params, snap=False)[0]
    c = torch.sigmoid(torch.tensor(3.0))
    torch.testing.assert_close(soft, c * exact + (1 - c) * expected, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- Hallucination-Net
def test_hallucination_only_touches_masked_pixels_and_never_lowers(model):
    g = torch.Generator().manual_seed(5)
    linear = torch.rand(2, 3, 64, 64, generator=g) * 0.8
    linear[:, :, 10:30, 20:50] = 0.85 + 0.15 * torch.rand(2, 3, 20, 30, generator=g)  # near/over the threshold
    linear[:, :, 40:44, 0:8] = 1.0
    mask = overexposure_mask(linear, model.hal.mask_threshold)[:, 0]
    assert (mask == 0).any() and (mask > 0).any()
    with torch.no_grad():
        out = model.hal(linear)
    keep = (mask == 0).unsqueeze(1).expand_as(out)
    assert torch.equal(out[keep], linear[keep])
    assert torch.all(out >= linear)
    gain = (out - linear).amax(dim=1)
    assert gain[mask > 0.5].min() > 0  # the positive residual is used where clipped
    assert gain[(mask > 0) & (mask < 0.2)].max() < gain[mask == 1].max()  # scaled by the soft mask


def test_overexposure_mask_is_soft_ramp():
    lin = torch.tensor([0.0, 0.88, 0.94, 1.0, 1.2]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    torch.testing.assert_close(overexposure_mask(lin, 0.88)[0, 0, 0], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


# --------------------------------------------------------------------------- Refinement-Net
def test_refinement_is_non_negative_and_not_clamped_above(model):
    g = torch.Generator().manual_seed(6)
    hal = torch.rand(1, 3, 64, 64, generator=g) * 2000.0  # far above 1
    hal[:, :, :8] = -3.0  # negative values are floored at 0
    lin = hal.clamp(0, 1)
    deq = lin ** (1 / 2.2)
    with torch.no_grad():
        out = model.ref(hal, lin, deq)
    assert out.min() >= 0
    assert torch.all(out[:, :, :8] < 1e-2)
    assert out.max() > 500.0
    # the correction is bounded to exp(+-log_range) around the hallucinated input
    ratio = (out[:, :, 8:] + 1e-3) / (hal[:, :, 8:] + 1e-3)
    assert ratio.min() >= np.exp(-1) - 1e-5 and ratio.max() <= np.exp(1) + 1e-5


def test_refinement_starts_as_identity():
    net = RefinementNet([4, 8, 8, 8, 8]).eval()  # zero-initialised tail
    hal = torch.rand(1, 3, 32, 32) * 100
    with torch.no_grad():
        out = net(hal, hal.clamp(0, 1), hal.clamp(0, 1))
    torch.testing.assert_close(out, hal, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- TorchScript
@pytest.mark.parametrize("stage", ["dequantization", "linearization", "hallucination", "refinement"])
def test_networks_are_scriptable_and_match_eager(model, stage):
    net = model.stage(stage)
    scripted = torch.jit.script(net)
    x = _ldr(1, 64, 64, seed=8)
    with torch.no_grad():
        if stage == "refinement":
            hal = x * 5
            args = (hal, x.clamp(0, 1), x)
        elif stage == "hallucination":
            args = (crf.apply_curve(x, torch.as_tensor(srgb_to_linear(crf.GRID))),)
        else:
            args = (x,)
        eager = net(*args)
        got = scripted(*args)
    assert got.shape == eager.shape
    torch.testing.assert_close(got, eager, atol=1e-6, rtol=1e-6)


def test_parameter_count_and_tiny_config(model):
    counts = model.parameter_count()
    assert set(counts) == {"dequantization", "linearization", "hallucination", "refinement"}
    assert all(v > 0 for v in counts.values())
    assert model.config.raw == TINY_CONFIG
