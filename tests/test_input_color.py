"""Input colour from the file: ICC profiles, PNG cICP/sRGB chunks, EXIF, and the engine input.

Profiles are made by :func:`hdr_plugin.input_color.make_icc_profile` and checked against
LittleCMS (Pillow ImageCms); decoded values are checked against OpenColorIO's built-in
config.  Patch sets are saved as real PNG/JPEG files and read back through ``read_ldr``.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from hdr_plugin import cli
from hdr_plugin import color as C
from hdr_plugin import input_color as I
from hdr_plugin.io import ImageReadError, read_ldr

ocio = pytest.importorskip("PyOpenColorIO", reason="opencolorio is in the [test] extra")

#: a red/green/blue/white/gray/mixed patch set, 8-bit code values (RGB order)
PATCHES = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [128, 128, 128], [200, 120, 40], [30, 180, 90], [10, 20, 250]],
    dtype=np.uint8,
)
OCIO_ENCODED = {"display-p3": "sRGB Encoded P3-D65", "adobe-rgb": "Gamma 2.2 Encoded AdobeRGB"}


@pytest.fixture(scope="module")
def config():
    return ocio.Config.CreateFromFile("ocio://default")


def ocio_convert(config, rgb, src, dst):
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    config.getProcessor(src, dst).getDefaultCPUProcessor().applyRGB(out.reshape(-1, 3))
    return out


def patch_image(scale: int = 4) -> np.ndarray:
    return np.repeat(np.repeat(PATCHES[None], scale, axis=0), scale, axis=1)


def save(path, rgb: np.ndarray, **kw):
    Image.fromarray(rgb).save(path, **kw)
    return path


def png_with_chunk(path, rgb: np.ndarray, kind: bytes, payload: bytes):
    """A PNG with one extra ancillary chunk inserted right after IHDR."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    data = buf.getvalue()
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
    return path


def exif_bytes(color_space: int, interop_index: str | None) -> bytes:
    """Little-endian EXIF: IFD0 -> Exif IFD (ColorSpace) -> Interop IFD (InteropIndex)."""
    entries = [(0xA001, 3, 1, struct.pack("<HH", color_space, 0))]
    interop_at = 26 + 2 + 12 * 2 + 4
    if interop_index is not None:
        entries.append((0xA005, 4, 1, struct.pack("<I", interop_at)))
    tiff = b"II*\x00" + struct.pack("<I", 8)
    tiff += struct.pack("<H", 1) + struct.pack("<HHI", 0x8769, 4, 1) + struct.pack("<I", 26) + struct.pack("<I", 0)
    tiff += struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", t, k, n) + v for t, k, n, v in entries)
    tiff += struct.pack("<I", 0)
    if interop_index is not None:
        tiff += b"\0" * (interop_at - len(tiff))
        tiff += struct.pack("<H", 1) + struct.pack("<HHI", 0x0001, 2, 4) + interop_index.encode()[:3] + b"\0" + struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff


# ----------------------------------------------------------------------------- profiles
@pytest.mark.parametrize("name", list(C.INPUT_SPACES))
def test_made_profiles_agree_with_littlecms(name):
    """LittleCMS, converting our profile to its own sRGB, gives what our matrices give (8-bit)."""
    space = C.INPUT_SPACES[name]
    profile = ImageCms.ImageCmsProfile(io.BytesIO(I.make_icc_profile(space)))
    transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    lcms = np.asarray(ImageCms.applyTransform(Image.fromarray(PATCHES[None]), transform), dtype=np.float64)[0]
    lin = I.decode_linear(PATCHES / 255.0, I.from_name(name))
    ours = C.linear_to_srgb(np.clip(C.apply_matrix(lin, C.rgb_conversion_matrix(space, C.OUTPUT_SPACES["lin-rec709"])), 0, 1)) * 255
    assert np.abs(lcms - ours).max() <= 1.0


@pytest.mark.parametrize("name", list(C.INPUT_SPACES))
def test_made_profiles_are_recognised(name):
    space, transfer = I.recognise_icc(I.parse_icc(I.make_icc_profile(C.INPUT_SPACES[name])))
    assert (space.name, transfer) == (name, C.INPUT_SPACES[name].transfer)


def test_pillow_srgb_profile_is_recognised_as_srgb():
    data = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    space, transfer = I.recognise_icc(I.parse_icc(data))
    assert (space.name, transfer) == ("srgb", "srgb")


def test_linear_profile_is_recognised_with_linear_curve():
    data = I.make_icc_profile(C.INPUT_SPACES["display-p3"], transfer="linear")
    space, transfer = I.recognise_icc(I.parse_icc(data))
    assert (space.name, transfer) == ("display-p3", "linear")


# ----------------------------------------------------------------------------- patch sets
@pytest.mark.parametrize("name", ["display-p3", "adobe-rgb"])
@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_patch_set_round_trips_to_known_linear_values(config, tmp_path, name, fmt):
    """A tagged P3 / Adobe RGB patch file decodes to OCIO's linear values, within 1e-4."""
    img = patch_image()
    path = save(tmp_path / f"patches.{fmt}", img, icc_profile=I.make_icc_profile(C.INPUT_SPACES[name]))
    ldr = read_ldr(path)
    assert ldr.color.name == name and ldr.color.source == "icc"
    np.testing.assert_array_equal(np.round(ldr.rgb * 255).astype(np.uint8), img)  # pixels stay as stored
    lin = I.decode_linear(ldr.rgb, ldr.color)
    linear_name = {"display-p3": "Linear P3-D65", "adobe-rgb": "Linear AdobeRGB"}[name]
    want = ocio_convert(config, img / 255.0, OCIO_ENCODED[name], linear_name)
    np.testing.assert_allclose(lin, want, atol=1e-4)
    # ... and to the known Rec.709 and ACEScg values of those patches
    for ours, theirs in (("lin-rec709", "Linear Rec.709 (sRGB)"), ("acescg", "ACEScg")):
        got = C.OutputTransform(ours).apply(lin, I.engine_output_space(ldr.color))
        np.testing.assert_allclose(got, ocio_convert(config, img / 255.0, OCIO_ENCODED[name], theirs), atol=1e-4)
    # a saturated P3/Adobe red lies outside Rec.709: negative green/blue, not clipped
    red = C.OutputTransform("lin-rec709").apply(lin[0, 0], I.engine_output_space(ldr.color))
    assert red[0] > 1.0 and min(red[1], red[2]) < 0.0


def test_engine_input_keeps_p3_values_and_reencodes_adobe():
    rgb = PATCHES[None] / 255.0
    p3 = I.from_name("display-p3")
    np.testing.assert_array_equal(I.engine_input(rgb, p3), rgb.astype(np.float32))
    adobe = I.engine_input(rgb, I.from_name("adobe-rgb"))
    np.testing.assert_allclose(adobe, C.linear_to_srgb((rgb) ** (563 / 256)), atol=1e-6)
    assert not np.allclose(adobe, rgb, atol=1e-3)


# ----------------------------------------------------------------------------- tags
def test_untagged_file_is_srgb(tmp_path):
    ldr = read_ldr(save(tmp_path / "plain.png", patch_image()))
    assert (ldr.color.name, ldr.color.source, ldr.color.transfer) == ("srgb", "untagged", "srgb")
    jpg = read_ldr(save(tmp_path / "plain.jpg", patch_image()))
    assert (jpg.color.name, jpg.color.source) == ("srgb", "untagged")


def test_png_srgb_chunk(tmp_path):
    ldr = read_ldr(png_with_chunk(tmp_path / "s.png", patch_image(), b"sRGB", b"\x00"))
    assert (ldr.color.name, ldr.color.source) == ("srgb", "png-srgb")


@pytest.mark.parametrize(
    "cicp,name,transfer",
    [(bytes([12, 13, 0, 1]), "display-p3", "srgb"), (bytes([9, 1, 0, 1]), "rec2020", "rec709"), (bytes([1, 1, 0, 1]), "rec709", "rec709")],
)
def test_png_cicp_chunk(tmp_path, cicp, name, transfer):
    ldr = read_ldr(png_with_chunk(tmp_path / "c.png", patch_image(), b"cICP", cicp))
    assert (ldr.color.name, ldr.color.transfer, ldr.color.source) == (name, transfer, "cicp")


def test_png_cicp_wins_over_icc(tmp_path):
    buf = tmp_path / "both.png"
    save(buf, patch_image(), icc_profile=I.make_icc_profile(C.INPUT_SPACES["adobe-rgb"]))
    data = buf.read_bytes()
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    payload = bytes([12, 13, 0, 1])
    chunk = struct.pack(">I", 4) + b"cICP" + payload + struct.pack(">I", zlib.crc32(b"cICP" + payload) & 0xFFFFFFFF)
    buf.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
    assert read_ldr(buf).color.name == "display-p3"


def test_png_cicp_pq_is_refused(tmp_path):
    with pytest.raises(ImageReadError, match="PQ"):
        read_ldr(png_with_chunk(tmp_path / "pq.png", patch_image(), b"cICP", bytes([9, 16, 0, 1])))


@pytest.mark.parametrize("cs,index,name", [(0xFFFF, "R03", "adobe-rgb"), (1, "R98", "srgb"), (1, None, "srgb")])
def test_exif_colorspace_and_interop_index(tmp_path, cs, index, name):
    path = save(tmp_path / "exif.jpg", patch_image(), exif=exif_bytes(cs, index), quality=95)
    ldr = read_ldr(path)
    assert (ldr.color.name, ldr.color.source) == (name, "exif")


def test_exif_uncalibrated_without_index_is_untagged(tmp_path):
    ldr = read_ldr(save(tmp_path / "u.jpg", patch_image(), exif=exif_bytes(0xFFFF, None)))
    assert ldr.color.source == "untagged"


def test_icc_wins_over_exif(tmp_path):
    path = save(tmp_path / "both.jpg", patch_image(), exif=exif_bytes(1, "R98"), icc_profile=I.make_icc_profile(C.INPUT_SPACES["display-p3"]))
    assert read_ldr(path).color.name == "display-p3"


def test_cmyk_jpeg_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "print.jpg"
    Image.fromarray(patch_image()).convert("CMYK").save(path)
    with pytest.raises(ImageReadError, match="CMYK image: convert it to RGB first"):
        read_ldr(path)
    assert cli.main(["convert", str(path), "-o", str(tmp_path / "print.exr"), "-q"]) == 1
    assert "CMYK" in capsys.readouterr().err
    assert not (tmp_path / "print.exr").exists()


# ----------------------------------------------------------------------------- other profiles
WIDE = C.RGBSpace("wide", "A wide test space", ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), C.WHITE_D50, "adobe-rgb")


def test_unknown_profile_goes_through_littlecms_and_says_so(tmp_path):
    data = I.make_icc_profile(WIDE, description="Wide test")
    path = save(tmp_path / "wide.png", patch_image(), icc_profile=data)
    ldr = read_ldr(path)
    assert ldr.color.convert_icc == data and "LittleCMS" in ldr.color.note
    assert ldr.color.metadata()["hdrPluginInputProfile"] == "Wide test"
    got = I.engine_input(ldr.rgb, ldr.color)
    transform = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(data)), ImageCms.createProfile("sRGB"), "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    want = np.asarray(ImageCms.applyTransform(Image.fromarray(patch_image()), transform), dtype=np.float32) / 255.0
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(got, ldr.rgb, atol=2 / 255)


#: close to sRGB (little gamut clipping, where a lattice cannot follow the kinks) but not recognised
NEAR_SRGB = C.RGBSpace("near", "Near sRGB", ((0.63, 0.34), (0.31, 0.59), (0.155, 0.07)), C.WHITE_D65, "adobe-rgb")


def test_unknown_profile_on_16_bit_data_uses_the_lattice(tmp_path):
    data = I.make_icc_profile(NEAR_SRGB)
    assert I.recognise_icc(I.parse_icc(data)) is None
    rgb16 = np.random.default_rng(0).integers(0, 65536, (16, 16, 3)).astype(np.float32) / 65535.0
    color = I.InputColor(C.INPUT_SPACES["srgb"], "srgb", "icc", convert_icc=data)
    got = I.engine_input(rgb16, color)
    exact8 = I.engine_input(np.round(rgb16 * 255) / 255, color)
    assert np.abs(got - exact8).max() < 3 / 255  # 8-bit transform; lattice step 5 codes
    assert np.abs(got - exact8).mean() < 0.5 / 255


# ----------------------------------------------------------------------------- CLI / API
def test_input_space_override_and_metadata(tmp_path):
    import OpenEXR

    src = save(tmp_path / "plain.png", patch_image(8))
    assert cli.main(["convert", str(src), "-o", str(tmp_path / "a.exr"), "-q", "--input-space", "display-p3"]) == 0
    assert cli.main(["convert", str(src), "-o", str(tmp_path / "b.exr"), "-q"]) == 0
    with OpenEXR.File(str(tmp_path / "a.exr")) as f:
        a = dict(f.header())
    with OpenEXR.File(str(tmp_path / "b.exr")) as f:
        b = dict(f.header())
    assert (a["hdrPluginInputSpace"], a["hdrPluginInputSource"]) == ("display-p3", "user")
    assert (b["hdrPluginInputSpace"], b["hdrPluginInputSource"]) == ("srgb", "untagged")


def test_api_input_space_matches_engine_plus_matrix(config):
    import hdr_plugin
    from hdr_plugin.pipeline import load_engine

    rgb = patch_image(8)
    got = hdr_plugin.apply(rgb, channel_order="rgb", device="cpu", precision="fp32", input_space="display-p3", output_space="acescg")
    native = load_engine(device="cpu", precision="fp32").reconstruct(rgb).image  # P3 code values, untouched
    np.testing.assert_allclose(got, ocio_convert(config, native, "Linear P3-D65", "ACEScg"), atol=1e-4)
    with pytest.raises(ValueError, match="unknown input space"):
        hdr_plugin.apply(rgb, channel_order="rgb", input_space="prophoto")


def test_acceptance_p3_photo_to_acescg(config, tmp_path):
    """`hdr-plugin convert p3_photo.jpg --output-space acescg -o x.exr`: OCIO's ACEScg
    conversion of the engine's reconstruction of the correctly decoded (untouched P3) input."""
    import OpenEXR

    from hdr_plugin.pipeline import load_engine

    rng = np.random.default_rng(5)
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    photo = np.stack([0.9 + 0.3 * np.sin(xx / 5.0), yy / h, 0.4 + 0.0 * xx], axis=-1) * 255
    photo = np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
    src = save(tmp_path / "p3_photo.jpg", photo, quality=95, icc_profile=I.make_icc_profile(C.INPUT_SPACES["display-p3"]))
    out = tmp_path / "x.exr"
    assert cli.main(["convert", str(src), "--output-space", "acescg", "-o", str(out), "--float", "--device", "cpu", "--precision", "fp32", "-q"]) == 0
    with OpenEXR.File(str(out), separate_channels=True) as f:
        ch, header = f.parts[0].channels, dict(f.parts[0].header)
        got = np.stack([ch[c].pixels for c in "RGB"], axis=-1)
    decoded = read_ldr(src)
    assert decoded.color.name == "display-p3"
    native = load_engine(device="cpu", precision="fp32").reconstruct(decoded.rgb).image  # scene-linear P3-D65
    want = ocio_convert(config, native, "Linear P3-D65", "ACEScg")
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(header["chromaticities"], (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767), atol=1e-6)
    np.testing.assert_allclose(header["adoptedNeutral"], (0.32168, 0.33767), atol=1e-6)
    assert header["hdrPluginInputSpace"] == "display-p3" and header["hdrPluginColorSpace"] == "acescg"
    # treating the P3 file as sRGB would give a visibly different (desaturated) result
    wrong = ocio_convert(config, native, "Linear Rec.709 (sRGB)", "ACEScg")
    assert np.abs(wrong - got).max() > 0.01
