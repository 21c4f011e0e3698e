"""Hook specifications: how plugins observe and change a reconstruction.

Plugins are objects or modules with functions decorated by :data:`hdr_plugin.hookimpl`,
registered with :func:`hdr_plugin.plugins.register_plugin` or shipped in a distribution
through the ``hdr_plugin`` entry-point group.  An implementation may accept fewer
arguments than its specification.  Every ``context`` is a :class:`hdr_plugin.pipeline.RunContext`.

Images passed to hooks are RGB float32 (H, W, 3) numpy arrays; display-referred ones are
in [0, 1], scene-linear ones are >= 0 and unbounded above.
"""

from __future__ import annotations

import pluggy

PROJECT = "hdr_plugin"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec(firstresult=True)
def hdr_prepare_input(image, context):
    """Convert the caller's array to display-referred RGB float32 (H, W, 3) in [0, 1].

    ``image`` is what the caller passed (any dtype, RGB channel order, 1 or 3 channels).
    Stops at the first non-None result; the built-in implementation runs last and
    handles uint8, uint16 and float inputs.
    """


@hookspec(firstresult=True)
def hdr_inverse_crf(image, context):
    """Return a (1024,) inverse camera curve to use instead of Linearization-Net, or None.

    ``image`` is the dequantized display-referred RGB image.  The curve maps brightness
    samples ``linspace(0, 1, 1024)`` to linear irradiance and must be monotonic with
    ``curve[0] == 0`` and ``curve[-1] == 1``.  Use it for a known camera curve or to lock
    one curve for a whole shot.  Stops at the first non-None result.
    """


@hookspec
def hdr_stage_output(stage, image, context):
    """Observe an intermediate result (return value ignored).

    ``stage`` is one of ``"dequantized"`` (display-referred), ``"inverse_curve"`` (the
    (1024,) curve used), ``"linear"``, ``"hallucinated"`` and ``"refined"`` (scene-linear).
    Arrays are shared with the engine: copy before modifying.
    """


@hookspec
def hdr_progress(stage, done, total, context):
    """Report progress: ``done`` of ``total`` units of ``stage`` are finished.

    Stages, in order: ``"dequantize"`` (tiles; ``quality="max"`` only), ``"linearize"``
    (1 of 1), ``"hallucinate"`` (the tiles that hold over-exposed pixels; 1 of 1 when
    there are none) and ``"refine"`` (tiles; ``quality="max"`` only).
    ``context.fraction`` is the share of the whole run's compute done so far (0..1,
    weighted by each step's multiply-accumulates, never decreasing): use it for progress
    bars and ETAs.  Return ``False`` to cancel the run: the engine raises
    :class:`hdr_plugin.pipeline.Cancelled` and the caller writes nothing.
    """


@hookspec
def hdr_finalize_output(result, context):
    """Adjust the final scene-linear result in place before it is returned.

    ``result`` is a :class:`hdr_plugin.pipeline.HDRResult` with ``image`` (RGB float32
    scene-linear) and ``metadata`` (a dict written into EXR headers by the CLI); replace
    ``result.image`` to change the pixels.  Built-in: the exposure adjustment.
    """
