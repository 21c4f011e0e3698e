#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Enhance > Reconstruct HDR...

Reconstructs a scene-linear HDR image from the active RGB(A) or grayscale layer with hdr_plugin
(Liu et al., CVPR 2020: dequantization, inverse camera curve, highlight hallucination,
refinement) and opens it as a new 32-bit float linear image, alpha kept, so values above
1.0 survive.  The source image is not modified.

The engine runs in GIMP's own Python when ``hdr_plugin`` imports there; otherwise (or
when an *Engine Python* is set) it runs as ``python -m hdr_plugin convert`` under that
interpreter, exchanging float OpenEXR files.  Install: ``python adapters/gimp/install.py`` (see README.md).
The pixel and engine logic lives in ``hdr_gimp_core.py`` beside this file.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import GLib, GObject, Gimp  # noqa: E402

import hdr_gimp_core as core  # noqa: E402

PROC_NAME = "plug-in-hdr-plugin-reconstruct"
PLUGIN_NAME = "hdr_plugin_gimp"
TITLE = "Reconstruct HDR"


def _choice(values):
    choice = Gimp.Choice.new()
    for i, (nick, label) in enumerate(values):
        choice.add(nick, i, label, "")
    return choice


def _error(procedure, status, message):
    Gimp.message(message)
    return procedure.new_return_values(status, GLib.Error(message))


def make_hdr_image(rgb, alpha, width, height, layer_name):
    """A new RGB image at FLOAT_LINEAR precision holding scene-linear ``rgb`` (+ ``alpha``)."""
    image = Gimp.Image.new_with_precision(width, height, Gimp.ImageBaseType.RGB, Gimp.Precision.FLOAT_LINEAR)
    image.undo_disable()
    layer_type = Gimp.ImageType.RGBA_IMAGE if alpha is not None else Gimp.ImageType.RGB_IMAGE
    layer = Gimp.Layer.new(image, layer_name, width, height, layer_type, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    core.write_linear(layer.get_buffer(), 0, 0, width, height, rgb, alpha)
    layer.update(0, 0, width, height)
    image.undo_enable()
    return image


def run(procedure, run_mode, image, drawables, config, run_data):
    if len(drawables) != 1:
        return _error(procedure, Gimp.PDBStatusType.CALLING_ERROR, f"{TITLE} works on one layer; select exactly one.")
    drawable = drawables[0]
    if not (drawable.is_rgb() or drawable.is_gray()):
        # indexed layers: babl would expand the palette, but a palette image is not a photo
        return _error(
            procedure,
            Gimp.PDBStatusType.CALLING_ERROR,
            f"{TITLE} needs an RGB or grayscale layer; this one is indexed (Image > Mode > RGB converts it).",
        )

    if run_mode == Gimp.RunMode.INTERACTIVE:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init(PLUGIN_NAME)
        dialog = GimpUi.ProcedureDialog.new(procedure, config, TITLE)
        dialog.fill(None)
        accepted = dialog.run()
        dialog.destroy()
        if not accepted:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())

    try:
        settings = core.Settings.from_config(config)
    except core.EngineError as e:
        return _error(procedure, Gimp.PDBStatusType.CALLING_ERROR, str(e))

    width, height = drawable.get_width(), drawable.get_height()
    Gimp.progress_init(f"{TITLE}...")

    def progress(fraction, text=None):
        if text:
            Gimp.progress_set_text(text)
        Gimp.progress_update(min(1.0, max(0.0, fraction)))

    try:
        source = drawable.get_buffer()  # read only: the source image is never written
        rgb = core.read_display_rgb(source, 0, 0, width, height)
        alpha = core.read_alpha(source, 0, 0, width, height) if drawable.has_alpha() else None
        hdr, route = core.reconstruct_pixels(rgb, width, height, settings, progress)
        progress(0.97, "Creating the HDR image")
        name = f"HDR ({settings.exposure:+.1f} EV)"
        new_image = make_hdr_image(hdr, alpha, width, height, name)
    except core.EngineError as e:
        Gimp.progress_end()
        return _error(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, str(e))
    except Exception as e:  # anything else: report it instead of leaving GIMP waiting
        Gimp.progress_end()
        return _error(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, f"{TITLE} failed: {type(e).__name__}: {e}")

    progress(1.0)
    Gimp.progress_end()
    if run_mode == Gimp.RunMode.INTERACTIVE:
        Gimp.Display.new(new_image)
        Gimp.displays_flush()
    retval = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    retval.remove(1)
    retval.insert(1, GObject.Value(Gimp.Image, new_image))
    return retval


class HDRPlugin(Gimp.PlugIn):
    def do_set_i18n(self, name):
        return False

    def do_query_procedures(self):
        return [PROC_NAME]

    def do_create_procedure(self, name):
        flags = GObject.ParamFlags.READWRITE
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*, GRAY*")  # gray is read as R'G'B' (babl replicates it)
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Reconstruct _HDR...")
        procedure.add_menu_path("<Image>/Filters/Enhance/")
        procedure.set_documentation(
            "Reconstruct a scene-linear HDR image from the layer",
            "Runs hdr_plugin on the active RGB(A) layer and opens the result as a new 32-bit "
            "float linear image (alpha kept; values above 1.0 are clipped highlights restored). "
            "The source image is not modified.",
            name,
        )
        procedure.set_attribution("hdr_plugin authors", "hdr_plugin authors (MIT)", "2025")
        procedure.add_double_argument("exposure", "_Exposure (EV)", "Exposure change applied to the result, in stops", -10.0, 10.0, 0.0, flags)
        devices = [("auto", "Auto (CUDA, then MPS, then CPU)"), ("cpu", "CPU"), ("cuda", "CUDA GPU"), ("mps", "Apple GPU (MPS)")]
        procedure.add_choice_argument("device", "_Device", "Where the networks run", _choice(devices), "auto", flags)
        precisions = [("auto", "Auto"), ("fp32", "32-bit float"), ("bf16", "bfloat16"), ("fp16", "16-bit float")]
        procedure.add_choice_argument("precision", "_Precision", "Network precision", _choice(precisions), "auto", flags)
        procedure.add_int_argument("tile-size", "_Tile size", "Tile size in pixels; 0 processes the whole image at once", 0, 16384, 1024, flags)
        procedure.add_string_aux_argument(
            "engine-python",
            "Engine _Python",
            "Python interpreter with hdr-plugin installed; empty = GIMP's own Python",
            core.default_engine_python(),
            flags,
        )
        procedure.add_image_return_value("new-image", "New image", "The reconstructed HDR image", False, flags)
        return procedure


if __name__ == "__main__":
    Gimp.main(HDRPlugin.__gtype__, sys.argv)
