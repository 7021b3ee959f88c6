# shellcheck shell=bash
# Shared helpers of the image recipes (sourced, not run): reproducible layer
# tarballs, overlay upper dirs turned into OCI layers, and an oci-archive
# writer, all with GNU tar, gzip, sha256sum and debootstrap; no Docker.
#
# Reproducibility: entries sorted by name, numeric owners, GNU format without
# atime/ctime, mtimes clamped to SOURCE_DATE_EPOCH, gzip without name or time,
# JSON written byte for byte here. Two builds from the same packages give the
# same layers and the same image id.

# Default: 2024-01-01T00:00:00Z.
: "${SOURCE_DATE_EPOCH:=1704067200}"

die() { echo "${0##*/}: $*" >&2; exit 1; }

require_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t is required (Debian: apt-get install $t)"
    done
    tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required"
    [[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, device nodes, owners)"
}

# epoch → RFC 3339 UTC.
rfc3339() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# debian_rootfs DIR SUITE MIRROR [EXTRA debootstrap args...]
# A minbase debootstrap, then what makes it an image rather than a host:
# no host identity files, no logs or caches, apt that keeps no caches.
debian_rootfs() {
    local dir=$1 suite=$2 mirror=$3
    shift 3
    local cache=${DEBOOTSTRAP_CACHE:-/var/cache/gvpod/debootstrap}
    mkdir -p "$cache"
    echo "debootstrap --variant=minbase $suite from $mirror (package cache: $cache)" >&2
    if ! debootstrap --variant=minbase --cache-dir="$cache" "$@" "$suite" "$dir" "$mirror" >"$dir.log" 2>&1; then
        tail -n 20 "$dir.log" >&2
        if grep -qiE 'resolv|connect|Failed getting release file|couldn.t download|unable to fetch' "$dir.log"; then
            die "debootstrap cannot reach the mirror $mirror; set MIRROR=http://… to a reachable Debian mirror"
        fi
        die "debootstrap failed (log above, full log: $dir.log)"
    fi
    rm -f "$dir.log"
    cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
APT
    cat >"$dir/etc/apt/apt.conf.d/docker-no-recommends" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
    # The runtime provides these.
    echo localhost >"$dir/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
    rm -f "$dir/etc/resolv.conf"
    clean_rootfs "$dir"
}

# Removes logs, caches and backup files that differ from build to build.
clean_rootfs() {
    local dir=$1
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
        "$dir"/var/lib/apt/lists/* "$dir"/var/cache/ldconfig/aux-cache \
        "$dir"/var/cache/debconf/*-old "$dir"/var/lib/dpkg/*-old \
        "$dir"/root/.bash_history "$dir"/tmp/* "$dir"/var/tmp/*
    mkdir -p "$dir/var/lib/apt/lists/partial"
    find "$dir/var/log" -type f -delete 2>/dev/null || true
}

# layer_tar DIR OUT: DIR's content as a reproducible tar (owners and modes kept).
layer_tar() {
    tar --create --file "$2" --directory "$1" --format=gnu --sort=name \
        --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime \
        --no-acls --no-selinux --no-xattrs .
}

# upper_to_layer UPPER: turns an overlayfs upper dir into OCI layer form in
# place: whiteout devices (char 0/0) become `.wh.NAME` files, opaque
# directories get a `.wh..wh..opq` file.
upper_to_layer() {
    local upper=$1 f d
    while IFS= read -r -d '' f; do
        if [[ $(stat -c '%t:%T' "$f") == 0:0 ]]; then
            rm -f "$f"
            : >"$(dirname "$f")/.wh.$(basename "$f")"
        fi
    done < <(find "$upper" -type c -print0)
    while IFS= read -r -d '' d; do
        if [[ $(getfattr --only-values -n trusted.overlay.opaque "$d" 2>/dev/null) == y ]]; then
            setfattr -x trusted.overlay.opaque "$d"
            : >"$d/.wh..wh..opq"
        fi
    done < <(find "$upper" -type d -print0)
}

# write_oci_archive OUT REFERENCE CONFIG_JSON LAYER.tar...
# CONFIG_JSON is the "config" object of the image config (Cmd, Env, …).
# Layers (uncompressed tars, lowest first) are stored gzip-compressed.
write_oci_archive() {
    local out=$1 ref=$2 config=$3
    shift 3
    local work arch created diff_ids="" layers="" l hex dgz size
    work=$(mktemp -d)
    mkdir -p "$work/blobs/sha256"
    case $(uname -m) in
        x86_64) arch=amd64 ;;
        aarch64) arch=arm64 ;;
        *) arch=$(uname -m) ;;
    esac
    created=$(rfc3339 "$SOURCE_DATE_EPOCH")
    for l in "$@"; do
        hex=$(sha256sum "$l" | cut -d' ' -f1)
        gzip -n -6 -c "$l" >"$work/layer.gz"
        dgz=$(sha256sum "$work/layer.gz" | cut -d' ' -f1)
        size=$(stat -c %s "$work/layer.gz")
        mv "$work/layer.gz" "$work/blobs/sha256/$dgz"
        diff_ids+="${diff_ids:+,}\"sha256:$hex\""
        layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dgz\",\"size\":$size}"
    done
    printf '{"architecture":"%s","os":"linux","created":"%s","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]},"history":[{"created":"%s","created_by":"gvpod images/ recipe"}]}' \
        "$arch" "$created" "$config" "$diff_ids" "$created" >"$work/config.json"
    local cd cs md ms
    cd=$(sha256sum "$work/config.json" | cut -d' ' -f1)
    cs=$(stat -c %s "$work/config.json")
    mv "$work/config.json" "$work/blobs/sha256/$cd"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$cd" "$cs" "$layers" >"$work/manifest.json"
    md=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
    ms=$(stat -c %s "$work/manifest.json")
    mv "$work/manifest.json" "$work/blobs/sha256/$md"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"%s","io.containerd.image.name":"%s"}}]}' \
        "$md" "$ms" "$arch" "$ref" "$ref" >"$work/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
    tar --create --file "$out.tmp" --directory "$work" --format=gnu --sort=name \
        --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        --mode=u+rw,go+r oci-layout index.json blobs
    mv "$out.tmp" "$out"
    rm -rf "$work"
    echo "$out: $ref (config sha256:$cd, manifest sha256:$md)" >&2
}

# debian_base DIR SUITE MIRROR: the Debian rootfs recipes build on, in DIR
# (which must not exist): the single layer of the images/debian archive
# named by $DEBIAN_TAR when set, else a fresh debian_rootfs.
debian_base() {
    local dir=$1 suite=$2 mirror=$3 work manifest
    local -a digests
    if [[ -z ${DEBIAN_TAR:-} ]]; then
        debian_rootfs "$dir" "$suite" "$mirror"
        return
    fi
    [[ -f $DEBIAN_TAR ]] || die "DEBIAN_TAR=$DEBIAN_TAR: no such file"
    work=$(mktemp -d)
    tar -xf "$DEBIAN_TAR" -C "$work" index.json
    manifest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$work/index.json" | head -n1 | grep -o '[0-9a-f]\{64\}')
    tar -xf "$DEBIAN_TAR" -C "$work" "blobs/sha256/$manifest"
    mapfile -t digests < <(grep -o '"digest":"sha256:[0-9a-f]*"' "$work/blobs/sha256/$manifest" | grep -o '[0-9a-f]\{64\}')
    (( ${#digests[@]} == 2 )) || { rm -rf "$work"; die "$DEBIAN_TAR: expected a one-layer image from images/debian/build.sh"; }
    tar -xf "$DEBIAN_TAR" -C "$work" "blobs/sha256/${digests[1]}"
    mkdir "$dir"
    gzip -dc "$work/blobs/sha256/${digests[1]}" | tar -x --numeric-owner -p -C "$dir"
    rm -rf "$work"
}

# apt_layer BASE WORK PACKAGE...: installs Debian packages with apt-get in a
# chroot over an overlay of BASE (left untouched) and leaves what changed
# in WORK/upper, in OCI layer form (whiteouts converted), without the files
# that differ from build to build (logs, apt lists and caches).
# `--no-install-recommends`; daemons are not started (policy-rc.d).
# The overlay and chroot mounts live in a private mount namespace, so
# nothing is left mounted even if the build is interrupted.
apt_layer() {
    local base=$1 work=$2
    shift 2
    mkdir "$work/upper" "$work/ovl" "$work/merged"
    echo "installing $* with apt-get in a chroot over the Debian layer" >&2
    # shellcheck disable=SC2016 # expanded by the inner bash
    if ! unshare --mount --propagation private env BASE="$base" WORK="$work" PKGS="$*" bash -euo pipefail -c '
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
        chroot "$m" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends $PKGS
        chroot "$m" apt-get clean
        rm -f "$m/usr/sbin/policy-rc.d" "$m/etc/resolv.conf"
        for d in null zero random urandom tty full; do umount "$m/dev/$d"; done
        umount "$m/dev" "$m/proc"
        umount "$m"
    ' >"$work/apt.log" 2>&1; then
        tail -n 20 "$work/apt.log" >&2
        if grep -qiE 'Could not resolve|Failed to fetch|Temporary failure' "$work/apt.log"; then
            die "apt-get in the chroot cannot reach the mirror (see above); set MIRROR or check the network"
        fi
        die "installing $* failed (log above)"
    fi
    rm -rf "$work/ovl" "$work/merged"
    # What apt/dpkg left that differs from build to build; then OCI whiteouts.
    find "$work/upper/var/log" -type f -delete 2>/dev/null || true
    rm -rf "$work"/upper/var/lib/apt/lists/* "$work"/upper/var/cache/apt/*.bin \
        "$work"/upper/var/cache/debconf/*-old "$work"/upper/var/lib/dpkg/*-old \
        "$work"/upper/var/cache/ldconfig/aux-cache
    upper_to_layer "$work/upper"
}
