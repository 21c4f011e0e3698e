"""Run the GIMP plug-in's glue and GEGL pixel path under the *system* Python.

Usage: /usr/bin/python3 run_plugin_with_stub.py PLUGIN_DIR OUT_DIR SCENARIOS.json

The real GEGL/babl (Debian's gir1.2-gegl-0.4, gir1.2-babl-0.1, python3-gi) does every
pixel conversion; only ``gi.repository.Gimp``/``GimpUi`` are stand-ins (gimp_stub.py).
The engine runs through the plug-in's external-Python route (the scenario names the
interpreter), exactly as in GIMP without torch.  Each scenario writes the pixels it read
and produced to OUT_DIR and a summary to OUT_DIR/report.json for the pytest side.
"""

import array
import importlib.util
import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gimp_stub  # noqa: E402

Gimp = gimp_stub.install()

import gi  # noqa: E402

gi.require_version("Gegl", "0.4")
from gi.repository import Gegl  # noqa: E402

Gegl.init(None)


def load_plugin(plugin_dir):
    path = os.path.join(plugin_dir, "hdr_plugin_gimp.py")
    spec = importlib.util.spec_from_file_location("hdr_plugin_gimp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # Gimp.main is guarded by __main__: nothing runs
    return module


def buffer_bytes(buffer, width, height, fmt):
    return bytes(buffer.get(Gegl.Rectangle.new(0, 0, width, height), 1.0, fmt, Gegl.AbyssPolicy.NONE))


def make_source(spec):
    """A source image whose layer buffer has the babl format GIMP uses for its precision."""
    width, height = spec["width"], spec["height"]
    precision = Gimp.Precision[spec["precision"]]
    image = Gimp.Image(width, height, Gimp.ImageBaseType.RGB, precision)
    layer = Gimp.Drawable(image, "source", width, height, spec["alpha"], precision)
    image.layers.append(layer)
    with open(spec["pixels"], "rb") as f:  # RGBA rows in spec["pixels_format"]
        data = f.read()
    layer.buffer.set(Gegl.Rectangle.new(0, 0, width, height), spec["pixels_format"], data)
    layer.buffer.flush()
    return image, layer


def run_scenario(module, sc, out_dir):
    gimp_stub.CALLS.clear()
    Gimp.Image.IMAGES.clear()
    gimp_stub.ProcedureDialog.ACCEPT = sc.get("dialog_accept", True)
    if "env_python" in sc:
        os.environ["HDR_PLUGIN_PYTHON"] = sc["env_python"]
    else:
        os.environ.pop("HDR_PLUGIN_PYTHON", None)
    report = {"name": sc["name"]}
    plugin = module.HDRPlugin()
    report["procedures"] = plugin.do_query_procedures()
    proc = plugin.do_create_procedure(report["procedures"][0])
    report["procedure"] = {
        "image_types": proc.image_types,
        "menu_paths": proc.menu_paths,
        "menu_label": proc.menu_label,
        "arguments": {k: list(v) for k, v in proc.arguments.items()},
        "aux_arguments": {k: list(v) for k, v in proc.aux_arguments.items()},
        "return_values": proc.return_values,
        "sensitivity_drawable": bool(proc.sensitivity & Gimp.ProcedureSensitivityMask.DRAWABLE),
    }
    image, layer = make_source(sc["source"])
    w, h = layer.width, layer.height
    source_before = buffer_bytes(layer.buffer, w, h, gimp_stub.FORMATS[(image.precision, layer.alpha)])
    config = gimp_stub.Config(
        {
            "exposure": sc.get("exposure", 0.0),
            "device": "cpu",
            "precision": "fp32",
            "tile-size": sc.get("tile", 0),
            "engine-python": sc.get("engine_python", ""),
        }
    )
    drawables = [layer] * sc.get("n_drawables", 1)
    run_mode = Gimp.RunMode[sc.get("run_mode", "NONINTERACTIVE")]
    result = proc.run_func(proc, run_mode, image, drawables, config, None)
    report["status"] = Gimp.PDBStatusType(result.index(0)).name
    report["calls"] = [list(map(str, c)) for c in gimp_stub.CALLS]
    report["source_unchanged"] = buffer_bytes(layer.buffer, w, h, gimp_stub.FORMATS[(image.precision, layer.alpha)]) == source_before
    report["source_updates"] = layer.updates
    with open(os.path.join(out_dir, f"{sc['name']}.display.f32"), "wb") as f:  # what the engine was given
        f.write(buffer_bytes(layer.buffer, w, h, "R'G'B' float"))
    if report["status"] == "SUCCESS":
        new_image = result.index(1)
        report["returned_image_is_new"] = new_image is not image and new_image in Gimp.Image.IMAGES
        report["new_precision"] = Gimp.Precision(new_image.precision).name
        new_layer = new_image.get_layers()[0]
        report["new_layer"] = {"alpha": new_layer.alpha, "width": new_layer.width, "height": new_layer.height, "name": new_layer.name}
        report["new_layer_updates"] = new_layer.updates
        fmt = "RGBA float" if new_layer.alpha else "RGB float"
        data = buffer_bytes(new_layer.buffer, w, h, fmt)
        with open(os.path.join(out_dir, f"{sc['name']}.hdr.f32"), "wb") as f:
            f.write(data)
        values = array.array("f", data)
        report["new_max"] = max(values)
        report["new_count_above_1"] = sum(1 for v in values if v > 1.0)
    return report


def main():
    plugin_dir, out_dir, scenarios_path = sys.argv[1:4]
    with open(scenarios_path) as f:
        scenarios = json.load(f)
    module = load_plugin(plugin_dir)
    reports = []
    for sc in scenarios:
        try:
            reports.append(run_scenario(module, sc, out_dir))
        except Exception:
            reports.append({"name": sc["name"], "crash": traceback.format_exc()})
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(reports, f, indent=1)
    print("ran", len(reports), "scenarios")


if __name__ == "__main__":
    main()
