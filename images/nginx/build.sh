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

if [[ -n ${DEBIAN_TAR:-} ]]; then
    # Unpack the (single) layer of an images/debian archive.
    [[ -f $DEBIAN_TAR ]] || die "DEBIAN_TAR=$DEBIAN_TAR: no such file"
    tar -xf "$DEBIAN_TAR" -C "$work" index.json
    manifest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$work/index.json" | head -n1 | grep -o '[0-9a-f]\{64\}')
    tar -xf "$DEBIAN_TAR" -C "$work" "blobs/sha256/$manifest"
    mapfile -t digests < <(grep -o '"digest":"sha256:[0-9a-f]*"' "$work/blobs/sha256/$manifest" | grep -o '[0-9a-f]\{64\}')
    (( ${#digests[@]} == 2 )) || die "$DEBIAN_TAR: expected a one-layer image from images/debian/build.sh"
    tar -xf "$DEBIAN_TAR" -C "$work" "blobs/sha256/${digests[1]}"
    mkdir "$base"
    gzip -dc "$work/blobs/sha256/${digests[1]}" | tar -x --numeric-owner -p -C "$base"
    rm -rf "$work/blobs" "$work/index.json"
else
    debian_rootfs "$base" "$suite" "$mirror"
fi
layer_tar "$base" "$work/base.tar"
if [[ -n $debian_out ]]; then
    write_oci_archive "$debian_out" "docker.io/library/debian:$suite" \
        '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]}' \
        "$work/base.tar"
fi

mkdir "$work/upper" "$work/ovl" "$work/merged"
echo "installing nginx with apt-get in a chroot over the Debian layer" >&2
if ! unshare --mount --propagation private env BASE="$base" WORK="$work" bash -euo pipefail -c '
    m=$WORK/merged
    mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/ovl,redirect_dir=off,index=off,metacopy=off" "$m"
    mount -t proc proc "$m/proc"
    mount -t tmpfs -o mode=755 tmpfs "$m/dev"
    for d in null zero random urandom tty full; do
        touch "$m/dev/$d"; mount --bind "/dev/$d" "$m/dev/$d"
    done
    cp /etc/resolv.conf "$m/etc/resolv.conf"
    printf "#!/bin/sh\nexit 101\n" >"$m/usr/sbin/policy-rc.d"
    chmod 755 "$m/usr/sbin/policy-rc.d"
    chroot "$m" apt-get -q update
    chroot "$m" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends nginx
    chroot "$m" apt-get clean
    # Logs to the pod output, like the Docker official image.
    ln -sf /dev/stdout "$m/var/log/nginx/access.log"
    ln -sf /dev/stderr "$m/var/log/nginx/error.log"
    rm -f "$m/usr/sbin/policy-rc.d" "$m/etc/resolv.conf"
    for d in null zero random urandom tty full; do umount "$m/dev/$d"; done
    umount "$m/dev" "$m/proc"
    umount "$m"
' >"$work/apt.log" 2>&1; then
    tail -n 20 "$work/apt.log" >&2
    if grep -qiE 'Could not resolve|Failed to fetch|Temporary failure' "$work/apt.log"; then
        die "apt-get in the chroot cannot reach the mirror (see above); set MIRROR or check the network"
    fi
    die "installing nginx failed (log above)"
fi
# What apt/dpkg left that differs from build to build; then OCI whiteouts.
find "$work/upper/var/log" -type f -delete 2>/dev/null || true
rm -rf "$work"/upper/var/lib/apt/lists/* "$work"/upper/var/cache/apt/*.bin \
    "$work"/upper/var/cache/debconf/*-old "$work"/upper/var/lib/dpkg/*-old \
    "$work"/upper/var/cache/ldconfig/aux-cache
upper_to_layer "$work/upper"
layer_tar "$work/upper" "$work/nginx.tar"
write_oci_archive "$out" "$ref" \
    '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["nginx","-g","daemon off;"],"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT"}' \
    "$work/base.tar" "$work/nginx.tar"
