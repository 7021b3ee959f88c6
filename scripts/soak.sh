#!/usr/bin/env bash
# Soak (issue 15, item 1): CYCLES create/start/exec/stop/rm cycles of a
# networked pod with a published port, a checkpoint + restore every tenth,
# next to one long-lived pod. After every hundred cycles (and at the end)
# the host is checked against the state before the first cycle: no leaked
# veth, netns, nftables rule or port element, mount, cgroup, lease, runsc
# sandbox process; the long-lived pod's monitor keeps its fd count and its
# RSS (reported); the data root's disk usage does not grow.
#
# Usage: scripts/soak.sh [CYCLES]   (default 1000; CI runs 30 through
# tests/reliability.rs). GVPOD_BIN picks the binary (default
# target/debug/gvpod), GVPOD_RUNSC the runsc. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-1000}
every=$(( cycles < 100 ? cycles : 100 ))
bin=${GVPOD_BIN:-target/debug/gvpod}
py=/usr/bin/python3
root=$(mktemp -d /tmp/gvpod-test-soak-XXXX)
root=$(realpath "$root")
export GVPOD_ROOT=$root
hash_of() { "$py" -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:12])' "$1"; }
run_dir=/run/gvpod/$(hash_of "$root")
table=gvpod-$("$py" -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()+b"\0").hexdigest()[:10])' "$root")
ids=$(mktemp)
gv() { "$bin" "$@"; }

cleanup() {
    set +e
    for id in $(gv ps -aq 2>/dev/null); do gv rm -f "$id" >/dev/null 2>&1; done
    for n in $(gv network ls -q 2>/dev/null); do gv network rm "$n" >/dev/null 2>&1; done
    gv system gc >/dev/null 2>&1
    rm -rf "$root" "$run_dir" "$ids" /tmp/gvpod-soak-busybox.tar
}
trap cleanup EXIT

bash images/busybox/build.sh /tmp/gvpod-soak-busybox.tar >/dev/null
gv import -c 'CMD ["sh"]' /tmp/gvpod-soak-busybox.tar busybox >/dev/null
anchor=$(gv run -d --name anchor -p 80 busybox sleep 1000000)
anchor_monitor=$(gv inspect anchor | "$py" -c 'import json,sys; print(json.load(sys.stdin)["monitor_pid"])')

# What the host holds for this root (one line per kind, compared as text).
snapshot() {
    echo "veths $(ip -d -j link show | ROOT="$root" "$py" -c '
import json, os, sys
mark = "gvpod root=%s pod=" % os.environ["ROOT"]
print(sum(1 for l in json.load(sys.stdin) if l.get("ifalias", "").startswith(mark)))')"
    echo "netns $(find "$root/netns" -mindepth 1 -maxdepth 1 | wc -l)"
    echo "nft $(nft list table inet "$table" 2>/dev/null | grep -c 'pod:' || true)"
    echo "mounts $(grep -c " $root/" /proc/self/mountinfo || true)"
    echo "leases $("$py" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from leases").fetchone()[0])' "$root/gvpod.db")"
    echo "sandboxes $(pgrep -fc "runsc-sandbox --root=$run_dir/" || true)"
    echo "runsc-state $(find "$run_dir/runsc" -name '*.state' | wc -l)"
    echo "monitor-fds $(find "/proc/$anchor_monitor/fd" -mindepth 1 | wc -l)"
    local cg=0
    while read -r id; do
        for base in /sys/fs/cgroup/gvpod /sys/fs/cgroup/*/gvpod; do
            [ -d "$base/$id" ] && cg=$((cg + 1))
        done
    done < "$ids"
    echo "cgroups-of-removed-pods $cg"
}
disk() { du -sk --exclude=snapshots "$root" | cut -f1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# The monitor finishes setting up after `run -d` returns: let it settle
# before its fds are counted.
gv exec anchor true
sleep 2
base=$(snapshot)
base_disk=$(disk)
base_rss=$(rss "$anchor_monitor")
echo "soak: $cycles cycles, root $root, anchor monitor $anchor_monitor (RSS ${base_rss} kB, disk ${base_disk} kB)"
failed=0
t0=$(date +%s.%N)
for i in $(seq 1 "$cycles"); do
    id=$(gv create --name c -p 80 busybox sleep 600)
    echo "$id" >> "$ids"
    gv start c >/dev/null
    gv exec c true
    if [ $((i % 10)) -eq 0 ]; then
        gv checkpoint --name snap c >/dev/null
        gv restore snap >/dev/null
        gv snapshot rm snap >/dev/null
    fi
    gv stop -t 1 c >/dev/null
    gv rm c >/dev/null
    if [ $((i % every)) -eq 0 ]; then
        now=$(snapshot)
        d=$(disk)
        r=$(rss "$anchor_monitor")
        t1=$(date +%s.%N)
        printf 'cycle %d: %.1f s, anchor monitor RSS %s kB (start %s), fds %s, disk %s kB (start %s)\n' \
            "$i" "$(echo "$t1 - $t0" | bc)" "$r" "$base_rss" \
            "$(echo "$now" | awk '/^monitor-fds/ {print $2}')" "$d" "$base_disk"
        t0=$t1
        if [ "$now" != "$base" ]; then
            echo "soak: LEAK after cycle $i:" >&2
            diff <(echo "$base") <(echo "$now") >&2 || true
            failed=1
        fi
        # The pods' logs are removed with them: growth is a leak (1 MiB slack
        # for the database's WAL).
        if [ "$d" -gt $((base_disk + 1024)) ]; then
            echo "soak: data root grew from $base_disk to $d kB" >&2
            failed=1
        fi
        if [ "$r" -gt $((base_rss * 2)) ]; then
            echo "soak: anchor monitor RSS grew from $base_rss to $r kB" >&2
            failed=1
        fi
        [ "$failed" = 0 ] || exit 1
    fi
done
[ "$(gv inspect anchor | "$py" -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = running ] || { echo "soak: the long-lived pod is gone" >&2; exit 1; }
echo "soak: clean after $cycles cycles ($anchor in place)"
