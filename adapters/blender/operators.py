"""Operators: "Reconstruct HDR" (modal, cancellable with Esc), "Toggle LDR / HDR" and
"Check Engine".

Blender cannot run Python per pixel inside the compositor, so Reconstruct HDR *bakes*:

1. main thread: find the source (the Image Editor's image, else the active or a selected
   compositor Image node), read its pixels with ``foreach_get`` into a preallocated
   float32 buffer (rows flipped: Blender stores them bottom-up) -- byte images are already
   display-referred -- or, for image sequences, the frame files from disk;
2. a :class:`jobs.Job` runs the engine off the main thread (worker thread with torch in
   Blender's Python, or ``python -m hdr_plugin convert`` in a subprocess) and writes EXRs
   with the engine's own writer into a staging folder; a timer polls it, Esc cancels it;
3. main thread, only on success: move the EXRs into place, ``bpy.data.images.load`` them
   (tagged ``Linear Rec.709``) and wire a new Image node where the old node's outputs
   went.  The old node stays in the tree, muted and moved aside.

A cancelled or failed run changes neither the node tree nor the output folder.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import bpy
import numpy as np
from bpy.props import StringProperty

from . import compat, jobs, status
from .preferences import get_preferences, output_space_name, tile_value

SOURCE_KEY = "hdr_plugin_source"  # custom property on the HDR node: the LDR node's name
RESULT_KEY = "hdr_plugin_result"  # custom property on the LDR node: the HDR node's name
MOVE_ASIDE = 350.0

_ACTIVE: "Session | None" = None


class BakeError(Exception):
    """Something the user has to fix before a reconstruction can run."""


def active_session() -> "Session | None":
    return _ACTIVE


# --------------------------------------------------------------------------- reading
def read_pixels(image: bpy.types.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """An image's pixels as display-referred RGB float32 (top row first) plus alpha or None."""
    w, h = image.size
    if w == 0 or h == 0:
        raise BakeError(f"Image '{image.name}' has no pixels (is {image.filepath or 'its file'} missing?)")
    n = len(image.pixels)
    if n == 0 or n % (w * h):
        raise BakeError(f"Image '{image.name}' has no readable pixel buffer")
    c = n // (w * h)
    buf = np.empty(n, dtype=np.float32)
    image.pixels.foreach_get(buf)
    a = buf.reshape(h, w, c)[::-1]  # Blender stores rows bottom-up
    rgb = a[:, :, :3] if c >= 3 else np.repeat(a[:, :, :1], 3, axis=2)
    alpha = a[:, :, c - 1] if c in (2, 4) else None
    if alpha is not None and float(alpha.min()) >= 1.0:
        alpha = None
    return np.ascontiguousarray(rgb), (np.ascontiguousarray(alpha) if alpha is not None else None)


def _abspath(image: bpy.types.Image) -> Path | None:
    if not image.filepath:
        return None
    return Path(bpy.path.abspath(image.filepath, library=image.library))


def _float_refusal(image: bpy.types.Image) -> BakeError:
    return BakeError(
        f"Image '{image.name}' holds float (scene-linear) pixels; Reconstruct HDR needs a display-referred "
        "8- or 16-bit plate (PNG, JPEG, TIFF). Load the original LDR file into the Image node"
    )


def plan_frames(image: bpy.types.Image, user, out_dir: Path) -> tuple[list[jobs.Frame], bool]:
    """The frames to reconstruct and whether they form a sequence.  ``user`` carries the
    frame range (a compositor Image node or the Image Editor's image user)."""
    source = image.source
    if source == "MOVIE":
        raise BakeError(
            f"Image '{image.name}' is a movie; Blender gives Python only one frame of a movie. "
            "Convert it to a PNG sequence first (e.g. ffmpeg -i plate.mov plate.%04d.png) and load that"
        )
    if source not in ("FILE", "GENERATED", "SEQUENCE"):
        raise BakeError(f"Image '{image.name}' has source '{source}', which Reconstruct HDR does not support")
    if source == "SEQUENCE":
        first = _abspath(image)
        if image.packed_file is not None or first is None:
            raise BakeError(f"Image sequence '{image.name}' must be stored in files on disk (unpack it first)")
        if first.suffix.lower() not in jobs.LDR_SUFFIXES:
            raise _float_refusal(image) if image.is_float else BakeError(f"'{first.name}' is not an LDR image file")
        duration = int(getattr(user, "frame_duration", 0) or image.frame_duration or 1)
        offset = int(getattr(user, "frame_offset", 0) or 0)
        numbers = [offset + k for k in range(1, duration + 1)]
        try:
            paths = [jobs.sequence_frame_path(first, n) for n in numbers]
        except ValueError as e:
            raise BakeError(str(e))
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise BakeError(
                f"{len(missing)} of {len(paths)} frames of '{image.name}' are missing ({', '.join(missing[:3])}"
                f"{'...' if len(missing) > 3 else ''}); check the node's frame count and offset"
            )
        stem, digits = jobs.sequence_stem(first)
        outputs = jobs.unique_outputs(out_dir, jobs.clean_stem(stem), numbers, digits)
        return [jobs.Frame(label=f"{n:0{digits}d}", output=o, path=p) for n, p, o in zip(numbers, paths, outputs)], True

    path = _abspath(image)
    stem = jobs.clean_stem(path.name if path is not None and image.source == "FILE" else image.name)
    [output] = jobs.unique_outputs(out_dir, stem, None)
    if image.is_float:
        on_disk = path is not None and image.packed_file is None and path.is_file() and not image.is_dirty
        if on_disk and path.suffix.lower() in jobs.LDR_SUFFIXES:  # 16-bit PNG/TIFF: Blender made it float
            return [jobs.Frame(label=stem, output=output, path=path)], False
        raise _float_refusal(image)
    rgb, alpha = read_pixels(image)
    return [jobs.Frame(label=stem, output=output, rgb=rgb, alpha=alpha)], False


def output_folder(scene: bpy.types.Scene) -> Path:
    settings = getattr(scene, "hdr_plugin", None)
    raw = (settings.output_dir if settings is not None else "") or "//hdr/"
    if raw.startswith("//") and not bpy.data.filepath:
        raise BakeError(
            f"Save the .blend file first (results go to '{raw}' next to it), or set an absolute output folder in the HDR panel"
        )
    return Path(bpy.path.abspath(raw)).resolve()


def engine_settings(context, sequence: bool) -> jobs.Settings:
    prefs = get_preferences(context)
    python = bpy.path.abspath(prefs.python_path) if prefs.python_path else ""
    route = jobs.choose_route(prefs.engine_route.lower(), python)
    settings = getattr(context.scene, "hdr_plugin", None)
    output_space = output_space_name(prefs)
    try:
        compat.blender_colorspace(output_space)  # refuse before baking if Blender cannot tag it
    except ValueError as e:
        raise BakeError(str(e)) from None
    return jobs.Settings(
        route=route,
        python=python,
        device=prefs.device.lower(),
        precision=prefs.precision.lower(),
        tile=tile_value(prefs),
        shot_curve=sequence and prefs.curve_mode == "SHOT",
        curve_frames=int(prefs.curve_frames),
        exposure=float(settings.exposure) if settings is not None else 0.0,
        output_space=output_space,
    )


# --------------------------------------------------------------------------- the tree
def tree_key(context, tree) -> tuple[str, str]:
    scene = context.scene
    if compat.compositor_tree(scene) == tree and not compat.has_scene_node_group(scene):
        return ("scene", scene.name)  # 4.x: the scene's embedded tree
    return ("group", tree.name)


def find_tree(key: tuple[str, str]):
    kind, name = key
    if kind == "scene":
        scene = bpy.data.scenes.get(name)
        return compat.compositor_tree(scene) if scene is not None else None
    return bpy.data.node_groups.get(name)


def find_image_node(tree, node_name: str = ""):
    if tree is None:
        return None
    if node_name:
        node = tree.nodes.get(node_name)
        if node is None or not compat.is_image_node(node):
            raise BakeError(f"No compositor Image node named '{node_name}'")
        return node
    if compat.is_image_node(tree.nodes.active):
        return tree.nodes.active
    return next((n for n in tree.nodes if n.select and compat.is_image_node(n)), None)


def wire_in(tree, old, image: bpy.types.Image, sequence: bool):
    """A new Image node with ``image`` where ``old`` was, taking over all its output links;
    ``old`` stays in the tree, muted and moved aside."""
    new = tree.nodes.new(compat.IMAGE_NODE)
    new.image = image
    if sequence:
        compat.copy_frame_settings(old, new)
    new.parent = old.parent  # before the location: inside a frame, locations are relative
    new.location = old.location.copy()
    new.width = old.width
    new.label = f"HDR {old.label or old.name}"[:63]
    for i, out in enumerate(old.outputs):
        target = new.outputs.get(out.name) or (new.outputs[i] if i < len(new.outputs) else None)
        for link in list(out.links):
            to_socket = link.to_socket
            tree.links.remove(link)
            if target is not None:
                tree.links.new(target, to_socket)
    old.location = (old.location.x, old.location.y + MOVE_ASIDE)
    old.mute = True
    new[SOURCE_KEY] = old.name
    old[RESULT_KEY] = new.name
    for n in tree.nodes:
        n.select = False
    new.select = True
    tree.nodes.active = new
    return new


def partner_node(tree, node):
    if node is None:
        return None
    name = node.get(SOURCE_KEY) or node.get(RESULT_KEY)
    return tree.nodes.get(name) if name else None


# --------------------------------------------------------------------------- a session
class Session:
    """One Reconstruct HDR run: planned and applied on the main thread, engine in a Job."""

    def __init__(self, context, node_name: str = "", image_name: str = ""):
        scene = context.scene
        self.tree_key = None
        self.node_name = ""
        self.user = None
        self.editor_image = ""
        space = getattr(context, "space_data", None)
        if image_name:
            image = bpy.data.images.get(image_name)
            if image is None:
                raise BakeError(f"No image named '{image_name}'")
        elif not node_name and space is not None and getattr(space, "type", "") == "IMAGE_EDITOR":
            image = space.image
            if image is None:
                raise BakeError("Open an image in the Image Editor first")
            self.user = space.image_user
        else:
            tree = compat.context_tree(context)
            node = find_image_node(tree, node_name)
            if node is None:
                raise BakeError("Select a compositor Image node that holds the LDR plate (or open the image in the Image Editor)")
            if node.image is None:
                raise BakeError(f"Image node '{node.name}' has no image")
            image = node.image
            self.user = node
            self.tree_key = tree_key(context, tree)
            self.node_name = node.name
        self.image_name = image.name
        self.editor_image = image.name if self.tree_key is None else ""
        self.out_dir = output_folder(scene)
        self.settings = engine_settings(context, image.source == "SEQUENCE")  # engine problems first
        self.frames, self.sequence = plan_frames(image, self.user, self.out_dir)
        self.frame_settings = {
            a: getattr(self.user, a)
            for a in ("frame_duration", "frame_start", "frame_offset", "use_cyclic", "use_auto_refresh")
            if hasattr(self.user, a)
        }
        self.job = jobs.Job(self.frames, self.settings, self.out_dir)

    def start(self) -> "Session":
        self.job.start()
        return self

    def status_text(self) -> str:
        return status.status_line(self.job)

    def cancel(self, wait: float = 30.0) -> None:
        self.job.cancel(wait)

    def apply(self, context) -> str:
        """Commit the job's files, load them and wire them in; returns a report line."""
        paths = self.job.commit()
        first = paths[0]
        image = bpy.data.images.load(str(first), check_existing=False)
        if self.sequence:
            image.source = "SEQUENCE"
        compat.tag_linear(image, self.settings.output_space)
        stem = first.name.split(".")[0]
        image.name = stem
        if bpy.data.filepath:
            try:
                image.filepath = bpy.path.relpath(str(first))
            except ValueError:  # another drive on Windows
                pass
        where = str(first.parent)
        if self.tree_key is not None:
            tree = find_tree(self.tree_key)
            old = tree.nodes.get(self.node_name) if tree is not None else None
            if old is None:
                return f"HDR written to {where} and loaded as '{image.name}', but node '{self.node_name}' is gone"
            new = wire_in(tree, old, image, self.sequence)
            if self.sequence:
                for k, v in self.frame_settings.items():
                    setattr(new, k, v)
            return f"HDR plate '{image.name}' ({len(paths)} frame(s)) in {where}; '{old.name}' kept, muted"
        screen = getattr(context, "screen", None)
        for area in screen.areas if screen is not None else ():
            if area.type == "IMAGE_EDITOR" and area.spaces.active.image is not None and area.spaces.active.image.name == self.editor_image:
                area.spaces.active.image = image
                if self.sequence and self.user is not None:
                    compat.copy_frame_settings(self.user, area.spaces.active.image_user)
        return f"HDR image '{image.name}' ({len(paths)} frame(s)) written to {where}"


# --------------------------------------------------------------------------- operator steps
# Module-level so tests can drive the modal loop headless (there is no event loop there).
def begin(op, context) -> set | None:
    global _ACTIVE
    if _ACTIVE is not None:
        op.report({"ERROR"}, "A reconstruction is already running (Esc in its editor cancels it)")
        return {"CANCELLED"}
    try:
        session = Session(context, getattr(op, "node_name", ""), getattr(op, "image_name", ""))
    except (BakeError, jobs.EngineUnavailable, jobs.JobError, ValueError) as e:
        op.report({"ERROR"}, str(e))
        return {"CANCELLED"}
    try:
        session.start()
    except OSError as e:
        op.report({"ERROR"}, f"Cannot write to {session.out_dir}: {e}")
        return {"CANCELLED"}
    op._session = session
    op._timer = None
    _ACTIVE = session
    wm = context.window_manager
    if context.window is not None:
        wm.progress_begin(0, 100)
    return None


def _show_progress(op, context) -> None:
    session = op._session
    if context.window is not None:
        context.window_manager.progress_update(int(session.job.progress * 100))
    workspace = getattr(context, "workspace", None)
    if workspace is not None and context.window is not None:
        workspace.status_text_set(session.status_text())
    _redraw(context)


def _redraw(context) -> None:
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen is not None else ():
        if area.type in ("NODE_EDITOR", "IMAGE_EDITOR"):
            area.tag_redraw()


def end(op, context) -> None:
    global _ACTIVE
    wm = context.window_manager
    if getattr(op, "_timer", None) is not None:
        wm.event_timer_remove(op._timer)
        op._timer = None
    if context.window is not None:
        wm.progress_end()
        workspace = getattr(context, "workspace", None)
        if workspace is not None:
            workspace.status_text_set(None)
    if _ACTIVE is getattr(op, "_session", None):
        _ACTIVE = None
    _redraw(context)


def step(op, context) -> set:
    """One timer tick: RUNNING_MODAL while the engine works, else apply or report."""
    session = op._session
    state = session.job.state
    if state == "running":
        _show_progress(op, context)
        return {"RUNNING_MODAL"}
    end(op, context)
    if state == "done":
        try:
            message = session.apply(context)
        except (jobs.JobError, OSError, RuntimeError) as e:
            session.job.discard()
            op.report({"ERROR"}, f"Reconstruct HDR failed: {e}")
            return {"CANCELLED"}
        op.report({"INFO"}, message)
        return {"FINISHED"}
    session.job.discard()
    if state == "failed":
        op.report({"ERROR"}, f"Reconstruct HDR failed: {session.job.message}")
    else:
        op.report({"WARNING"}, "Reconstruct HDR cancelled: the node tree and the output folder are unchanged")
    return {"CANCELLED"}


def modal(op, context, event) -> set:
    if event.type == "ESC" and event.value == "PRESS":
        op._session.cancel(wait=2.0)
        end(op, context)
        op.report({"WARNING"}, "Reconstruct HDR cancelled: the node tree and the output folder are unchanged")
        return {"CANCELLED"}
    if event.type == "TIMER":
        return step(op, context)
    return {"PASS_THROUGH"}


def cancel_running() -> None:
    """Stop a running job (add-on disabled, file closed)."""
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.cancel(wait=5.0)
        _ACTIVE = None


class HDR_OT_reconstruct(bpy.types.Operator):
    """Reconstruct a scene-linear HDR plate from the selected 8-bit Image node or image, and wire it in"""

    bl_idname = "hdr.reconstruct"
    bl_label = "Reconstruct HDR"
    bl_options = {"REGISTER", "UNDO"}

    node_name: StringProperty(name="Node", description="Compositor Image node to bake (default: the active one)", options={"SKIP_SAVE"})
    image_name: StringProperty(name="Image", description="Image to bake without a node (result is loaded, not wired)", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        if _ACTIVE is not None:
            cls.poll_message_set("A reconstruction is already running")
            return False
        return context.scene is not None

    def invoke(self, context, event):
        result = begin(self, context)
        if result is not None:
            return result
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        _show_progress(self, context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        return modal(self, context, event)

    def execute(self, context):
        """Blocking run (scripts, background mode): the same steps without the event loop."""
        result = begin(self, context)
        if result is not None:
            return result
        while True:
            result = step(self, context)
            if "RUNNING_MODAL" not in result:
                return result
            time.sleep(0.05)

    def cancel(self, context):  # Blender calls this when the window closes mid-run
        if getattr(self, "_session", None) is not None:
            self._session.cancel(wait=5.0)
        end(self, context)


class HDR_OT_toggle_source(bpy.types.Operator):
    """Switch the compositor between the baked HDR node and the original LDR node"""

    bl_idname = "hdr.toggle_source"
    bl_label = "Toggle LDR / HDR"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        tree = compat.context_tree(context)
        return tree is not None and partner_node(tree, tree.nodes.active) is not None

    def execute(self, context):
        tree = compat.context_tree(context)
        a = tree.nodes.active
        b = partner_node(tree, a)
        live, idle = (a, b) if any(o.links for o in a.outputs) else (b, a)
        for i, out in enumerate(live.outputs):
            target = idle.outputs.get(out.name) or (idle.outputs[i] if i < len(idle.outputs) else None)
            for link in list(out.links):
                to_socket = link.to_socket
                tree.links.remove(link)
                if target is not None:
                    tree.links.new(target, to_socket)
        live.mute, idle.mute = True, False
        self.report({"INFO"}, f"Compositor now uses '{idle.label or idle.name}'")
        return {"FINISHED"}


class HDR_OT_check_engine(bpy.types.Operator):
    """Check that the engine can be found with the current preferences"""

    bl_idname = "hdr.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        prefs = get_preferences(context)
        python = bpy.path.abspath(prefs.python_path) if prefs.python_path else ""
        try:
            route = jobs.choose_route(prefs.engine_route.lower(), python)
            if route == "in_process":
                import hdr_plugin
                import torch

                info = f"hdr-plugin {hdr_plugin.__version__}, torch {torch.__version__} in Blender's Python ({sys.executable})"
            else:
                run = subprocess.run(
                    [python, "-m", "hdr_plugin", "info", "--json", "--device", prefs.device.lower()],
                    capture_output=True, text=True, timeout=300, env=jobs.subprocess_env(),
                )
                if run.returncode != 0:
                    tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or [f"exit code {run.returncode}"]
                    if "No module named" in tail[0]:
                        raise jobs.EngineUnavailable(jobs.install_hint(f"{python}: {tail[0]}", python))
                    raise jobs.JobError(f"{python} -m hdr_plugin info failed: {tail[0]}")
                data = json.loads(run.stdout)
                info = f"hdr-plugin {data.get('hdr_plugin')}, torch {data.get('torch')}, device {data.get('device')} in {python}"
        except Exception as e:
            self.report({"ERROR"}, str(e) if isinstance(e, (jobs.EngineUnavailable, jobs.JobError)) else jobs.install_hint(f"{type(e).__name__}: {e}", python))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Engine OK: {info}")
        return {"FINISHED"}


CLASSES = (HDR_OT_reconstruct, HDR_OT_toggle_source, HDR_OT_check_engine)
