"""EXR passes: ``--passes mask,linear,hallucinated,curve`` as layers or parts, read back with OpenEXR."""

from __future__ import annotations

import numpy as np
import pytest

from hdr_plugin import cli
from hdr_plugin import passes as P


@pytest.fixture
def plate(tmp_path):
    """An 8-bit PNG whose right half is clipped white (so the mask and hallucination have work)."""
    import cv2

    h, w = 40, 64
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, 0.3 + 0 * xx], axis=-1) * 230
    img[:, w // 2 :] = 255
    path = tmp_path / "plate.png"
    cv2.imwrite(str(path), img.astype(np.uint8)[:, :, ::-1])
    return path


def read_parts(path):
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return [
            (p.name(), {n: np.array(c.pixels, dtype=np.float32) for n, c in p.channels.items()}, dict(p.header)) for p in f.parts
        ]


def convert(src, dst, *extra) -> int:
    return cli.main(["convert", str(src), "-o", str(dst), "--float", "--device", "cpu", "--precision", "fp32", "-q", *map(str, extra)])


def test_parse_passes():
    assert P.parse_passes("mask, linear") == ("mask", "linear")
    assert P.parse_passes("all") == P.PASSES
    assert P.parse_passes("") == ()
    assert P.parse_passes("curve,curve") == ("curve",)
    with pytest.raises(ValueError, match="unknown pass depth"):
        P.parse_passes("mask,depth")


def test_layers_read_back_under_documented_names(plate, tmp_path):
    plain = tmp_path / "plain.exr"
    layered = tmp_path / "layers.exr"
    assert convert(plate, plain) == 0
    assert convert(plate, layered, "--passes", "mask,linear,hallucinated,curve") == 0
    [(_, base, _)] = read_parts(plain)
    [(_, ch, header)] = read_parts(layered)
    expected = {"R", "G", "B"} | {c for p in P.PASSES for c in P.PASS_CHANNELS[p]}
    assert set(ch) == expected
    assert header["hdrPluginPasses"] == "mask,linear,hallucinated,curve"
    for c in "RGB":  # the beauty is untouched by asking for passes
        np.testing.assert_array_equal(ch[c], base[c])

    linear = np.stack([ch[f"linear.{c}"] for c in "RGB"], axis=-1)
    hallucinated = np.stack([ch[f"hallucinated.{c}"] for c in "RGB"], axis=-1)
    mask = ch["mask.Y"]
    # the mask is Hallucination-Net's: clip((max_c(linear) - t) / (1 - t), 0, 1), t = 0.88 (test config)
    np.testing.assert_allclose(mask, np.clip((linear.max(axis=-1) - 0.88) / 0.12, 0, 1), atol=1e-5)
    assert mask[:, -8:].min() == 1.0 and mask[:, :4].max() == 0.0
    # hallucination only adds light, and only under the mask
    assert (hallucinated - linear).min() >= -1e-5
    np.testing.assert_allclose(hallucinated[mask == 0], linear[mask == 0], atol=1e-5)
    assert (hallucinated - linear)[mask == 1].max() > 0.01
    # the linear pass of an sRGB-ish plate is roughly the inverse curve of the input
    curve = np.asarray(header[P.CURVE_ATTRIBUTE], dtype=np.float32)
    assert curve.shape == (1024,) and abs(curve[0]) < 1e-4 and abs(curve[-1] - 1) < 1e-4 and np.all(np.diff(curve) >= -1e-5)
    strip = ch["curve.Y"]
    np.testing.assert_allclose(strip[0], np.interp(np.linspace(0, 1, strip.shape[1]), np.linspace(0, 1, 1024), curve), atol=1e-6)
    np.testing.assert_array_equal(strip, np.broadcast_to(strip[0], strip.shape))


def test_passes_follow_the_output_space(plate, tmp_path):
    from hdr_plugin import color as C

    a, b = tmp_path / "709.exr", tmp_path / "cg.exr"
    assert convert(plate, a, "--passes", "linear,mask") == 0
    assert convert(plate, b, "--passes", "linear,mask", "--output-space", "acescg") == 0
    [(_, ca, _)] = read_parts(a)
    [(_, cb, _)] = read_parts(b)
    lin709 = np.stack([ca[f"linear.{c}"] for c in "RGB"], axis=-1)
    lincg = np.stack([cb[f"linear.{c}"] for c in "RGB"], axis=-1)
    m = C.rgb_conversion_matrix(C.OUTPUT_SPACES["lin-rec709"], C.OUTPUT_SPACES["acescg"])
    np.testing.assert_allclose(lincg, C.apply_matrix(lin709, m), atol=1e-5)
    np.testing.assert_array_equal(ca["mask.Y"], cb["mask.Y"])  # the mask is not a colour


def test_exposure_applies_to_colour_passes(plate, tmp_path):
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    assert convert(plate, a, "--passes", "linear") == 0
    assert convert(plate, b, "--passes", "linear", "--exposure", "1") == 0
    [(_, ca, _)] = read_parts(a)
    [(_, cb, _)] = read_parts(b)
    np.testing.assert_allclose(cb["linear.R"], 2 * ca["linear.R"], rtol=1e-6, atol=1e-7)


def test_multipart(plate, tmp_path):
    from hdr_plugin.io import read_hdr

    single, multi = tmp_path / "single.exr", tmp_path / "multi.exr"
    assert convert(plate, single, "--passes", "all") == 0
    assert convert(plate, multi, "--passes", "all", "--multipart") == 0
    [(_, flat, _)] = read_parts(single)
    parts = read_parts(multi)
    assert [name for name, _, _ in parts] == ["rgba", "mask", "linear", "hallucinated", "curve"]
    assert set(parts[0][1]) == {"R", "G", "B"}
    for name, channels, header in parts[1:]:
        assert set(channels) == set(P.PASS_CHANNELS[name])
        for c, px in channels.items():
            np.testing.assert_array_equal(px, flat[c])
        assert header["chromaticities"] == parts[0][2]["chromaticities"]
    np.testing.assert_array_equal(read_hdr(multi)[:, :, 0], flat["R"])  # every reader still finds the beauty


def test_passes_need_exr(plate, tmp_path, capsys):
    assert convert(plate, tmp_path / "x.hdr", "--passes", "mask") == 2
    assert "need EXR output" in capsys.readouterr().err
    assert convert(plate, tmp_path / "y.exr", "--passes", "mask,depth") == 2
    assert "unknown pass depth" in capsys.readouterr().err


def test_collector_needs_the_stage_outputs():
    collector = P.PassCollector(("linear",))
    with pytest.raises(RuntimeError, match="no 'linear' stage output"):
        collector.layers(lambda x: x, 4, 4)
