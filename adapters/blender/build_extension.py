#!/usr/bin/env python3
"""Build (and validate) the installable Blender extension zip of this folder.

    python adapters/blender/build_extension.py [-o dist/]

Uses Blender's own extension tool, found in this order:

1. ``--blender-ext PATH`` or ``$BLENDER_EXT_PY``: a ``blender_ext.py`` file;
2. the ``bpy`` module of the running Python (``pip install bpy``), which ships it at
   ``bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py``;
3. the repository's test venvs ``.venvs/bpy*`` (``bash .ci/blender_venvs.sh``);
4. a ``blender`` executable on PATH (``blender --command extension build``).

The zip holds only the add-on's Python files and manifest (a few tens of kB): torch and
hdr-plugin are not bundled.  Prints the path of the zip on the last line.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CLI_GLOB = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"


def find_blender_ext(explicit: str | None = None) -> list[str] | None:
    """The command prefix that runs Blender's extension CLI, or None."""
    for candidate in (explicit, os.environ.get("BLENDER_EXT_PY")):
        if candidate:
            if not Path(candidate).is_file():
                raise SystemExit(f"error: {candidate} does not exist")
            return [sys.executable, candidate]
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.origin:
        found = sorted(glob.glob(str(Path(spec.origin).parent / CLI_GLOB)))
        if found:
            return [sys.executable, found[-1]]
    found = sorted(glob.glob(str(REPO / ".venvs" / "bpy*" / "lib" / "python3*" / "site-packages" / "bpy" / CLI_GLOB)))
    if found:
        return [sys.executable, found[-1]]
    blender = shutil.which("blender")
    if blender:
        return [blender, "--background", "--factory-startup", "--command", "extension"]
    return None


def manifest_id_version(source: Path) -> tuple[str, str]:
    text = (source / "blender_manifest.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10: the two top-level keys are simple strings
        import re

        data = dict(re.findall(r'^(id|version)\s*=\s*"([^"]+)"', text, re.M))
    else:
        data = tomllib.loads(text)
    return data["id"], data["version"]


def build(output_dir: Path, source: Path = HERE, blender_ext: str | None = None, validate: bool = True) -> Path:
    cli = find_blender_ext(blender_ext)
    if cli is None:
        raise SystemExit(
            "error: Blender's extension tool was not found. Either `pip install bpy` into this Python, "
            "run `bash .ci/blender_venvs.sh`, put `blender` on PATH, or pass --blender-ext PATH/TO/blender_ext.py"
        )
    ext_id, version = manifest_id_version(source)
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"{ext_id}-{version}.zip"
    if zip_path.exists():
        zip_path.unlink()
    subprocess.run([*cli, "build", "--source-dir", str(source), "--output-filepath", str(zip_path)], check=True)
    if validate:
        subprocess.run([*cli, "validate", str(zip_path)], check=True)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output-dir", default=str(REPO / "dist"), help="folder for the zip (default: dist/)")
    parser.add_argument("--blender-ext", help="path to Blender's blender_ext.py")
    parser.add_argument("--no-validate", action="store_true", help="skip `blender_ext.py validate` on the zip")
    args = parser.parse_args(argv)
    try:
        path = build(Path(args.output_dir).resolve(), blender_ext=args.blender_ext, validate=not args.no_validate)
    except subprocess.CalledProcessError as e:
        print(f"error: {' '.join(map(str, e.cmd))} failed with exit code {e.returncode}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
