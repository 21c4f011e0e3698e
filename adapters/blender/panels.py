"""UI: a panel in the compositor's sidebar (N panel, "HDR" tab) and an entry in the
Image Editor's Image menu."""

from __future__ import annotations

import bpy

from . import compat, operators, status
from .preferences import get_preferences


def _draw_progress(layout, context) -> bool:
    session = operators.active_session()
    if session is None:
        return False
    box = layout.box()
    job = session.job
    eta = job.eta
    if not job.ready_at and "loading the engine" in (job.stage, getattr(job, "detail", "")):
        text = "loading the engine"
    else:
        text = f"{job.stage} {job.progress * 100:.0f}%" + (f", {status.duration(eta)} left" if eta is not None else "")
    if hasattr(box, "progress"):  # Blender 4.0+
        box.progress(factor=job.progress, type="BAR", text=text)
    else:
        box.label(text=text)
    box.label(text="Esc in the editor that started it cancels", icon="CANCEL")
    return True


def _draw_settings(layout, context) -> None:
    settings = context.scene.hdr_plugin
    prefs = get_preferences(context)
    col = layout.column(align=True)
    col.prop(settings, "output_dir", text="")
    col.prop(settings, "exposure")
    if isinstance(prefs, bpy.types.AddonPreferences):
        col = layout.column(align=True)
        col.prop(prefs, "curve_mode", text="")
        row = col.row(align=True)
        row.prop(prefs, "device", text="")
        row.prop(prefs, "precision", text="")


class NODE_PT_hdr_plugin(bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "HDR"
    bl_label = "HDR Reconstruction"

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return space is not None and getattr(space, "tree_type", "") == compat.COMPOSITOR_TREE

    def draw(self, context):
        layout = self.layout
        running = _draw_progress(layout, context)
        tree = compat.context_tree(context)
        node = None
        try:
            node = operators.find_image_node(tree)
        except operators.BakeError:
            pass
        if node is None or node.image is None:
            layout.label(text="Select an Image node with an LDR plate", icon="INFO")
        else:
            image = node.image
            kind = "sequence" if image.source == "SEQUENCE" else ("float" if image.is_float else "8-bit")
            layout.label(text=f"{image.name} ({kind})", icon="IMAGE_DATA")
        _draw_settings(layout, context)
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = not running
        row.operator(operators.HDR_OT_reconstruct.bl_idname, icon="LIGHT_SUN")
        if tree is not None and operators.partner_node(tree, tree.nodes.active) is not None:
            layout.operator(operators.HDR_OT_toggle_source.bl_idname, icon="ARROW_LEFTRIGHT")


def draw_image_menu(self, context):
    layout = self.layout
    layout.separator()
    layout.operator(operators.HDR_OT_reconstruct.bl_idname, text="Reconstruct HDR", icon="LIGHT_SUN")


CLASSES = (NODE_PT_hdr_plugin,)


def register_menus() -> None:
    bpy.types.IMAGE_MT_image.append(draw_image_menu)


def unregister_menus() -> None:
    bpy.types.IMAGE_MT_image.remove(draw_image_menu)
