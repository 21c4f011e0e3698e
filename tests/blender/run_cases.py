"""Run the Blender adapter in real Blender (the ``bpy`` module from PyPI).

    <venv>/bin/python tests/blender/run_cases.py CONFIG.json

Started by ``tests/test_blender.py`` with the python of ``.venvs/bpy42`` or
``.venvs/bpy50`` and ``BLENDER_USER_RESOURCES`` pointing at a temporary folder.
CONFIG holds: ``zip`` (the built extension), ``work`` (a scratch folder), ``sample``
(an 8-bit PNG), ``sequence`` (three 8-bit PNG frame paths), ``external_python`` (a
Python with hdr_plugin for the subprocess route) and ``results`` (JSON written here).

Every case records ``ok``/``error``/``seconds`` and what the pytest side checks (rendered
EXR paths, tree snapshots, folder listings).  The add-on is installed from the zip the
way a user would, enabled, used, and disabled at the end: bpy 4.2 segfaults at exit if a
class stays registered, so a clean exit code is part of the test.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import bpy  # noqa: I001 - bpy first: it puts addon_utils on sys.path
import addon_utils

EXT_ID = "hdr_reconstruct"
PKG = f"bl_ext.user_default.{EXT_ID}"
W, H = 512, 384

cfg = json.loads(Path(sys.argv[1]).read_text())
work = Path(cfg["work"])
results: dict = {"bpy": bpy.app.version_string, "python": sys.executable, "cases": {}}


def save_results() -> None:
    Path(cfg["results"]).write_text(json.dumps(results, indent=2, default=str))


def case(name):
    def wrap(fn):
        t0 = time.perf_counter()
        entry = {"ok": False}
        try:
            entry.update(fn() or {})
            entry["ok"] = True
        except Exception as e:
            entry["error"] = f"{type(e).__name__}: {e}"
            entry["traceback"] = traceback.format_exc()
            print(entry["traceback"], file=sys.stderr)
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        results["cases"][name] = entry
        save_results()
        print(f"[{bpy.app.version_string}] {name}: {'ok' if entry['ok'] else 'FAILED ' + entry['error']} ({entry['seconds']} s)", flush=True)
        return fn

    return wrap


# --------------------------------------------------------------------------- scene helpers
scene = bpy.context.scene
scene.render.resolution_x, scene.render.resolution_y = W, H
scene.render.resolution_percentage = 100
scene.render.use_compositing = True
scene.render.use_sequencer = False
scene.frame_start, scene.frame_end = 1, 3


def fresh_tree():
    """An empty compositor tree on the scene (4.x: scene.node_tree; 5.0: a node group)."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        scene.compositing_node_group = tree
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out = tree.nodes.new("NodeGroupOutput")
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        out = tree.nodes.new("CompositorNodeComposite")
    out.location = (400, 0)
    return tree, out.inputs[0]


def plate_node(image, sequence_frames: int = 0):
    tree, out = fresh_tree()
    node = tree.nodes.new("CompositorNodeImage")
    node.image = image
    node.location = (0, 0)
    if sequence_frames:
        node.frame_duration = sequence_frames
        node.frame_start = 1
        node.frame_offset = 0
    tree.links.new(node.outputs["Image"], out)
    for n in tree.nodes:
        n.select = False
    node.select = True
    tree.nodes.active = node
    return tree, node, out


def output_link_source(tree):
    for link in tree.links:
        if link.to_node.bl_idname in ("CompositorNodeComposite", "NodeGroupOutput"):
            return link.from_node
    return None


def tree_state(tree) -> dict:
    return {
        "nodes": sorted(
            (n.name, n.bl_idname, round(n.location.x, 2), round(n.location.y, 2), n.mute, getattr(getattr(n, "image", None), "name", None))
            for n in tree.nodes
        ),
        "links": sorted((l.from_node.name, l.from_socket.identifier, l.to_node.name, l.to_socket.identifier) for l in tree.links),
        "images": sorted(i.name for i in bpy.data.images),
    }


def render_exr(path: Path, frame: int = 1) -> str:
    scene.frame_set(frame)
    s = scene.render.image_settings
    if hasattr(s, "media_type"):
        s.media_type = "IMAGE"
    s.file_format = "OPEN_EXR"
    s.color_depth = "32"
    s.exr_codec = "ZIP"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    if not path.is_file():
        raise AssertionError(f"render wrote no {path}")
    return str(path)


def render_preview_png(path: Path, exposure: float) -> str:
    s = scene.render.image_settings
    s.file_format = "PNG"
    s.color_depth = "8"
    s.color_mode = "RGB"
    old = scene.view_settings.exposure, scene.view_settings.view_transform
    scene.view_settings.view_transform = "Standard"  # plain sRGB: values above 1 clip, as on a monitor
    scene.view_settings.exposure = exposure
    scene.render.filepath = str(path)
    try:
        bpy.ops.render.render(write_still=True)
    finally:
        scene.view_settings.exposure, scene.view_settings.view_transform = old
    return str(path)


def image_pixels(image) -> np.ndarray:
    w, h = image.size
    buf = np.empty(w * h * image.channels, np.float32)
    image.pixels.foreach_get(buf)
    return buf.reshape(h, w, image.channels)[::-1]


def expect_error(fn, *needles) -> str:
    try:
        fn()
    except RuntimeError as e:
        msg = str(e)
        missing = [n for n in needles if n not in msg]
        if missing:
            raise AssertionError(f"error message lacks {missing}: {msg}")
        return msg
    raise AssertionError("the operator did not refuse")


def prefs():
    return bpy.context.preferences.addons[PKG].preferences


def set_prefs(**values) -> None:
    p = prefs()
    base = dict(engine_route="IN_PROCESS", python_path="", device="CPU", precision="FP32", tile_mode="AUTO", curve_mode="SHOT", curve_frames=8,
                output_space="LIN_REC709")
    base.update(values)
    for k, v in base.items():
        setattr(p, k, v)


class FakeOperator:
    """Stands in for the operator instance so the modal steps run headless."""

    node_name = ""
    image_name = ""

    def __init__(self):
        self.reports = []

    def report(self, kind, message):
        self.reports.append((sorted(kind), message))


class FakeEvent:
    def __init__(self, type, value="PRESS"):
        self.type, self.value = type, value


class RecordingLayout:
    """A stand-in for bpy.types.UILayout: records what a draw function shows and checks
    that every property and operator it names exists."""

    def __init__(self, calls=None):
        self.calls = [] if calls is None else calls

    def _sub(self, *args, **kw):
        return RecordingLayout(self.calls)

    row = column = box = split = _sub

    def prop(self, data, name, **kw):
        if name not in data.bl_rna.properties:
            raise AssertionError(f"draw uses a missing property {type(data).__name__}.{name}")
        self.calls.append(("prop", name))

    def operator(self, idname, **kw):
        group, name = idname.split(".")
        if not hasattr(getattr(bpy.ops, group), name):
            raise AssertionError(f"draw uses a missing operator {idname}")
        self.calls.append(("operator", idname))

    def label(self, text="", **kw):
        self.calls.append(("label", text))

    def progress(self, factor=0.0, type="BAR", text=""):
        self.calls.append(("progress", round(factor, 3)))

    def separator(self, **kw):
        self.calls.append(("separator",))

    def __setattr__(self, name, value):  # use_property_split, scale_y, enabled, active...
        object.__setattr__(self, name, value)


class FakeSpace:
    type = "NODE_EDITOR"
    tree_type = "CompositorNodeTree"

    def __init__(self, tree):
        self.edit_tree = tree


def draw_ui(tree) -> list:
    """Draw the compositor panel, the Image menu entry and the preferences headless."""
    from types import SimpleNamespace

    panels = sys.modules[PKG + ".panels"]
    ctx = SimpleNamespace(scene=scene, space_data=FakeSpace(tree), preferences=bpy.context.preferences, window_manager=bpy.context.window_manager)
    if not panels.NODE_PT_hdr_plugin.poll(ctx):
        raise AssertionError("the compositor panel does not show in the compositor")
    layout = RecordingLayout()
    panels.NODE_PT_hdr_plugin.draw(SimpleNamespace(layout=layout), ctx)
    panels.draw_image_menu(SimpleNamespace(layout=layout), ctx)
    real = prefs()

    class PrefsProxy:  # the real preferences, with our layout
        def __init__(self):
            self.layout = layout

        def __getattr__(self, name):
            return getattr(real, name)

    type(real).draw(PrefsProxy(), ctx)
    return layout.calls


# --------------------------------------------------------------------------- cases
@case("install")
def _install():
    zip_path = cfg["zip"]
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    if PKG not in bpy.context.preferences.addons:
        raise AssertionError(f"{PKG} not enabled after install; enabled: {list(bpy.context.preferences.addons.keys())}")
    mod = sys.modules[PKG]
    return {
        "installed_at": str(Path(mod.__file__).parent),
        "user_resources": os.environ.get("BLENDER_USER_RESOURCES", ""),
        "operator_registered": hasattr(bpy.types, "HDR_OT_reconstruct"),
        "panel_registered": hasattr(bpy.types, "NODE_PT_hdr_plugin"),
        "image_menu_entry": any(getattr(f, "__name__", "") == "draw_image_menu" for f in bpy.types.IMAGE_MT_image._dyn_ui_initialize()),
    }


@case("double_register")
def _double_register():
    mod = sys.modules[PKG]
    mod.register()  # must refuse quietly, not register twice or raise
    return {"still_registered": hasattr(bpy.types, "HDR_OT_reconstruct")}


@case("unsaved_blend_refused")
def _unsaved():
    set_prefs()
    image = bpy.data.images.load(cfg["sample"], check_existing=False)
    tree, node, _ = plate_node(image)
    before = tree_state(tree)
    msg = expect_error(lambda: bpy.ops.hdr.reconstruct(), "Save the .blend file first")
    if tree_state(tree) != before:
        raise AssertionError("the tree changed")
    bpy.ops.wm.save_as_mainfile(filepath=str(work / "scene.blend"))
    return {"message": msg}


@case("still_in_process")
def _still():
    set_prefs()
    image = bpy.data.images.load(cfg["sample"], check_existing=False)
    tree, node, out = plate_node(image)
    t0 = time.perf_counter()
    bpy.ops.hdr.reconstruct()
    seconds = time.perf_counter() - t0
    new = output_link_source(tree)
    if new is None or new == node or new.image is None:
        raise AssertionError("the output is not wired to a new Image node")
    old = bpy.data.images[image.name]
    info = {
        "op_seconds": round(seconds, 2),
        "new_node": new.name,
        "new_image": new.image.name,
        "new_image_path": bpy.path.abspath(new.image.filepath),
        "colorspace": new.image.colorspace_settings.name,
        "is_float": new.image.is_float,
        "old_node_kept": node.name in tree.nodes,
        "old_muted": node.mute,
        "old_moved": [node.location.x, node.location.y],
        "old_image": old.name,
        "old_links": sum(len(o.links) for o in node.outputs),
        "node_count": len(tree.nodes),
    }
    info["render"] = render_exr(work / "render_still.exr")
    info["preview_png"] = render_preview_png(work / "render_still_preview.png", -2.0)
    # the same tree with the LDR node, for the side-by-side picture
    bpy.ops.hdr.toggle_source()
    info["toggled_to"] = output_link_source(tree).name
    info["toggle_old_muted"] = node.mute
    info["preview_ldr_png"] = render_preview_png(work / "render_ldr_preview.png", -2.0)
    tree.nodes.active = node
    bpy.ops.hdr.toggle_source()
    info["toggled_back_to"] = output_link_source(tree).name
    info["ui"] = draw_ui(tree)
    return info


@case("still_subprocess")
def _still_subprocess():
    set_prefs(engine_route="SUBPROCESS", python_path=cfg["external_python"])
    image = bpy.data.images.load(cfg["sample"], check_existing=False)
    tree, node, out = plate_node(image)
    t0 = time.perf_counter()
    bpy.ops.hdr.reconstruct()
    seconds = time.perf_counter() - t0
    new = output_link_source(tree)
    if new is None or new == node:
        raise AssertionError("the output is not wired to a new Image node")
    return {
        "op_seconds": round(seconds, 2),
        "new_image_path": bpy.path.abspath(new.image.filepath),
        "colorspace": new.image.colorspace_settings.name,
        "render": render_exr(work / "render_still_subprocess.exr"),
    }


@case("still_acescg")
def _still_acescg():
    """Output space ACEScg (both routes): the new image must be tagged ACEScg, its EXR AP1/ACES white."""
    out = {}
    for route, extra in (("in_process", {}), ("subprocess", {"engine_route": "SUBPROCESS", "python_path": cfg["external_python"]})):
        set_prefs(output_space="ACESCG", **extra)
        image = bpy.data.images.load(cfg["sample"], check_existing=False)
        tree, node, _ = plate_node(image)
        bpy.ops.hdr.reconstruct()
        new = output_link_source(tree)
        if new is None or new == node or new.image is None:
            raise AssertionError(f"{route}: the output is not wired to a new Image node")
        out[route] = {"colorspace": new.image.colorspace_settings.name, "path": bpy.path.abspath(new.image.filepath)}
    set_prefs()
    return out


@case("sequence")
def _sequence():
    set_prefs()
    image = bpy.data.images.load(cfg["sequence"][0], check_existing=False)
    image.source = "SEQUENCE"
    tree, node, out = plate_node(image, sequence_frames=3)
    t0 = time.perf_counter()
    bpy.ops.hdr.reconstruct()
    seconds = time.perf_counter() - t0
    new = output_link_source(tree)
    if new is None or new == node:
        raise AssertionError("the output is not wired to a new Image node")
    renders = [render_exr(work / f"render_seq_{f}.exr", frame=f) for f in (1, 2, 3)]
    folder = Path(bpy.path.abspath(new.image.filepath)).parent
    return {
        "op_seconds": round(seconds, 2),
        "source": new.image.source,
        "colorspace": new.image.colorspace_settings.name,
        "frame_duration": new.frame_duration,
        "frame_start": new.frame_start,
        "frame_offset": new.frame_offset,
        "image_path": bpy.path.abspath(new.image.filepath),
        "files": sorted(p.name for p in folder.glob("*.exr")),
        "renders": renders,
    }


def _cancel_case(route: str, tile: int, **prefs_values):
    ops = sys.modules[PKG + ".operators"]
    jobs = sys.modules[PKG + ".jobs"]
    set_prefs(engine_route=route, tile_mode="CUSTOM", tile_size=tile, **prefs_values)
    scene.hdr_plugin.output_dir = f"//cancel_{route.lower()}/"
    out_dir = Path(bpy.path.abspath(scene.hdr_plugin.output_dir))
    image = bpy.data.images.load(cfg["sequence"][0], check_existing=False)
    image.source = "SEQUENCE"
    tree, node, out = plate_node(image, sequence_frames=3)
    before, folder_before = tree_state(tree), jobs.snapshot_folder(out_dir)
    op = FakeOperator()
    if ops.begin(op, bpy.context) is not None:
        raise AssertionError(f"begin refused: {op.reports}")
    session = op._session
    t0 = time.perf_counter()
    ticks = 0
    while time.perf_counter() - t0 < 120:
        result = ops.modal(op, bpy.context, FakeEvent("TIMER"))
        ticks += 1
        if "RUNNING_MODAL" not in result:
            raise AssertionError(f"finished before Esc: {result} {op.reports}")
        if any(f.staged is not None for f in session.job.frames):
            break  # one frame is finished (staged): Esc must remove it too
        time.sleep(0.02)
    progress_at_esc = session.job.progress
    stage_at_esc = session.job.stage
    proc_running_at_esc = session.job._proc is not None and session.job._proc.poll() is None
    frames_staged_at_esc = sum(f.staged is not None for f in session.job.frames)
    staging_seen = jobs.snapshot_folder(out_dir)
    ui_during = draw_ui(tree)
    result = ops.modal(op, bpy.context, FakeEvent("ESC"))
    session.job.wait(120)
    after, folder_after = tree_state(tree), jobs.snapshot_folder(out_dir)
    scene.hdr_plugin.output_dir = "//hdr/"
    return {
        "result": sorted(result),
        "job_state": session.job.state,
        "progress_at_esc": progress_at_esc,
        "stage_at_esc": stage_at_esc,
        "proc_running_at_esc": proc_running_at_esc,
        "frames_staged_at_esc": frames_staged_at_esc,
        "ticks": ticks,
        "during": staging_seen,
        "tree_unchanged": before == after,
        "tree_before": before,
        "tree_after": after,
        "folder_before": folder_before,
        "folder_after": folder_after,
        "reports": op.reports,
        "active_cleared": ops.active_session() is None,
        "ui_during": ui_during,
    }


@case("cancel_in_process")
def _cancel_in_process():
    return _cancel_case("IN_PROCESS", tile=256)


@case("cancel_subprocess")
def _cancel_subprocess():
    return _cancel_case("SUBPROCESS", tile=256, python_path=cfg["external_python"])


@case("image_editor_path")
def _image_editor():
    set_prefs()
    image = bpy.data.images.load(cfg["sample"], check_existing=False)
    tree, node, out = plate_node(image)
    before = tree_state(tree)
    names = set(bpy.data.images.keys())
    bpy.ops.hdr.reconstruct(image_name=image.name)
    after = tree_state(tree)
    new = [bpy.data.images[n] for n in set(bpy.data.images.keys()) - names]
    if len(new) != 1:
        raise AssertionError(f"expected one new image, got {[i.name for i in new]}")
    px = image_pixels(new[0])
    before["images"], after["images"] = [], []
    return {"tree_unchanged": before == after, "colorspace": new[0].colorspace_settings.name, "max": float(px[..., :3].max())}


@case("float_refused")
def _float_refused():
    set_prefs()
    exr = results["cases"]["still_in_process"]["new_image_path"]
    image = bpy.data.images.load(exr, check_existing=False)
    tree, node, out = plate_node(image)
    before = tree_state(tree)
    msg = expect_error(lambda: bpy.ops.hdr.reconstruct(), "display-referred")
    return {"message": msg, "tree_unchanged": tree_state(tree) == before}


@case("missing_engine_message")
def _missing_engine():
    set_prefs(engine_route="SUBPROCESS", python_path=str(work / "no-such-venv" / "bin" / "python"))
    image = bpy.data.images.load(cfg["sample"], check_existing=False)
    plate_node(image)
    msg = expect_error(lambda: bpy.ops.hdr.reconstruct(), "does not exist", "pip install", "hdr-plugin")
    set_prefs()
    return {"message": msg}


@case("check_engine")
def _check_engine():
    out = {}
    for route in ("IN_PROCESS", "SUBPROCESS"):
        set_prefs(engine_route=route, python_path=cfg["external_python"])
        out[route] = sorted(bpy.ops.hdr.check_engine())
    set_prefs(engine_route="SUBPROCESS", python_path=str(work))
    out["folder_refused"] = expect_error(lambda: bpy.ops.hdr.check_engine(), "is a folder")
    set_prefs()
    return out


@case("unregister")
def _unregister():
    addon_utils.disable(PKG, default_set=True)
    leftovers = [n for n in ("HDR_OT_reconstruct", "HDR_OT_toggle_source", "HDR_OT_check_engine", "NODE_PT_hdr_plugin", "HDRPluginSceneSettings") if hasattr(bpy.types, n)]
    props = [n for n in ("hdr_plugin",) if hasattr(bpy.types.Scene, n)]
    if leftovers or props:
        raise AssertionError(f"still registered after disable: {leftovers + props}")
    return {"enabled": PKG in bpy.context.preferences.addons}


results["finished"] = True
save_results()
