#!/usr/bin/env bash
# Builds a minimal busybox rootfs tarball for gvpod's tests and benchmarks,
# without Docker, from the host's static busybox (Debian: busybox-static).
#
#   images/busybox/build.sh [OUTPUT.tar]      (default ./busybox-rootfs.tar)
#   gvpod import OUTPUT.tar gvpod/busybox --change 'CMD ["/bin/sh"]'
#
# Contents: /bin/busybox and one symlink per applet in /bin (/sbin, /usr/bin
# and /usr/sbin link to /bin), /etc/passwd with root, nobody (65534) and dev
# (1000), /etc/group, /root (0700), /tmp (1777), /home/dev (owned 1000:1000),
# empty /proc /sys /dev.
#
# Reproducible: fixed modes, entries sorted by name, mtime SOURCE_DATE_EPOCH
# (default 2024-01-01), numeric owners, GNU format without atime/ctime. The
# same busybox binary gives a byte-identical tarball, whoever runs it.
set -euo pipefail

out=${1:-./busybox-rootfs.tar}
busybox=${BUSYBOX:-/bin/busybox}
epoch=${SOURCE_DATE_EPOCH:-1704067200}

die() { echo "build.sh: $*" >&2; exit 1; }

[[ -x $busybox ]] || die "$busybox not found; install it with: apt-get install busybox-static"
if command -v ldd >/dev/null && ldd "$busybox" 2>/dev/null | grep -q '=>'; then
    die "$busybox is dynamically linked; a static busybox (busybox-static) is needed"
fi
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

mkdir -p "$root"/{bin,etc,root,tmp,home/dev,proc,sys,dev,usr}
install -m 0755 "$busybox" "$root/bin/busybox"
# One symlink per applet, all in /bin (merged-/usr layout below).
while read -r applet; do
    [[ -n $applet && $applet != busybox && $applet != */* ]] || continue
    ln -sf busybox "$root/bin/$applet"
done < <("$busybox" --list | LC_ALL=C sort -u)
[[ -L $root/bin/sh ]] || die "$busybox has no sh applet"
ln -s bin "$root/sbin"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
dev:x:1000:1000:dev:/home/dev:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
dev:x:1000:
EOF
cat >"$root/etc/shadow" <<'EOF'
root:*:19723:0:99999:7:::
nobody:*:19723:0:99999:7:::
dev:*:19723:0:99999:7:::
EOF

# Fixed modes, whatever the umask.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/bin/busybox"
chmod 0640 "$root/etc/shadow"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

common=(--format=gnu --sort=name --mtime="@$epoch" --numeric-owner --no-acls --no-xattrs --no-selinux)
tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
# Everything owned by root, except /home/dev which belongs to the dev user;
# it is appended as a second step (tar cannot map owners per file).
tar --create --file="$tmp_out" "${common[@]}" --owner=0 --group=0 \
    --exclude=./home/dev -C "$root" .
tar --append --file="$tmp_out" "${common[@]}" --owner=1000 --group=1000 \
    --no-recursion -C "$root" ./home/dev
mv -f "$tmp_out" "$out"
echo "$out"
