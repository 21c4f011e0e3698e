"""Colour spaces: matrices, Bradford, transfer functions and the output spaces against OCIO.

OpenColorIO's built-in config (``ocio://default``, no file needed) is the reference: every
matrix and every output of ``convert --output-space`` must equal OCIO's conversion.
"""

from __future__ import annotations

import numpy as np
import pytest

from hdr_plugin import cli
from hdr_plugin import color as C

ocio = pytest.importorskip("PyOpenColorIO", reason="opencolorio is in the [test] extra")

#: our output spaces and the OCIO default config's names for them
OCIO_NAMES = {
    "lin-rec709": "Linear Rec.709 (sRGB)",
    "lin-rec2020": "Linear Rec.2020",
    "lin-p3": "Linear P3-D65",
    "acescg": "ACEScg",
    "aces2065-1": "ACES2065-1",
}


@pytest.fixture(scope="module")
def config():
    return ocio.Config.CreateFromFile("ocio://default")


def ocio_convert(config, rgb, src, dst):
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    config.getProcessor(src, dst).getDefaultCPUProcessor().applyRGB(out.reshape(-1, 3))
    return out


def _exr(path):
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = f.parts[0].channels
        rgb = np.stack([ch[c].pixels.astype(np.float32) for c in "RGB"], axis=-1)
        return rgb, dict(f.parts[0].header)


# ----------------------------------------------------------------------------- matrices
@pytest.mark.parametrize("dst", list(OCIO_NAMES))
def test_rec709_to_each_output_space_matches_ocio(config, dst):
    x = np.random.default_rng(1).uniform(0.0, 6.0, (500, 3)).astype(np.float32)
    m = C.rgb_conversion_matrix(C.OUTPUT_SPACES["lin-rec709"], C.OUTPUT_SPACES[dst])
    np.testing.assert_allclose(C.apply_matrix(x, m), ocio_convert(config, x, OCIO_NAMES["lin-rec709"], OCIO_NAMES[dst]), atol=1e-4)


@pytest.mark.parametrize("src", ["display-p3", "adobe-rgb", "rec2020"])
def test_input_primaries_to_acescg_match_ocio(config, src):
    names = {"display-p3": "Linear P3-D65", "adobe-rgb": "Linear AdobeRGB", "rec2020": "Linear Rec.2020"}
    x = np.random.default_rng(2).uniform(0.0, 1.0, (300, 3)).astype(np.float32)
    m = C.rgb_conversion_matrix(C.INPUT_SPACES[src], C.OUTPUT_SPACES["acescg"])
    np.testing.assert_allclose(C.apply_matrix(x, m), ocio_convert(config, x, names[src], "ACEScg"), atol=1e-4)


def test_white_maps_to_white_and_luminance_row_is_rec709_luma():
    for space in list(C.OUTPUT_SPACES.values()) + list(C.INPUT_SPACES.values()):
        m = space.to_xyz()
        np.testing.assert_allclose(m @ np.ones(3), C.xy_to_xyz(space.white), atol=1e-12)
    np.testing.assert_allclose(C.OUTPUT_SPACES["lin-rec709"].to_xyz()[1], C.REC709_LUMA, atol=3e-5)


def test_bradford_identity_inverse_and_white_mapping():
    np.testing.assert_allclose(C.bradford_matrix(C.WHITE_D65, C.WHITE_D65), np.eye(3), atol=1e-12)
    there = C.bradford_matrix(C.WHITE_D65, C.WHITE_ACES)
    back = C.bradford_matrix(C.WHITE_ACES, C.WHITE_D65)
    np.testing.assert_allclose(there @ back, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(there @ C.xy_to_xyz(C.WHITE_D65), C.xy_to_xyz(C.WHITE_ACES), atol=1e-12)
    # the ICC D50 PCS adaptation of sRGB's red: the colorant every sRGB profile stores (ICC.1 Annex)
    from hdr_plugin.input_color import pcs_adapted_matrix

    np.testing.assert_allclose(pcs_adapted_matrix(C.INPUT_SPACES["srgb"])[:, 0], [0.4361, 0.2225, 0.0139], atol=2e-4)


def test_same_white_needs_no_adaptation_and_round_trips():
    a, b = C.OUTPUT_SPACES["lin-rec709"], C.OUTPUT_SPACES["lin-rec2020"]
    np.testing.assert_allclose(C.rgb_conversion_matrix(a, b) @ C.rgb_conversion_matrix(b, a), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(C.rgb_conversion_matrix(a, b) @ np.ones(3), np.ones(3), atol=1e-12)


@pytest.mark.parametrize("transfer", C.TRANSFERS)
def test_transfer_functions_round_trip(transfer):
    x = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_allclose(C.encode_transfer(C.decode_transfer(x, transfer), transfer), x, atol=1e-9)
    assert np.all(np.diff(C.decode_transfer(x, transfer)) >= 0)


@pytest.mark.parametrize(
    "encoded,linear,transfer",
    [("sRGB Encoded P3-D65", "Linear P3-D65", "srgb"), ("Gamma 2.2 Encoded AdobeRGB", "Linear AdobeRGB", "adobe-rgb")],
)
def test_decoding_matches_ocio(config, encoded, linear, transfer):
    x = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None].repeat(3, axis=1)
    np.testing.assert_allclose(C.decode_transfer(x, transfer), ocio_convert(config, x, encoded, linear), atol=1e-4)


def test_exr_attributes_of_each_space():
    for name, space in C.OUTPUT_SPACES.items():
        attrs = C.exr_color_attributes(name)
        assert attrs["chromaticities"] == space.chromaticities
        assert attrs["hdrPluginColorSpace"] == name
        assert ("adoptedNeutral" in attrs) == name.startswith("aces")
    assert C.exr_color_attributes("acescg")["adoptedNeutral"] == C.WHITE_ACES
    with pytest.raises(ValueError, match="choose from"):
        C.output_space("srgb-linear")


def test_cli_choices_are_the_module_tables():
    parser = cli.build_parser()
    convert = parser._subparsers._group_actions[0].choices["convert"]
    actions = {a.dest: a for a in convert._actions}
    assert tuple(actions["input_space"].choices) == ("auto",) + tuple(C.INPUT_SPACES)
    assert tuple(actions["output_space"].choices) == tuple(C.OUTPUT_SPACES)


# ----------------------------------------------------------------------------- convert
@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A small untagged 8-bit PNG with clipped highlights (so every stage has work)."""
    import cv2

    rng = np.random.default_rng(3)
    h, w = 48, 72
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 7.0)], axis=-1) * 300.0
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("plate") / "plate.png"
    cv2.imwrite(str(path), img[:, :, ::-1])
    return path


def _convert(src, dst, *extra):
    rc = cli.main(["convert", str(src), "-o", str(dst), "--float", "--device", "cpu", "--precision", "fp32", "-q", *map(str, extra)])
    assert rc == 0
    return _exr(dst)


@pytest.fixture
def default_output(plate, tmp_path):
    """The default (lin-rec709) output; function-scoped so that it runs on the tiny test weights."""
    return _convert(plate, tmp_path / "default.exr")


@pytest.mark.parametrize("space", ["acescg", "aces2065-1", "lin-rec2020", "lin-p3"])
def test_output_space_equals_ocio_conversion_of_default_output(config, plate, default_output, tmp_path, space):
    base, base_header = default_output
    got, header = _convert(plate, tmp_path / f"{space}.exr", "--output-space", space)
    want = ocio_convert(config, base, OCIO_NAMES["lin-rec709"], OCIO_NAMES[space])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(header["chromaticities"], C.OUTPUT_SPACES[space].chromaticities, atol=1e-6)
    assert header["hdrPluginColorSpace"] == space
    if space.startswith("aces"):
        np.testing.assert_allclose(header["adoptedNeutral"], C.WHITE_ACES, atol=1e-6)
    else:
        assert "adoptedNeutral" not in header
    np.testing.assert_allclose(base_header["chromaticities"], C.OUTPUT_SPACES["lin-rec709"].chromaticities, atol=1e-6)


def test_ocio_linear_space_equals_builtin_output_space(plate, tmp_path):
    ours, ours_header = _convert(plate, tmp_path / "ours.exr", "--output-space", "lin-rec2020")
    theirs, header = _convert(plate, tmp_path / "ocio.exr", "--ocio", "ocio://default", "--ocio-space", "Linear Rec.2020")
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(header["chromaticities"], ours_header["chromaticities"], atol=1e-5)
    assert header["hdrPluginColorSpace"] == "Linear Rec.2020"
    assert header["hdrPluginOcioConfig"] == "ocio://default"


def test_ocio_log_space_has_no_chromaticities_and_matches_ocio(config, plate, tmp_path):
    acescg, _ = _convert(plate, tmp_path / "cg.exr", "--output-space", "acescg")
    cct, header = _convert(plate, tmp_path / "cct.exr", "--ocio", "ocio://default", "--ocio-space", "ACEScct")
    np.testing.assert_allclose(cct, ocio_convert(config, acescg, "ACEScg", "ACEScct"), atol=1e-4)
    assert "chromaticities" not in header
    assert header["hdrPluginColorSpace"] == "ACEScct"


def test_ocio_errors_are_clean(plate, tmp_path, capsys):
    assert cli.main(["convert", str(plate), "-o", str(tmp_path / "a.exr"), "--ocio", "ocio://default", "--ocio-space", "No Such Space"]) == 2
    assert "has no colour space 'No Such Space'" in capsys.readouterr().err
    assert cli.main(["convert", str(plate), "-o", str(tmp_path / "b.exr"), "--ocio", "ocio://default"]) == 2
    assert "go together" in capsys.readouterr().err
    assert cli.main(["convert", str(plate), "-o", str(tmp_path / "c.exr"), "--ocio", str(tmp_path / "missing.ocio"), "--ocio-space", "ACEScg"]) == 2
    assert "cannot be loaded" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.exr"))


def test_api_output_space_matches_ocio(config):
    import hdr_plugin

    rgb = (np.random.default_rng(4).uniform(0, 1, (40, 56, 3)) * 255).astype(np.uint8)
    base = hdr_plugin.apply(rgb, channel_order="rgb", device="cpu", precision="fp32")
    cg = hdr_plugin.apply(rgb, channel_order="rgb", device="cpu", precision="fp32", output_space="acescg")
    np.testing.assert_allclose(cg, ocio_convert(config, base, "Linear Rec.709 (sRGB)", "ACEScg"), atol=1e-4)


def test_shot_inputs_take_colour_options(plate, tmp_path):
    """Frame patterns apply the colour options (tests/test_shot_color.py compares them with single images)."""
    import shutil

    for i in (1, 2):
        shutil.copy(plate, tmp_path / f"shot.{i:04d}.png")
    rc = cli.main(["convert", str(tmp_path / "shot.%04d.png"), "-o", str(tmp_path / "out.%04d.exr"), "--output-space", "acescg", "-q"])
    assert rc == 0
    for i in (1, 2):
        _, h = _exr(tmp_path / f"out.{i:04d}.exr")
        assert h["hdrPluginColorSpace"] == "acescg" and "adoptedNeutral" in h
