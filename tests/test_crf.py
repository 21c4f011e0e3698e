"""Camera-curve math (hdr_plugin.crf): parsing, monotonic curves, inversion, lookup,
EMoR fitting, quantization and the DoRF train/test split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hdr_plugin import crf
from hdr_plugin.color import linear_to_srgb, srgb_to_linear

H = 1.0 / (crf.N_SAMPLES - 1)  # grid spacing
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


def _format_block(label: str, values: np.ndarray) -> str:
    """One block in the emor.txt layout: a label line, then 256 lines of 4 numbers (CRLF)."""
    rows = values.reshape(256, 4)
    return f"{label}\r\n" + "".join("   ".join(f"{v:.6e}" for v in r) + "\r\n" for r in rows)


def _monotonic_curve(slopes: np.ndarray) -> np.ndarray:
    """A forward curve on GRID with these (relative) slopes, 0 -> 0 and 1 -> 1."""
    c = np.concatenate([[0.0], np.cumsum(slopes)])
    return c / c[-1]


def _min_slope(curve: np.ndarray) -> float:
    return float(np.diff(curve).min() / H)


positive_slopes = hnp.arrays(np.float64, crf.N_SAMPLES - 1, elements=st.floats(0.2, 5.0))


# --------------------------------------------------------------------------- parsing
class TestParsing:
    def test_emor_file_has_mean_and_25_basis_vectors_with_fixed_endpoints(self):
        blocks = crf.parse_emor_text(crf._data_text("emor.txt"))
        assert set(blocks) == {"E", "f0"} | {f"h({n})" for n in range(1, 26)}
        assert all(v.shape == (1024,) and v.dtype == np.float64 for v in blocks.values())
        np.testing.assert_allclose(blocks["E"], crf.GRID, atol=5e-7)  # irradiance samples
        f0, h = crf.emor_basis()
        assert h.shape == (25, 1024)
        assert f0[0] == 0.0 and f0[-1] == 1.0
        assert np.all(np.diff(f0) > 0)
        # basis vectors vanish at both ends, so every curve they build keeps f(0)=0, f(1)=1
        assert np.abs(h[:, [0, -1]]).max() < 1e-12
        # a PCA basis: orthogonal rows of similar norm
        gram = h @ h.T
        assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-3 * np.diag(gram).min()

    def test_inverse_emor_file(self):
        blocks = crf.parse_emor_text(crf._data_text("invemor.txt"))
        assert set(blocks) == {"B", "g0"} | {f"hinv({n})" for n in range(1, 26)}
        g0, hinv = crf.inverse_emor_basis()
        assert hinv.shape == (25, 1024)
        assert g0[0] == 0.0 and g0[-1] == 1.0
        assert np.all(np.diff(g0) >= 0)
        assert np.abs(hinv[:, [0, -1]]).max() < 1e-12
        np.testing.assert_allclose(blocks["B"], crf.GRID, atol=5e-7)  # brightness samples

    @FAST
    @given(
        labels=st.lists(st.from_regex(r"[a-z]{1,4}\([0-9]{1,2}\)", fullmatch=True), min_size=1, max_size=3, unique=True),
        seed=st.integers(0, 2**31 - 1),
    )
    def test_parser_round_trips_generated_text(self, labels, seed):
        rng = np.random.default_rng(seed)
        data = {lab: rng.normal(size=1024) for lab in labels}
        text = "junk header line\r\n" + "".join(_format_block(lab + " =", v) for lab, v in data.items())
        parsed = crf.parse_emor_text(text)
        assert set(parsed) == set(labels)
        for lab, v in data.items():
            np.testing.assert_allclose(parsed[lab], v, rtol=1e-6, atol=1e-300)

    def test_short_block_is_rejected(self):
        text = _format_block("f0 =", np.zeros(1024)).splitlines()
        with pytest.raises(ValueError, match=r"'f0 =' has 1020 values, expected 1024"):
            crf.parse_emor_text("\n".join(text[:-1]))


# --------------------------------------------------------------------------- make_monotonic
class TestMakeMonotonic:
    @FAST
    @given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 1024)), elements=finite))
    def test_any_input_becomes_monotonic_with_fixed_endpoints_float64(self, curves):
        out = crf.make_monotonic(torch.from_numpy(curves)).numpy()
        assert out.shape == curves.shape
        assert np.all(out[..., 0] == 0.0)
        np.testing.assert_allclose(out[..., -1], 1.0, atol=1e-9)
        assert np.all(np.diff(out, axis=-1) >= 0.0)

    @FAST
    @given(hnp.arrays(np.float32, st.integers(2, 1024), elements=finite))
    def test_any_input_becomes_monotonic_with_fixed_endpoints_float32(self, curve):
        out = crf.make_monotonic(torch.from_numpy(curve)).numpy()
        assert out.dtype == np.float32
        assert out[0] == 0.0
        assert abs(out[-1] - 1.0) < 1e-5
        assert np.all(np.diff(out) >= 0.0)

    @FAST
    @given(positive_slopes)
    def test_monotonic_input_with_fixed_endpoints_is_kept(self, slopes):
        c = _monotonic_curve(slopes)
        np.testing.assert_allclose(crf.make_monotonic(torch.from_numpy(c)).numpy(), c, atol=1e-9)

    def test_keeps_a_gradient_everywhere(self):
        c = torch.linspace(0, 1, 1024, dtype=torch.float64).requires_grad_()
        curve = crf.make_monotonic(c - 0.3 * torch.sin(6 * c))  # has a decreasing stretch
        weights = torch.rand(1024, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        (curve * weights).sum().backward()
        assert torch.isfinite(c.grad).all() and torch.all(c.grad != 0)  # every sample gets a gradient


# --------------------------------------------------------------------------- inversion and lookup
class TestCurves:
    @FAST
    @given(positive_slopes, st.integers(0, 2**31 - 1))
    def test_inverse_after_forward_is_identity(self, slopes, seed):
        forward = _monotonic_curve(slopes)
        inverse = crf.invert_curve(forward)
        x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
        x[0, 0, 0, :4] = torch.tensor([0.0, 1.0, H, 1 - H])
        y = crf.apply_curve(x, torch.from_numpy(forward))
        z = crf.apply_curve(y, torch.from_numpy(inverse))
        # sampling the inverse on a 1024 grid costs at most h / (4 * min slope) (see test docs)
        bound = H / (4 * _min_slope(forward)) + 1e-5
        assert float((z - x).abs().max()) <= bound

    @FAST
    @given(st.floats(1.0, 3.0), st.integers(0, 2**31 - 1))
    def test_gamma_curves_round_trip(self, gamma, seed):
        forward = crf.GRID ** (1 / gamma)
        inverse = crf.invert_curve(forward)
        np.testing.assert_allclose(inverse, crf.GRID**gamma, atol=H / (4 * _min_slope(forward)) + 1e-6)
        x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        z = crf.apply_curve(crf.apply_curve(x, torch.from_numpy(forward)), torch.from_numpy(inverse))
        assert float((z - x).abs().max()) <= H / (4 * _min_slope(forward)) + 1e-5

    def test_dorf_curves_round_trip_where_invertible(self):
        curves = crf.dorf_curves()
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        checked = 0
        for forward in curves:
            if _min_slope(forward) < 0.05:  # (nearly) flat stretches lose information
                continue
            z = crf.apply_curve(crf.apply_curve(x, torch.from_numpy(forward)), torch.from_numpy(crf.invert_curve(forward)))
            assert float((z - x).abs().max()) <= H / (4 * _min_slope(forward)) + 1e-5
            checked += 1
        assert checked > 150

    @FAST
    @given(positive_slopes)
    def test_invert_twice_returns_the_curve(self, slopes):
        c = _monotonic_curve(slopes)
        inv = crf.invert_curve(c)
        assert inv[0] == 0.0 and abs(inv[-1] - 1.0) < 1e-12 and np.all(np.diff(inv) >= 0)
        bound = H * (1 / _min_slope(c) + 1 / _min_slope(inv)) / 4 + 1e-6
        assert np.abs(crf.invert_curve(inv) - c).max() <= bound

    def test_invert_curve_handles_flat_runs_and_batches(self):
        c = np.clip(crf.GRID * 2, 0, 1)  # saturates half-way: a flat run
        inv = crf.invert_curve(np.stack([c, crf.GRID]))
        assert inv.shape == (2, 1024)
        np.testing.assert_allclose(inv[1], crf.GRID, atol=1e-8)
        assert np.all(np.diff(inv[0]) >= 0) and inv[0, 0] == 0 and abs(inv[0, -1] - 1) < 1e-12
        np.testing.assert_allclose(inv[0, :-1], crf.GRID[:-1] / 2, atol=2e-3)

    @FAST
    @given(hnp.arrays(np.float32, st.integers(1, 200), elements=st.floats(-0.5, 1.5, width=32)), positive_slopes)
    def test_torch_and_numpy_lookups_agree_with_np_interp(self, x, slopes):
        curve = _monotonic_curve(slopes)
        expected = np.interp(np.clip(x, 0, 1), crf.GRID, curve)
        np.testing.assert_allclose(crf.apply_curve_np(x, curve), expected, atol=2e-6)
        got = crf.apply_curve(torch.from_numpy(x).view(1, 1, 1, -1), torch.from_numpy(curve))
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy().ravel(), expected, atol=2e-6)

    def test_apply_curve_uses_one_curve_per_image(self):
        x = torch.full((2, 3, 4, 4), 0.5)
        curves = torch.stack([torch.linspace(0, 1, 1024), torch.linspace(0, 1, 1024) ** 2])
        out = crf.apply_curve(x, curves)
        assert torch.allclose(out[0], torch.tensor(0.5)) and torch.allclose(out[1], torch.tensor(0.25), atol=1e-6)

    def test_apply_curve_is_differentiable_gradcheck(self):
        gen = torch.Generator().manual_seed(3)
        # keep x away from the sample knots and from the clamp limits: the lookup is
        # piecewise linear, so finite differences across a knot would not match
        knots = torch.randint(1, 30, (1, 2, 3, 3), generator=gen).double()
        x = ((knots + 0.25 + 0.5 * torch.rand(knots.shape, generator=gen, dtype=torch.float64)) / 31).requires_grad_()
        curve = (torch.linspace(0, 1, 32, dtype=torch.float64) ** 2.2 + 0.01 * torch.rand(32, generator=gen, dtype=torch.float64))
        curve = curve.unsqueeze(0).requires_grad_()
        f = lambda a, c: crf.apply_curve(a, c, dtype=torch.float64)  # noqa: E731
        assert f(x, curve).dtype == torch.float64
        assert torch.autograd.gradcheck(f, (x, curve), eps=1e-6, atol=1e-8)
        # and the float32 default path back-propagates into both the image and the curve
        x32 = x.detach().float().requires_grad_()
        c32 = curve.detach().float().requires_grad_()
        crf.apply_curve(x32, c32).sum().backward()
        assert x32.grad.abs().min() > 0 and c32.grad.abs().sum() > 0


# --------------------------------------------------------------------------- EMoR fits
class TestEmorFit:
    def test_inverse_srgb_is_reproduced_by_inverse_emor_weights(self):
        target = srgb_to_linear(crf.GRID)
        w = crf.fit_inverse_emor_weights(target)
        assert w.shape == (crf.N_EMOR_WEIGHTS,)
        curve = crf.emor_curve_from_weights(torch.tensor(w[None], dtype=torch.float32))[0].numpy()
        rmse = float(np.sqrt(np.mean((curve - target) ** 2)))
        # measured: RMSE 1.81e-4 (max error 1.4e-3) with the 11 weights Linearization-Net predicts
        assert rmse < 2.5e-4
        assert np.abs(curve - target).max() < 2e-3
        assert curve[0] == 0 and abs(curve[-1] - 1) < 1e-6 and np.all(np.diff(curve) >= 0)

    def test_more_weights_fit_better(self):
        target = srgb_to_linear(crf.GRID)
        g0, hinv = crf.inverse_emor_basis()
        rmse = []
        for n in (3, 5, 11, 25):
            w = crf.fit_inverse_emor_weights(target, n)
            rmse.append(float(np.sqrt(np.mean((g0 + w @ hinv[:n] - target) ** 2))))
        assert rmse == sorted(rmse, reverse=True)
        assert rmse[-1] < 5e-5  # measured 3.2e-5

    def test_forward_srgb_fit_with_emor(self):
        target = linear_to_srgb(crf.GRID)
        f0, h = crf.emor_basis()
        w = crf.fit_emor_weights(target, 11)
        assert float(np.sqrt(np.mean((f0 + w @ h[:11] - target) ** 2))) < 1e-3  # measured 5.3e-4


# --------------------------------------------------------------------------- quantization and simulation
class TestQuantize:
    @FAST
    @given(hnp.arrays(np.float32, st.integers(1, 500), elements=st.floats(-0.5, 1.5, width=32)), st.sampled_from([8, 10, 16]))
    def test_quantize_numpy_and_torch(self, x, bits):
        levels = 2**bits - 1
        q = crf.quantize(x, bits)
        assert q.dtype == np.float32
        codes = q.astype(np.float64) * levels
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # exactly on the code grid
        assert np.all(np.abs(q - np.clip(x, 0, 1)) <= 0.5 / levels + 1e-7)  # round to nearest
        np.testing.assert_array_equal(crf.quantize(q, bits), q)  # idempotent
        qt = crf.quantize(torch.from_numpy(x), bits)
        np.testing.assert_allclose(qt.numpy(), q, atol=1e-7)

    def test_every_8bit_code_is_a_fixed_point(self):
        codes = np.arange(256, dtype=np.float64) / 255
        np.testing.assert_array_equal(crf.quantize(codes), codes.astype(np.float32))
        np.testing.assert_array_equal(crf.quantize(torch.tensor(codes, dtype=torch.float32)).numpy(), codes.astype(np.float32))
        # ties round up: Q(x) = floor(255 x + 0.5) / 255
        assert crf.quantize(np.array([0.5 / 255]))[0] == np.float32(1 / 255)

    def test_simulate_camera_clips_applies_curve_and_quantizes(self):
        rng = np.random.default_rng(0)
        linear = rng.uniform(0, 3, size=(16, 16, 3)).astype(np.float32)
        curve = linear_to_srgb(crf.GRID)
        encoded, quantized = crf.simulate_camera(linear, curve)
        np.testing.assert_allclose(encoded, linear_to_srgb(np.clip(linear, 0, 1)), atol=1e-4)
        assert np.all(encoded[linear >= 1] == 1.0)
        np.testing.assert_array_equal(quantized, crf.quantize(encoded))


# --------------------------------------------------------------------------- DoRF split
class TestDorf:
    def test_curves_are_monotonic_with_fixed_endpoints(self):
        c = crf.dorf_curves()
        assert c.shape == (201, 1024)
        assert np.all(c[:, 0] == 0) and np.all(c[:, -1] == 1) and np.all(np.diff(c, axis=1) >= 0)

    def test_split_has_10_test_rows_disjoint_from_train_and_no_shared_curve(self):
        train, test = crf.dorf_split()
        assert len(test) == 10 and len(set(test)) == 10
        assert set(train).isdisjoint(test)
        assert len(train) == len(set(train)) >= 180
        assert set(train) | set(test) <= set(range(201))
        c = crf.dorf_curves()
        distance = np.abs(c[list(train)][:, None, :] - c[list(test)][None, :, :]).max(axis=2)
        assert distance.min() > 1e-6  # no train curve equals a test curve
        # the file's shuffled order is a permutation of all 201 rows ending in the test rows
        text = crf._data_text("singlehdr_dorf_split.txt")
        order = [int(v) for v in next(ln for ln in text.splitlines() if ln.startswith("shuffled_order:")).split(":")[1].split()]
        assert sorted(order) == list(range(201)) and tuple(order[-10:]) == test
