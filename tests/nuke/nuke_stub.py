"""A small stand-in for Nuke's ``nuke`` module that records the calls (Nuke itself is
proprietary and cannot be installed here).

It models what the hdr_plugin toolset touches: nodes with knobs, Groups with begin/end and
children, enumeration knobs that refuse unknown values (as Nuke's do), ``nuke.execute``
rendering a Write node, ``nuke.ProgressTask`` with a scriptable Cancel, ``nuke.message``
and menus.  ``execute`` "renders" by writing the frames in ``FRAMES`` (scene-linear RGBA
arrays) through the Group's Colorspace node to the Write's file pattern as float EXR,
so the real engine (``python -m hdr_plugin convert``) can process them.
"""

from __future__ import annotations

import os
import types

import numpy as np

CALLS: list[tuple] = []
FRAMES: dict[int, np.ndarray] = {}  # frame -> scene-linear (H, W, 4) float32
CANCEL_AFTER_PROGRESS: list[int | None] = [None]  # cancel once this many setProgress calls happened
CANCEL_EXECUTE = [False]  # make nuke.execute raise like a cancelled render

STARTLINE, INVISIBLE = 0x1, 0x400


def record(*call):
    CALLS.append(call)


def reset():
    CALLS.clear()
    FRAMES.clear()
    CANCEL_AFTER_PROGRESS[0] = None
    CANCEL_EXECUTE[0] = False
    _STACK[:] = [ROOT]
    ROOT.children.clear()


# --------------------------------------------------------------------------- knobs
class Knob:
    def __init__(self, name, label=None, value=None):
        self._name, self.label, self._value, self.flags, self.tooltip = name, label, value, 0, None

    def name(self):
        return self._name

    def value(self):
        return self._value

    getValue = value

    def setValue(self, value):
        record("setValue", self._name, value)
        self._value = value
        return True

    def setFlag(self, flag):
        self.flags |= flag

    def clearFlag(self, flag):
        self.flags &= ~flag

    def setTooltip(self, text):
        self.tooltip = text

    def setRange(self, lo, hi):
        self.range = (lo, hi)


class Tab_Knob(Knob):
    pass


class Double_Knob(Knob):
    def __init__(self, name, label=None):
        super().__init__(name, label, 0.0)


class Int_Knob(Knob):
    def __init__(self, name, label=None):
        super().__init__(name, label, 0)


class Boolean_Knob(Knob):
    def __init__(self, name, label=None, value=False):
        super().__init__(name, label, bool(value))


class String_Knob(Knob):
    def __init__(self, name, label=None, value=""):
        super().__init__(name, label, value)


class File_Knob(String_Knob):
    pass


class Text_Knob(Knob):
    def __init__(self, name, label=None, value=""):
        super().__init__(name, label, value)


class Enumeration_Knob(Knob):
    def __init__(self, name, label, items):
        super().__init__(name, label, items[0] if items else None)
        self.items = list(items)

    def values(self):
        return list(self.items)

    def setValue(self, value):
        if value not in self.items:
            raise ValueError(f"{self._name}: invalid value {value!r}")
        return super().setValue(value)


class PyScript_Knob(Knob):
    def __init__(self, name, label=None, command=""):
        super().__init__(name, label, command)
        self.command = command

    def execute(self):
        record("execute", self._name)


# --------------------------------------------------------------------------- nodes
COLORSPACES = ["linear", "sRGB", "rec709", "Cineon", "Gamma1.8", "Gamma2.2", "Panalog", "REDLog", "ViperLog", "AlexaV3LogC"]


#: what the Read's colorspace knob offers (tests swap in an ACES config's names)
READ_COLORSPACES = list(COLORSPACES)


def _default_knobs(cls):
    k = {"disable": Boolean_Knob("disable", "disable")}
    if cls == "Write":
        k.update(
            file=File_Knob("file"),
            file_type=Enumeration_Knob("file_type", "file type", [" ", "exr", "png", "tiff", "jpeg", "dpx"]),
            datatype=Enumeration_Knob("datatype", "datatype", ["16 bit half", "32 bit float"]),
            channels=Enumeration_Knob("channels", "channels", ["rgb", "rgba", "all"]),
            raw=Boolean_Knob("raw"),
            create_directories=Boolean_Knob("create_directories"),
        )
    elif cls == "Read":
        k.update(
            file=File_Knob("file"),
            first=Int_Knob("first"),
            last=Int_Knob("last"),
            origfirst=Int_Knob("origfirst"),
            origlast=Int_Knob("origlast"),
            raw=Boolean_Knob("raw"),
            colorspace=Enumeration_Knob("colorspace", "input transform", READ_COLORSPACES),
            on_error=Enumeration_Knob("on_error", "missing frames", ["error", "black", "checkerboard", "nearest frame"]),
            reload=PyScript_Knob("reload", "Reload"),
        )
    elif cls == "Colorspace":
        k.update(
            colorspace_in=Enumeration_Knob("colorspace_in", "in", COLORSPACES),
            colorspace_out=Enumeration_Knob("colorspace_out", "out", COLORSPACES),
        )
    return k


class Node:
    def __init__(self, cls, name=None):
        self._class, self._name = cls, name or f"{cls}1"
        self.knobs_ = _default_knobs(cls)
        self.inputs: dict[int, Node] = {}
        self.children: list[Node] = []
        self.parent = _STACK[-1]
        self.parent.children.append(self)
        record("create", cls, self._name)

    def Class(self):
        return self._class

    def name(self):
        return self._name

    def setName(self, name):
        self._name = name

    def knob(self, name):
        return self.knobs_.get(name)

    def knobs(self):
        return dict(self.knobs_)

    def __getitem__(self, name):
        return self.knobs_[name]

    def addKnob(self, knob):
        record("addKnob", self._name, knob.name())
        self.knobs_[knob.name()] = knob

    def setInput(self, i, node):
        self.inputs[i] = node
        return True

    def input(self, i):
        return self.inputs.get(i)

    # Group API
    def begin(self):
        record("begin", self._name)
        _STACK.append(self)

    def end(self):
        record("end", self._name)
        assert _STACK[-1] is self
        _STACK.pop()

    def node(self, name):
        return next((c for c in self.children if c.name() == name), None)

    def nodes(self):
        return list(self.children)


class _Root(Node):
    def __init__(self):
        self._class, self._name, self.knobs_, self.inputs, self.children = "Root", "root", {}, {}, []
        self.first, self.last = 1, 3

    def firstFrame(self):
        return self.first

    def lastFrame(self):
        return self.last


ROOT = _Root()
_STACK: list[Node] = [ROOT]


def root():
    return ROOT


def selectedNodes():
    return []


def _factory(cls):
    def make(name=None, **knob_values):
        node = Node(cls, name)
        for k, v in knob_values.items():
            node[k].setValue(v)
        return node

    return make


nodes = types.SimpleNamespace(**{c: _factory(c) for c in ("Group", "Input", "Output", "Colorspace", "Write", "Read")})


# --------------------------------------------------------------------------- execution
def execute(node, first, last, incr=1):
    """Render a Write node: FRAMES through its upstream Colorspace, to float EXR files."""
    from hdr_plugin.color import linear_to_srgb
    from hdr_plugin.io import write_exr

    record("execute", node.name(), first, last)
    if node["disable"].value():
        raise RuntimeError(f"{node.name()} is disabled")
    if CANCEL_EXECUTE[0]:
        raise RuntimeError("Cancelled")
    assert node["file_type"].value() == "exr" and node["datatype"].value() == "32 bit float" and node["raw"].value()
    upstream = node.input(0)
    assert upstream.Class() == "Colorspace"
    convert = (upstream["colorspace_in"].value(), upstream["colorspace_out"].value()) == ("linear", "sRGB")
    pattern = node["file"].value()
    for frame in range(first, last + 1, incr):
        rgba = FRAMES[frame]
        rgb = linear_to_srgb(np.maximum(rgba[..., :3], 0)).astype(np.float32) if convert else rgba[..., :3]
        path = pattern.replace("####", f"{frame:04d}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_exr(path, rgb, rgba[..., 3], half=False, overwrite=True, premultiply=False)  # Nuke writes its channels as they are


class ProgressTask:
    def __init__(self, title):
        self.title, self.progress_calls, self.cancelled = title, 0, False
        record("ProgressTask", title)

    def setMessage(self, text):
        record("ProgressTask.setMessage", text)

    def setProgress(self, value):
        record("ProgressTask.setProgress", int(value))
        self.progress_calls += 1

    def isCancelled(self):
        limit = CANCEL_AFTER_PROGRESS[0]
        if limit is not None and self.progress_calls >= limit and not self.cancelled:
            self.cancelled = True
            record("ProgressTask.cancel")
        return self.cancelled

    def __del__(self):
        CALLS.append(("ProgressTask.end",))


def message(text):
    record("message", text)


def getFilename(title, pattern=None):
    record("getFilename", title)
    return None


# --------------------------------------------------------------------------- menus and paths
class Menu:
    def __init__(self, name):
        self.name, self.items = name, {}

    def addMenu(self, name, **kw):
        record("addMenu", self.name, name)
        return self.items.setdefault(name, Menu(name))

    def addCommand(self, name, command, *args, **kw):
        record("addCommand", self.name, name, command)
        self.items[name] = command


MENUS: dict[str, Menu] = {}


def menu(name):
    return MENUS.setdefault(name, Menu(name))


def pluginAddPath(path):
    record("pluginAddPath", path)


def thisNode():
    raise RuntimeError("thisNode() is only valid inside a knob callback")
