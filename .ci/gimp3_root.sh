#!/usr/bin/env bash
# Real GIMP 3 for tests/test_gimp_real.py on a Debian 12 CI machine.
#
# Debian 12 ships GIMP 2.10 only; Debian 13 (trixie) ships GIMP 3.0 and its packages come
# through the same mirror apt already uses here.  This script
#   1. builds, once per machine, a trixie root with GIMP 3 in a cache folder outside the
#      checkout ($HDR_GIMP3_ROOT, default /var/cache/hdr-plugin/gimp3-trixie):
#        debootstrap --variant=minbase trixie ROOT <this machine's Debian mirror>
#        apt-get install gimp python3-gi gir1.2-gimp-3.0 python3-numpy python3-venv
#      (GIMP's Python plug-in support comes with "gimp" itself);
#   2. gives that root the engine with a CPU torch, the cheap way: the host's Python and
#      the CI virtualenv (torch 2.13.0+cpu, the editable engine, pytest) are bind-mounted
#      at their own paths, read-only for the interpreter, so nothing is copied or
#      downloaded (trixie's own Python 3.13 would need PyPI's ~3 GB CUDA torch wheel);
#   3. runs tests/test_gimp_real.py inside the root, against real gimp-console-3.0.
# Mounts (/proc /sys /dev /dev/pts, the checkout, the interpreter) are undone by a trap
# whatever happens.  On Debian 13 the system GIMP is used instead (.ci/gimp_deps.sh
# installs it and the normal test run covers it); anywhere else this script says why it
# does nothing and the test skips with its reason.
#
# Exit status: that of the GIMP test run (so CI fails when real GIMP fails); 0 when the
# root cannot be built here (a warning says why).
#
# Usage: .ci/gimp3_root.sh [--build-only] [pytest args...]
#   HDR_GIMP3_ROOT  cache folder of the root (default /var/cache/hdr-plugin/gimp3-trixie)
#   PYTHON_ENV      the virtualenv holding the engine (default $VIRTUAL_ENV, else ./.venv)
set -uo pipefail
cd "$(dirname "$0")/.."
CHECKOUT=$(pwd -P)
ROOT=${HDR_GIMP3_ROOT:-/var/cache/hdr-plugin/gimp3-trixie}
SUITE=trixie
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 python3-numpy python3-venv ca-certificates libffi8 libssl3t64 libsqlite3-0 libbz2-1.0 liblzma5 zlib1g"
# Bump when the recipe above changes: a root built by an older recipe is rebuilt.
RECIPE=1

BUILD_ONLY=0
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; shift; fi

say() { echo "gimp3_root.sh: $*"; }
warn() { echo "gimp3_root.sh: warning: $*" >&2; }
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

# ---- where are we? ---------------------------------------------------------------------
os_id=""; os_version=""
if [ -r /etc/os-release ]; then
    os_id=$(. /etc/os-release; echo "${ID:-}")
    os_version=$(. /etc/os-release; echo "${VERSION_ID:-}")
fi
if [ "$os_id" = "debian" ] && [ "${os_version%%.*}" -ge 13 ] 2>/dev/null; then
    say "Debian $os_version: the system GIMP 3 is used (.ci/gimp_deps.sh installs it); nothing to do"
    exit 0
fi
if [ "$os_id" != "debian" ] || [ "$os_version" != "12" ]; then
    say "not Debian 12 (${os_id:-unknown} ${os_version:-}); no trixie root is built, tests/test_gimp_real.py skips unless GIMP 3 is installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    warn "needs root (debootstrap, chroot, mounts); tests/test_gimp_real.py will skip"
    exit 0
fi

VENV=${PYTHON_ENV:-${VIRTUAL_ENV:-$CHECKOUT/.venv}}
if [ "$BUILD_ONLY" = 0 ] && [ ! -x "$VENV/bin/python" ]; then
    warn "no engine virtualenv at $VENV (run .ci/run, or set PYTHON_ENV); skipping the real-GIMP test"
    exit 0
fi

# ---- the mirror apt already uses (never a hard-coded host) ------------------------------
host_suite=$(. /etc/os-release; echo "${VERSION_CODENAME:-bookworm}")
mirror_from_apt() {
    local f
    # deb822 files: the URIs of a stanza whose Suites include the release itself.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$host_suite" '
            function flush() { if (uris != "" && hit) { split(uris, u, " "); print u[1]; exit } uris=""; hit=0 }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "uris:" { uris=""; for (i = 2; i <= NF; i++) uris = uris " " $i }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit=1 }
            tolower($1) == "enabled:" && tolower($2) == "no" { hit=-99 }
            END { flush() }' "$f"
    done
    # one-line format: "deb [options] URI SUITE components"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v suite="$host_suite" '
            $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                          if ($(i + 1) == suite) { print $i; exit } }' "$f"
    done
}
MIRROR=$(mirror_from_apt | head -n 1)
if [ -z "$MIRROR" ]; then
    warn "could not read the Debian mirror from /etc/apt/sources.list(.d); skipping the real-GIMP test"
    exit 0
fi

# ---- mounts, always undone --------------------------------------------------------------
MOUNTED=()
cleanup() {
    local i
    for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do
        umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || warn "could not unmount ${MOUNTED[$i]}"
    done
    MOUNTED=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

bind() {  # bind SRC DEST [ro]
    mkdir -p "$2" || return 1
    mount --bind "$1" "$2" || return 1
    MOUNTED+=("$2")
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2" || return 1; fi
}
mount_system() {
    bind /proc "$1/proc" && bind /sys "$1/sys" && bind /dev "$1/dev" && bind /dev/pts "$1/dev/pts"
}
in_root() {  # run a command inside the root with a clean environment (PYTHONPATH passes)
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ${PYTHONPATH:+PYTHONPATH=$PYTHONPATH} "$@"
}

# ---- 1. build the root (cached) ---------------------------------------------------------
mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9 || warn "could not lock $ROOT.lock; going on without"  # two CI runs on one machine take turns
stamp="$ROOT/.hdr-plugin-root"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "recipe $RECIPE" ] && [ -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
    say "using the cached trixie root at $ROOT"
else
    say "building a Debian $SUITE root with GIMP 3 at $ROOT (mirror: $MIRROR; a few minutes, once per machine)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1; } \
            || { warn "apt-get install debootstrap failed; skipping the real-GIMP test"; exit 0; }
    fi
    partial="$ROOT.partial"
    rm -rf "$partial"
    mkdir -p "$(dirname "$ROOT")"
    if ! debootstrap --variant=minbase "$SUITE" "$partial" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1; then
        warn "debootstrap $SUITE failed (log: $ROOT.debootstrap.log); skipping the real-GIMP test"
        tail -n 5 "$ROOT.debootstrap.log" >&2
        rm -rf "$partial"
        exit 0
    fi
    say "debootstrap done ($(elapsed))"
    cp -L /etc/resolv.conf "$partial/etc/resolv.conf"
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        mkdir -p "$partial/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$partial/etc/ssl/certs/ca-certificates.crt"
    fi
    mount_system "$partial" || { warn "mounting /proc /sys /dev in the root failed; skipping the real-GIMP test"; exit 0; }
    # shellcheck disable=SC2086
    if ! chroot "$partial" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES" >"$ROOT.apt.log" 2>&1; then
        warn "apt-get install in the $SUITE root failed (log: $ROOT.apt.log); skipping the real-GIMP test"
        tail -n 5 "$ROOT.apt.log" >&2
        exit 0
    fi
    chroot "$partial" apt-get clean >/dev/null 2>&1
    cleanup
    rm -rf "$ROOT"
    mv "$partial" "$ROOT"
    echo "recipe $RECIPE" >"$stamp"
    say "root ready: $(chroot "$ROOT" gimp-console-3.0 --version 2>/dev/null | head -n 1), $(du -sh "$ROOT" 2>/dev/null | cut -f1) ($(elapsed))"
fi
[ "$BUILD_ONLY" = 1 ] && exit 0

# ---- 2. the engine: host interpreter + CI virtualenv, bind-mounted ------------------------
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null
PYHOME=$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix)')
mount_system "$ROOT" || { warn "mounting /proc /sys /dev in the root failed"; exit 1; }
bind "$PYHOME" "$ROOT$PYHOME" ro || { warn "could not mount the interpreter $PYHOME"; exit 1; }
case "$VENV" in
    "$CHECKOUT"/*) ;;
    *) bind "$VENV" "$ROOT$VENV" ro || { warn "could not mount $VENV"; exit 1; } ;;
esac
bind "$CHECKOUT" "$ROOT$CHECKOUT" || { warn "could not mount the checkout"; exit 1; }
if ! in_root "$VENV/bin/python" -c "import torch, hdr_plugin, pytest" >/dev/null 2>&1; then
    warn "the engine does not import inside the root:"
    in_root "$VENV/bin/python" -c "import torch, hdr_plugin, pytest" >&2
    exit 1
fi

# ---- 3. the test, against real gimp-console-3.0 -----------------------------------------
say "running tests/test_gimp_real.py in real GIMP ($(in_root gimp-console-3.0 --version 2>/dev/null | head -n 1))"
in_root sh -c 'cd "$1" && shift && exec "$@"' sh "$CHECKOUT" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/test_gimp_real.py "$@"
rc=$?
say "real-GIMP tests finished with status $rc ($(elapsed))"
exit $rc
