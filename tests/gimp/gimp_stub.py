"""A small stand-in for GIMP 3's ``gi.repository.Gimp`` / ``GimpUi`` (runs under the system
Python with the real GEGL, GLib and GObject from Debian's packages).

Only what the plug-in touches is modelled, and every call is recorded in ``CALLS`` so the
tests can check the glue.  Images and layers are real GObjects (so ``GObject.Value`` can hold
them) and layer pixels live in real ``Gegl.Buffer`` objects in the babl format GIMP would
use for that precision, so what the plug-in writes is converted exactly as in GIMP.
"""

from __future__ import annotations

import enum
import sys
import types

import gi

gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, GObject  # noqa: E402

CALLS: list[tuple] = []


def record(*call):
    CALLS.append(call)


class RunMode(enum.IntEnum):
    INTERACTIVE = 0
    NONINTERACTIVE = 1
    WITH_LAST_VALS = 2


class PDBStatusType(enum.IntEnum):
    EXECUTION_ERROR = 0
    CALLING_ERROR = 1
    PASS_THROUGH = 2
    SUCCESS = 3
    CANCEL = 4


class PDBProcType(enum.IntEnum):
    INTERNAL = 0
    PLUGIN = 1


class ProcedureSensitivityMask(enum.IntFlag):
    DRAWABLE = 1


class ImageBaseType(enum.IntEnum):
    RGB = 0
    GRAY = 1


class Precision(enum.IntEnum):
    U8_NON_LINEAR = 150
    FLOAT_LINEAR = 600
    FLOAT_NON_LINEAR = 650


class ImageType(enum.IntEnum):
    RGB_IMAGE = 0
    RGBA_IMAGE = 1


class LayerMode(enum.IntEnum):
    NORMAL = 28


FORMATS = {
    (Precision.U8_NON_LINEAR, False): "R'G'B' u8",
    (Precision.U8_NON_LINEAR, True): "R'G'B'A u8",
    (Precision.FLOAT_NON_LINEAR, False): "R'G'B' float",
    (Precision.FLOAT_NON_LINEAR, True): "R'G'B'A float",
    (Precision.FLOAT_LINEAR, False): "RGB float",
    (Precision.FLOAT_LINEAR, True): "RGBA float",
}


class PlugIn:
    """Base class of plug-ins (a plain class here; GIMP's is a GObject)."""

    __gtype__ = "GimpPlugIn"


class Choice:
    def __init__(self):
        self.items = []

    @classmethod
    def new(cls):
        return cls()

    def add(self, nick, ident, label, help_text):
        self.items.append(nick)


class ValueArray(list):
    def index(self, i):  # GIMP's ValueArray.index(i) returns the i-th value
        v = self[i]
        return v.get_value() if isinstance(v, GObject.Value) else v

    def remove(self, i):
        del self[i]


class ImageProcedure:
    def __init__(self, plugin, name, proc_type, run_func, run_data):
        self.name, self.run_func = name, run_func
        self.arguments, self.aux_arguments, self.return_values = {}, {}, {}
        self.menu_paths, self.image_types, self.sensitivity, self.menu_label = [], None, None, None

    @classmethod
    def new(cls, plugin, name, proc_type, run_func, run_data):
        record("ImageProcedure.new", name)
        return cls(plugin, name, proc_type, run_func, run_data)

    def get_name(self):
        return self.name

    def set_image_types(self, types_):
        self.image_types = types_

    def set_sensitivity_mask(self, mask):
        self.sensitivity = mask

    def set_menu_label(self, label):
        self.menu_label = label

    def add_menu_path(self, path):
        self.menu_paths.append(path)

    def set_documentation(self, blurb, help_text, name):
        self.documentation = (blurb, help_text)

    def set_attribution(self, *args):
        self.attribution = args

    def add_double_argument(self, name, nick, blurb, lo, hi, default, flags):
        self.arguments[name] = ("double", lo, hi, default)

    def add_int_argument(self, name, nick, blurb, lo, hi, default, flags):
        self.arguments[name] = ("int", lo, hi, default)

    def add_choice_argument(self, name, nick, blurb, choice, default, flags):
        self.arguments[name] = ("choice", tuple(choice.items), default)

    def add_string_aux_argument(self, name, nick, blurb, default, flags):
        self.aux_arguments[name] = ("string", default)

    def add_image_return_value(self, name, nick, blurb, none_ok, flags):
        self.return_values[name] = "image"

    def new_return_values(self, status, error):
        record("new_return_values", PDBStatusType(status).name, getattr(error, "message", None))
        values = ValueArray([status])
        values += [None] * len(self.return_values)
        return values


class Config:
    """Stands in for Gimp.ProcedureConfig: the arguments' current values."""

    def __init__(self, values):
        self.values = dict(values)

    def get_property(self, name):
        return self.values[name]


class Drawable(GObject.Object):
    def __init__(self, image, name, width, height, alpha, precision):
        super().__init__()
        self.image, self.name, self.width, self.height, self.alpha = image, name, width, height, alpha
        self.buffer = Gegl.Buffer.new(FORMATS[(precision, alpha)], 0, 0, width, height)
        self.updates = []

    def get_buffer(self):
        record("get_buffer", self.name)
        return self.buffer

    def get_shadow_buffer(self):  # the plug-in must not touch the source's shadow buffer
        record("get_shadow_buffer", self.name)
        raise AssertionError("the source drawable must not be written")

    def get_width(self):
        return self.width

    def get_height(self):
        return self.height

    def has_alpha(self):
        return self.alpha

    def is_rgb(self):
        return True

    def is_gray(self):
        return False

    def update(self, x, y, w, h):
        self.updates.append((x, y, w, h))


class Layer(Drawable):
    @classmethod
    def new(cls, image, name, width, height, image_type, opacity, mode):
        record("Layer.new", name, width, height, ImageType(image_type).name)
        return cls(image, name, width, height, image_type == ImageType.RGBA_IMAGE, image.precision)


class Image(GObject.Object):
    IMAGES: list = []

    def __init__(self, width, height, base, precision):
        super().__init__()
        self.width, self.height, self.base, self.precision = width, height, base, precision
        self.layers, self.undo = [], True
        Image.IMAGES.append(self)

    @classmethod
    def new_with_precision(cls, width, height, base, precision):
        record("Image.new_with_precision", width, height, ImageBaseType(base).name, Precision(precision).name)
        return cls(width, height, base, precision)

    def get_precision(self):
        return self.precision

    def insert_layer(self, layer, parent, position):
        record("insert_layer", layer.name, position)
        self.layers.insert(position, layer)

    def get_layers(self):
        return list(self.layers)

    def undo_disable(self):
        self.undo = False

    def undo_enable(self):
        self.undo = True


class Display:
    @classmethod
    def new(cls, image):
        record("Display.new")
        return cls()


def progress_init(text):
    record("progress_init", text)


def progress_update(fraction):
    record("progress_update", float(fraction))


def progress_set_text(text):
    record("progress_set_text", text)


def progress_end():
    record("progress_end")


def message(text):
    record("message", text)


def displays_flush():
    record("displays_flush")


def main(gtype, argv):  # never called: the plug-in guards Gimp.main with __main__
    raise AssertionError("Gimp.main must not run on import")


class ProcedureDialog:
    ACCEPT = True

    def __init__(self, procedure, config, title):
        self.procedure, self.config, self.title = procedure, config, title

    @classmethod
    def new(cls, procedure, config, title):
        record("ProcedureDialog.new", title)
        return cls(procedure, config, title)

    def fill(self, names):
        record("ProcedureDialog.fill", names)

    def run(self):
        record("ProcedureDialog.run")
        return ProcedureDialog.ACCEPT

    def destroy(self):
        record("ProcedureDialog.destroy")


def install():
    """Put the stand-ins where ``from gi.repository import Gimp, GimpUi`` finds them."""
    gimp = types.ModuleType("gi.repository.Gimp")
    for name, value in list(globals().items()):
        if not name.startswith("_") and name not in ("install", "types", "sys", "enum", "gi", "Gegl", "GObject"):
            setattr(gimp, name, value)
    gimpui = types.ModuleType("gi.repository.GimpUi")
    gimpui.ProcedureDialog = ProcedureDialog
    gimpui.init = lambda name: record("GimpUi.init", name)
    sys.modules["gi.repository.Gimp"] = gimp
    sys.modules["gi.repository.GimpUi"] = gimpui
    real_require = gi.require_version

    def require_version(namespace, version):
        if namespace in ("Gimp", "GimpUi"):
            assert version == "3.0", (namespace, version)
            return None
        return real_require(namespace, version)

    gi.require_version = require_version
    return gimp
