"""The command line: ``hdr-plugin convert`` / ``info`` (hdr_plugin.cli), in-process through
``cli.main`` and as a real ``python -m hdr_plugin`` process, plus the fresh-venv install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import cv2
import numpy as np
import OpenEXR
import pytest

import hdr_plugin
from hdr_plugin import cli
from hdr_plugin.color import REC709_CHROMATICITIES
from hdr_plugin.io import read_hdr, read_ldr
from hdr_plugin.weights import read_manifest

CHROMA = [c for xy in REC709_CHROMATICITIES for c in xy]


def _exr(path):
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return dict(f.header()), {k: v.pixels.copy() for k, v in f.channels().items()}


def _rgb(channels):
    return np.stack([channels[c].astype(np.float32) for c in "RGB"], axis=-1)


@pytest.fixture(scope="module")
def crops():
    """Small BGR crops of the sample (fast to convert), with clipped highlights."""
    from conftest import ROOT

    img = cv2.imread(str(ROOT / "hdr_plugin" / "data" / "sample.png"), cv2.IMREAD_UNCHANGED)
    return [np.ascontiguousarray(img[64:128, 192:288]), np.ascontiguousarray(img[160:224, 224:320]), np.ascontiguousarray(img[300:364, 0:96])]


@pytest.fixture
def tree(tmp_path, crops):
    """in/a.png, in/b.jpg, in/notes.txt, in/sub/c.png"""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "a.png"), crops[0])
    cv2.imwrite(str(root / "b.jpg"), crops[1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(root / "sub" / "c.png"), crops[2])
    (root / "notes.txt").write_text("not an image")
    return root


def run(*args) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture
def engine(default_engine):
    """``convert`` runs the default quality."""
    return default_engine


def _expected(engine, path, exposure=0.0):
    return engine.reconstruct(read_ldr(path).rgb, exposure=exposure).image


# --------------------------------------------------------------------------- one file, as a real process
def test_convert_one_file_in_a_subprocess(tmp_path, sample_path, engine):
    before = sample_path.read_bytes()
    out = tmp_path / "out.exr"
    proc = subprocess.run([sys.executable, "-m", "hdr_plugin", "convert", str(sample_path), "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "1 converted, 0 skipped, 0 failed" in proc.stderr
    header, ch = _exr(out)
    assert set(ch) == {"R", "G", "B"} and all(v.dtype == np.float16 for v in ch.values())
    np.testing.assert_allclose(header["chromaticities"], CHROMA, rtol=1e-6)
    assert header["compression"] == OpenEXR.ZIP_COMPRESSION
    assert header["hdrPluginVersion"] == hdr_plugin.__version__
    assert header["hdrPluginWeights"] == engine.weights_info.sha256[:16]
    np.testing.assert_allclose(_rgb(ch), _expected(engine, sample_path), rtol=1e-3, atol=1e-4)
    assert sample_path.read_bytes() == before  # the input is never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]  # no temporary files left


def test_version_and_help():
    proc = subprocess.run([sys.executable, "-m", "hdr_plugin", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"hdr-plugin {hdr_plugin.__version__}"
    assert run() == 2


# --------------------------------------------------------------------------- inputs
def test_folder_without_recursive(tree, engine, capsys):
    assert run("convert", tree, "-q") == 0
    assert (tree / "a.exr").is_file() and (tree / "b.exr").is_file()
    assert not (tree / "sub" / "c.exr").exists() and not (tree / "notes.exr").exists()
    _, ch = _exr(tree / "a.exr")
    np.testing.assert_allclose(_rgb(ch), _expected(engine, tree / "a.png"), rtol=1e-3, atol=1e-4)


def test_folder_with_recursive(tree):
    assert run("convert", tree, "--recursive", "-q") == 0
    assert {p.relative_to(tree).as_posix() for p in tree.rglob("*.exr")} == {"a.exr", "b.exr", "sub/c.exr"}


def test_folder_to_output_folder(tree, tmp_path):
    out = tmp_path / "out"
    assert run("convert", tree, "-o", out, "-q") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.exr", "b.exr"]
    assert not list(tree.glob("*.exr"))


def test_recursive_output_folder_mirrors_the_tree(tree, tmp_path, crops):
    cv2.imwrite(str(tree / "c.png"), crops[0])  # same name as sub/c.png: must not collide
    out = tmp_path / "out"
    assert run("convert", tree, "-r", "-o", out, "-q") == 0
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.exr")} == {"a.exr", "b.exr", "c.exr", "sub/c.exr"}


def test_missing_curve_file_is_a_clean_error(tree, tmp_path, capsys):
    assert run("convert", tree / "a.png", "--curve", tmp_path / "nope.npy", "-q") == 2
    assert "nope.npy" in capsys.readouterr().err
    assert not (tree / "a.exr").exists()


def test_glob_pattern(tree):
    assert run("convert", str(tree / "*.png"), "-q") == 0  # expanded by the CLI, not a shell
    assert sorted(p.name for p in tree.glob("*.exr")) == ["a.exr"]
    assert run("convert", str(tree / "**" / "*.png"), "--recursive", "-q", "--skip-existing") == 0
    assert (tree / "sub" / "c.exr").is_file()


def test_suffix(tree):
    assert run("convert", tree / "a.png", "--suffix", "_linear", "-q") == 0
    assert (tree / "a_linear.exr").is_file() and not (tree / "a.exr").exists()


# --------------------------------------------------------------------------- existing outputs
def test_refuses_to_overwrite_by_default(tree, capsys):
    target = tree / "a.exr"
    target.write_bytes(b"precious")
    assert run("convert", tree / "a.png") == 1
    assert target.read_bytes() == b"precious"
    err = capsys.readouterr().err
    assert "exists (use --overwrite or --skip-existing)" in err and "0 converted, 0 skipped, 1 failed" in err


def test_skip_existing(tree, capsys):
    target = tree / "a.exr"
    target.write_bytes(b"precious")
    assert run("convert", tree / "a.png", tree / "b.jpg", "--skip-existing") == 0
    assert target.read_bytes() == b"precious" and (tree / "b.exr").is_file()
    assert "1 converted, 1 skipped, 0 failed" in capsys.readouterr().err


def test_overwrite(tree, engine):
    target = tree / "a.exr"
    target.write_bytes(b"old")
    assert run("convert", tree / "a.png", "--overwrite", "-q") == 0
    _, ch = _exr(target)
    np.testing.assert_allclose(_rgb(ch), _expected(engine, tree / "a.png"), rtol=1e-3, atol=1e-4)
    assert sorted(p.name for p in tree.iterdir() if p.is_file()) == ["a.exr", "a.png", "b.jpg", "notes.txt"]


# --------------------------------------------------------------------------- failures
def test_keeps_going_past_a_bad_file(tree, capsys):
    (tree / "bad.png").write_bytes(b"\x89PNG but truncated")
    rc = run("convert", tree / "bad.png", tree / "a.png", tree / "missing.png")
    err = capsys.readouterr().err
    assert rc == 1
    assert (tree / "a.exr").is_file() and not (tree / "bad.exr").exists()
    assert "1 converted, 0 skipped, 2 failed" in err
    assert "failed: " in err and "bad.png" in err and "missing.png: no such file or folder" in err
    assert not [p for p in tree.iterdir() if "partial" in p.name]


def test_one_output_file_for_many_inputs_is_an_error(tree, tmp_path, capsys):
    assert run("convert", tree / "a.png", tree / "b.jpg", "-o", tmp_path / "x.exr") == 2
    assert "names one file" in capsys.readouterr().err
    assert not (tmp_path / "x.exr").exists()


def test_unavailable_device_is_an_error_not_a_fallback(tree, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert run("convert", tree / "a.png", "--device", "cuda") == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tree / "a.exr").exists()


# --------------------------------------------------------------------------- output options
def test_format_hdr(tree, engine):
    assert run("convert", tree / "a.png", "--format", "hdr", "-q") == 0
    got = read_hdr(tree / "a.hdr")
    want = _expected(engine, tree / "a.png")
    assert got.shape == want.shape
    rel = np.abs(got - want) / want.max(axis=2, keepdims=True).clip(1e-3)
    assert np.percentile(rel, 99.9) < 0.01
    assert not (tree / "a.exr").exists()


def test_output_extension_picks_the_format(tree, tmp_path):
    assert run("convert", tree / "a.png", "-o", tmp_path / "x.hdr", "-q") == 0
    assert read_hdr(tmp_path / "x.hdr").shape == (64, 96, 3)


def test_float_and_piz(tree, engine):
    assert run("convert", tree / "a.png", "--float", "--compression", "piz", "-q") == 0
    header, ch = _exr(tree / "a.exr")
    assert all(v.dtype == np.float32 for v in ch.values())
    assert header["compression"] == OpenEXR.PIZ_COMPRESSION
    np.testing.assert_allclose(_rgb(ch), _expected(engine, tree / "a.png"), rtol=1e-5, atol=1e-6)


def test_exposure_doubles_the_output(tree, tmp_path):
    assert run("convert", tree / "a.png", "-o", tmp_path / "e0.exr", "--float", "-q") == 0
    assert run("convert", tree / "a.png", "-o", tmp_path / "e1.exr", "--float", "--exposure", "1", "-q") == 0
    h1, e1 = _exr(tmp_path / "e1.exr")
    _, e0 = _exr(tmp_path / "e0.exr")
    np.testing.assert_array_equal(_rgb(e1), 2 * _rgb(e0))
    assert h1["hdrPluginExposureEV"] == "1"


def test_alpha_is_written_as_A(tmp_path, crops, rng):
    alpha = rng.integers(0, 256, crops[0].shape[:2], dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([crops[0], alpha]))
    assert run("convert", tmp_path / "rgba.png", "-q") == 0
    _, ch = _exr(tmp_path / "rgba.exr")
    assert set(ch) == {"R", "G", "B", "A"}
    np.testing.assert_allclose(ch["A"].astype(np.float32), alpha / 255, atol=5e-4)
    # EXR stores associated alpha: the colour is the straight PNG colour times alpha
    straight = hdr_plugin.apply(np.dstack([crops[0], alpha]))[:, :, 2::-1]
    np.testing.assert_allclose(_rgb(ch), straight * (alpha / 255)[..., None], rtol=2e-3, atol=2e-3)


def test_curve_option(tree, tmp_path, engine):
    curve = np.linspace(0, 1, 1024, dtype=np.float32) ** 1.8
    np.save(tmp_path / "curve.npy", curve)
    assert run("convert", tree / "a.png", "--curve", tmp_path / "curve.npy", "--float", "-q") == 0
    _, ch = _exr(tree / "a.exr")
    want = engine.reconstruct(read_ldr(tree / "a.png").rgb, curve=curve).image
    np.testing.assert_allclose(_rgb(ch), want, rtol=1e-5, atol=1e-6)


def test_json_progress_lines(tree, capsys):
    assert run("convert", tree / "a.png", tree / "b.jpg", "--json", "--tile", "64", "--tile-overlap", "16") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    progress = [e for e in events if e["event"] == "progress"]
    for name in ("a.png", "b.jpg"):
        mine = [e for e in progress if e["file"].endswith(name)]
        # 64x96 with 64-px tiles: 1x2 tiles; the default quality runs the curve, then
        # Hallucination-Net on the tiles that clip (here both)
        assert [(e["stage"], e["done"], e["total"]) for e in mine] == [
            ("linearize", 1, 1), ("hallucinate", 1, 2), ("hallucinate", 2, 2)
        ]
        fractions = [e["fraction"] for e in mine]
        assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    done = [e for e in events if e["event"] == "done"]
    assert [Path(e["output"]).name for e in done] == ["a.exr", "b.exr"] and all(e["seconds"] >= 0 for e in done)
    assert events[-1] == {"event": "summary", "converted": 2, "skipped": 0, "failed": 0}


# --------------------------------------------------------------------------- info
def test_info_plain(tiny_weights, capsys):
    assert run("info", "--device", "cpu") == 0
    out = capsys.readouterr().out
    sha = read_manifest(tiny_weights).sha256
    assert f"hdr_plugin: {hdr_plugin.__version__}" in out
    assert "device: cpu" in out and "precision: fp32" in out
    assert sha in out and str(tiny_weights) in out
    assert "model_config:" in out and "name: tiny-test" in out and "widths:" in out
    assert "plugins:\n  - hdr_plugin.default_plugins.inputs\n  - hdr_plugin.default_plugins.outputs" in out


def test_info_json(tiny_weights, capsys):
    assert run("info", "--json", "--precision", "bf16") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["hdr_plugin"] == hdr_plugin.__version__
    assert info["device"] == "cpu" and info["precision"] == "bf16"
    assert info["weights"]["sha256"] == read_manifest(tiny_weights).sha256 and info["weights"]["trained"] is False
    assert info["model_config"]["name"] == "tiny-test"
    assert {"hdr_plugin.default_plugins.inputs", "hdr_plugin.default_plugins.outputs"} <= set(info["plugins"])


def test_info_reports_missing_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HDR_PLUGIN_WEIGHTS", str(tmp_path))
    assert run("info") == 0
    assert "weights: error: no manifest.yaml" in capsys.readouterr().out


# --------------------------------------------------------------------------- fresh install
@pytest.mark.slow
def test_pip_install_into_fresh_venv_then_convert_from_elsewhere(tmp_path, sample_path):
    """``pip install .`` (not editable) into a fresh venv with torch 2.13.0, then
    ``hdr-plugin convert`` run from another folder writes a half-float EXR."""
    from conftest import ROOT

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, env=env, cwd=tmp_path, timeout=1200)
    proc = subprocess.run([*pip, str(ROOT)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    # the installed copy is used, not the checkout
    where = subprocess.run([str(py), "-c", "import hdr_plugin; print(hdr_plugin.__file__)"], env=env, cwd=workdir, capture_output=True, text=True, check=True)
    assert str(env_dir) in where.stdout and str(ROOT) not in where.stdout
    exe = env_dir / "bin" / "hdr-plugin"
    proc = subprocess.run([str(exe), "convert", str(sample_path), "-o", "out.exr"], env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    header, ch = _exr(workdir / "out.exr")
    assert set(ch) == {"R", "G", "B"} and all(v.dtype == np.float16 for v in ch.values())
    np.testing.assert_allclose(header["chromaticities"], CHROMA, rtol=1e-6)
    rgb = _rgb(ch)
    assert rgb.shape == (384, 512, 3) and np.isfinite(rgb).all() and rgb.max() > 1.0
    # without $HDR_PLUGIN_WEIGHTS the installed copy looks for weights inside the venv
    env_no_weights = {k: v for k, v in env.items() if k != "HDR_PLUGIN_WEIGHTS"}
    proc = subprocess.run([str(exe), "info", "--json"], env=env_no_weights, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert str(env_dir) in json.dumps(json.loads(proc.stdout)["weights"])
    # package data made it into the wheel: the camera-curve files load in the installed copy
    check = "from hdr_plugin import crf; print(len(crf.dorf_split()[1]), crf.emor_basis()[1].shape)"
    out = subprocess.run([str(py), "-c", check], env=env, cwd=workdir, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["10", "(25,", "1024)"]


# --------------------------------------------------------------------------- host adapters: float inputs, --pairs, cancelling
def _float_exr(path, rgb, alpha=None):
    """A 32-bit float EXR as a host renders it (NaN, negatives and values above 1 allowed)."""
    channels = {c: np.ascontiguousarray(rgb[..., i], dtype=np.float32) for i, c in enumerate("RGB")}
    if alpha is not None:
        channels["A"] = np.ascontiguousarray(alpha, dtype=np.float32)
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(path))
    return path


@pytest.fixture
def float_frame(rng):
    rgb = (rng.random((32, 40, 3)) * 2.4 - 0.2).astype(np.float32)  # negatives and values above 1
    rgb[3, 5] = np.nan
    return rgb


@pytest.mark.parametrize("encoding", ["display", "linear"])
def test_float_exr_input_encoding(tmp_path, float_frame, engine, encoding):
    from hdr_plugin.color import linear_to_srgb

    src = _float_exr(tmp_path / "in.exr", float_frame)
    assert run("convert", src, "-o", tmp_path / "out.exr", "--input-encoding", encoding, "--float", "--device", "cpu", "--precision", "fp32", "--tile", "0", "-q") == 0
    x = np.nan_to_num(float_frame, nan=0.0)
    if encoding == "linear":  # scene-linear: sRGB-encoded first
        x = linear_to_srgb(np.maximum(x, 0.0))
    want = engine.reconstruct(np.clip(x, 0.0, 1.0).astype(np.float32)).image
    _, ch = _exr(tmp_path / "out.exr")
    np.testing.assert_allclose(_rgb(ch), want, rtol=1e-5, atol=1e-6)


def test_float_input_without_input_encoding_names_the_option(tmp_path, float_frame, capsys):
    src = _float_exr(tmp_path / "in.exr", float_frame)
    assert run("convert", src, "-o", tmp_path / "out.exr", "-q") == 1
    err = capsys.readouterr().err
    assert "--input-encoding display" in err and "--input-encoding linear" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.exr"]


def test_exr_alpha_passes_through_and_rgb_is_not_multiplied_again(tmp_path, engine, rng):
    alpha = np.tile(np.linspace(0.2, 1.0, 40, dtype=np.float32), (32, 1))
    rgb = (rng.random((32, 40, 3)) * alpha[..., None]).astype(np.float32)  # associated, as hosts render it
    src = _float_exr(tmp_path / "in.exr", rgb, alpha)
    assert run("convert", src, "-o", tmp_path / "out.exr", "--input-encoding", "display", "--float", "-q") == 0
    _, ch = _exr(tmp_path / "out.exr")
    assert set(ch) == {"R", "G", "B", "A"}
    np.testing.assert_array_equal(ch["A"], alpha)
    np.testing.assert_allclose(_rgb(ch), engine.reconstruct(rgb).image, rtol=1e-5, atol=1e-6)


def test_pairs_converts_exactly_the_listed_pairs(tree, tmp_path, engine, capsys):
    out = tmp_path / "out"
    pairs = [[str(tree / "a.png"), str(out / "x.exr")], [str(tree / "sub" / "c.png"), str(out / "deep" / "y.exr")]]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    assert run("convert", "--pairs", tmp_path / "pairs.json", "--json", "--float") == 0
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {"x.exr", "deep/y.exr"}
    assert not list(tree.rglob("*.exr"))  # b.jpg is not listed, and nothing lands beside the inputs
    _, ch = _exr(out / "deep" / "y.exr")
    np.testing.assert_allclose(_rgb(ch), _expected(engine, tree / "sub" / "c.png"), rtol=1e-5, atol=1e-6)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] == "start" and events[0]["count"] == 2
    assert [(e["index"], Path(e["output"]).name) for e in events if e["event"] == "done"] == [(0, "x.exr"), (1, "y.exr")]
    assert {(e["index"], e["count"]) for e in events if e["event"] == "progress"} == {(0, 2), (1, 2)}
    assert events[-1] == {"event": "summary", "converted": 2, "skipped": 0, "failed": 0}


def test_pairs_and_usage_errors(tmp_path, capsys):
    assert run("convert") == 2
    assert "nothing to convert" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps([["only-an-input"]]))
    assert run("convert", "--pairs", tmp_path / "bad.json") == 2
    assert "expected a JSON list of [input, output] pairs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run("convert", tmp_path / "x.exr", "--input-encoding", "srgb")
    assert e.value.code == 2 and "--input-encoding" in capsys.readouterr().err
    (tmp_path / "pairs.json").write_text(json.dumps([[str(tmp_path / "none.exr"), str(tmp_path / "o.exr")]]))
    assert run("convert", "--pairs", tmp_path / "pairs.json", "--input-encoding", "display", "--json") == 1
    errors = [e for e in map(json.loads, capsys.readouterr().out.splitlines()) if e["event"] == "error"]
    assert len(errors) == 1 and "none.exr" in errors[0]["message"] and errors[0]["index"] == 0
    assert not (tmp_path / "o.exr").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_exits_130_without_output_or_temp_file(tmp_path, sample_path):
    import signal

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), cv2.imread(str(sample_path))[:128, :128])  # 4 tiles of 64 px per stage: seconds of work
    (tmp_path / "pairs.json").write_text(json.dumps([[str(src), str(tmp_path / "out" / "in.exr")]]))
    cmd = [sys.executable, "-m", "hdr_plugin", "convert", "--pairs", str(tmp_path / "pairs.json"), "--json", "--float", "--overwrite", "--device", "cpu", "--tile", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # the engine is loaded and working on the image
            if json.loads(line)["event"] == "progress":
                break
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert '"cancelled"' in rest and '"done"' not in rest and "not written" in err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == ["in.png", "pairs.json"]


def test_a_closed_stdout_is_not_reported_as_an_internal_error(monkeypatch, capsys):
    """``hdr-plugin info | head -3``: the reader leaves early and writing raises BrokenPipeError;
    we stop quietly with 141 (a shell's SIGPIPE status), not with an "internal error"."""
    import sys

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["info"]) == 141
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
