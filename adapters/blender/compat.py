"""Differences between Blender 4.2 LTS and 5.0 that the adapter touches, in one place.

* The scene's compositor tree: ``scene.node_tree`` (with ``scene.use_nodes``) in 4.x;
  ``scene.compositing_node_group`` (a node group assigned to the scene) in 5.0+.
* The tree's output: a ``CompositorNodeComposite`` node in 4.x; a Group Output node with
  an ``Image`` interface socket in 5.0+.
* Colour space names: ``'Linear Rec.709'`` exists in both (it was ``'Linear'`` before
  4.0); results are tagged with it rather than ``scene_linear`` so that Blender converts
  them when a 5.0 file uses another working space.
"""

from __future__ import annotations

import bpy

BLENDER_5 = bpy.app.version >= (5, 0, 0)
LINEAR_REC709 = "Linear Rec.709"
IMAGE_NODE = "CompositorNodeImage"
# 5.0 warns when a path property without this option is given a '//' (blend-relative)
# value; 4.2 does not know the option.
BLEND_RELATIVE_PATH_OPTIONS = {"PATH_SUPPORTS_BLEND_RELATIVE"} if BLENDER_5 else set()
COMPOSITOR_TREE = "CompositorNodeTree"


def has_scene_node_group(scene: bpy.types.Scene) -> bool:
    return hasattr(scene, "compositing_node_group")


def compositor_tree(scene: bpy.types.Scene, create: bool = False):
    """The scene's compositor node tree (None if it has none and ``create`` is false)."""
    if has_scene_node_group(scene):  # 5.0+
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new("Compositing", COMPOSITOR_TREE)
            scene.compositing_node_group = tree
        return tree
    if create and not scene.use_nodes:  # 4.x
        scene.use_nodes = True
    return scene.node_tree


def context_tree(context):
    """The compositor tree the user is looking at: the Node Editor's edited tree (which
    may be a group inside the compositor) when the editor shows the compositor, else the
    scene's tree."""
    space = getattr(context, "space_data", None)
    if space is not None and getattr(space, "type", "") == "NODE_EDITOR" and getattr(space, "tree_type", "") == COMPOSITOR_TREE:
        tree = getattr(space, "edit_tree", None)
        if tree is not None:
            return tree
    scene = getattr(context, "scene", None)
    return compositor_tree(scene) if scene is not None else None


def output_socket(tree, create: bool = False):
    """The input socket of the tree's final output (Composite in 4.x, Group Output in 5.0)."""
    if BLENDER_5 or not hasattr(bpy.types, "CompositorNodeComposite"):
        node = next((n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"), None)
        if node is None and not create:
            return None
        if not any(getattr(i, "in_out", "") == "OUTPUT" and i.item_type == "SOCKET" for i in tree.interface.items_tree):
            if not create:
                return None
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        if node is None:
            node = tree.nodes.new("NodeGroupOutput")
            node.location = (400, 0)
        return node.inputs[0]
    node = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
    if node is None:
        if not create:
            return None
        node = tree.nodes.new("CompositorNodeComposite")
        node.location = (400, 0)
    return node.inputs["Image"]


def is_image_node(node) -> bool:
    return node is not None and node.bl_idname == IMAGE_NODE


#: hdr-plugin output space -> the names Blender's OCIO config may call it (first found wins)
BLENDER_COLORSPACES = {
    "lin-rec709": (LINEAR_REC709, "Linear"),
    "lin-rec2020": ("Linear Rec.2020",),
    "lin-p3": ("Linear DCI-P3 D65", "Linear P3-D65"),
    "acescg": ("ACEScg",),
    "aces2065-1": ("ACES2065-1", "Linear ACES"),
}


def colorspace_names() -> list[str]:
    """The colour spaces of the running Blender's OCIO config."""
    prop = bpy.types.ColorManagedInputColorspaceSettings.bl_rna.properties["name"]
    return [item.identifier for item in prop.enum_items]


def blender_colorspace(space: str) -> str:
    """The Blender colour space name for an hdr-plugin output space; ValueError if this Blender has none."""
    names = colorspace_names()
    for candidate in BLENDER_COLORSPACES.get(space, ()):
        if candidate in names:
            return candidate
    raise ValueError(
        f"this Blender's colour configuration has no colour space for {space!r} "
        f"(looked for {', '.join(BLENDER_COLORSPACES.get(space, ()) or ['-'])}); choose another output space "
        "in the hdr-plugin preferences"
    )


def tag_linear(image: bpy.types.Image, space: str = "lin-rec709") -> None:
    """Mark a loaded EXR as scene-linear in ``space`` (an hdr-plugin output space name)."""
    image.colorspace_settings.name = blender_colorspace(space)


def copy_frame_settings(src, dst) -> None:
    """Copy an image user's frame range (compositor Image node or ``SpaceImageEditor.image_user``)."""
    for attr in ("frame_duration", "frame_start", "frame_offset", "use_cyclic", "use_auto_refresh"):
        if hasattr(src, attr) and hasattr(dst, attr):
            setattr(dst, attr, getattr(src, attr))
