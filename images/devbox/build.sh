#!/usr/bin/env bash
# Builds the dev-access test image as an oci-archive, without Docker, the
# way images/nginx does: the Debian image of images/debian (layer 1) plus
# Debian's openssh-server, sudo and python3-websockets installed with
# apt-get in a chroot (layer 2, --no-install-recommends), plus ws-echo
# (images/devbox/ws-echo.py as /usr/local/bin/ws-echo: the WebSocket page
# and echo, and the HTTP /host /sse /body /big services the router tests
# proxy to; see its header).
#
#   sudo images/devbox/build.sh [OUT.tar]     (default ./devbox.tar)
#   gvpod load -i OUT.tar                     → docker.io/gvpod/devbox:bookworm
#   gvpod run -d gvpod/devbox:bookworm ws-echo [--bind 127.0.0.1]
#
# The image: Cmd ["sleep","infinity"] (sshd is NOT started by the image:
# gvpod's --ssh starts it), ExposedPorts 8765/tcp (ws-echo's page).
# - No SSH host keys ship: /etc/ssh/ssh_host_* made by openssh-server's
#   postinst are removed, gvpod installs per-pod host keys.
# - /run/sshd (sshd's privilege-separation dir) is not in the image: sshd
#   refuses to start without it, so whoever starts sshd creates it first
#   (mkdir -p -m 0755 /run/sshd).
# - sudo is installed with no sudoers entries beyond Debian's (%sudo);
#   no user besides root, no passwords set.
#
# Environment: as images/nginx/build.sh (SUITE, MIRROR, DEBOOTSTRAP_CACHE,
# SOURCE_DATE_EPOCH, DEBIAN_TAR=debian.tar to build on an existing
# images/debian archive), plus REF=docker.io/gvpod/devbox:$SUITE.
#
# Needs root, debootstrap, GNU tar, gzip, getfattr/setfattr (Debian: attr),
# unshare (util-linux), and network access to the mirror for apt-get.
# The tests build it once per machine and cache it (tests/common:
# devbox_image(), under /var/cache/gvpod/test-images).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/oci.sh
source "$here/../lib/oci.sh"

out=${1:-./devbox.tar}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
ref=${REF:-docker.io/gvpod/devbox:$suite}
require_tools debootstrap gzip sha256sum getfattr setfattr unshare chroot
umask 022

work=$(mktemp -d /var/tmp/gvpod-devbox.XXXXXX)
trap 'rm -rf "$work"' EXIT
base=$work/base

debian_base "$base" "$suite" "$mirror"
layer_tar "$base" "$work/base.tar"
apt_layer "$base" "$work" openssh-server sudo python3-websockets
up=$work/upper
# Host keys are per pod (gvpod's), never per image.
rm -f "$up"/etc/ssh/ssh_host_*
[[ -z $(find "$up/etc/ssh" "$base/etc/ssh" -name 'ssh_host_*' 2>/dev/null) ]] ||
    die "ssh host keys are still in the image"
# Runtime state that would only be stale in an image.
rm -rf "$up"/run/*
install -D -m 0755 "$here/ws-echo.py" "$up/usr/local/bin/ws-echo"
layer_tar "$up" "$work/devbox.tar"
write_oci_archive "$out" "$ref" \
    '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sleep","infinity"],"ExposedPorts":{"8765/tcp":{}}}' \
    "$work/base.tar" "$work/devbox.tar"
