#!/usr/bin/env bash
# Builds an nginx image as an oci-archive, without Docker: the Debian image of
# images/debian (layer 1) plus Debian's nginx package installed on top of it
# (layer 2, made by running apt-get in a chroot over an overlay of layer 1,
# then turning the overlay's upper dir into an OCI layer). A real two-layer
# image for gvpod's tests and benchmarks.
#
#   sudo images/nginx/build.sh [OUT.tar] [DEBIAN_OUT.tar]   (default ./nginx.tar)
#   gvpod load -i OUT.tar                  → docker.io/library/nginx:bookworm
#   gvpod run -d -p 8080:80 nginx:bookworm
#
# DEBIAN_OUT.tar, when given, also receives the Debian image built on the
# way; both archives then share the same bottom layer (same diff id).
# Environment: as images/debian/build.sh (SUITE, MIRROR, DEBOOTSTRAP_CACHE,
# SOURCE_DATE_EPOCH), plus:
#   DEBIAN_TAR=debian.tar   build on this existing images/debian archive
#                           instead of running debootstrap again
#   REF=docker.io/library/nginx:$SUITE
#
# Needs root, debootstrap, GNU tar, gzip, getfattr/setfattr (Debian: attr),
# unshare (util-linux), and network access to the mirror for apt-get. The
# overlay and chroot mounts live in a private mount namespace, so nothing is
# left mounted even if the build is interrupted.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/oci.sh
source "$here/../lib/oci.sh"

out=${1:-./nginx.tar}
debian_out=${2:-}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
ref=${REF:-docker.io/library/nginx:$suite}
require_tools debootstrap gzip sha256sum getfattr setfattr unshare chroot

work=$(mktemp -d /var/tmp/gvpod-nginx.XXXXXX)
trap 'rm -rf "$work"' EXIT
base=$work/base

debian_base "$base" "$suite" "$mirror"
layer_tar "$base" "$work/base.tar"
if [[ -n $debian_out ]]; then
    write_oci_archive "$debian_out" "docker.io/library/debian:$suite" \
        '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]}' \
        "$work/base.tar"
fi

apt_layer "$base" "$work" nginx
# Logs to the pod output, like the Docker official image.
ln -sf /dev/stdout "$work/upper/var/log/nginx/access.log"
ln -sf /dev/stderr "$work/upper/var/log/nginx/error.log"
layer_tar "$work/upper" "$work/nginx.tar"
write_oci_archive "$out" "$ref" \
    '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["nginx","-g","daemon off;"],"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT"}' \
    "$work/base.tar" "$work/nginx.tar"
