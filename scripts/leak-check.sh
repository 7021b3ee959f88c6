#!/usr/bin/env bash
# After the test suite: nothing the tests made may remain on the host.
# Test data roots are /tmp/gvpod-test-*; their runsc state lives in /run/gvpod/*.
set -u
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
report() { echo "leak-check: $*" >&2; echo x >> "$marker"; }

# One finding per line, so scripts/test.sh can tell new leaks from old ones.
grep -E ' /tmp/gvpod-test-' /proc/self/mountinfo | while read -r l; do report "mount left: $l"; done
for f in /sys/block/loop*/loop/backing_file; do
    [ -r "$f" ] && grep -q '/bundles/[0-9a-f]*/writable.img' "$f" && report "loop device left: ${f%/loop/backing_file} $(cat "$f")"
done
pgrep -af 'runsc-(sandbox|gofer)|gvpod.* __monitor' | grep -E 'gvpod-test-|/run/gvpod/' | while read -r l; do report "process left: $l"; done
for d in /run/gvpod/*/runsc; do
    [ -d "$d" ] || continue
    find "$d" -mindepth 1 -maxdepth 1 | while read -r f; do report "runsc state left: $f"; done
done
for cg in /sys/fs/cgroup/gvpod /sys/fs/cgroup/*/gvpod; do
    [ -d "$cg" ] || continue
    find "$cg" -mindepth 1 -maxdepth 1 -type d | while read -r f; do report "cgroup left: $f"; done
done
# `gvpod bench`'s cgroups (its containers' parents).
d=$(ls -d /sys/fs/cgroup/gvpod-bench-* /sys/fs/cgroup/*/gvpod-bench-* 2>/dev/null || true)
[ -n "$d" ] && report "bench cgroups left: $d"
# The kvm probe's `runsc do`: its bundle and root dirs and its cgroups.
d=$(ls -d /tmp/runsc-do* 2>/dev/null || true)
[ -n "$d" ] && report "runsc do dirs left: $d"
d=$(ls -d /sys/fs/cgroup/runsc-[0-9]* /sys/fs/cgroup/*/runsc-[0-9]* 2>/dev/null || true)
[ -n "$d" ] && report "runsc do cgroups left: $d"
r=$(pgrep -af 'docker-registry serve' | grep -E 'gvpod-registry-' || true)
[ -n "$r" ] && report "test registries left running: $r"
d=$(ls -d /tmp/gvpod-registry-* /tmp/gvpod-layout-* 2>/dev/null || true)
[ -n "$d" ] && report "test registry dirs left: $d"
# Network: links made for test roots (gvpod marks each with an alias naming
# its data root), the tests' "outside" namespaces and veths, and gvpod
# firewall tables whose bridges are all gone.
l=$(ip -d -j link show 2>/dev/null | python3 -c '
import json, sys
for l in json.load(sys.stdin):
    a = l.get("ifalias", "")
    if a.startswith("gvpod root=/tmp/gvpod-test-") or l["ifname"].startswith("gvto"):
        print(l["ifname"], a)' || true)
[ -n "$l" ] && report "links left: $l"
n=$(ip netns list 2>/dev/null | grep -E '^gvt-' || true)
[ -n "$n" ] && report "network namespaces left: $n"
links=$(ip -j link show 2>/dev/null || echo '[]')
for t in $(nft list tables 2>/dev/null | awk '$2 == "inet" && $3 ~ /^gvpod-/ {print $3}'); do
    alive=$(nft -j list set inet "$t" bridges 2>/dev/null | LINKS="$links" python3 -c '
import json, os, sys
names = {l["ifname"] for l in json.loads(os.environ["LINKS"])}
doc = json.load(sys.stdin)
elems = [e for o in doc["nftables"] if "set" in o for e in o["set"].get("elem", [])]
print(sum(1 for e in elems if e in names))' 2>/dev/null || echo 0)
    [ "$alive" = 0 ] && report "nftables table inet $t left with no bridge"
done
# `gvpod bench`'s published-port tables (src/bench/publish.rs): only a run in flight has one.
t=$(nft list tables 2>/dev/null | awk '$2 == "inet" && $3 ~ /^gvbench-/ {print $3}' || true)
[ -n "$t" ] && report "bench nftables tables left: $t"
d=$(ls -d /tmp/gvpod-test-* 2>/dev/null || true)
[ -n "$d" ] && report "test data roots left: $d"
if [ -s "$marker" ]; then exit 1; fi
echo "leak-check: clean"
