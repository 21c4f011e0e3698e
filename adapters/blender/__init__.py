"""HDR Reconstruct: turn 8-bit plates into scene-linear HDR from Blender's compositor.

A Blender 4.2+ extension around the ``hdr_plugin`` engine (``blender_manifest.toml``).
The engine (torch) is not bundled: it is imported in Blender's Python when installed
there, or run as ``python -m hdr_plugin`` with the interpreter set in the preferences.
See README.md beside this file.
"""

from __future__ import annotations

import bpy

from . import operators, panels, preferences, properties

_CLASSES = (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panels.CLASSES)
_registered = False


def register() -> None:
    global _registered
    if _registered:
        print(f"{__package__}: already registered; refusing to register twice")
        return
    taken = [c.__name__ for c in _CLASSES if c is not preferences.HDRPluginPreferences and getattr(bpy.types, c.__name__, None) is not None]
    if taken:
        raise RuntimeError(
            f"{__package__}: {', '.join(taken)} already registered by another copy of this add-on; disable that copy first"
        )
    registered = []
    try:
        for cls in _CLASSES:
            bpy.utils.register_class(cls)
            registered.append(cls)
        properties.register_properties()
        panels.register_menus()
    except Exception:
        for cls in reversed(registered):
            bpy.utils.unregister_class(cls)
        raise
    _registered = True


def unregister() -> None:
    global _registered
    if not _registered:
        return
    operators.cancel_running()
    panels.unregister_menus()
    properties.unregister_properties()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    _registered = False
