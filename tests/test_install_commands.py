"""Install commands that work on a fresh machine.

* Every ``pip install`` command in the adapters (code and messages) and the docs names
  only things pip can install that way: hdr-plugin is on **no package index**, so it must
  be a path (the checkout, ``.``, a ``.whl``), never a bare requirement such as
  ``pip install torch hdr-plugin`` or ``pip install "hdr-plugin[progress]"``; and torch
  must be pinned (a bare ``pip install torch`` on Linux pulls a multi-GB CUDA build).
* The wheel users install: ``pip wheel`` of the checkout gives
  ``hdr_plugin-<version>-py3-none-any.whl`` with the trained weights inside, byte for byte.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUR_NAMES = {"hdr-plugin", "hdr_plugin"}
SCANNED = ["README.md", "adapters", "docs"]
SUFFIXES = {".md", ".py", ".toml", ".txt", ".rst", ".sh"}
PIP_OPTIONS_WITH_VALUE = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-c", "--constraint", "-r",
                          "--requirement", "-t", "--target", "--prefix", "--root", "--platform", "--python-version",
                          "--only-binary", "--no-binary", "--trusted-host", "--cert", "--timeout", "--retries", "-e", "--editable"}


def _files():
    for item in SCANNED:
        path = ROOT / item
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts)


def _pip_commands(text: str):
    """(line number, argument list after 'pip install') for each pip install in the text."""
    for n, line in enumerate(text.splitlines(), 1):
        for m in re.finditer(r"pip3?\s+install\s+([^`'\n]*)", line.replace("\\\"", '"')):
            rest = re.sub(r"<[^<>]*>", "<placeholder>", m.group(1))  # <the checkout folder or ...>
            rest = re.split(r"&&|\|\||;|\s#|[)`]", rest, maxsplit=1)[0]
            try:
                args = shlex.split(rest)
            except ValueError:
                args = rest.split()
            yield n, args


def _requirements(args: list[str]):
    """The requirement arguments (not options, not their values)."""
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in PIP_OPTIONS_WITH_VALUE:
            skip = a not in ("-e", "--editable")  # -e PATH: PATH is a path anyway
            continue
        if a.startswith("-"):
            continue
        yield a


def _is_path(req: str) -> bool:
    return req.startswith((".", "/", "~", "<", "$", "%", "{")) or "/" in req or "\\" in req or req.endswith(".whl") or req.startswith('".')


def problems_in(text: str, where: str) -> list[str]:
    found = []
    for n, args in _pip_commands(text):
        reqs = list(_requirements(args))
        for req in reqs:
            if _is_path(req):
                continue
            name = re.split(r"[\[<>=!~;@ ]", req, maxsplit=1)[0].lower()
            if name in OUR_NAMES:
                found.append(f"{where}:{n}: 'pip install {req}': hdr-plugin is on no package index (install the checkout folder or the wheel)")
            if name == "torch" and req.lower() == "torch" and not any(a.startswith(("--index-url", "-i", "--extra-index-url")) for a in args):
                found.append(f"{where}:{n}: 'pip install torch' unpinned and without an index: on Linux that is the multi-GB CUDA build")
    return found


def test_the_checker_catches_the_commands_that_failed_for_users():
    bad = [
        "~/hdr-env/bin/pip install torch hdr-plugin   # for a GPU ...",
        "(in that environment: python -m pip install torch hdr-plugin)",
        '`pip install "hdr-plugin[progress]"`',
        "python3 -m venv ~/v && ~/v/bin/python -m pip install hdr-plugin",
    ]
    for line in bad:
        assert problems_in(line, "x"), line
    good = [
        "python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
        "~/hdr-venv/bin/python -m pip install /path/to/hdr-plugin   # the checkout",
        "pip install dist/hdr_plugin-0.1.0-py3-none-any.whl",
        'pip install torch==2.13.0 && pip install -e ".[test]" && hdr-plugin convert x.png',
        "nuke14-export/bin/pip install --no-deps /path/to/hdr-plugin",
        "pip install bpy",
    ]
    for line in good:
        assert not problems_in(line, "x"), (line, problems_in(line, "x"))


def test_adapters_and_docs_give_install_commands_that_work():
    found = []
    for path in _files():
        found += problems_in(path.read_text(encoding="utf-8", errors="replace"), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


# --------------------------------------------------------------------------- the wheel
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_pip_wheel_builds_the_documented_wheel_with_the_weights(tmp_path):
    """``python -m pip wheel --no-deps -w dist .`` as the READMEs say (build isolation off:
    no network here; setuptools is a test requirement of the venv already)."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    import tomllib

    src = tmp_path / "src"  # a copy: the build must not write build/ or *.egg-info into the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", ".venvs", "build", "dist", "*.egg-info", "__pycache__",
                                                               ".pytest_cache", "runs", "tests", "farm"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    wheel = tmp_path / "dist" / f"hdr_plugin-{version}-py3-none-any.whl"
    assert wheel.is_file(), sorted(p.name for p in (tmp_path / "dist").iterdir())
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in ("hdr_plugin.safetensors", "manifest.yaml"):
            inside = f"hdr_plugin/shipped_weights/{f}"
            assert inside in names, f"{inside} missing from the wheel"
            assert _sha256(z.read(inside)) == _sha256((ROOT / "weights" / f).read_bytes()), f"{f} differs from weights/{f}"
        assert "hdr_plugin/data/sample.png" in names and "hdr_plugin/configs/model.yaml" in names
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "hdr-plugin = hdr_plugin.cli:main" in z.read(entry).decode()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "Requires-Dist: torch>=2.1" in meta
