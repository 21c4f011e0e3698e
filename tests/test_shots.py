"""Shots (hdr_plugin/shots.py): frame patterns, ranges, gaps, output names, one camera curve
per shot saved and reused, chunked runs bit-identical to one run, and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import OpenEXR
import pytest

import hdr_plugin
from hdr_plugin import cli, shots
from hdr_plugin.shots import ShotError, parse_frames, parse_pattern

FAST = dict(device="cpu", precision="fp32", tile=0)


def _header(path):
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return dict(f.header())


def _pixels(path):
    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = f.parts[0].channels
        return np.stack([ch[c].pixels for c in "RGB"], axis=-1)


def _frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """BGR uint8: a gradient that moves with ``i`` and a clipped lamp."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 40 + 150 * ((x + 3 * i) % w) / w
    img = np.stack([base, base * 0.9 + 10, base * 0.7 + 20], axis=-1)
    img[(y - 20) ** 2 + (x - 30 - i) ** 2 < 60] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


def write_plate(folder: Path, frames, name="plate.{:04d}.png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in frames:
        cv2.imwrite(str(folder / name.format(i)), _frame(i))
    return folder


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "text, head, tail, padding",
    [
        ("plate.%04d.jpg", "plate.", ".jpg", 4),
        ("plate.%d.jpg", "plate.", ".jpg", 1),
        ("plate.####.jpg", "plate.", ".jpg", 4),
        ("plate.#.jpg", "plate.", ".jpg", 1),
        ("plate.@.jpg", "plate.", ".jpg", 1),
        ("dir.v2/plate_@@@@@@.exr", "dir.v2/plate_", ".exr", 6),
        ("%03d.png", "", ".png", 3),
    ],
)
def test_pattern_tokens(text, head, tail, padding):
    p = parse_pattern(text)
    assert (p.head, p.tail, p.padding) == (head, tail, padding)


def test_pattern_formatting_negative_and_long_numbers():
    p = parse_pattern("sh/plate.####.exr")
    assert p.path(7) == Path("sh/plate.0007.exr")
    assert p.path(12345) == Path("sh/plate.12345.exr")  # longer than the padding is fine
    assert p.path(-3) == Path("sh/plate.-003.exr")  # printf %04d
    assert p.shot_name == "plate"
    assert parse_pattern("plate.@.jpg").path(-12) == Path("plate.-12.jpg")


def test_pattern_errors_and_plain_names():
    assert parse_pattern("plate.1001.jpg") is None
    assert parse_pattern("folder/") is None
    with pytest.raises(ShotError, match="more than one"):
        parse_pattern("plate.%04d.####.jpg")
    with pytest.raises(ShotError, match="file name"):
        parse_pattern("shots_%02d/plate.jpg")
    with pytest.raises(ShotError, match="space-padded"):
        parse_pattern("plate.%4d.jpg")


@pytest.mark.parametrize(
    "spec, frames",
    [
        ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
        ("1001-1010x3", [1001, 1004, 1007, 1010]),
        ("1-10:4", [1, 5, 9]),  # Open Job Description range spelling
        ("7", [7]),
        ("1,5,3-4,5", [1, 3, 4, 5]),
        ("-3--1", [-3, -2, -1]),
        ("-2-2", [-2, -1, 0, 1, 2]),
        (" 10 - 12 ", [10, 11, 12]),
    ],
)
def test_frame_ranges(spec, frames):
    assert parse_frames(spec) == frames


@pytest.mark.parametrize("spec", ["", "10-1", "1-10x0", "1-10x-2", "a-b", "1..5", "1-2-3"])
def test_bad_frame_ranges(spec):
    with pytest.raises(ShotError):
        parse_frames(spec)


def test_scan_reports_mixed_padding_duplicates_and_keeps_negative_frames(tmp_path):
    for name in ["plate.-002.png", "plate.-0001.png", "plate.0000.png", "plate.0001.png", "plate.0003.png",
                 "plate.10000.png", "plate.01.png", "plate.00002.png", "plate.0003.jpg", "other.0004.png"]:
        (tmp_path / name).write_bytes(b"x")
    found, problems = parse_pattern(str(tmp_path / "plate.%04d.png")).scan()
    assert sorted(found) == [-2, -1, 0, 1, 3, 10000]
    assert found[-1].name == "plate.-0001.png"
    assert any("mixed padding" in p and "plate.01.png" in p and "plate.00002.png" in p for p in problems)
    # the same frame in both negative spellings is reported, not merged silently
    (tmp_path / "plate.-001.png").write_bytes(b"x")
    found, problems = parse_pattern(str(tmp_path / "plate.####.png")).scan()
    assert any("frame -1" in p for p in problems)
    # unpadded pattern: every zero-padded name is mixed padding; only 10000 is unpadded
    found, problems = parse_pattern(str(tmp_path / "plate.@.png")).scan()
    assert sorted(found) == [10000]
    assert any("plate.-002.png" in p for p in problems)


def test_gaps_are_reported_not_fatal(tmp_path):
    write_plate(tmp_path / "in", [1, 2, 4, 7])
    shot = shots.open_shot(str(tmp_path / "in" / "plate.%04d.png"))
    assert shot.numbers == [1, 2, 4, 7]
    assert shot.gaps() == [3, 5, 6]
    assert shot.select(parse_frames("2-5")) == ([2, 4], [3, 5])
    assert shots.format_ranges(shot.gaps()) == "3, 5-6"


def test_output_names_keep_frame_numbers(tmp_path):
    write_plate(tmp_path, [-1, 9, 10])
    shot = shots.open_shot(str(tmp_path / "plate.%04d.png"))
    assert shots.output_for(shot, 9, "out/sh010_hdr.%06d.exr") == Path("out/sh010_hdr.000009.exr")
    assert shots.output_for(shot, -1, "out/x.####.exr") == Path("out/x.-001.exr")
    assert shots.output_for(shot, 10, str(tmp_path / "o")) == tmp_path / "o" / "plate.0010.exr"
    assert shots.output_for(shot, 10, None, "hdr", "_lin") == tmp_path / "plate.0010_lin.hdr"
    assert shots.curve_path_for(shot, "out/sh010_hdr.%06d.exr", Path("unused")) == Path("out/sh010_hdr.curve.npy")


def test_curve_picks_spread_over_the_shot():
    assert shots.curve_picks(100, 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert shots.curve_picks(5, 8) == [0, 1, 2, 3, 4]
    assert shots.curve_picks(0, 8) == []


# --------------------------------------------------------------------------- converting
def test_convert_shot_writes_sequence_one_curve_and_metadata(tmp_path):
    plate = write_plate(tmp_path / "in", [1001, 1002, 1003, 1005])
    events = []
    report = hdr_plugin.convert_shot(
        str(plate / "plate.####.png"), str(tmp_path / "out" / "plate.%04d.exr"), frames="1001-1005",
        progress=lambda **e: events.append(e), **FAST,
    )
    assert report.exit_code == 0, report.failed
    assert report.converted == [1001, 1002, 1003, 1005]
    assert report.missing == [1004]
    assert "1 missing from disk: 1004" in report.summary()
    curve_file = tmp_path / "out" / "plate.curve.npy"
    assert report.curve_path == curve_file and curve_file.is_file()
    curve = np.load(curve_file)
    assert curve.shape == (1024,) and curve.dtype == np.float32
    sha = shots.curve_sha256(curve)
    for n in report.converted:
        h = _header(tmp_path / "out" / f"plate.{n}.exr")
        assert h["hdrPluginCurveMode"] == "shot"
        assert h["hdrPluginCurveSha256"] == sha
        assert h["hdrPluginCurveFile"] == "plate.curve.npy"
        assert h["hdrPluginCurveFrames"] == "1001,1002,1003,1005"
        assert h["hdrPluginFrame"] == str(n)
        assert h["hdrPluginShot"] == "plate"
    done = [e for e in events if e["event"] == "done"]
    assert [e["done"] for e in done] == [1, 2, 3, 4] and {e["total"] for e in done} == {4}
    assert events[-1]["event"] == "summary" and events[-1]["missing"] == [1004]
    assert not [p for p in (tmp_path / "out").iterdir() if "partial" in p.name]


def test_shot_curve_is_the_engine_shot_curve_of_spread_frames(tmp_path, engine):
    plate = write_plate(tmp_path / "in", range(1, 21))
    report = shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "o" / "p.%04d.exr"), frames="1-2", engine=engine)
    picks = [1, 4, 6, 9, 12, 15, 17, 20]  # K=8 over the whole shot on disk (round(i * 19 / 7) + 1), not the chunk
    assert _header(tmp_path / "o" / "p.0001.exr")["hdrPluginCurveFrames"] == ",".join(map(str, picks))
    from hdr_plugin.io import read_ldr

    expected = engine.shot_curve([read_ldr(plate / f"plate.{i:04d}.png").rgb for i in picks])
    np.testing.assert_array_equal(np.load(report.curve_path), expected)


def test_chunks_reuse_the_shot_curve_bit_identically(tmp_path, engine):
    plate = write_plate(tmp_path / "in", range(1, 7))
    pattern = str(plate / "plate.%04d.png")
    one = shots.convert_shot(pattern, str(tmp_path / "one" / "plate.%04d.exr"), engine=engine)
    assert one.converted == list(range(1, 7))
    curve_file = tmp_path / "one" / "plate.curve.npy"
    # three farm chunks that are given the curve file
    for chunk in ("1-2", "3-4", "5-6"):
        r = shots.convert_shot(pattern, str(tmp_path / "three" / "plate.%04d.exr"), frames=chunk, curve=str(curve_file), engine=engine)
        assert r.exit_code == 0 and r.curve_mode == "file"
    # three chunks without --curve: the first estimates and saves it, the others reuse it
    for chunk in ("1-2", "3-4", "5-6"):
        r = shots.convert_shot(pattern, str(tmp_path / "auto" / "plate.%04d.exr"), frames=chunk, engine=engine)
        assert r.exit_code == 0
    assert r.curve_mode == "shot" and r.curve_path == tmp_path / "auto" / "plate.curve.npy"
    np.testing.assert_array_equal(np.load(r.curve_path), np.load(curve_file))
    for n in range(1, 7):
        ref = _pixels(tmp_path / "one" / f"plate.{n:04d}.exr")
        for other in ("three", "auto"):
            got = _pixels(tmp_path / other / f"plate.{n:04d}.exr")
            assert got.tobytes() == ref.tobytes(), (other, n)
    # and not what per-frame curves give (so the comparison above can fail)
    pf = shots.convert_shot(pattern, str(tmp_path / "pf" / "plate.%04d.exr"), curve_per_frame=True, engine=engine)
    assert pf.curve_mode == "per-frame" and pf.curve_path is None
    assert not (tmp_path / "pf" / "plate.curve.npy").exists()
    assert _header(tmp_path / "pf" / "plate.0005.exr")["hdrPluginCurveMode"] == "per-frame"
    differs = [not np.array_equal(_pixels(tmp_path / "pf" / f"plate.{n:04d}.exr"), _pixels(tmp_path / "one" / f"plate.{n:04d}.exr")) for n in range(1, 7)]
    assert any(differs)


def test_existing_outputs_skip_overwrite_and_refuse(tmp_path, engine):
    plate = write_plate(tmp_path / "in", [1, 2, 3])
    pattern, out = str(plate / "plate.%04d.png"), str(tmp_path / "o" / "plate.%04d.exr")
    assert shots.convert_shot(pattern, out, frames="1-2", engine=engine).exit_code == 0
    r = shots.convert_shot(pattern, out, engine=engine)
    assert r.converted == [3] and sorted(r.failed) == [1, 2] and r.exit_code == 1
    assert "exists" in r.failed[1]
    r = shots.convert_shot(pattern, out, engine=engine, skip_existing=True)
    assert r.skipped == [1, 2, 3] and r.exit_code == 0
    # a partial file a killed writer left behind is removed
    stale = tmp_path / "o" / ".plate.0002.abcd1234.partial.exr"
    stale.write_bytes(b"half a file")
    r = shots.convert_shot(pattern, out, engine=engine, overwrite=True)
    assert r.converted == [1, 2, 3] and not stale.exists()


def test_unreadable_frame_fails_alone(tmp_path, engine):
    plate = write_plate(tmp_path / "in", [1, 2, 3])
    (plate / "plate.0002.png").write_bytes(b"not a png")
    r = shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "o" / "p.%04d.exr"), engine=engine, curve_per_frame=True)
    assert r.converted == [1, 3] and list(r.failed) == [2] and r.exit_code == 1


def test_setup_errors(tmp_path, engine):
    plate = write_plate(tmp_path / "in", [1, 2])
    with pytest.raises(ShotError, match="neither a frame pattern"):
        shots.convert_shot(str(tmp_path / "nothing"), None, engine=engine)
    with pytest.raises(ShotError, match="names one file"):
        shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "one.exr"), engine=engine)
    r = shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "o"), frames="5-6", engine=engine)
    assert r.exit_code == 2 and "5-6" in r.error
    bad = tmp_path / "bad.npy"
    np.save(bad, np.linspace(1, 0, 1024, dtype=np.float32))
    with pytest.raises(ShotError, match="monotonic"):
        shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "o"), curve=str(bad), engine=engine)


def test_file_list_is_a_shot(tmp_path, engine):
    plate = write_plate(tmp_path / "in", [5, 6, 7])
    files = [plate / f"plate.{i:04d}.png" for i in (5, 6, 7)]
    r = shots.convert_shot(files, str(tmp_path / "o"), engine=engine)
    assert r.converted == [5, 6, 7]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["plate.0005.exr", "plate.0006.exr", "plate.0007.exr", "plate.curve.npy"]


# --------------------------------------------------------------------------- CLI
def test_cli_pattern_frames_and_estimate_curve(tmp_path, capsys):
    plate = write_plate(tmp_path / "in", [1, 2, 3, 5])
    out = tmp_path / "out"
    args = ["convert", str(plate / "plate.%04d.png"), "--frames", "1-5", "-o", str(out / "plate.%04d.exr"), "--device", "cpu", "--precision", "fp32"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "4 converted, 0 skipped, 0 failed" in err and "missing from disk: 4" in err
    assert sorted(p.name for p in out.iterdir()) == ["plate.0001.exr", "plate.0002.exr", "plate.0003.exr", "plate.0005.exr", "plate.curve.npy"]
    # a rerun refuses existing frames (exit 1), --skip-existing completes (exit 0)
    assert cli.main(args) == 1
    assert cli.main(args + ["--skip-existing", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["event"] == "summary" and lines[-1]["skipped"] == 4 and lines[-1]["failed"] == 0
    # estimate-curve on the pattern gives the same curve convert saved
    assert cli.main(["estimate-curve", str(plate / "plate.####.png"), "-o", str(tmp_path / "c.npy"), "--device", "cpu", "--precision", "fp32"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.load(out / "plate.curve.npy"))
    # nothing on disk in the range: usage-level failure
    assert cli.main(["convert", str(plate / "plate.%04d.png"), "--frames", "7-9", "-o", str(out), "--device", "cpu"]) == 2
    assert cli.main(["convert", str(plate / "plate.%04d.png"), "--frames", "9-7", "-o", str(out), "--device", "cpu"]) == 2
    assert "end is before the start" in capsys.readouterr().err
