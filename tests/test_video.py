"""Video in (hdr_plugin/video.py, the video extra): real files encoded here with
PyAV — 8-bit H.264 MP4 without colour tags, 10-bit ProRes MOV tagged Rec.709, a PQ stream —
decoded to display-referred frames and converted to EXR sequences."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from hdr_plugin import cli, shots

av = pytest.importorskip("av", reason='PyAV is not installed (pip install av, the [video] extra)')
from av.video.reformatter import ColorRange, Colorspace  # noqa: E402

from hdr_plugin.video import VideoError, VideoSource  # noqa: E402

ENGINE_ARGS = ["--device", "cpu", "--precision", "fp32", "--tile", "0"]
G, B = 0.45, 0.30


def _rgb_frame(i: int, deep: bool, h: int = 48, w: int = 64) -> np.ndarray:
    m = 65535 if deep else 255
    a = np.zeros((h, w, 3), np.uint16 if deep else np.uint8)
    a[..., 0] = (((np.arange(w) + 2 * i) % w / (w - 1))[None] * m).astype(a.dtype)  # moving ramp
    a[..., 1], a[..., 2] = int(G * m), int(B * m)
    a[10:20, 20 + i : 30 + i] = m  # a clipped highlight
    return a


def encode(path: Path, codec: str, pix_fmt: str, frames: int = 5, tags: dict | None = None) -> Path:
    """Encode ``frames`` synthetic frames, converting R'G'B' -> Y'CbCr with the Rec.709 matrix
    and limited range, and tagging the stream with ``tags`` (AVColor* codes)."""
    deep = "10" in pix_fmt
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
        for k, v in (tags or {}).items():
            setattr(s.codec_context, k, v)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(_rgb_frame(i, deep), format="rgb48le" if deep else "rgb24")
            f = f.reformat(format=pix_fmt, src_colorspace=Colorspace.ITU709, dst_colorspace=Colorspace.ITU709,
                           src_color_range=ColorRange.JPEG, dst_color_range=ColorRange.MPEG)
            for k, v in (tags or {}).items():  # the encoders take the tags from the frames
                setattr(f, k, v)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("vid") / "clip.mp4", "libx264", "yuv420p")


@pytest.fixture(scope="module")
def mov10(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("vid") / "plate10.mov", "prores_ks", "yuv422p10le",
                  tags=dict(color_trc=1, colorspace=1, color_primaries=1, color_range=1))


def test_8bit_mp4_untagged_assumes_rec709(mp4):
    v = VideoSource(mp4)
    assert (v.width, v.height, v.bit_depth, v.frame_count()) == (64, 48, 8, 5)
    meta = v.metadata()
    assert meta["hdrPluginInputTransfer"] == "bt709 (assumed: not specified in the file)"
    assert meta["hdrPluginInputMatrix"].startswith("bt709 (assumed")
    assert meta["hdrPluginInputRange"].startswith("limited (assumed")
    frames = v.read([0, 3])
    assert sorted(frames) == [0, 3]
    img = frames[3]
    assert img.rgb.dtype == np.float32 and img.rgb.shape == (48, 64, 3) and img.bit_depth == 8
    flat = img.rgb[30:, :, 1:]  # away from the highlight: G, B as encoded (lossy codec)
    assert abs(float(np.median(flat[..., 0])) - G) < 0.02 and abs(float(np.median(flat[..., 1])) - B) < 0.02
    assert img.rgb[12:18, 26:30].min() > 0.9  # the highlight is white (full range after decoding)


def test_10bit_mov_keeps_10bit_precision_and_reads_tags(mov10):
    v = VideoSource(mov10)
    assert v.bit_depth == 10 and v.pix_fmt == "yuv422p10le"
    meta = v.metadata()
    assert meta["hdrPluginInputTransfer"] == "bt709 (from the file)"
    assert meta["hdrPluginInputRange"] == "limited (from the file)"
    img = v.read([1])[1]
    assert img.bit_depth == 16
    ramp = img.rgb[30:, :, 0].ravel()
    codes = ramp * 255.0
    assert np.abs(codes - np.round(codes)).max() > 0.1  # finer than 8-bit steps
    assert abs(float(np.median(img.rgb[30:, :, 1])) - G) < 0.01


def test_pq_stream_is_refused(tmp_path):
    path = encode(tmp_path / "pq.mkv", "libx265", "yuv420p10le", 2, dict(color_trc=16, colorspace=9, color_primaries=9, color_range=1))
    with pytest.raises(VideoError, match="PQ"):
        VideoSource(path)
    assert cli.main(["convert", str(path), "-o", str(tmp_path / "o"), *ENGINE_ARGS]) == 2


def test_video_converts_to_exr_sequence_with_one_curve(mp4, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["convert", str(mp4), "--frames", "2-4", "-o", str(out / "clip.%04d.exr"), *ENGINE_ARGS]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.0002.exr", "clip.0003.exr", "clip.0004.exr", "clip.curve.npy"]
    with OpenEXR.File(str(out / "clip.0003.exr"), separate_channels=True) as f:
        h = dict(f.header())
        rgb = np.stack([f.parts[0].channels[c].pixels for c in "RGB"], axis=-1).astype(np.float32)
    assert h["hdrPluginInputVideo"] == "clip.mp4" and h["hdrPluginFrame"] == "3"
    assert h["hdrPluginInputTransfer"].startswith("bt709 (assumed")
    assert h["hdrPluginCurveMode"] == "shot" and h["hdrPluginCurveFrames"] == "1,2,3,4,5"  # all 5 frames of the shot
    assert rgb.shape == (48, 64, 3) and np.isfinite(rgb).all()
    # a folder output names frames after the video
    r = shots.convert_shot(str(mp4), str(tmp_path / "folder"), frames=[5], device="cpu", precision="fp32", tile=0)
    assert r.converted == [5] and (tmp_path / "folder" / "clip.0005.exr").is_file()


def test_missing_pyav_names_the_extra(mp4, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)
    assert cli.main(["convert", str(mp4), "-o", str(tmp_path / "o"), *ENGINE_ARGS]) == 2
    assert 'pip install av' in capsys.readouterr().err
