#!/usr/bin/env bash
# ---------------------------------------------------------------------------------------
# Blender: real bpy (4.2 LTS and 5.0) from PyPI, each in its own venv, for
# tests/test_blender.py.  Creates .venvs/bpy42 and .venvs/bpy50 in the repo root (both
# gitignored, about 2 GB each with torch).  Idempotent: a venv whose marker file exists is
# kept (delete .venvs/bpyNN to rebuild it).  Usage: bash .ci/blender_venvs.sh [42] [50]
#
# Order matters:
#   1. bpy first (bpy 5.0.1 pins numpy<2,>=1.26; bpy 4.2.0 takes any numpy);
#   2. torch==2.13.0 next (the local CPU wheel; never a bare `torch`, which pulls CUDA);
#   3. the project editable last, with numpy/opencv capped for bpy 5.0 so pip does not
#      backtrack through opencv releases built against numpy 2.
# bpy wheels exist for CPython 3.11 only, so python3.11 is preferred.  A venv that cannot
# be built is removed and reported; the script still exits 0 and the Blender tests skip
# with the reason (no venv).
# ---------------------------------------------------------------------------------------
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${BLENDER_VENV_PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_PIN="${TORCH_PIN:-torch==2.13.0}"

blender_venv() {  # blender_venv NAME BPY_PIN EXTRA_PINS...
    local name="$1" bpy_pin="$2"; shift 2
    local venv="$REPO/.venvs/$name"
    local marker="$venv/.hdr-plugin-ready"
    local pip=("$venv/bin/python" -m pip install --quiet)
    if [[ -f "$marker" ]]; then
        echo "blender_venvs: $venv ready ($(cat "$marker"))"
        return 0
    fi
    echo "blender_venvs: creating $venv with $bpy_pin ($("$PY" --version 2>&1))"
    rm -rf "$venv"
    "$PY" -m venv "$venv" || return 1
    "${pip[@]}" --upgrade pip || return 1
    "${pip[@]}" "$bpy_pin" || return 1
    "${pip[@]}" "$TORCH_PIN" || return 1
    "${pip[@]}" -e "$REPO" "$@" || return 1
    "$venv/bin/python" - <<'PY' || return 1
import bpy, numpy, torch, hdr_plugin, OpenEXR, cv2
print("blender_venvs:", "bpy", bpy.app.version_string, "numpy", numpy.__version__,
      "torch", torch.__version__, "opencv", cv2.__version__)
PY
    echo "$bpy_pin $TORCH_PIN" > "$marker"
}

wanted=("$@")
[[ ${#wanted[@]} -eq 0 ]] && wanted=(42 50)
for v in "${wanted[@]}"; do
    case "$v" in
        42) name=bpy42; args=("bpy==4.2.0") ;;
        50) name=bpy50; args=("bpy==5.0.1" "numpy>=1.26,<2" "opencv-python-headless<4.12") ;;
        *) echo "blender_venvs: unknown version $v (use 42 and/or 50)" >&2; exit 2 ;;
    esac
    if ! blender_venv "$name" "${args[@]}"; then
        echo "blender_venvs: WARNING: could not build .venvs/$name; tests/test_blender.py will skip bpy $v" >&2
        rm -rf "$REPO/.venvs/$name"
    fi
done
exit 0
