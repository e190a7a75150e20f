#!/bin/sh
# A Debian trixie chroot with GIMP 3.0 for testing the plug-in in real GIMP (Debian 12 ships 2.10),
# and darktable 5.0 for the darktable script (Debian 12 ships 4.2).
#
#   plugins/gimp/chroot.sh build     build or reuse it (idempotent), and (re)install libdeclip
#                                    from this checkout into a venv inside it
#   plugins/gimp/chroot.sh run CMD   run CMD inside it, with /proc, /sys and /dev mounted in a
#                                    private mount namespace (gone when CMD ends)
#
# Where: $GIMP3_CHROOT, default /opt/trixie (about 1.5 GB). The venv is /opt/libdeclip-venv inside
# it, made with the chroot's Python (3.13, GIMP's own) and --system-site-packages, so GIMP's Python
# can also import libdeclip from it (the in-process path). Needs root, debootstrap (installed if
# missing) and the Debian mirror of /etc/apt/sources.list.d/debian.sources (or $DEBIAN_MIRROR).
set -eu

ROOT=${GIMP3_CHROOT:-/opt/trixie}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VENV=/opt/libdeclip-venv

die() { echo "chroot.sh: $*" >&2; exit 3; }

in_root() {  # run "$@" in the chroot with the kernel filesystems it needs, mounted privately
    unshare --mount --propagation private sh -c '
        root=$1; shift
        for d in proc sys dev dev/pts; do mount --bind "/$d" "$root/$d"; done
        exec chroot "$root" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"
    ' sh "$ROOT" "$@"
}

build() {
    [ "$(id -u)" = 0 ] || die "building the chroot needs root"
    mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
    [ -n "$mirror" ] || die "no Debian mirror known: set DEBIAN_MIRROR"
    if [ ! -f "$ROOT/etc/debian_version" ]; then
        command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
        echo "chroot.sh: debootstrap trixie into $ROOT (about 40 s)"
        debootstrap --variant=minbase trixie "$ROOT" "$mirror" >/dev/null
    fi
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # GIMP 3 and its Python bindings; a compiler for libdeclip; an X server and tools for the
    # GUI tests and screenshots (Xvfb, xdotool, xwd); darktable 5.0 and lua5.4 for the darktable
    # script's test in a newer darktable than the host's 4.2 (about 10 s more)
    packages="gimp python3-gi gir1.2-gimp-3.0 gir1.2-gegl-0.4 gir1.2-babl-0.1 python3-numpy python3-venv
              python3-dev g++ cmake make ca-certificates xvfb xauth xdotool x11-apps darktable lua5.4"
    missing=$(for p in $packages; do in_root dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null \
              | grep -q "install ok installed" || echo "$p"; done)
    if [ -n "$missing" ]; then
        echo "chroot.sh: installing" $missing "(GIMP: about 1 min)"
        in_root apt-get update -q >/dev/null
        in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
    fi
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # pip inside trusts what the host's pip trusts (a proxy's CA, where there is one)
    cert=$(pip config get global.cert 2>/dev/null || true)
    [ -f "${cert:-/etc/ssl/certs/ca-certificates.crt}" ] && cp "${cert:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/libdeclip-pip-ca.crt"
    # libdeclip from this checkout (tracked files only), built with the chroot's compiler
    rm -rf "$ROOT/opt/libdeclip-src" && mkdir -p "$ROOT/opt/libdeclip-src"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) \
        | tar -xf - -C "$ROOT/opt/libdeclip-src"
    [ -x "$ROOT$VENV/bin/python" ] || in_root python3 -m venv --system-site-packages "$VENV"
    echo "chroot.sh: installing libdeclip into $VENV"
    in_root env PIP_CERT=/etc/libdeclip-pip-ca.crt "$VENV/bin/pip" install -q --disable-pip-version-check \
        /opt/libdeclip-src
    in_root "$VENV/bin/libdeclip" --version
    in_root gimp-console-3.0 --version
}

case "${1:-}" in
    build) build ;;
    run) shift; [ -x "$ROOT/usr/bin/gimp-console-3.0" ] || die "no chroot at $ROOT: run '$0 build'"; in_root "$@" ;;
    *) echo "usage: $0 build | run CMD..." >&2; exit 2 ;;
esac
