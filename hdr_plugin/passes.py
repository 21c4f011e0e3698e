"""EXR passes: the engine's intermediates as extra layers beside the RGB beauty.

``--passes mask,linear,hallucinated,curve`` adds these layers (OpenEXR layer naming,
``layer.channel``; the beauty stays the unnamed default layer ``R``, ``G``, ``B`` [``A``]
so every reader still sees it):

========================  ==================================================================
layer / channels          what it holds
========================  ==================================================================
``mask.Y``                Hallucination-Net's over-exposure mask in [0, 1]
                          (``clip((max_c(linear) - t) / (1 - t), 0, 1)``, ``t`` the model's
                          ``mask_threshold``): 1 where highlights were restored
``linear.R/G/B``          the image after dequantization and the inverse camera curve, before
                          hallucination (scene-linear, output space, exposure applied)
``hallucinated.R/G/B``    Hallucination-Net's output before refinement (same space)
``curve.Y``               the inverse camera curve drawn as a strip: pixel ``(x, y)`` holds
                          ``curve(x / (width - 1))`` for every row (code value -> relative
                          linear light); the exact 1024 samples are in the header attribute
                          ``hdrPluginInverseCurve`` (float vector)
========================  ==================================================================

With ``--multipart`` the same layers are written as parts of a multi-part EXR instead:
part ``rgba`` holds the beauty, and one part per pass is named after it (channel names
unchanged, e.g. part ``mask`` holds ``mask.Y``).

The intermediates come from the ``hdr_stage_output`` hook (stages ``linear``,
``hallucinated``, ``inverse_curve``) through a :class:`PassCollector` plugin; the engine
is not changed.  Colour conventions: RGB order; scene-linear passes are converted to the
output space exactly as the beauty is.
"""

from __future__ import annotations

import numpy as np

from .plugins import hookimpl

PASSES = ("mask", "linear", "hallucinated", "curve")
#: the channel names each pass is written under
PASS_CHANNELS = {
    "mask": ("mask.Y",),
    "linear": ("linear.R", "linear.G", "linear.B"),
    "hallucinated": ("hallucinated.R", "hallucinated.G", "hallucinated.B"),
    "curve": ("curve.Y",),
}
CURVE_ATTRIBUTE = "hdrPluginInverseCurve"


def parse_passes(text: str | None) -> tuple[str, ...]:
    """``"mask,linear"`` -> ``("mask", "linear")``; ``all`` for every pass; unknown names raise ValueError."""
    if not text:
        return ()
    names = [p.strip().lower() for p in str(text).split(",") if p.strip()]
    if names == ["all"]:
        return PASSES
    bad = [n for n in names if n not in PASSES]
    if bad:
        raise ValueError(f"unknown pass {', '.join(bad)}; choose from {', '.join(PASSES)} (or all)")
    return tuple(dict.fromkeys(names))


class PassCollector:
    """A plugin that keeps the stage outputs one reconstruction needs for its passes.

    Register it on the engine's plugin manager for the run; :meth:`reset` before each image.
    """

    STAGES = {"linear": "linear", "hallucinated": "hallucinated", "inverse_curve": "curve"}

    def __init__(self, passes=PASSES):
        self.passes = tuple(passes)
        self.stages: dict[str, np.ndarray] = {}
        self.mask_threshold: float | None = None
        self.exposure = 0.0

    def reset(self) -> None:
        self.stages.clear()

    @hookimpl
    def hdr_stage_output(self, stage, image, context):
        if stage not in self.STAGES:
            return None
        self.stages[stage] = np.array(image, dtype=np.float32, copy=True)
        if stage == "linear":
            hal = getattr(getattr(context.engine, "model", None), "hal", None)
            self.mask_threshold = float(getattr(hal, "mask_threshold", 0.88))
            self.exposure = float(context.options.get("exposure", 0.0) or 0.0)
        return None

    def _need(self, stage: str) -> np.ndarray:
        if stage not in self.stages:
            raise RuntimeError(f"the engine reported no {stage!r} stage output; cannot write the pass")
        return self.stages[stage]

    def layers(self, convert, height: int, width: int) -> tuple[dict, dict]:
        """``({layer: {channel: (H, W) float32}}, extra header attributes)`` for the requested passes.

        ``convert(rgb)`` maps a scene-linear image in the engine's space to the output space.
        """
        layers: dict[str, dict[str, np.ndarray]] = {}
        attrs: dict = {}
        gain = np.float32(2.0**self.exposure)
        for name in self.passes:
            if name == "mask":
                from .arch import overexposure_mask

                import torch

                lin = torch.from_numpy(self._need("linear").transpose(2, 0, 1)[None].copy())
                mask = overexposure_mask(lin, self.mask_threshold)[0, 0].numpy()
                layers["mask"] = {"mask.Y": np.ascontiguousarray(mask, dtype=np.float32)}
            elif name in ("linear", "hallucinated"):
                rgb = convert(self._need(name) * gain)
                layers[name] = {c: np.ascontiguousarray(rgb[:, :, i]) for i, c in enumerate(PASS_CHANNELS[name])}
            elif name == "curve":
                curve = self._need("inverse_curve").reshape(-1).astype(np.float32)
                x = np.linspace(0.0, 1.0, width)
                row = np.interp(x, np.linspace(0.0, 1.0, curve.size), curve).astype(np.float32)
                layers["curve"] = {"curve.Y": np.ascontiguousarray(np.broadcast_to(row, (height, width)))}
                attrs[CURVE_ATTRIBUTE] = curve
        return layers, attrs


def prepare_output(result, color, transform, collector: PassCollector | None = None) -> tuple[np.ndarray, dict]:
    """The beauty in the output space and the EXR options that go with it.

    ``result``: the engine's :class:`~hdr_plugin.pipeline.HDRResult` (scene-linear in the
    input's primaries); ``color``: the :class:`~hdr_plugin.input_color.InputColor` used;
    ``transform``: a :class:`~hdr_plugin.color.OutputTransform`.  Returns ``(rgb, options)``
    with ``options`` = ``attributes`` (engine metadata + what was detected + the output
    space), ``chromaticities`` (False: none to write) and ``layers`` for
    :func:`hdr_plugin.io.write_exr`.
    """
    from .input_color import engine_output_space

    source = engine_output_space(color)
    rgb = transform.apply(result.image, source)
    attributes = {**result.metadata, **color.metadata(), **transform.attributes()}
    layers: dict = {}
    if collector is not None and collector.passes:
        layers, extra = collector.layers(lambda x: transform.apply(x, source), rgb.shape[0], rgb.shape[1])
        attributes.update(extra)
        attributes["hdrPluginPasses"] = ",".join(collector.passes)
    chroma = transform.chromaticities()
    return rgb, {"attributes": attributes, "chromaticities": chroma if chroma is not None else False, "layers": layers}
