#!/usr/bin/env bash
# After the test suite: nothing the tests made may remain on the host.
# Test data roots are /tmp/gvpod-test-*; their runsc state lives in /run/gvpod/*.
set -u
leaks=0
report() { echo "leak-check: $*" >&2; leaks=1; }

m=$(grep -E ' /tmp/gvpod-test-' /proc/self/mountinfo || true)
[ -n "$m" ] && report "mounts left under /tmp/gvpod-test-*:\n$m"
p=$(pgrep -af 'runsc-(sandbox|gofer)|gvpod.* __monitor' | grep -E 'gvpod-test-|/run/gvpod/' || true)
[ -n "$p" ] && report "processes left: $p"
for d in /run/gvpod/*/runsc; do
    [ -d "$d" ] || continue
    n=$(find "$d" -mindepth 1 -maxdepth 1 | wc -l)
    [ "$n" -gt 0 ] && report "runsc state left in $d: $(ls "$d" | head -3)"
done
for cg in /sys/fs/cgroup/gvpod /sys/fs/cgroup/*/gvpod; do
    [ -d "$cg" ] || continue
    n=$(find "$cg" -mindepth 1 -maxdepth 1 -type d | wc -l)
    [ "$n" -gt 0 ] && report "cgroups left in $cg: $(find "$cg" -mindepth 1 -maxdepth 1 -type d | head -3)"
done
r=$(pgrep -af 'docker-registry serve' | grep -E 'gvpod-registry-' || true)
[ -n "$r" ] && report "test registries left running: $r"
d=$(ls -d /tmp/gvpod-registry-* /tmp/gvpod-layout-* 2>/dev/null || true)
[ -n "$d" ] && report "test registry dirs left: $d"
d=$(ls -d /tmp/gvpod-test-* 2>/dev/null || true)
[ -n "$d" ] && report "test data roots left: $d"
if [ "$leaks" = 0 ]; then echo "leak-check: clean"; fi
exit $leaks
