#!/usr/bin/env bash
# Fetches one exact runsc release as a Debian package and unpacks it to a
# side path, never over the system's runsc. The suite's second runsc (CI runs
# the integration tests once with each, see scripts/test.sh) comes from here:
#
#   scripts/fetch-runsc.sh                       # trixie's 0.0~20240729.0-4+b7
#   GVPOD_RUNSC=$(scripts/fetch-runsc.sh) gvpod system info
#
# Usage: scripts/fetch-runsc.sh [--suite SUITE] [--version VERSION] [--dest DIR] [--quiet]
#   --suite    Debian suite whose index lists the package (default trixie)
#   --version  exact package version (default 0.0~20240729.0-4+b7)
#   --dest     where to unpack (default /opt/gvpod/runsc-<version>); the
#              binary is DEST/usr/bin/runsc, printed on stdout
# Environment: MIRROR (default http://deb.debian.org/debian).
#
# Trust: the suite's InRelease must carry a good signature from a key in
# Debian's archive keyring (gpgv), Packages.xz must match the hash InRelease
# gives, and the .deb the hash Packages gives. Nothing is installed with dpkg
# (`dpkg-deb -x` only). Running it again with the same arguments does nothing.
#
# Why trixie's +b7 and not a newer build: sid's 0.0~20240729.0-7+b1 is built
# with Go 1.26, which that gVisor release does not support (its sandboxes
# panic within seconds); +b7 is built with Go 1.24.4 and works.
set -euo pipefail

SUITE=trixie
VERSION='0.0~20240729.0-4+b7'
DEST=""
QUIET=0
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) SUITE="${2:?--suite needs a name}"; shift ;;
        --version) VERSION="${2:?--version needs a version}"; shift ;;
        --dest) DEST="${2:?--dest needs a directory}"; shift ;;
        --quiet) QUIET=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fetch-runsc.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$SUITE" in ''|*[!a-z0-9-]*) echo "fetch-runsc.sh: bad --suite $SUITE (a Debian suite name such as trixie)" >&2; exit 2 ;; esac
case "$VERSION" in ''|*[!0-9A-Za-z.+~:-]*) echo "fetch-runsc.sh: bad --version $VERSION (an exact Debian version such as 0.0~20240729.0-4+b7)" >&2; exit 2 ;; esac
DEST="${DEST:-/opt/gvpod/runsc-$VERSION}"
BIN="$DEST/usr/bin/runsc"

log() { [ "$QUIET" = 1 ] || printf 'fetch-runsc: %s\n' "$*" >&2; }
die() { printf 'fetch-runsc.sh: %s\n' "$*" >&2; exit 1; }

if [ -x "$BIN" ] && [ "$(cat "$DEST/.gvpod-package-version" 2>/dev/null)" = "$VERSION" ]; then
    log "runsc $VERSION is already at $BIN"
    echo "$BIN"
    exit 0
fi
for t in curl gpgv xz dpkg-deb sha256sum awk; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install curl gpgv xz-utils dpkg coreutils gawk)"
done
[ -r "$KEYRING" ] || die "$KEYRING not found (apt-get install debian-archive-keyring)"
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { # fetch URL FILE
    curl -fsSL --retry 3 -o "$2" "$1" || die "cannot download $1 (is $MIRROR reachable?)"
}

log "checking the $SUITE index on $MIRROR"
fetch "$MIRROR/dists/$SUITE/InRelease" "$work/InRelease"
gpgv --keyring "$KEYRING" --output "$work/Release" "$work/InRelease" 2>"$work/gpgv.log" \
    || die "$MIRROR/dists/$SUITE/InRelease has no good signature from Debian's archive keyring: $(tail -1 "$work/gpgv.log")"
want=$(awk -v f="main/binary-$arch/Packages.xz" '/^SHA256:/{s=1; next} /^[^ ]/{s=0} s && $3==f {print $1}' "$work/Release")
[ -n "$want" ] || die "the $SUITE Release file lists no main/binary-$arch/Packages.xz"
fetch "$MIRROR/dists/$SUITE/main/binary-$arch/Packages.xz" "$work/Packages.xz"
[ "$(sha256sum "$work/Packages.xz" | cut -d' ' -f1)" = "$want" ] || die "Packages.xz of $SUITE does not match its Release hash"

# The stanza of Package: runsc, Version: $VERSION.
read -r file sha < <(xz -dc "$work/Packages.xz" | awk -v v="$VERSION" '
    /^Package: /  { p = $2 } /^Version: / { ver = $2 }
    /^Filename: / { f = $2 } /^SHA256: /  { h = $2 }
    /^$/ { if (p == "runsc" && ver == v) { print f, h; exit } p = ver = f = h = "" }') || true
if [ -z "${file:-}" ]; then
    have=$( (xz -dc "$work/Packages.xz" || true) | awk '/^Package: runsc$/{p=1} p && /^Version: /{v=$2} /^$/{if (p) {print v; exit}}' || true)
    die "Debian $SUITE has no runsc $VERSION for $arch (it has ${have:-none}); pick one with --version or --suite"
fi

log "downloading $file"
fetch "$MIRROR/$file" "$work/runsc.deb"
[ "$(sha256sum "$work/runsc.deb" | cut -d' ' -f1)" = "$sha" ] || die "$file does not match the hash in the $SUITE index"
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
dpkg-deb -x "$work/runsc.deb" "$DEST.tmp"
[ -x "$DEST.tmp/usr/bin/runsc" ] || die "the package has no usr/bin/runsc"
echo "$VERSION" > "$DEST.tmp/.gvpod-package-version"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
log "$("$BIN" --version | sed -n 1p) at $BIN"
echo "$BIN"
