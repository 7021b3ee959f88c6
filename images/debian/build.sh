#!/usr/bin/env bash
# Builds a Debian image (debootstrap --variant=minbase) as an oci-archive,
# without Docker, for gvpod's tests and benchmarks.
#
#   sudo images/debian/build.sh [OUT.tar]          (default ./debian.tar)
#   gvpod load -i OUT.tar                          → docker.io/library/debian:bookworm
#
# Environment:
#   SUITE=bookworm                    Debian release
#   MIRROR=http://deb.debian.org/debian
#                                     any Debian mirror; for a build that gives the same
#                                     bytes later too, pin a snapshot, e.g.
#                                     MIRROR=http://snapshot.debian.org/archive/debian/20250520T000000Z
#   REF=docker.io/library/debian:$SUITE   the name the image loads under
#   DEBOOTSTRAP_CACHE=/var/cache/gvpod/debootstrap   downloaded .debs, reused by later builds
#   SOURCE_DATE_EPOCH=1704067200      mtime clamp and "created" (2024-01-01)
#   KEEP_ROOTFS=DIR                   also leave the unpacked rootfs in DIR (used by images/nginx)
#
# Needs root, debootstrap, GNU tar, gzip; network access to the mirror (the
# script says so clearly when the mirror cannot be reached). About 1-3 min
# the first time, well under a minute with a warm package cache. One layer,
# about 120 MB unpacked; Cmd ["bash"].
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/oci.sh
source "$here/../lib/oci.sh"

out=${1:-./debian.tar}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
ref=${REF:-docker.io/library/debian:$suite}
require_tools debootstrap gzip sha256sum

work=$(mktemp -d /var/tmp/gvpod-debian.XXXXXX)
trap 'rm -rf "$work"' EXIT
debian_rootfs "$work/rootfs" "$suite" "$mirror"
layer_tar "$work/rootfs" "$work/layer.tar"
write_oci_archive "$out" "$ref" \
    '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]}' \
    "$work/layer.tar"
if [[ -n ${KEEP_ROOTFS:-} ]]; then
    rm -rf "$KEEP_ROOTFS"
    mv "$work/rootfs" "$KEEP_ROOTFS"
fi
