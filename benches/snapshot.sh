#!/usr/bin/env bash
# Snapshot benchmark (not a timed test), side by side in one run:
#
#  1. checkpoint and restore time of --network none pods that touched
#     10 MiB, 100 MiB and 1 GiB of memory (incompressible bytes,
#     benches/memfill.c): `gvpod checkpoint` + `gvpod restore` (in place)
#     against bare `runsc checkpoint` + `runsc restore --detach` on the same
#     pod, same bundle, same flags, same disk, interleaved; then the clone
#     path: `gvpod restore --name CLONE SNAP` (a new pod: rootfs, diff,
#     bundle, restore) against bare `runsc restore --detach` of the same
#     memory image under a new id, from a copy of the pod's bundle (its own
#     rootfs copy and cgroup); medians, ratios, MB/s of pod memory;
#  2. time to the first HTTP answer through a published port:
#     `gvpod restore --name CLONE -p PORT:80` of a warmed-up snapshot against
#     a cold `gvpod run -d -p PORT:80` of the same server (busybox httpd that
#     starts once memfill has touched 64 MiB and spun WARMUP_MS of CPU), on
#     gvpod's default pod network.
#
# Usage: benches/snapshot.sh [--runs N] [--sizes "10 100 1024"] [--warmup-ms MS] [--quick]
#   --runs N        checkpoint/restore cycles per size and tool (default 5;
#                   6x that for pods of 100 MiB or less)
#   --sizes LIST    MiB of pod memory (default "10 100 1024")
#   --warmup-ms MS  CPU warm-up of the server in part 2 (default 2000)
#   --quick         one cycle, sizes "10 100", warm-up 500 ms (smoke run)
# Environment: GVPOD_BIN (default: cargo build --release), GVPOD_RUNSC (the
# runsc for gvpod and the bare commands; default `runsc` in $PATH),
# BENCH_PLATFORM (default: that runsc's default platform; kvm is refused),
# BENCH_DIR (default /var/tmp: snapshots go to disk, not to a tmpfs).
#
# Target: gvpod at most 1.1x bare runsc for checkpoint, restore and clone.
# Each ratio is the ratio of the two medians, printed with a 90 % bootstrap
# interval (rounds resampled per tool), since single runs on a small VM
# vary by tens of ms. On a runsc with an in-place --leave-running, gvpod
# saves a paused pod (a failed save must not end it), which bare runsc
# checkpoint does not: the checkpoint verdict says so.
# Needs root, gcc with a static libc, runsc, busybox-static, curl. Everything it
# makes lives under one temporary directory and is removed on exit.
set -euo pipefail

RUNS=5
SIZES="10 100 1024"
WARMUP_MS=2000

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="${2:?--runs needs a number}"; shift ;;
        --sizes) SIZES="${2:?--sizes needs a list}"; shift ;;
        --warmup-ms) WARMUP_MS="${2:?--warmup-ms needs a number}"; shift ;;
        --quick) RUNS=1; SIZES="10 100"; WARMUP_MS=500 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "snapshot.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$RUNS$WARMUP_MS${SIZES// /}" in *[!0-9]*|'') echo "snapshot.sh: --runs, --sizes and --warmup-ms take numbers" >&2; exit 2 ;; esac

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'snapshot.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for t in gcc python3 tar busybox curl; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install gcc libc6-dev python3 busybox-static curl)"
done
RUNSC="${GVPOD_RUNSC:-$(command -v runsc || true)}"
[ -n "$RUNSC" ] && [ -x "$RUNSC" ] || die "runsc not found: apt-get install runsc, or set GVPOD_RUNSC to its path"
RUNSC="$(readlink -f "$RUNSC")"
export GVPOD_RUNSC="$RUNSC" # gvpod uses the same runsc
PLATFORM="${BENCH_PLATFORM:-}"
if [ -z "$PLATFORM" ]; then
    # runsc's own default, as `runsc flags` states it: `(default "ptrace")`.
    PLATFORM="$("$RUNSC" flags 2>&1 | grep -A1 -- '^ *-platform ' | sed -n 's/.*(default "\([a-z0-9]*\)").*/\1/p' | sed -n 1p)"
    [ -n "$PLATFORM" ] || die "cannot tell the default platform of $RUNSC from \`runsc flags\`; set BENCH_PLATFORM"
fi
case "$PLATFORM" in ''|*[!a-z0-9]*|kvm) die "BENCH_PLATFORM $PLATFORM is refused (kvm can hang under nested virtualisation)" ;; esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

WORK="$(mktemp -d "${BENCH_DIR:-/var/tmp}/gvpod-snapbench.XXXXXX")"
export GVPOD_ROOT="$WORK/root"
CLONE_CGROUP="gvpod-snapbench-${WORK##*.}"
BARE_IDS=()
BARE_FLAGS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    for id in "${BARE_IDS[@]}"; do
        "$RUNSC" "${BARE_FLAGS[@]}" delete --force "$id" >/dev/null 2>&1
    done
    # The bare clones' cgroup (runsc removes the leaf; the parent is ours).
    for d in /sys/fs/cgroup/*/"$CLONE_CGROUP" /sys/fs/cgroup/"$CLONE_CGROUP"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    if [ -n "${GVPOD:-}" ]; then
        ids=$("$GVPOD" ps -a -q 2>/dev/null)
        [ -n "$ids" ] && "$GVPOD" rm -f $ids >/dev/null 2>&1
        "$GVPOD" system gc >/dev/null 2>&1
        # The default network of part 2: its bridge and nftables table.
        for n in $("$GVPOD" network ls -q 2>/dev/null); do
            "$GVPOD" network rm "$n" >/dev/null 2>&1
        done
        run_dir=$("$GVPOD" system info --format json 2>/dev/null | python3 -c 'import json,sys,os; print(os.path.dirname(json.load(sys.stdin)["runsc_root"]))' 2>/dev/null)
    fi
    findmnt -rn -o TARGET | awk -v d="$WORK" 'index($0, d "/") == 1' | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$WORK"
    [ -n "${run_dir:-}" ] && [ -d "$run_dir" ] && rm -rf "$run_dir"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${GVPOD_BIN:-}" ]; then
    GVPOD="$GVPOD_BIN"
else
    log "building gvpod (release)"
    (cd "$REPO" && cargo build --release --quiet)
    GVPOD="$REPO/target/release/gvpod"
fi

log "building the benchmark image (busybox + memfill)"
bash "$REPO/images/busybox/build.sh" "$WORK/bench.tar" >/dev/null
mkdir -p "$WORK/add"
gcc -O2 -static -o "$WORK/add/memfill" "$REPO/benches/memfill.c"
tar --append -f "$WORK/bench.tar" -C "$WORK/add" --owner=0 --group=0 memfill
"$GVPOD" import "$WORK/bench.tar" bench >/dev/null

us() { echo $(( $(date +%s%N) / 1000 )); }
# wait_line POD PATTERN: waits (10 ms steps, 600 s at most) for PATTERN in the pod's log
wait_line() {
    local log i
    log=$("$GVPOD" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_path"])')
    for i in $(seq 60000); do
        grep -q "$2" "$log" 2>/dev/null && return 0
        sleep 0.01
    done
    die "pod $1 never printed $2"
}
# stopped POD ID: waits until gvpod has recorded the pod stopped and runsc has no container ID
stopped() {
    local i
    for i in $(seq 3000); do
        if "$GVPOD" inspect "$1" | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["monitor_pid"] is not None)'; then
            # A detached bare restore leaves a stopped container to delete.
            case "$("$RUNSC" "${BARE_FLAGS[@]}" state "$2" 2>/dev/null)" in
                '') return 0 ;;
                *'"stopped"'*) "$RUNSC" "${BARE_FLAGS[@]}" delete --force "$2" >/dev/null 2>&1 ;;
            esac
        fi
        sleep 0.01
    done
    die "pod $1 did not stop"
}
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

RESULTS="$WORK/results"
ROUNDS="$WORK/rounds"
: >"$RESULTS"
: >"$ROUNDS"
for size in $SIZES; do
    pod="m$size"
    log "pod $pod touches $size MiB"
    "$GVPOD" run -d --network none --platform "$PLATFORM" --name "$pod" bench /memfill "$size" >/dev/null
    wait_line "$pod" "ready"
    info=$("$GVPOD" inspect "$pod")
    id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$info")
    bundle=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])' <<<"$info")
    # The pod's own global runsc flags (DESIGN.md fact 1), error log aside.
    mapfile -t BARE_FLAGS < <(python3 -c '
import json,sys
r=json.load(sys.stdin)["runsc"]
print("--root="+r["root"]); print("--platform="+r["platform"]); print("--network="+r["network"])
print("--log='"$WORK"'/bare-runsc.log"); print("--log-format=json")
if r.get("overlay2"): print("--overlay2="+r["overlay2"])' <<<"$info")
    g_cp=(); g_rs=(); b_cp=(); b_rs=(); img=0
    BARE_IDS=("$id")
    # A snapshot to bring the pod back under gvpod after a bare round (untimed).
    "$GVPOD" checkpoint --leave-running --name "base$size" "$pod" >/dev/null
    # Short operations are noisier (one restore of a 10 MiB pod varies
    # from 165 to 260 ms here): pods of 100 MiB or less get 6x the rounds.
    rounds=$RUNS
    [ "$size" -le 100 ] && rounds=$(( RUNS * 6 ))
    # Each restore starts from a stopped pod whose old sandbox is gone
    # (waited for outside the timings: runsc tears a checkpointed sandbox down
    # after `checkpoint` returns, and no restore under the same id can start
    # before that). Rounds alternate which tool goes first, so that neither
    # always follows the other's restore.
    gvpod_round() {
        local t0 t1 t2 t3
        t0=$(us); "$GVPOD" checkpoint --name "s$size-$1" "$pod" >/dev/null
        t1=$(us)
        stopped "$pod" "$id"
        t2=$(us); "$GVPOD" restore "s$size-$1" >/dev/null
        t3=$(us)
        g_cp+=($(( t1 - t0 ))); g_rs+=($(( t3 - t2 )))
        img=$("$GVPOD" snapshot inspect "s$size-$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory_image_bytes"])')
        "$GVPOD" snapshot rm "s$size-$1" >/dev/null
    }
    bare_round() {
        local t0 t1 t2 t3 d="$WORK/bare-$size-$1" # same filesystem as the gvpod snapshots
        mkdir -p "$d" "$d.2"
        t0=$(us); "$RUNSC" "${BARE_FLAGS[@]}" checkpoint --image-path="$d" "$id"
        t1=$(us)
        stopped "$pod" "$id"
        t2=$(us); "$RUNSC" "${BARE_FLAGS[@]}" restore --detach --image-path="$d" --bundle="$bundle" "$id" </dev/null >/dev/null 2>&1
        t3=$(us)
        b_cp+=($(( t1 - t0 ))); b_rs+=($(( t3 - t2 )))
        # Back under gvpod for the next round (untimed).
        "$RUNSC" "${BARE_FLAGS[@]}" checkpoint --image-path="$d.2" "$id"
        stopped "$pod" "$id"
        "$GVPOD" restore "base$size" >/dev/null
        rm -rf "$d" "$d.2"
    }
    for i in $(seq "$rounds"); do
        if [ $(( i % 2 )) = 1 ]; then gvpod_round "$i"; bare_round "$i"
        else bare_round "$i"; gvpod_round "$i"; fi
    done

    # Clones of base$size while the pod runs: `gvpod restore --name` makes a
    # new pod; the bare equivalent restores the same memory image under a
    # new id from a copy of the pod's bundle (snapshot spec, own rootfs copy,
    # own cgroup), made once, untimed.
    snap_dir="$GVPOD_ROOT/snapshots/$("$GVPOD" snapshot inspect "base$size" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
    cb="$WORK/clone-bundle-$size"
    mkdir -p "$cb"
    cp -a "$bundle/rootfs" "$cb/rootfs"
    python3 - "$snap_dir/config.json" "$cb/config.json" "/$CLONE_CGROUP/clone" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = "rootfs"
c["linux"]["cgroupsPath"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
    g_cl=(); b_cl=()
    gvpod_clone() {
        local t0 t1
        t0=$(us); "$GVPOD" restore --name "c$size-$1" "base$size" >/dev/null
        t1=$(us)
        g_cl+=($(( t1 - t0 )))
        "$GVPOD" rm -f "c$size-$1" >/dev/null
    }
    bare_clone() {
        local t0 t1 cid="bareclone$size-$1-${WORK##*.}"
        BARE_IDS=("$id" "$cid")
        t0=$(us); "$RUNSC" "${BARE_FLAGS[@]}" restore --detach --image-path="$snap_dir" --bundle="$cb" "$cid" </dev/null >/dev/null 2>&1
        t1=$(us)
        b_cl+=($(( t1 - t0 )))
        "$RUNSC" "${BARE_FLAGS[@]}" state "$cid" 2>/dev/null | grep -q '"running"' ||
            die "bare clone $cid is not running (see $WORK/bare-runsc.log)"
        "$RUNSC" "${BARE_FLAGS[@]}" delete --force "$cid" >/dev/null 2>&1
        BARE_IDS=("$id")
    }
    for i in $(seq "$rounds"); do
        if [ $(( i % 2 )) = 1 ]; then gvpod_clone "$i"; bare_clone "$i"
        else bare_clone "$i"; gvpod_clone "$i"; fi
    done
    rm -rf "$cb"

    "$RUNSC" "${BARE_FLAGS[@]}" delete --force "$id" >/dev/null 2>&1 || true
    BARE_IDS=()
    "$GVPOD" rm -f "$pod" >/dev/null
    "$GVPOD" snapshot rm "base$size" >/dev/null
    echo "$size $img $(median "${g_cp[@]}") $(median "${b_cp[@]}") $(median "${g_rs[@]}") $(median "${b_rs[@]}") $rounds $(median "${g_cl[@]}") $(median "${b_cl[@]}")" >>"$RESULTS"
    # Every round, for the intervals.
    for k in g_cp b_cp g_rs b_rs g_cl b_cl; do
        declare -n arr="$k"
        echo "$size $k ${arr[*]}" >>"$ROUNDS"
        unset -n arr
    done
done

log "first HTTP answer: restore of a warmed-up snapshot vs a cold run (warm-up ${WARMUP_MS} ms, 64 MiB)"
# busybox httpd starts only once memfill has touched its memory and warmed up.
SERVER="/memfill 64 $WARMUP_MS | (read l; echo \"\$l\" >&2; exec httpd -f -p 80 -h /etc)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# first_answer PORT: waits (5 ms steps, 600 s at most) for HTTP 200 on 127.0.0.1:PORT
first_answer() {
    local i
    for i in $(seq 120000); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/hostname")" = 200 ] && return 0
        sleep 0.005
    done
    die "nothing answered on port $1"
}
cold=(); warm=()
"$GVPOD" run -d --platform "$PLATFORM" --name srv bench sh -c "$SERVER" >/dev/null
wait_line srv "ready"
# No request has reached it yet: runsc 20221219 cannot save TCP connections.
"$GVPOD" checkpoint --name warm srv >/dev/null
"$GVPOD" rm -f srv >/dev/null
for i in $(seq "$RUNS"); do
    port=$(free_port)
    t0=$(us); "$GVPOD" run -d --platform "$PLATFORM" --name "cold$i" -p "127.0.0.1:$port:80" bench sh -c "$SERVER" >/dev/null
    first_answer "$port"; t1=$(us)
    cold+=($(( t1 - t0 )))
    "$GVPOD" rm -f "cold$i" >/dev/null
    port=$(free_port)
    t0=$(us); "$GVPOD" restore --name "warm$i" -p "127.0.0.1:$port:80" warm >/dev/null
    first_answer "$port"; t1=$(us)
    warm+=($(( t1 - t0 )))
    "$GVPOD" rm -f "warm$i" >/dev/null
done
echo "answer $(median "${cold[@]}") $(median "${warm[@]}")" >>"$RESULTS"

PAUSED=$("$GVPOD" system info --format json | python3 -c 'import json,sys; print(int(bool(json.load(sys.stdin)["features"]["leave_running_in_place"])))')
PYTHONPATH="$REPO/benches/lib" python3 - "$RESULTS" "$RUNS" "$("$RUNSC" --version | sed -n 1p)" "$PLATFORM" "$ROUNDS" "$PAUSED" <<'EOF'
import os, sys
from ratio import median_ratio_interval
rows = [l.split() for l in open(sys.argv[1])]
rounds = {}
for l in open(sys.argv[5]):
    f = l.split()
    rounds[(int(f[0]), f[1])] = [float(x) for x in f[2:]]
paused = sys.argv[6] == "1"

def interval(mib, op):
    """90 % bootstrap interval of median(gvpod) / median(bare)."""
    return median_ratio_interval(rounds[(mib, "g_" + op)], rounds[(mib, "b_" + op)])

print(f"\nsnapshot benchmark: medians (runs per tool in the first column), {sys.argv[3]}, {sys.argv[4]}, --network none (part 1), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
print("| pod memory (runs) | image | gvpod checkpoint | bare runsc checkpoint | ratio | gvpod restore | bare runsc restore | ratio | gvpod clone | bare runsc clone | ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
worst = {"cp": 0.0, "rs": 0.0, "cl": 0.0}
for r in rows:
    if r[0] == "answer":
        continue
    mib, img = int(r[0]), int(r[1]) / 1e6
    gc, bc, gr, br = (float(x) / 1000 for x in r[2:6])
    runs = r[6]
    gl, bl = (float(x) / 1000 for x in r[7:9])
    rc, rr, rl = gc / bc, gr / br, gl / bl
    for k, v in (("cp", rc), ("rs", rr), ("cl", rl)):
        worst[k] = max(worst[k], v)
    mbs = lambda t: mib * 1.048576 / (t / 1000)
    ci = lambda op: "({:.2f}-{:.2f})".format(*interval(mib, op))
    print(f"| {mib} MiB ({runs}) | {img:.0f} MB | {gc:.0f} ms ({mbs(gc):.0f} MB/s) | {bc:.0f} ms ({mbs(bc):.0f} MB/s) | {rc:.2f}x {ci('cp')} "
          f"| {gr:.0f} ms ({mbs(gr):.0f} MB/s) | {br:.0f} ms ({mbs(br):.0f} MB/s) | {rr:.2f}x {ci('rs')} "
          f"| {gl:.0f} ms | {bl:.0f} ms | {rl:.2f}x {ci('cl')} |")
for r in rows:
    if r[0] == "answer":
        cold, warm = float(r[1]) / 1000, float(r[2]) / 1000
        print(f"\nfirst HTTP answer through a published port (busybox httpd after 64 MiB + warm-up, pod network):"
              f" cold `gvpod run -d` {cold:.0f} ms, `gvpod restore --name` of a warmed-up snapshot {warm:.0f} ms"
              f" ({cold / warm:.1f}x sooner)")
print("\nratios: median gvpod / median bare (90 % bootstrap interval)")
verdict = lambda v: "PASS" if v <= 1.10 else "MISS"
print(f"target <= 1.10x: restore {verdict(worst['rs'])} (worst {worst['rs']:.2f}x), "
      f"clone {verdict(worst['cl'])} (worst {worst['cl']:.2f}x), "
      f"checkpoint {verdict(worst['cp'])} (worst {worst['cp']:.2f}x)")
if paused and worst["cp"] > 1.10:
    print("checkpoint: this runsc keeps a sandbox running after a failed save, so gvpod saves the pod paused"
          " (`runsc pause`, a save with --leave-running, then a stop): a failed save cannot end it or let its"
          " files drift from its memory; bare `runsc checkpoint` gives neither (README, Snapshots)")
EOF
