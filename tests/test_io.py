"""Image reading and writing (hdr_plugin.io)."""

from __future__ import annotations

import os
import stat

import cv2
import numpy as np
import OpenEXR
import pytest
from PIL import Image, ImageOps

from hdr_plugin.color import REC709_CHROMATICITIES
from hdr_plugin.io import HALF_MAX, ImageReadError, atomic_output, read_hdr, read_ldr, write_exr, write_hdr, write_image


def _exr(path):
    """(header, {channel: pixels}) of an EXR file, read back with the OpenEXR package."""
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return dict(f.header()), {k: v.pixels.copy() for k, v in f.channels().items()}


@pytest.fixture
def bgr8(rng):
    return rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.fixture
def linear(rng):
    x = rng.uniform(0, 1, (21, 34, 3)).astype(np.float32) ** 2
    x[0, :5] = [[0, 0, 0], [1, 1, 1], [8, 4, 2], [300.5, 1000, 20000], [1e-4, 5e-5, 2e-3]]
    return x


# --------------------------------------------------------------------------- reading
@pytest.mark.parametrize("ext", [".png", ".tif", ".webp", ".bmp"])
def test_read_8bit_lossless_formats_as_rgb(tmp_path, bgr8, ext):
    p = tmp_path / f"img{ext}"
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []  # 101 = lossless
    assert cv2.imwrite(str(p), bgr8, params)
    img = read_ldr(p)
    assert img.bit_depth == 8 and img.alpha is None and img.path == p
    assert img.rgb.dtype == np.float32 and img.rgb.flags.c_contiguous
    np.testing.assert_array_equal(img.rgb, bgr8[:, :, ::-1].astype(np.float32) / 255)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_read_16bit(tmp_path, rng, ext):
    bgr16 = rng.integers(0, 65536, (19, 23, 3), dtype=np.uint16)
    p = tmp_path / f"img16{ext}"
    assert cv2.imwrite(str(p), bgr16)
    img = read_ldr(p)
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.rgb, bgr16[:, :, ::-1].astype(np.float32) / 65535)


def test_read_jpeg(tmp_path, bgr8):
    p = tmp_path / "img.jpg"
    smooth = cv2.GaussianBlur(bgr8, (9, 9), 3)
    assert cv2.imwrite(str(p), smooth, [cv2.IMWRITE_JPEG_QUALITY, 98])
    img = read_ldr(p)
    assert img.bit_depth == 8 and img.rgb.shape == (37, 53, 3)
    assert np.abs(img.rgb - smooth[:, :, ::-1] / 255).mean() < 0.01


def _orientation_test_image():
    """An asymmetric RGB image: a red block top-left, a green stripe along the bottom."""
    a = np.full((40, 60, 3), 40, np.uint8)
    a[:12, :16] = (250, 20, 20)
    a[-8:, :] = (20, 250, 20)
    return a


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation):
    stored = _orientation_test_image()
    p = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(p, quality=98, exif=exif)
    img = read_ldr(p)
    with Image.open(p) as im:  # Pillow's independent implementation of the EXIF rules
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32) / 255
    assert img.rgb.shape == expected.shape
    assert np.abs(img.rgb - expected).max() < 0.1
    if orientation == 6:  # "rotate 90 CW to display": the top-left red block ends up top-right
        assert img.rgb.shape == (60, 40, 3)
        assert img.rgb[2, -3, 0] > 0.9 and img.rgb[2, 2, 0] < 0.3
        assert img.rgb[30, 2, 1] > 0.9  # the bottom stripe is now on the left


def test_grayscale_becomes_three_equal_channels(tmp_path, rng):
    gray = rng.integers(0, 256, (17, 29), dtype=np.uint8)
    p = tmp_path / "gray.png"
    cv2.imwrite(str(p), gray)
    img = read_ldr(p)
    assert img.rgb.shape == (17, 29, 3) and img.alpha is None
    for c in range(3):
        np.testing.assert_array_equal(img.rgb[:, :, c], gray / np.float32(255))


def test_alpha_is_kept(tmp_path, rng):
    bgra = rng.integers(0, 256, (13, 31, 4), dtype=np.uint8)
    p = tmp_path / "rgba.png"
    cv2.imwrite(str(p), bgra)
    img = read_ldr(p)
    np.testing.assert_array_equal(img.rgb, bgra[:, :, 2::-1] / np.float32(255))
    np.testing.assert_array_equal(img.alpha, bgra[:, :, 3] / np.float32(255))
    # gray + alpha (2 channels) too
    la = rng.integers(0, 256, (9, 11, 2), dtype=np.uint8)
    q = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(q)
    img = read_ldr(q)
    assert img.rgb.shape == (9, 11, 3)
    np.testing.assert_array_equal(img.rgb[:, :, 1], la[:, :, 0] / np.float32(255))
    np.testing.assert_array_equal(img.alpha, la[:, :, 1] / np.float32(255))


def test_read_errors(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_ldr(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="not a readable"):
        read_ldr(bad)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="not a readable"):
        read_ldr(empty)
    assert issubclass(ImageReadError, ValueError)


def test_non_ascii_path(tmp_path, bgr8):
    p = tmp_path / "bilde_æøå_画像.png"
    ok, buf = cv2.imencode(".png", bgr8)
    buf.tofile(p)
    np.testing.assert_array_equal(read_ldr(p).rgb, bgr8[:, :, ::-1] / np.float32(255))


# --------------------------------------------------------------------------- EXR
def test_write_exr_defaults_half_rgb_zip_chromaticities(tmp_path, linear):
    p = write_exr(tmp_path / "a.exr", linear)
    header, ch = _exr(p)
    assert set(ch) == {"R", "G", "B"}
    assert all(v.dtype == np.float16 for v in ch.values())
    assert header["compression"] == OpenEXR.ZIP_COMPRESSION
    expected = [c for xy in REC709_CHROMATICITIES for c in xy]
    np.testing.assert_allclose(header["chromaticities"], expected, rtol=1e-6)
    np.testing.assert_allclose(np.stack([ch[c] for c in "RGB"], -1).astype(np.float32), linear, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(read_hdr(p), linear, rtol=1e-3, atol=1e-7)


def test_write_exr_with_alpha_and_attributes(tmp_path, linear, rng):
    alpha = rng.uniform(0, 1, linear.shape[:2]).astype(np.float32)
    p = write_exr(tmp_path / "a.exr", linear, alpha, attributes={"hdrPluginVersion": "9.9"})
    header, ch = _exr(p)
    assert set(ch) == {"R", "G", "B", "A"} and ch["A"].dtype == np.float16
    np.testing.assert_allclose(ch["A"].astype(np.float32), alpha, atol=5e-4)
    assert header["hdrPluginVersion"] == "9.9"
    assert "chromaticities" in header
    with pytest.raises(ValueError, match="alpha shape"):
        write_exr(tmp_path / "b.exr", linear, alpha[:-1])
    assert not (tmp_path / "b.exr").exists()


def test_write_exr_float_on_request_is_exact(tmp_path, linear):
    p = write_exr(tmp_path / "f.exr", linear, half=False)
    _, ch = _exr(p)
    assert all(v.dtype == np.float32 for v in ch.values())
    np.testing.assert_array_equal(read_hdr(p), linear)


def test_write_exr_switches_to_float_above_half_range(tmp_path, linear):
    big = linear.copy()
    big[3, 4, 1] = 70000.0
    _, ch = _exr(write_exr(tmp_path / "big.exr", big))
    assert ch["G"].dtype == np.float32 and ch["G"][3, 4] == 70000.0
    edge = linear.copy()
    edge[0, 0, 0] = HALF_MAX  # exactly representable: stays half
    _, ch = _exr(write_exr(tmp_path / "edge.exr", edge))
    assert ch["R"].dtype == np.float16 and ch["R"][0, 0] == HALF_MAX


@pytest.mark.parametrize("name,const", [("zip", "ZIP_COMPRESSION"), ("piz", "PIZ_COMPRESSION"), ("none", "NO_COMPRESSION"), ("rle", "RLE_COMPRESSION")])
def test_write_exr_compression(tmp_path, linear, name, const):
    p = write_exr(tmp_path / f"{name}.exr", linear, compression=name)
    header, _ = _exr(p)
    assert header["compression"] == getattr(OpenEXR, const)
    np.testing.assert_allclose(read_hdr(p), linear, rtol=1e-3, atol=1e-7)  # lossless at half precision


def test_write_exr_rejects_bad_data(tmp_path, linear):
    with pytest.raises(ValueError, match="unknown EXR compression 'lzw'"):
        write_exr(tmp_path / "x.exr", linear, compression="lzw")
    nan = linear.copy()
    nan[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        write_exr(tmp_path / "x.exr", nan)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        write_exr(tmp_path / "x.exr", linear[:, :, :2])
    assert list(tmp_path.iterdir()) == []


def test_read_luminance_chroma_and_luminance_only_exr(tmp_path, linear):
    p = tmp_path / "y.exr"
    y = linear[:, :, 1].copy()
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Y": y}) as f:
        f.write(str(p))
    got = read_hdr(p)
    assert got.shape == linear.shape
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], y)


# --------------------------------------------------------------------------- Radiance
def test_hdr_round_trip_about_one_percent(tmp_path, linear):
    p = write_hdr(tmp_path / "a.hdr", linear)
    got = read_hdr(p)
    assert got.shape == linear.shape and got.dtype == np.float32
    big = linear.max(axis=2, keepdims=True) > 1e-3
    # RGBE shares one exponent per pixel: each channel is within 1% of the pixel's largest one
    err = np.abs(got - linear) / linear.max(axis=2, keepdims=True).clip(1e-30)
    assert err[np.broadcast_to(big, err.shape)].max() < 0.01
    assert got[0, 3, 2] > 19000  # values far above 1 survive
    write_hdr(tmp_path / "neg.hdr", linear - 0.5)  # negatives become 0
    neg = read_hdr(tmp_path / "neg.hdr")
    assert neg.min() == 0.0 and neg.max() > 19000


def test_write_image_dispatches_on_extension(tmp_path, linear):
    write_image(tmp_path / "a.exr", linear, half=False, compression="piz")
    assert _exr(tmp_path / "a.exr")[0]["compression"] == OpenEXR.PIZ_COMPRESSION
    write_image(tmp_path / "a.hdr", linear, half=False, compression="piz", attributes={"x": "y"})
    assert read_hdr(tmp_path / "a.hdr").shape == linear.shape
    with pytest.raises(ValueError, match="unsupported output extension '.png'"):
        write_image(tmp_path / "a.png", linear)


# --------------------------------------------------------------------------- atomic writes
def test_refuses_to_overwrite_and_overwrite_true_replaces(tmp_path, linear):
    p = write_exr(tmp_path / "a.exr", linear)
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        write_exr(p, linear * 2)
    with pytest.raises(FileExistsError):
        write_hdr(p, linear * 2)
    assert p.read_bytes() == before
    write_exr(p, linear * 2, overwrite=True)
    np.testing.assert_allclose(read_hdr(p), linear * 2, rtol=1e-3, atol=1e-7)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.exr"]


def test_failure_while_writing_leaves_no_file_and_no_temp(tmp_path, linear):
    # an attribute OpenEXR cannot store fails inside the write, after the temp file exists
    with pytest.raises(Exception):
        write_exr(tmp_path / "a.exr", linear, attributes={"bad": object()})
    assert list(tmp_path.iterdir()) == []
    # a failure after bytes were written (e.g. interrupted) leaves neither output nor temp file
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "b.exr") as tmp:
            assert tmp.parent == tmp_path and tmp.exists()
            tmp.write_bytes(b"half-written")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    # and an existing file survives a failed overwrite untouched
    p = write_exr(tmp_path / "c.exr", linear)
    before = p.read_bytes()
    with pytest.raises(Exception):
        write_exr(p, linear * 3, overwrite=True, attributes={"bad": object()})
    assert p.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["c.exr"]


def test_written_files_get_normal_umask_permissions(tmp_path, linear):
    old = os.umask(0o027)
    try:
        p = write_exr(tmp_path / "a.exr", linear)
        q = write_hdr(tmp_path / "a.hdr", linear)
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert stat.S_IMODE(q.stat().st_mode) == 0o640
    r = write_exr(tmp_path / "b.exr", linear)
    assert stat.S_IMODE(r.stat().st_mode) == 0o666 & ~old


def test_output_folder_is_created(tmp_path, linear):
    p = write_exr(tmp_path / "new" / "deeper" / "a.exr", linear)
    assert p.is_file()
