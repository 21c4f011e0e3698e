"""Add-on preferences: where the engine comes from and how it runs."""

import sys

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

ADDON = __package__

ROUTES = [
    ("AUTO", "Automatic", "In Blender's Python if hdr-plugin imports there, else the external Python interpreter"),
    ("IN_PROCESS", "Blender's Python", "Import hdr-plugin (and torch) inside Blender"),
    ("SUBPROCESS", "External Python", "Run 'python -m hdr_plugin convert' with the interpreter below"),
]
DEVICES = [
    ("AUTO", "Automatic", "CUDA, then Apple MPS, then the CPU"),
    ("CPU", "CPU", ""),
    ("CUDA", "CUDA", "First NVIDIA GPU (fails if torch has no CUDA)"),
    ("MPS", "Apple MPS", "Apple Silicon GPU"),
]
PRECISIONS = [
    ("AUTO", "Automatic", "Reduced precision only where it is fast and measured to be faithful"),
    ("FP32", "fp32", "Full precision"),
    ("BF16", "bf16", "bfloat16"),
    ("FP16", "fp16", "half precision (GPU)"),
]
TILES = [
    ("AUTO", "Automatic", "1024-pixel tiles"),
    ("WHOLE", "Whole image", "No tiling (needs the most memory)"),
    ("CUSTOM", "Custom", "Tiles of the size below"),
]
OUTPUT_SPACES = [  # identifiers map to hdr-plugin's --output-space names (see output_space_name)
    ("LIN_REC709", "Linear Rec.709", "Scene-linear Rec.709/sRGB primaries (Blender's default working space)"),
    ("LIN_REC2020", "Linear Rec.2020", "Scene-linear Rec.2020 primaries"),
    ("LIN_P3", "Linear P3-D65", "Scene-linear P3 primaries, D65 white"),
    ("ACESCG", "ACEScg", "Scene-linear AP1 primaries (the ACES working space)"),
    ("ACES2065_1", "ACES2065-1", "Scene-linear AP0 primaries (ACES interchange)"),
]
CURVES = [
    ("SHOT", "One curve per shot", "Estimate one inverse camera curve over several frames so the plate does not flicker"),
    ("PER_FRAME", "Per frame", "Estimate the camera curve for each frame separately"),
]


class HDRPluginPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    engine_route: EnumProperty(name="Engine", items=ROUTES, default="AUTO")
    python_path: StringProperty(
        name="Python interpreter",
        description=(
            "A Python with hdr-plugin installed (torch==2.13.0 from the PyTorch CPU or CUDA index, then the "
            "hdr-plugin wheel or checkout), used when Blender's own Python has no torch"
        ),
        subtype="FILE_PATH",
        default="",
    )
    device: EnumProperty(name="Device", items=DEVICES, default="AUTO")
    precision: EnumProperty(name="Precision", items=PRECISIONS, default="AUTO")
    tile_mode: EnumProperty(name="Tiles", items=TILES, default="AUTO")
    tile_size: IntProperty(name="Tile size", min=64, max=16384, default=1024, subtype="PIXEL")
    curve_mode: EnumProperty(name="Camera curve", items=CURVES, default="SHOT")
    curve_frames: IntProperty(
        name="Curve frames", description="Frames sampled (evenly) to estimate a shot's curve", min=1, max=64, default=8
    )
    output_space: EnumProperty(
        name="Output space",
        description="Colour space of the reconstructed EXR; the new image is tagged with it",
        items=OUTPUT_SPACES,
        default="LIN_REC709",
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        col = layout.column(heading="Engine")
        col.prop(self, "engine_route")
        row = col.row()
        row.active = self.engine_route != "IN_PROCESS"
        row.prop(self, "python_path")
        col.operator("hdr.check_engine", icon="CHECKMARK")
        col = layout.column(heading="Performance")
        col.prop(self, "device")
        col.prop(self, "precision")
        col.prop(self, "tile_mode")
        if self.tile_mode == "CUSTOM":
            col.prop(self, "tile_size")
        col = layout.column(heading="Colour")
        col.prop(self, "output_space")
        col = layout.column(heading="Sequences")
        col.prop(self, "curve_mode")
        if self.curve_mode == "SHOT":
            col.prop(self, "curve_frames")
        box = layout.box()
        box.label(text="Blender's Python: " + sys.executable, icon="INFO")
        box.label(text="hdr-plugin needs torch; it is not bundled with this extension.")


class _Defaults:
    """The preference defaults, used when the add-on is not enabled through the add-on system."""

    engine_route = "AUTO"
    python_path = ""
    device = "AUTO"
    precision = "AUTO"
    tile_mode = "AUTO"
    tile_size = 1024
    curve_mode = "SHOT"
    curve_frames = 8
    output_space = "LIN_REC709"


def output_space_name(prefs) -> str:
    """The hdr-plugin ``--output-space`` name for the preference (``ACESCG`` -> ``acescg``)."""
    value = getattr(prefs, "output_space", "LIN_REC709")
    return {"ACES2065_1": "aces2065-1"}.get(value, value.lower().replace("_", "-"))


def get_preferences(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON)
    if addon is not None and addon.preferences is not None:
        return addon.preferences
    return _Defaults()


def tile_value(prefs) -> str | int:
    if prefs.tile_mode == "WHOLE":
        return 0
    if prefs.tile_mode == "CUSTOM":
        return int(prefs.tile_size)
    return "auto"


CLASSES = (HDRPluginPreferences,)
