"""Video files in (MP4, MOV, MKV, ...), decoded with PyAV: ``pip install av`` (the ``video`` extra).

Frames come out as display-referred RGB in [0, 1] — the code values the engine expects —
8-bit streams as 8-bit, 10/12-bit streams as 16-bit.  The Y'CbCr -> R'G'B' matrix and the
range (limited/full) come from the stream; where the stream leaves them unspecified,
Rec.709 and limited range are assumed (what HD and UHD video are).  The transfer function
is *not* undone here (Linearization-Net estimates the camera curve, as for photos); it is
only checked and recorded: unspecified means Rec.709, PQ/HLG/linear streams are refused
(they are already HDR or not display-referred).  What was read and what was assumed goes
into every EXR header (``hdrPluginInput*`` attributes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .shots import ShotError

EXTRA_HINT = 'video input needs PyAV: pip install av (the [video] extra: pip install -e ".[video]" in a checkout)'

# FFmpeg AVColorTransferCharacteristic / AVColorSpace / AVColorPrimaries / AVColorRange codes
TRANSFERS = {
    1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361", 13: "srgb", 14: "bt2020-10",
    15: "bt2020-12", 16: "smpte2084 (PQ)", 17: "smpte428", 18: "arib-std-b67 (HLG)",
}
REFUSED_TRANSFERS = {8: "linear", 16: "PQ", 18: "HLG", 17: "SMPTE ST 428"}
MATRICES = {0: "rgb", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"}
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020", 11: "smpte431", 12: "smpte432"}
RANGES = {1: "limited", 2: "full"}
UNSPECIFIED = 2


class VideoError(ShotError):
    """A video cannot be decoded as display-referred frames."""


def _av():
    try:
        import av
    except ImportError as e:
        raise ImportError(EXTRA_HINT) from e
    return av


def _matrix_for_swscale(code: int):
    from av.video.reformatter import Colorspace

    return {
        1: Colorspace.ITU709, 5: Colorspace.ITU601, 6: Colorspace.ITU601, 4: Colorspace.FCC,
        7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020,
    }.get(code, Colorspace.ITU709)


class VideoSource:
    """A video file's first video stream, decoded to display-referred RGB frames."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        av = _av()
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise VideoError(f"{self.path}: no video stream")
                stream = container.streams.video[0]
                self.width, self.height = stream.codec_context.width, stream.codec_context.height
                self.codec = stream.codec_context.name
                self.pix_fmt = stream.codec_context.format.name if stream.codec_context.format else ""
                self.bit_depth = max((c.bits for c in stream.codec_context.format.components), default=8) if stream.codec_context.format else 8
                self.rate = float(stream.average_rate) if stream.average_rate else 0.0
                self._declared_frames = int(stream.frames or 0)
                first = next(container.decode(stream), None)
        except VideoError:
            raise
        except Exception as e:  # av.error.* : not a video we can open
            raise VideoError(f"{self.path}: cannot decode ({type(e).__name__}: {e})") from e
        if first is None:
            raise VideoError(f"{self.path}: no frames")
        self.transfer_code = int(getattr(first, "color_trc", UNSPECIFIED) or UNSPECIFIED)
        self.matrix_code = int(getattr(first, "colorspace", UNSPECIFIED) if getattr(first, "colorspace", None) is not None else UNSPECIFIED)
        self.primaries_code = int(getattr(first, "color_primaries", UNSPECIFIED) or UNSPECIFIED)
        self.range_code = int(getattr(first, "color_range", 0) or 0)
        self.is_rgb = self.pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "rgba", "bgra"))
        if self.transfer_code in REFUSED_TRANSFERS:
            raise VideoError(
                f"{self.path}: the stream's transfer is {REFUSED_TRANSFERS[self.transfer_code]}, which is not a "
                "display-referred SDR encoding; convert it to an SDR Rec.709 encoding first"
            )
        self._count: int | None = None

    # ---------------------------------------------------------------- description
    @property
    def transfer(self) -> str:
        return TRANSFERS.get(self.transfer_code, "bt709")

    def assumptions(self) -> dict[str, tuple[str, bool]]:
        """``{what: (value, assumed)}`` for transfer, matrix, primaries and range."""
        return {
            "Transfer": (TRANSFERS.get(self.transfer_code, "bt709"), self.transfer_code not in TRANSFERS),
            "Matrix": ("rgb" if self.is_rgb else MATRICES.get(self.matrix_code, "bt709"), not self.is_rgb and self.matrix_code not in MATRICES),
            "Primaries": (PRIMARIES.get(self.primaries_code, "bt709"), self.primaries_code not in PRIMARIES),
            "Range": ("full" if self.is_rgb else RANGES.get(self.range_code, "limited"), not self.is_rgb and self.range_code not in RANGES),
        }

    def metadata(self) -> dict[str, str]:
        """EXR header attributes saying what the frames were decoded as."""
        meta = {
            "hdrPluginInputVideo": self.path.name,
            "hdrPluginInputCodec": f"{self.codec} {self.pix_fmt} {self.bit_depth}-bit",
        }
        for what, (value, assumed) in self.assumptions().items():
            meta[f"hdrPluginInput{what}"] = value + (" (assumed: not specified in the file)" if assumed else " (from the file)")
        return meta

    def input_color(self):
        """The frames' colour for ``--input-space auto``: Rec.709 primaries (what is recorded
        in ``hdrPluginInputPrimaries``), code values given to the engine as they are (the
        transfer is left to the camera-curve estimate, as for photos)."""
        from . import color as C
        from .input_color import InputColor

        return InputColor(C.INPUT_SPACES["rec709"], "srgb", "video")

    # ---------------------------------------------------------------- decoding
    def _rgb(self, frame) -> np.ndarray:
        from av.video.reformatter import ColorRange

        deep = self.bit_depth > 8
        fmt = "rgb48le" if deep else "rgb24"
        if self.is_rgb:
            out = frame.reformat(format=fmt)
        else:
            rng = ColorRange.JPEG if self.range_code == 2 else ColorRange.MPEG
            out = frame.reformat(
                format=fmt,
                src_colorspace=_matrix_for_swscale(self.matrix_code),
                dst_colorspace=_matrix_for_swscale(self.matrix_code),
                src_color_range=rng,
                dst_color_range=ColorRange.JPEG,
            )
        a = out.to_ndarray()
        scale = 65535.0 if deep else 255.0
        return np.ascontiguousarray(a.astype(np.float32) / np.float32(scale))

    def iter_frames(self, indices: set[int] | None = None) -> Iterator[tuple[int, "object"]]:
        """``(index, LDRImage)`` for the frames at ``indices`` (all if None), in order."""
        from .io import LDRImage

        av = _av()
        last = max(indices) if indices else None
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if indices is None or i in indices:
                    yield i, LDRImage(self._rgb(frame), None, 16 if self.bit_depth > 8 else 8, self.path, color=self.input_color())
                if last is not None and i >= last:
                    return

    def read(self, indices: list[int]) -> dict[int, object]:
        return dict(self.iter_frames(set(indices)))

    def frame_count(self) -> int:
        """Frames in the stream (video packets, counted by demuxing)."""
        if self._count is None:
            av = _av()  # demuxing is cheap and exact where headers are not (MKV, cut files)
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                self._count = sum(1 for p in container.demux(stream) if p.size)
        return self._count
