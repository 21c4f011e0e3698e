"""Colour options on the shot path (hdr_plugin/frame_color.py through hdr_plugin/shots.py):
a shot converted with --input-space / --output-space / --passes gives each frame the
pixels and EXR header a single-image conversion with the same curve gives; the shot curve
is estimated on the frames as the engine is given them; what cannot work is refused by
name; ``convert_shot(cancel=...)`` stops a run."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest

from hdr_plugin import cli, shots
from hdr_plugin.shots import ShotError
from test_shots import FAST, _header, _pixels, write_plate

ENGINE_ARGS = ["--device", "cpu", "--precision", "fp32", "--tile", "0", "--quiet"]
COLOUR_KEYS = ("chromaticities", "hdrPluginColorSpace", "hdrPluginInputSpace", "hdrPluginInputSource", "hdrPluginInputNote", "adoptedNeutral")


def _channels(path):
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {p.name(): sorted(p.channels) for p in f.parts}, dict(f.header())


@pytest.mark.parametrize("input_space", ["auto", "adobe-rgb"])
def test_shot_with_colour_options_equals_single_images_with_its_curve(tmp_path, input_space):
    plate = write_plate(tmp_path / "in", [1, 2, 3])
    colour = ["--output-space", "acescg"] + (["--input-space", input_space] if input_space != "auto" else [])
    out = tmp_path / "shot"
    assert cli.main(["convert", str(plate / "plate.%04d.png"), "-o", str(out / "plate.%04d.exr"), "--temporal-radius", "0", *colour, *ENGINE_ARGS]) == 0
    curve = out / "plate.curve.npy"
    # the shot curve is estimated on what the engine is given (Adobe RGB re-encoded to the sRGB curve)
    files = [str(plate / f"plate.{i:04d}.png") for i in (1, 2, 3)]
    est = tmp_path / "est.npy"
    assert cli.main(["estimate-curve", *files, "-o", str(est), *(colour[2:] if input_space != "auto" else []), *ENGINE_ARGS[:-1]]) == 0
    np.testing.assert_array_equal(np.load(est), np.load(curve))
    for i in (1, 2, 3):
        single = tmp_path / "single" / f"{i}.exr"
        assert cli.main(["convert", files[i - 1], "-o", str(single), "--curve", str(curve), *colour, *ENGINE_ARGS]) == 0
        a, b = _pixels(out / f"plate.{i:04d}.exr"), _pixels(single)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        ha, hb = _header(out / f"plate.{i:04d}.exr"), _header(single)
        assert ha["hdrPluginColorSpace"] == "acescg" and ha["hdrPluginInputSpace"] == ("srgb" if input_space == "auto" else input_space)
        for key in COLOUR_KEYS:
            assert (key in ha) == (key in hb), key
            if key in ha:
                assert np.array_equal(np.asarray(ha[key]), np.asarray(hb[key])), key
        assert ha["hdrPluginCurveMode"] == "shot" and ha["hdrPluginFrame"] == str(i)
    # and the colour options changed something (so the comparison can fail)
    plain = shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "plain" / "p.%04d.exr"), curve=str(curve), temporal_radius=0, **FAST)
    assert plain.exit_code == 0
    assert not np.allclose(_pixels(tmp_path / "plain" / "p.0001.exr"), _pixels(out / "plate.0001.exr"), atol=1e-3)


def test_passes_on_a_shot_are_written_as_layers_and_parts(tmp_path, engine):
    plate = write_plate(tmp_path / "in", [1, 2])
    pattern = str(plate / "plate.%04d.png")
    r = shots.convert_shot(pattern, str(tmp_path / "l" / "p.%04d.exr"), engine=engine, passes="mask,linear,curve", temporal_radius=0)
    assert r.exit_code == 0 and r.converted == [1, 2]
    for n in (1, 2):
        parts, header = _channels(tmp_path / "l" / f"p.{n:04d}.exr")
        assert len(parts) == 1
        chans = next(iter(parts.values()))
        assert {"R", "G", "B", "mask.Y", "linear.R", "linear.G", "linear.B", "curve.Y"} <= set(chans)
        assert header["hdrPluginPasses"] == "mask,linear,curve" and header["hdrPluginCurveMode"] == "shot"
        # the curve pass is the shot's curve, the same for every frame
        np.testing.assert_array_equal(np.asarray(header["hdrPluginInverseCurve"], np.float32), np.load(r.curve_path))
    r = shots.convert_shot(pattern, str(tmp_path / "m" / "p.%04d.exr"), engine=engine, passes=["mask"], multipart=True, temporal_radius=0,
                           curve=str(r.curve_path))
    assert r.exit_code == 0
    parts, _ = _channels(tmp_path / "m" / "p.0001.exr")
    assert list(parts) == ["rgba", "mask"] and parts["mask"] == ["mask.Y"]


def test_what_cannot_work_is_refused_by_name(tmp_path, engine, capsys):
    plate = write_plate(tmp_path / "in", [1, 2])
    pattern = str(plate / "plate.%04d.png")
    with pytest.raises(ShotError, match="--passes and --multipart need EXR output"):
        shots.convert_shot(pattern, str(tmp_path / "o" / "p.%04d.hdr"), engine=engine, passes="mask", temporal_radius=0)
    with pytest.raises(ShotError, match="--temporal-radius 0"):
        shots.convert_shot(pattern, str(tmp_path / "o" / "p.%04d.exr"), engine=engine, passes="mask", temporal_radius=1)
    with pytest.raises(ShotError, match="unknown pass"):
        shots.convert_shot(pattern, str(tmp_path / "o"), engine=engine, passes="nope")
    with pytest.raises(ShotError, match="output space"):
        shots.convert_shot(pattern, str(tmp_path / "o"), engine=engine, output_space="lin-xyz")
    with pytest.raises(ShotError, match="go together"):
        shots.convert_shot(pattern, str(tmp_path / "o"), engine=engine, ocio="ocio://default")
    assert not (tmp_path / "o").exists()  # refused before anything ran
    assert cli.main(["convert", pattern, "-o", str(tmp_path / "o" / "p.%04d.hdr"), "--passes", "mask", "--temporal-radius", "0", *ENGINE_ARGS]) == 2
    assert "--passes and --multipart need EXR output" in capsys.readouterr().err


def test_ocio_output_on_a_shot(tmp_path, engine):
    pytest.importorskip("PyOpenColorIO")
    plate = write_plate(tmp_path / "in", [1])
    r = shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "o" / "p.%04d.exr"), engine=engine,
                           ocio="ocio://default", ocio_space="ACEScg", temporal_radius=0)
    assert r.exit_code == 0, r.failed
    h = _header(tmp_path / "o" / "p.0001.exr")
    assert "chromaticities" in h and h.get("hdrPluginOcioSpace", h.get("hdrPluginColorSpace")) in ("ACEScg", "acescg")


def test_cancel_callback_stops_between_frames(tmp_path, engine):
    plate = write_plate(tmp_path / "in", [1, 2, 3])
    done = []

    def progress(**e):
        if e["event"] == "done":
            done.append(e["frame"])

    r = shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "o" / "p.%04d.exr"), engine=engine, temporal_radius=0,
                           curve_per_frame=True, progress=progress, cancel=lambda: len(done) >= 1)
    assert r.cancelled and r.exit_code == 130 and r.converted == [1] and done == [1]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p.0001.exr"]
    # cancelled before the first tile: nothing written, the engine's hook is removed again
    hooks = len(engine.plugin_manager.get_plugins())
    r = shots.convert_shot(str(plate / "plate.%04d.png"), str(tmp_path / "o2" / "p.%04d.exr"), engine=engine, temporal_radius=0,
                           curve_per_frame=True, cancel=lambda: True)
    assert r.cancelled and r.converted == [] and not list((tmp_path / "o2").glob("*.exr"))
    assert len(engine.plugin_manager.get_plugins()) == hooks


def test_video_frames_are_rec709_and_take_colour_options(tmp_path, engine):
    pytest.importorskip("av", reason="PyAV is not installed (the [video] extra)")
    from test_video import encode

    clip = encode(tmp_path / "clip.mp4", "libx264", "yuv420p", frames=2)
    r = shots.convert_shot(str(clip), str(tmp_path / "a" / "c.%04d.exr"), engine=engine, temporal_radius=0)
    assert r.exit_code == 0, r.failed
    h = _header(tmp_path / "a" / "c.0001.exr")
    assert (h["hdrPluginInputSpace"], h["hdrPluginInputSource"], h["hdrPluginColorSpace"]) == ("rec709", "video", "lin-rec709")
    assert h["hdrPluginInputPrimaries"].startswith("bt709")
    # the code values reach the engine unchanged (as with --input-space srgb) ...
    r = shots.convert_shot(str(clip), str(tmp_path / "s" / "c.%04d.exr"), engine=engine, temporal_radius=0, input_space="srgb", curve=str(r.curve_path))
    assert _pixels(tmp_path / "s" / "c.0002.exr").tobytes() == _pixels(tmp_path / "a" / "c.0002.exr").tobytes()
    # ... and an output space applies to video frames too
    r = shots.convert_shot(str(clip), str(tmp_path / "p" / "c.%04d.exr"), engine=engine, temporal_radius=0, output_space="lin-rec2020",
                           curve=str(r.curve_path))
    assert r.exit_code == 0 and _header(tmp_path / "p" / "c.0001.exr")["hdrPluginColorSpace"] == "lin-rec2020"


def test_engine_options_reach_the_shot_engine(tmp_path):
    """--quality / --runtime build the shot's Engine as they build a single image's."""
    plate = write_plate(tmp_path / "in", [1])
    out = tmp_path / "o"
    args = ["convert", str(plate / "plate.%04d.png"), "-o", str(out / "p.%04d.exr"), "--quality", "max", "--runtime", "torch",
            "--temporal-radius", "0", *ENGINE_ARGS]
    assert cli.main(args) == 0
    h = _header(out / "p.0001.exr")
    assert (h["hdrPluginQuality"], h["hdrPluginRuntime"]) == ("max", "torch")


def test_temporal_stabilisation_gets_the_same_colour_conversion(tmp_path, engine):
    """With stabilisation on (the default) the output space is the stabilised frame, converted."""
    from hdr_plugin import color as C

    plate = write_plate(tmp_path / "in", [1, 2, 3])
    pattern = str(plate / "plate.%04d.png")
    ref = shots.convert_shot(pattern, str(tmp_path / "a" / "p.%04d.exr"), engine=engine, half=False)
    assert ref.exit_code == 0
    cg = shots.convert_shot(pattern, str(tmp_path / "b" / "p.%04d.exr"), engine=engine, half=False, output_space="acescg", curve=str(ref.curve_path))
    assert cg.exit_code == 0
    m = C.rgb_conversion_matrix(C.OUTPUT_SPACES["lin-rec709"], C.OUTPUT_SPACES["acescg"])
    for n in (1, 2, 3):
        h = _header(tmp_path / "b" / f"p.{n:04d}.exr")
        assert h["hdrPluginColorSpace"] == "acescg" and h["hdrPluginTemporalRadius"] != "0"
        want = C.apply_matrix(_pixels(tmp_path / "a" / f"p.{n:04d}.exr"), m)
        np.testing.assert_allclose(_pixels(tmp_path / "b" / f"p.{n:04d}.exr"), want, rtol=1e-5, atol=1e-6)
