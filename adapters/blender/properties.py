"""Per-scene settings (``scene.hdr_plugin``) and the window manager's progress state."""

import bpy
from bpy.props import FloatProperty, PointerProperty, StringProperty

from . import compat


class HDRPluginSceneSettings(bpy.types.PropertyGroup):
    output_dir: StringProperty(
        name="Output folder",
        description="Where the EXR results are written ('//' is the folder of the .blend file)",
        subtype="DIR_PATH",
        options=compat.BLEND_RELATIVE_PATH_OPTIONS,
        default="//hdr/",
    )
    exposure: FloatProperty(
        name="Exposure", description="Exposure adjustment in stops added to the result", default=0.0, soft_min=-8.0, soft_max=8.0
    )


def _progress_get(self) -> float:
    from . import operators

    session = operators.active_session()
    return session.job.progress * 100.0 if session and session.job else 0.0


def _status_get(self) -> str:
    from . import operators

    session = operators.active_session()
    return session.status_text() if session else ""


CLASSES = (HDRPluginSceneSettings,)


def register_properties() -> None:
    bpy.types.Scene.hdr_plugin = PointerProperty(type=HDRPluginSceneSettings)
    bpy.types.WindowManager.hdr_plugin_progress = FloatProperty(
        name="Progress", subtype="PERCENTAGE", min=0.0, max=100.0, get=_progress_get
    )
    bpy.types.WindowManager.hdr_plugin_status = StringProperty(name="Status", get=_status_get)


def unregister_properties() -> None:
    for owner, name in ((bpy.types.WindowManager, "hdr_plugin_status"), (bpy.types.WindowManager, "hdr_plugin_progress"), (bpy.types.Scene, "hdr_plugin")):
        if hasattr(owner, name):
            delattr(owner, name)
