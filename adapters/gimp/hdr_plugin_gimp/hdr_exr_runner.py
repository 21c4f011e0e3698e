#!/usr/bin/env python3
"""Run the hdr_plugin engine on display-referred float OpenEXR files.

This is the *external engine* route of the GIMP and Nuke adapters: the host (whose own
Python has no torch) writes display-referred float RGB(A) to OpenEXR, starts this script
with the Python environment where ``hdr-plugin`` is installed, and reads the scene-linear
float EXR back.  Float data travels through OpenEXR only, never through 8-bit files.

It uses hdr_plugin's public API only (``load_engine``, ``io.read_hdr``, ``io.write_exr``,
the ``hdr_progress`` hook) and keeps the command-line conventions of ``hdr-plugin convert``:

    python hdr_exr_runner.py [--json] [--exposure EV] [--device D] [--precision P]
                             [--tile N] [--weights W] [--input-encoding display|linear]
                             [--half] [--compression C] [--list PAIRS.json] [IN.exr OUT.exr ...]
    python hdr_exr_runner.py --check        # prints versions as JSON; exit 2 if hdr_plugin is missing

* Inputs are ``(IN, OUT)`` pairs: positional, and/or from ``--list`` (a JSON list of
  ``[in, out]`` pairs, for long frame ranges).  One engine serves every pair.
* ``--input-encoding display`` (default): IN holds display-referred values (sRGB-encoded,
  what an 8-bit file stores, scaled to [0, 1]); ``linear``: IN holds scene-linear values,
  converted with the sRGB OETF first.  Either way values are clamped to [0, 1], NaN -> 0.
* An ``A`` channel in IN is copied to OUT unchanged.  OUT is 32-bit float (``--half``: 16).
* ``--json``: one JSON object per line on stdout: ``{"event": "start"|"progress"|"done"|
  "error"|"cancelled"|"summary", ...}``; progress has ``stage, done, total, index, count``.
* Exit status: 0 all written; 1 some inputs failed; 2 usage or engine error (hdr_plugin
  not importable, device missing, weights corrupt); 130 cancelled (SIGINT/SIGTERM, or the
  host closed our stdout).  Outputs are written atomically, so a cancelled or failed frame
  leaves no partial file.

The same file ships in ``adapters/gimp/hdr_plugin_gimp/`` and ``adapters/nuke/hdr_plugin_nuke/``
(each adapter installs on its own); ``tests/test_nuke_toolset.py`` checks the copies match.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

RUNNER_VERSION = 1
INSTALL_HINT = "install the engine into this Python: {python} -m pip install hdr-plugin"


class Cancelled(Exception):
    """SIGTERM/SIGINT arrived, or the host stopped reading our output."""


class Events:
    """JSON lines on stdout (``--json``) or short human lines on stderr."""

    def __init__(self, json_mode: bool):
        self.json_mode = json_mode

    def emit(self, **event) -> None:
        try:
            if self.json_mode:
                sys.stdout.write(json.dumps(event) + "\n")
                sys.stdout.flush()
            elif event["event"] in ("done", "error"):
                print(f"{event['event']}: {event.get('output') or event.get('input')} {event.get('message', '')}", file=sys.stderr)
        except (BrokenPipeError, OSError) as e:  # the host went away: stop, write nothing more
            raise Cancelled("host closed the output pipe") from e


def _raise_cancelled(signum, frame):  # pragma: no cover - exercised through subprocess tests
    raise Cancelled(f"signal {signum}")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="hdr_exr_runner", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", metavar="IN OUT", help="input/output EXR pairs")
    p.add_argument("--list", help="JSON file with a list of [input, output] pairs")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout")
    p.add_argument("--check", action="store_true", help="print versions as JSON and exit")
    p.add_argument("--exposure", type=float, default=0.0, help="EV added to the output")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--tile", default="auto", help="tile size in pixels, 0 = whole image, auto")
    p.add_argument("--weights", default=None)
    p.add_argument("--input-encoding", default="display", choices=["display", "linear"])
    p.add_argument("--half", action="store_true", help="16-bit half-float output instead of 32-bit float")
    p.add_argument("--compression", default="zip", help="EXR compression of the outputs (zip, none, piz, ...)")
    args = p.parse_args(argv)
    if len(args.files) % 2:
        p.error("inputs come in pairs: IN.exr OUT.exr")
    pairs = [(args.files[i], args.files[i + 1]) for i in range(0, len(args.files), 2)]
    if args.list:
        pairs += [(str(a), str(b)) for a, b in json.loads(Path(args.list).read_text())]
    if not pairs and not args.check:
        p.error("nothing to do: give IN.exr OUT.exr pairs or --list")
    args.pairs = pairs
    if args.tile != "auto":
        try:
            args.tile = int(args.tile)
        except ValueError:
            p.error(f"--tile takes a pixel count, 0 or auto, not {args.tile!r}")
    return args


def read_input(path: str, encoding: str):
    """Display-referred RGB float32 in [0, 1] and the alpha channel (or None) of an EXR."""
    import numpy as np
    import OpenEXR

    from hdr_plugin.color import linear_to_srgb
    from hdr_plugin.io import read_hdr

    rgb = read_hdr(path)
    alpha = None
    with OpenEXR.File(str(path), separate_channels=True) as f:
        channels = f.parts[0].channels
        if "A" in channels:
            alpha = np.ascontiguousarray(channels["A"].pixels.astype(np.float32))
    rgb = np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0)
    if encoding == "linear":
        rgb = linear_to_srgb(np.maximum(rgb, 0.0))
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), alpha


def check(events: Events) -> int:
    try:
        import torch

        import hdr_plugin
    except ImportError as e:
        events.emit(event="error", message=f"{e}; " + INSTALL_HINT.format(python=sys.executable))
        return 2
    events.emit(
        event="check",
        runner=RUNNER_VERSION,
        python=sys.executable,
        hdr_plugin=hdr_plugin.__version__,
        torch=torch.__version__,
        cuda=bool(torch.cuda.is_available()),
    )
    return 0


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    events = Events(args.json or args.check)
    signal.signal(signal.SIGINT, _raise_cancelled)
    signal.signal(signal.SIGTERM, _raise_cancelled)
    if args.check:
        return check(events)
    try:
        import hdr_plugin
        from hdr_plugin.io import ImageReadError, write_exr
    except ImportError as e:
        events.emit(event="error", message=f"{e}; " + INSTALL_HINT.format(python=sys.executable))
        return 2

    count = len(args.pairs)

    class Progress:
        index = 0

        @hdr_plugin.hookimpl
        def hdr_progress(self, stage, done, total, context):
            events.emit(event="progress", stage=stage, done=done, total=total, index=self.index, count=count)

    progress = Progress()
    failed = 0
    try:
        try:
            engine = hdr_plugin.load_engine(args.weights, device=args.device, precision=args.precision, tile=args.tile)
        except Exception as e:  # device missing, weights corrupt: nothing can run
            events.emit(event="error", message=str(e))
            return 2
        hdr_plugin.register_plugin(progress, name="hdr-exr-runner-progress", pm=engine.plugin_manager)
        events.emit(event="start", count=count, device=str(engine.device), precision=engine.precision)
        for i, (src, dst) in enumerate(args.pairs):
            progress.index = i
            try:
                if Path(dst).resolve() == Path(src).resolve():
                    raise ValueError("output would replace the input")
                rgb, alpha = read_input(src, args.input_encoding)
                result = engine.reconstruct(rgb, exposure=args.exposure, source=str(src))
                write_exr(
                    dst, result.image, alpha, half=args.half, compression=args.compression, overwrite=True, attributes=result.metadata,
                    premultiply=False,  # the host's RGB and A pass through as they came
                )
                events.emit(event="done", input=str(src), output=str(dst), index=i, count=count)
            except (ImageReadError, ValueError, OSError, RuntimeError) as e:
                failed += 1
                events.emit(event="error", input=str(src), message=str(e), index=i, count=count)
    except (Cancelled, hdr_plugin.Cancelled, KeyboardInterrupt):
        try:
            events.emit(event="cancelled")
        except Cancelled:
            pass
        return 130
    events.emit(event="summary", converted=count - failed, failed=failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
