#!/usr/bin/env bash
# System packages for the GIMP adapter's tests (tests/test_gimp_plugin.py): the real
# GEGL/babl through PyGObject for the *system* python3 (/usr/bin/python3), not the venv.
#   gir1.2-gegl-0.4 gir1.2-babl-0.1 python3-gi python3-numpy
# GIMP 3 itself (tests/test_gimp_real.py) is installed only where the distribution has it
# (Debian 13 and later: package "gimp" >= 3.0, which provides gimp-console-3.0 and its
# Python plug-in support; gir1.2-gimp-3.0 for the batch interpreter).  On Debian 12,
# .ci/gimp3_root.sh runs that test inside a cached Debian 13 root instead.
#
# Never fails the CI: without apt (or root) it prints a warning and the GEGL tests skip
# with a reason naming this script.
set -u

PACKAGES="gir1.2-gegl-0.4 gir1.2-babl-0.1 python3-gi python3-numpy"

warn() { echo "gimp_deps.sh: warning: $*" >&2; }

probe() {
    /usr/bin/python3 -c "import gi; gi.require_version('Gegl','0.4'); gi.require_version('Babl','0.1'); from gi.repository import Gegl, Babl" >/dev/null 2>&1
}

if probe; then
    echo "gimp_deps.sh: GEGL/babl for /usr/bin/python3 already present"
else
    if ! command -v apt-get >/dev/null 2>&1; then
        warn "apt-get not available; the GEGL tests will be skipped (need: $PACKAGES)"
        exit 0
    fi
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
            warn "not root and no passwordless sudo; the GEGL tests will be skipped (need: $PACKAGES)"
            exit 0
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null 2>&1 || warn "apt-get update failed; trying the install anyway"
    # shellcheck disable=SC2086
    if ! $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null 2>&1; then
        warn "apt-get install $PACKAGES failed; the GEGL tests will be skipped"
        exit 0
    fi
    probe && echo "gimp_deps.sh: installed $PACKAGES" || warn "installed, but /usr/bin/python3 still cannot load GEGL"
fi

# GIMP 3 for the real batch-mode test, where the distribution ships it (Debian 13+).
if ! command -v gimp-console-3.0 >/dev/null 2>&1 && command -v apt-cache >/dev/null 2>&1; then
    candidate=$(apt-cache policy gimp 2>/dev/null | awk '/Candidate:/ {print $2}')
    case "$candidate" in
        3.*|1:3.*)
            if [ "$(id -u)" = "0" ]; then
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gimp gir1.2-gimp-3.0 python3-gi >/dev/null 2>&1 \
                    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gimp >/dev/null 2>&1 \
                    || warn "apt-get install gimp ($candidate) failed; the real-GIMP test will be skipped"
            fi
            ;;
        *)
            echo "gimp_deps.sh: GIMP 3 is not available from apt here (candidate: ${candidate:-none}); .ci/gimp3_root.sh runs the real-GIMP test in a Debian 13 root where it can"
            ;;
    esac
fi
exit 0
