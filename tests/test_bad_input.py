"""Bad input and faults: every decoder failure is an ImageReadError naming the file and the
problem, limits are checked from the header before decoding, corrupt data is an error
unless allowed, hostile weights manifests are refused before any network is built, bad
options are named, and a folder run with bad files among good ones converts the good ones
and prints a summary (issue 11).  Every file here is built for real: truncations, header
lies with recomputed CRCs, decompression bombs, corrupt JPEG entropy data, mutated EXRs.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import OpenEXR
import pytest
import yaml

from hdr_plugin import cli
from hdr_plugin.io import (
    CorruptImageError,
    CorruptImageWarning,
    ImageReadError,
    ImageTooLargeError,
    probe_image,
    read_hdr,
    read_input,
    read_ldr,
)
from hdr_plugin.weights import WeightsError, config_sha256, load_model, read_manifest, update_manifest


def run(*args) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    rng = np.random.default_rng(11)
    a = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3)).astype(np.float32), (9, 9), 3)
    a[:20, :30] = 255
    return np.clip(a, 0, 255).astype(np.uint8)


def _encode(ext: str, a: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, a, list(params))
    assert ok
    return buf.tobytes()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with its IHDR claiming another size; the CRC is recomputed, so only
    the size is a lie."""
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    return png[:8] + _png_chunk(b"IHDR", bytes(ihdr)) + png[33:]


def _jpeg_with_size(jpg: bytes, width: int, height: int) -> bytes:
    b = bytearray(jpg)
    sof = b.find(b"\xff\xc0")
    b[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(b)


def _exr_bytes(tmp_path: Path, rgb: np.ndarray, compression="ZIP_COMPRESSION") -> bytes:
    p = tmp_path / "src.exr"
    header = {"compression": getattr(OpenEXR, compression), "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {c: np.ascontiguousarray(rgb[:, :, i]).astype(np.float16) for i, c in enumerate("RGB")}) as f:
        f.write(str(p))
    data = p.read_bytes()
    p.unlink()
    return data


@pytest.fixture(scope="module")
def files(picture, tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("src")
    lin = (picture[:, :, ::-1].astype(np.float32) / 255.0) ** 2.2
    return {
        "png": _encode(".png", picture),
        "jpg": _encode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 92]),
        "tif": _encode(".tif", picture, [cv2.IMWRITE_TIFF_COMPRESSION, 1]),
        "webp": _encode(".webp", picture, [cv2.IMWRITE_WEBP_QUALITY, 101]),
        "exr": _exr_bytes(tmp, lin),
        "exr_none": _exr_bytes(tmp, lin, "NO_COMPRESSION"),
    }


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _read(p: Path, **kw):
    return read_input(p, "display", **kw)


# --------------------------------------------------------------------------- truncation
@pytest.mark.parametrize("kind", ["png", "jpg", "tif", "webp", "exr", "exr_none"])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_files_are_named_and_say_truncated(tmp_path, files, kind, keep):
    data = files[kind]
    ext = "exr" if kind.startswith("exr") else kind
    p = _write(tmp_path, f"cut.{ext}", data[: int(len(data) * keep)])
    with pytest.raises(CorruptImageError) as e:
        _read(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and e.value.path == p
    assert "truncated" in msg or "corrupt" in msg, msg
    if kind in ("png", "jpg", "tif", "exr", "exr_none"):  # found from the structure, before decoding
        assert "truncated" in msg, msg


def test_truncated_exr_says_truncated_exr_not_an_index_error(tmp_path, files):
    p = _write(tmp_path, "cut.exr", files["exr"][:-40])
    with pytest.raises(CorruptImageError, match=r"truncated EXR"):
        read_hdr(p)


def test_empty_and_non_image_files(tmp_path):
    empty = _write(tmp_path, "empty.exr", b"")
    with pytest.raises(ImageReadError, match=r"empty\.exr: empty file \(0 bytes\)") as e:
        _read(empty)
    assert "--input-encoding" not in str(e.value)  # it was told to pass --input-encoding before
    text = _write(tmp_path, "notes.png", b"hello, this is a text file\n" * 10)
    with pytest.raises(ImageReadError, match=r"notes\.png: not an image"):
        _read(text)
    zeros = _write(tmp_path, "zeros.jpg", bytes(4096))
    with pytest.raises(ImageReadError, match="not an image"):
        read_ldr(zeros)


def test_format_comes_from_the_content_not_the_name(tmp_path, files, picture):
    p = _write(tmp_path, "really_a_png.exr", files["png"])
    img = read_input(p)  # no --input-encoding needed: it is an 8-bit image
    assert img.bit_depth == 8 and img.rgb.shape == picture.shape
    exr_named_png = _write(tmp_path, "really_an_exr.png", files["exr"])
    with pytest.raises(ImageReadError, match="holds float data .*--input-encoding display"):
        read_input(exr_named_png)
    assert read_input(exr_named_png, "display").rgb.shape == picture.shape


def test_missing_folder_symlink_loop_and_broken_link(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_ldr(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_ldr(tmp_path)
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    with pytest.raises(ImageReadError, match="symbolic link loop"):
        read_ldr(loop)
    broken = tmp_path / "broken.png"
    os.symlink(tmp_path / "gone.png", broken)
    with pytest.raises(ImageReadError, match="broken symbolic link"):
        read_ldr(broken)


# --------------------------------------------------------------------------- header lies and bombs
def test_png_header_claiming_60000x60000_is_refused_before_decoding(tmp_path, files):
    p = _write(tmp_path, "lie.png", _png_with_size(files["png"], 60000, 60000))
    head = probe_image(p)
    assert (head.format, head.width, head.height) == ("PNG", 60000, 60000)
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as e:
        _read(p)
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert msg.startswith(f"{p}: PNG header claims 60000x60000 pixels") and "above the limit of 120000000" in msg
    assert "raise it with --max-pixels" in msg
    # with the limit raised, the lie is found by the decoder instead: still our error, with the name
    with pytest.raises(ImageReadError, match=str(p)):
        _read(p, max_pixels=None)


def test_jpeg_and_exr_header_lies_are_refused(tmp_path, files):
    jpg = _write(tmp_path, "lie.jpg", _jpeg_with_size(files["jpg"], 60000, 60000))
    with pytest.raises(ImageTooLargeError, match=r"JPEG header claims 60000x60000 pixels .*--max-pixels"):
        _read(jpg)
    b = bytearray(files["exr"])
    dw = b.find(b"dataWindow\0box2i\0") + len(b"dataWindow\0box2i\0") + 4
    b[dw + 8 : dw + 16] = struct.pack("<ii", 59999, 59999)  # xMax, yMax
    exr = _write(tmp_path, "lie.exr", bytes(b))
    with pytest.raises(ImageTooLargeError, match=r"OpenEXR header claims 60000x60000"):
        _read(exr)
    with pytest.raises(ImageReadError, match=r"lie\.exr: truncated EXR"):  # limit lifted: the chunk table gives it away
        _read(exr, max_pixels=None)


def test_png_decompression_bomb_is_refused_from_its_header(tmp_path):
    """A real 12000x12000 PNG (144 MP of zeros) in about 140 KB: refused by the default limit
    without inflating it."""
    w = h = 12000
    z = zlib.compressobj(9)
    row = bytes(w + 1)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    assert len(png) < 300_000
    p = _write(tmp_path, "bomb.png", png)
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"12000x12000 pixels \(144\.0 MP\), above the limit"):
        _read(p)
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(ImageTooLargeError, match="above the limit of 1000000"):
        _read(p, max_pixels=1_000_000)


# --------------------------------------------------------------------------- corrupt but decodable
def _corrupt_jpeg(jpg: bytes) -> bytes:
    """A restart marker in the middle of the entropy-coded data: libjpeg decodes the rest as
    grey and only says "Corrupt JPEG data: premature end of data segment" on stderr."""
    sos = jpg.find(b"\xff\xda")
    mid = sos + (len(jpg) - sos) // 2
    return jpg[:mid] + b"\xff\xd3" + jpg[mid:]


def test_corrupt_jpeg_entropy_data_is_an_error_unless_allowed(tmp_path, files, picture, capfd):
    p = _write(tmp_path, "corrupt.jpg", _corrupt_jpeg(files["jpg"]))
    with pytest.raises(CorruptImageError) as e:
        _read(p)
    assert "Corrupt JPEG data" in str(e.value) and "--allow-corrupt" in str(e.value)
    assert "Corrupt JPEG" not in capfd.readouterr().err  # the decoder's own line was captured, not leaked
    with pytest.warns(CorruptImageWarning, match=r"corrupt\.jpg: corrupt JPEG data .*converted anyway"):
        img = _read(p, allow_corrupt=True)
    assert img.rgb.shape == picture.shape
    good = read_ldr(_write(tmp_path, "good.jpg", files["jpg"]))
    assert np.abs(img.rgb - good.rgb).mean() > 0.01  # the garbage the warning was about


def test_png_crc_error_in_an_ancillary_chunk_is_an_error_unless_allowed(tmp_path, files, picture):
    png = files["png"]
    text = _png_chunk(b"tEXt", b"Comment\0made by a test")
    bad = bytearray(text)
    bad[-1] ^= 0xFF  # wrong CRC: libpng would drop the chunk silently
    p = _write(tmp_path, "crc.png", png[:33] + bytes(bad) + png[33:])
    with pytest.raises(CorruptImageError, match=r"crc\.png: corrupt PNG: CRC error in the 'tEXt' chunk"):
        _read(p)
    with pytest.warns(CorruptImageWarning):
        img = _read(p, allow_corrupt=True)
    np.testing.assert_array_equal(img.rgb, picture[:, :, ::-1] / np.float32(255))


def test_mutated_exr_data_is_our_error(tmp_path, files):
    b = bytearray(files["exr"])
    for i in range(len(b) - 200, len(b) - 20, 7):  # inside the compressed chunks
        b[i] ^= 0x5A
    p = _write(tmp_path, "mutated.exr", bytes(b))
    with pytest.raises(CorruptImageError, match=r"mutated\.exr: corrupt EXR data"):
        _read(p)
    b = bytearray(files["exr"])
    b[4] = 7  # version
    with pytest.raises(ImageReadError, match="unsupported OpenEXR version 7"):
        _read(_write(tmp_path, "version.exr", bytes(b)))


def test_valid_files_still_read(tmp_path, files, picture):
    for kind in ("png", "tif", "webp"):
        img = _read(_write(tmp_path, f"ok.{kind}", files[kind]))
        np.testing.assert_array_equal(img.rgb, picture[:, :, ::-1] / np.float32(255))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _read(_write(tmp_path, "ok.jpg", files["jpg"])).rgb.shape == picture.shape
        assert _read(_write(tmp_path, "ok.exr", files["exr"])).rgb.shape == picture.shape


# --------------------------------------------------------------------------- weights
@pytest.fixture
def weights_copy(tiny_weights, tmp_path) -> Path:
    dst = tmp_path / "w"
    shutil.copytree(tiny_weights, dst)
    return dst


def _manifest(folder: Path) -> dict:
    return yaml.safe_load((folder / "manifest.yaml").read_text())


def _set_config(folder: Path, **changes) -> None:
    """Change the config *and* its hash, as an attacker who knows the format would."""
    m = _manifest(folder)
    raw = yaml.safe_load(m["model_config"])
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for k in parents:
            node = node[k]
        node[leaf] = value
    update_manifest(folder, model_config=yaml.safe_dump(raw, sort_keys=False))


def test_shipped_manifest_has_a_config_hash_that_matches():
    from hdr_plugin.weights import shipped_weights_dir

    info = read_manifest(shipped_weights_dir())
    assert info.manifest["config_sha256"] == config_sha256(info.manifest["model_config"])


def test_new_exports_hash_the_config_and_a_legacy_manifest_still_loads(weights_copy):
    m = _manifest(weights_copy)
    assert m["config_sha256"] == config_sha256(m["model_config"])
    del m["config_sha256"]
    (weights_copy / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    model, info = load_model(weights_copy)
    assert info.config.name == "tiny-test"


def test_editing_the_config_without_its_hash_is_refused(weights_copy):
    path = weights_copy / "manifest.yaml"
    path.write_text(path.read_text().replace("mask_threshold: 0.88", "mask_threshold: 0.5"))
    with pytest.raises(WeightsError, match=r"manifest\.yaml: model_config was changed after export"):
        read_manifest(weights_copy)


def test_config_changed_with_a_recomputed_hash_is_caught_by_the_file(weights_copy):
    _set_config(weights_copy, **{"hallucination.mask_threshold": 0.5})  # same shapes, other behaviour
    with pytest.raises(WeightsError, match=r"not the config these weights were exported with .*hdr_plugin\.safetensors records"):
        load_model(weights_copy)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("dequantization.widths", [4096, 4096, 4096, 4096, 4096], r"dequantization\.widths\[0\] = 4096 is outside 1\.\.512"),
        ("hallucination.width", 100000, r"hallucination\.width = 100000 is outside 1\.\.128"),
        ("padding_multiple", 0, r"padding_multiple = 0 is outside 32\.\.512"),
        ("padding_multiple", 48, r"padding_multiple = 48 must be a multiple of 32"),
        ("refinement.widths", [4, 8], r"refinement\.widths must be a list of 5"),
        ("linearization.input_size", 1, r"linearization\.input_size = 1 is outside"),
        ("linearization.anchor", "rm -rf", r"linearization\.anchor must be 'srgb' or 'emor'"),
        ("hallucination.mask_threshold", float("nan"), r"hallucination\.mask_threshold = nan is outside"),
        ("linearization.width", True, r"linearization\.width must be a whole number"),
    ],
)
def test_hostile_model_configs_are_refused_before_building(weights_copy, field, value, words):
    _set_config(weights_copy, **{field: value})
    t0 = time.perf_counter()
    with pytest.raises(WeightsError, match=r"manifest\.yaml: invalid model_config: " + words + r".*re-export"):
        load_model(weights_copy)
    assert time.perf_counter() - t0 < 2.0


def test_a_config_too_big_to_build_is_refused_on_the_meta_device(weights_copy):
    _set_config(weights_copy, **{"dequantization.widths": [512] * 5, "refinement.widths": [512] * 5, "hallucination.width": 128})
    t0 = time.perf_counter()
    with pytest.raises(WeightsError, match=r"asks for \d+ M parameters, above the limit"):
        load_model(weights_copy)
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.parametrize(
    "text, words",
    [
        ("!!python/object/apply:os.system ['echo hacked']\n", "YAML tag that is not plain data"),
        ("format: [unclosed\n", r"not valid YAML at line \d"),
        ("- just\n- a list\n", "not a mapping of fields"),
        ("format: hdr-plugin-weights/1\nfile: hdr_plugin.safetensors\nmodel_config: 'x: 1'\n", r"the field 'sha256' must be a str \(missing\)"),
    ],
)
def test_broken_manifests_name_the_file_and_say_what_to_do(weights_copy, text, words):
    (weights_copy / "manifest.yaml").write_text(text)
    with pytest.raises(WeightsError, match=r"manifest\.yaml.*" + words + r".*(Reinstall|re-export)"):
        read_manifest(weights_copy)


def test_manifest_file_outside_the_folder_and_bad_hashes(weights_copy):
    m = _manifest(weights_copy)
    for key, value, words in [
        ("file", "../../etc/passwd", "must name a .safetensors file in the same folder"),
        ("sha256", "abc", "64 lowercase hex digits"),
        ("precision_checks", {"cpu_bf16": "lots"}, "precision_checks must map names"),
    ]:
        bad = dict(m, **{key: value})
        (weights_copy / "manifest.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(WeightsError, match=words):
            read_manifest(weights_copy)


def test_damaged_safetensors_names_the_file(weights_copy):
    st = weights_copy / "hdr_plugin.safetensors"
    st.write_bytes(st.read_bytes()[:200])
    with pytest.raises(WeightsError, match=r"hdr_plugin\.safetensors is not a valid safetensors file .*(Reinstall|re-export)"):
        load_model(weights_copy, verify=False)
    st.write_bytes(b"\x10\0\0\0\0\0\0\0{not json at all")
    with pytest.raises(WeightsError, match=r"hdr_plugin\.safetensors is not a valid safetensors file"):
        load_model(weights_copy, verify=False)


def test_cli_with_broken_weights_exits_2_with_one_line(weights_copy, tmp_path, files, capsys):
    (weights_copy / "manifest.yaml").write_text("!!python/name:os.system\n")
    src = _write(tmp_path, "a.png", files["png"])
    assert run("convert", src, "-o", tmp_path / "out", "--weights", weights_copy, "-q") == 2
    err = capsys.readouterr().err
    assert "manifest.yaml" in err and "Traceback" not in err


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "option, words",
    [
        (["--tile-overlap", "-50"], "--tile-overlap must be 0 or more"),
        (["--tile", "-5"], "--tile must be 0 or at least 64"),
        (["--tile", "huge"], "--tile takes a pixel count"),
        (["--exposure", "nan"], "--exposure must be a finite number"),
        (["--exposure", "inf"], "--exposure must be a finite number"),
        (["--max-pixels", "-3"], "--max-pixels must be a positive"),
        (["--max-pixels", "lots"], "--max-pixels takes a pixel count"),
        (["--suffix", "../x"], "--suffix .* cannot contain a path separator"),
    ],
)
def test_bad_options_are_named(tmp_path, option, words, capsys):
    with pytest.raises(SystemExit) as e:
        run("convert", tmp_path / "a.png", *option)
    assert e.value.code == 2
    assert re.search(words, capsys.readouterr().err)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("short.txt", "0\n0.5\n1\n", r"holds 3 samples, an inverse camera curve has 1024"),
        ("words.txt", "zero one two\n", "not a readable text file of numbers"),
        ("pickle.npy", None, "not a readable .npy array"),
        ("falling.txt", "\n".join(str(1 - i / 1023) for i in range(1024)), "must rise monotonically from 0 to 1"),
        ("nan.txt", "\n".join(["nan"] * 1024), "NaN or infinite"),
    ],
)
def test_bad_curve_files_are_named(tmp_path, files, name, content, words, capsys):
    curve = tmp_path / name
    if content is None:  # an object array: np.load refuses pickles
        np.save(curve, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        curve.write_text(content)
    src = _write(tmp_path, "a.png", files["png"])
    assert run("convert", src, "-o", tmp_path / "out.exr", "--curve", curve, "-q") == 2
    err = capsys.readouterr().err
    assert f"--curve {curve}: " in err and re.search(words, err), err
    assert not (tmp_path / "out.exr").exists()


# --------------------------------------------------------------------------- folder runs
def test_folder_with_bad_files_among_good_ones_converts_the_good_ones(tmp_path, files, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _write(src, "a_good.png", files["png"])
    _write(src, "b_truncated.png", files["png"][: len(files["png"]) // 2])
    _write(src, "c_lie.png", _png_with_size(files["png"], 60000, 60000))
    _write(src, "d_corrupt.jpg", _corrupt_jpeg(files["jpg"]))
    _write(src, "e_text.png", b"not an image")
    _write(src, "f_good.jpg", files["jpg"])
    _write(src, "g_cut.tif", files["tif"][:3000])
    out = tmp_path / "out"
    assert run("convert", src, "-o", out, "--tile", "0") == 1
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a_good.exr", "f_good.exr"]
    assert "2 converted, 0 skipped, 5 failed" in err
    for name, words in [
        ("b_truncated.png", "truncated PNG"),
        ("c_lie.png", "claims 60000x60000 pixels"),
        ("d_corrupt.jpg", "Corrupt JPEG data"),
        ("e_text.png", "not an image"),
        ("g_cut.tif", "truncated TIFF"),
    ]:
        assert any(line.startswith(f"  failed: {src / name}: ") and words in line for line in err.splitlines()), (name, err)
    assert "Traceback" not in err
    assert not list(out.glob(".*partial*"))

    # --allow-corrupt converts the corrupt JPEG with a warning; --max-pixels none lets the lie reach the decoder
    assert run("convert", src / "d_corrupt.jpg", "-o", out / "d.exr", "--allow-corrupt", "--tile", "0") == 0
    assert "warning: " in capsys.readouterr().err and (out / "d.exr").is_file()


class _BuggyPlugin:
    """A real plugin with a bug that shows only on one file."""

    def __init__(self, victim: str):
        self.victim = victim

    from hdr_plugin import hookimpl

    @hookimpl
    def hdr_stage_output(self, stage, image, context):
        if stage == "dequantized" and str(context.source).endswith(self.victim):
            {}["missing"]  # KeyError: not one of the errors the CLI expects


def test_unexpected_exception_is_an_internal_error_for_that_file_only(tmp_path, files, capsys):
    from hdr_plugin.plugins import register_plugin, unregister_plugin

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        _write(src, name, files["png"])
    plugin = _BuggyPlugin("b.png")
    register_plugin(plugin)
    try:
        assert run("convert", src, "-o", tmp_path / "out", "--tile", "0") == 1
        err = capsys.readouterr().err
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.exr", "c.exr"]
        line = next(x for x in err.splitlines() if f"error: {src / 'b.png'}: " in x)  # tqdm may share the line
        assert "internal error while converting" in line and "KeyError" in line and "--debug" in line
        assert "Traceback" not in err and "2 converted, 0 skipped, 1 failed" in err
        assert run("convert", src / "b.png", "-o", tmp_path / "debug.exr", "--tile", "0", "--debug") == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and "KeyError" in err
    finally:
        unregister_plugin(plugin)


def test_cli_names_symlink_loops_and_broken_links(tmp_path, capsys):
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    broken = tmp_path / "broken.png"
    os.symlink(tmp_path / "gone.png", broken)
    assert run("convert", loop, broken, "-q") == 2
    err = capsys.readouterr().err
    assert f"{loop}: symbolic link loop" in err and f"{broken}: broken symbolic link" in err
