"""The colour options of a conversion, the same for single images and for shots.

``--input-space``, ``--output-space``, ``--ocio``/``--ocio-space``, ``--passes`` and
``--multipart`` (see :mod:`hdr_plugin.input_color`, :mod:`hdr_plugin.color`,
:mod:`hdr_plugin.ocio`, :mod:`hdr_plugin.passes`) travel as one picklable
:class:`ColorOptions` — ``hdr-plugin convert`` for files, :func:`hdr_plugin.convert_shot`
for every frame of a shot, and the Ray workers — so a frame of a shot gets exactly the
pixels and EXR header it would get converted alone with the same curve.

Per image: :meth:`ColorOptions.engine_image` resolves the input's colour (the file's tags,
or the named ``input_space``) and returns the display-referred RGB the engine is given
(the camera curve is estimated on that, for one image or a whole shot);
:meth:`ColorOptions.output` converts the engine's result to the output space and returns
the EXR options (chromaticities, attributes, pass layers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_OUTPUT_SPACE = "lin-rec709"


@functools.lru_cache(maxsize=8)
def _transform(output_space: str, ocio: str | None, ocio_space: str | None):
    from .color import OutputTransform

    return OutputTransform(output_space, ocio, ocio_space)


@dataclass(frozen=True)
class ColorOptions:
    """What colour a conversion reads and writes.

    ``input_space``: ``auto`` (the file's tags; untagged = sRGB) or an
    :data:`hdr_plugin.color.INPUT_SPACES` name.  ``output_space``: an
    :data:`hdr_plugin.color.OUTPUT_SPACES` name, or ``ocio``/``ocio_space`` (an OpenColorIO
    config and one of its colour spaces).  ``passes``: extra EXR layers
    (:data:`hdr_plugin.passes.PASSES`), as layers or, with ``multipart``, as parts.
    """

    input_space: str = "auto"
    output_space: str = DEFAULT_OUTPUT_SPACE
    ocio: str | None = None
    ocio_space: str | None = None
    passes: tuple[str, ...] = ()
    multipart: bool = False

    @classmethod
    def make(cls, input_space=None, output_space=None, ocio=None, ocio_space=None, passes=None, multipart=False) -> "ColorOptions":
        """From option values as the CLI or the API take them (``passes``: ``"mask,linear"``,
        ``"all"`` or a sequence; an OCIO config file is made absolute for workers elsewhere).
        Raises ValueError for an unknown pass name."""
        from .passes import parse_passes

        names = parse_passes(",".join(passes) if isinstance(passes, (list, tuple)) else passes)
        if ocio and "://" not in str(ocio) and Path(str(ocio)).is_file():
            ocio = str(Path(str(ocio)).resolve())
        return cls(input_space or "auto", output_space or DEFAULT_OUTPUT_SPACE, ocio or None, ocio_space or None, names, bool(multipart))

    @classmethod
    def from_args(cls, args) -> "ColorOptions":
        """From ``hdr-plugin convert`` arguments."""
        return cls.make(
            getattr(args, "input_space", None), getattr(args, "output_space", None), getattr(args, "ocio", None),
            getattr(args, "ocio_space", None), getattr(args, "passes", None), getattr(args, "multipart", False),
        )

    @property
    def is_default(self) -> bool:
        return self == ColorOptions()

    def check(self, fmt: str = "exr") -> None:
        """Refuse what cannot be written, naming the option (ValueError), before anything runs."""
        import logging

        if (self.passes or self.multipart) and fmt != "exr":
            raise ValueError("--passes and --multipart need EXR output")
        if self.input_space != "auto":
            from .input_color import from_name

            from_name(self.input_space)
        self.transform()  # an unknown output space, OpenColorIO missing, a bad config or space
        if fmt != "exr" and (self.output_space != DEFAULT_OUTPUT_SPACE or self.ocio):
            logging.getLogger("hdr_plugin").warning(
                "hdr-plugin: Radiance .hdr files carry no colour tag; the pixels are in %s", self.ocio_space or self.output_space
            )

    def transform(self):
        """The :class:`hdr_plugin.color.OutputTransform` (one per process and option set)."""
        return _transform(self.output_space, self.ocio, self.ocio_space)

    def collector(self):
        """A fresh :class:`hdr_plugin.passes.PassCollector` for the passes, or None."""
        if not self.passes:
            return None
        from .passes import PassCollector

        return PassCollector(self.passes)

    def input_color(self, image):
        """The :class:`hdr_plugin.input_color.InputColor` of a decoded image (its tags, or ``input_space``)."""
        from .input_color import resolve

        return resolve(getattr(image, "color", None), self.input_space)

    def engine_image(self, image) -> tuple[np.ndarray, object]:
        """``(RGB the engine is given, InputColor)`` for a decoded :class:`hdr_plugin.io.LDRImage`."""
        from .input_color import engine_input

        color = self.input_color(image)
        return engine_input(image.rgb, color), color

    def output(self, result, color, collector=None) -> tuple[np.ndarray, dict]:
        """``(RGB in the output space, write_exr options)`` for an engine result."""
        from .passes import prepare_output

        rgb, options = prepare_output(result, color, self.transform(), collector)
        options["multipart"] = self.multipart
        return rgb, options
