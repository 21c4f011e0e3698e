#!/usr/bin/env python3
"""Install the GIMP 3 plug-in "Filters > Enhance > Reconstruct HDR...".

    python adapters/gimp/install.py [--dest PLUGINS_DIR] [--gimp-version 3.0]
                                    [--python PYTHON | --python ""] [--no-check]

Copies ``hdr_plugin_gimp/`` into GIMP 3's per-user plug-ins folder (GIMP only loads a
Python plug-in from a sub-folder named like its file), marks the plug-in executable,
records which Python runs the engine, and prints where everything went.

* Plug-ins folder (unless ``--dest``): ``$GIMP3_DIRECTORY/plug-ins`` when that variable is
  set, else per platform ``~/.config/GIMP/<v>/plug-ins`` (Linux; ``$XDG_CONFIG_HOME`` is
  honoured), ``~/Library/Application Support/GIMP/<v>/plug-ins`` (macOS),
  ``%APPDATA%\\GIMP\\<v>\\plug-ins`` (Windows), where ``<v>`` is the newest existing 3.x
  settings folder (``3.0``, ``3.2``...) or ``3.0``.  Flatpak GIMP:
  ``--dest ~/.var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins``.
* Engine Python: by default the interpreter running this script when it can import
  hdr_plugin (so ``/path/to/venv/bin/python adapters/gimp/install.py`` is all it takes);
  ``--python PATH`` names another; ``--python ""`` means GIMP's own Python (only useful if
  hdr-plugin and torch are installed there).  The choice is written to
  ``hdr_plugin_gimp.json`` in the installed folder and can be changed later in the
  filter's dialog ("Engine Python").  Unless ``--no-check``, the engine Python is asked
  for its versions first (``python -m hdr_plugin info --json``), and the install stops
  (exit 1) if it cannot run the engine.

Exit status: 0 installed; 1 the engine Python cannot run the engine or the folder could
not be written; 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = "hdr_plugin_gimp"
SOURCE = HERE / PLUGIN
FILES = ("hdr_plugin_gimp.py", "hdr_gimp_core.py", "hdr_gimp_exr.py")
SETTINGS = "hdr_plugin_gimp.json"


def _config_root(system: str, env: dict, home: Path) -> Path:
    if system == "Windows":
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "GIMP"
    if system == "Darwin":
        return home / "Library" / "Application Support" / "GIMP"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP"


def default_plugins_dir(system: str | None = None, env: dict | None = None, home: Path | None = None, version: str | None = None) -> Path:
    """GIMP 3's per-user plug-ins folder on this (or the given) platform."""
    system = system or platform.system()
    env = dict(os.environ) if env is None else env
    home = home or Path.home()
    if env.get("GIMP3_DIRECTORY"):
        d = Path(env["GIMP3_DIRECTORY"])
        return (d if d.is_absolute() else home / d) / "plug-ins"
    root = _config_root(system, env, home)
    if version is None:
        found = []
        if root.is_dir():
            for child in root.iterdir():
                m = re.fullmatch(r"3\.(\d+)", child.name)
                if m and child.is_dir():
                    found.append((int(m.group(1)), child.name))
        version = max(found)[1] if found else "3.0"
    return root / version / "plug-ins"


def check_engine(python: str) -> tuple[bool, str]:
    """Ask ``python`` for ``-m hdr_plugin info --json``; returns (ok, message)."""
    try:
        r = subprocess.run([python, "-m", "hdr_plugin", "info", "--json"], capture_output=True, text=True, timeout=300, cwd=HERE)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{python} could not be run: {e}"
    try:
        info = json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        info = None
    if isinstance(info, dict) and "hdr_plugin" in info:
        gpu = "CUDA available" if info.get("cuda_available") else "no CUDA"
        return True, f"hdr_plugin {info['hdr_plugin']}, torch {info.get('torch')} ({gpu})"
    return False, r.stderr.strip()[-500:] or f"exit status {r.returncode}"


def install_commands(python: str) -> list[str]:
    """Commands that put the engine into ``python`` on a fresh machine (hdr-plugin is not
    on a package index: it installs from its wheel or from this checkout)."""
    checkout = HERE.parent.parent
    engine = str(checkout) if (checkout / "pyproject.toml").is_file() else "hdr_plugin-<version>-py3-none-any.whl"
    return [
        "install it there: first PyTorch, the CPU build:",
        f"  {python} -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
        "  (NVIDIA GPU: the CUDA index that pytorch.org lists for your driver instead of .../whl/cpu), then the engine:",
        f"  {python} -m pip install {engine}",
    ]


def _engine_python_default() -> str:
    try:
        import hdr_plugin  # noqa: F401
    except ImportError:
        return ""
    return sys.executable


def install(dest: Path, python: str) -> Path:
    """Copy the plug-in folder into ``dest`` (replacing an older copy) and write its settings."""
    target = dest / PLUGIN
    staging = dest / f".{PLUGIN}.installing"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in FILES:
        shutil.copy2(SOURCE / name, staging / name)
    main = staging / "hdr_plugin_gimp.py"
    main.chmod(main.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (staging / SETTINGS).write_text(json.dumps({"engine_python": python}, indent=2) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dest", help="GIMP plug-ins folder (default: GIMP 3's per-user folder)")
    p.add_argument("--gimp-version", help="settings folder version, e.g. 3.0 or 3.2 (default: newest found)")
    p.add_argument("--python", help="Python that runs the engine ('' = GIMP's own; default: this one if it has hdr_plugin)")
    p.add_argument("--no-check", action="store_true", help="do not test the engine Python")
    args = p.parse_args(argv)

    dest = Path(args.dest).expanduser() if args.dest else default_plugins_dir(version=args.gimp_version)
    python = _engine_python_default() if args.python is None else args.python
    if python and not args.no_check:
        ok, message = check_engine(python)
        if not ok:
            print(f"error: the engine Python {python} cannot run the engine: {message}", file=sys.stderr)
            for line in install_commands(python):
                print(f"       {line}", file=sys.stderr)
            print("       or pass --python PATH", file=sys.stderr)
            return 1
        print(f"engine Python: {python}: {message}")
    elif python:
        print(f"engine Python: {python} (not checked)")
    else:
        print("engine Python: none; the plug-in will use GIMP's own Python, which needs hdr-plugin and torch installed in it.")
        print("  Set 'Engine Python' in the filter's dialog, or rerun this script with the Python where hdr-plugin is installed.")
    try:
        target = install(dest, python)
    except OSError as e:
        print(f"error: could not install into {dest}: {e}", file=sys.stderr)
        return 1
    print(f"installed the GIMP 3 plug-in into {target}")
    print("Restart GIMP; the filter is Filters > Enhance > Reconstruct HDR...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
