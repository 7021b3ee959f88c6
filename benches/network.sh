#!/usr/bin/env bash
# Network benchmark, side by side in ONE run on the same busybox httpd pod:
#   1. wrk through a published port (127.0.0.1:HOSTPORT, nftables DNAT)
#      vs wrk straight to the pod's address: requests/s on a small page and
#      MB/s on a 1 MiB file (target: published >= 0.9x direct);
#   2. the same server in `podman --runtime runsc` publishing a port;
#   3. the median time gvpod spends setting up and tearing down one pod's
#      network (netns, veth, address, routes, one DNAT rule), from its own
#      timers (GVPOD_LOG=debug: "setup_us=", "teardown_us="); target <= 20 ms.
#
# Usage: benches/network.sh [--duration SECONDS] [--connections N] [--runs N] [--no-podman]
# Environment: GVPOD_BIN (else cargo build --release), BENCH_PLATFORM (default ptrace).
#
# podman: runsc 20221219 on kernels >= 6.11 refuses sandbox networking inside
# podman's netns (DESIGN.md fact 3: "cannot run with network enabled in root
# network namespace"); podman has no hook for gvpod's workaround, so podman
# is measured with --runtime-flag network=host (runsc's hostinet inside the
# container's netns, netavark DNAT for the port) and the default failure is
# printed. podman's network is a 198.19.x.0/24 bridge created for the run.
#
# Needs root, wrk, runsc, podman (optional). Everything created (data roots,
# pods, networks, podman storage and network, iptables-nft tables podman
# adds) is removed on exit, even on failure or Ctrl-C. Traffic goes only to
# 127.0.0.1 and to the pods' own addresses.
set -euo pipefail

DURATION=10
CONNS=32
RUNS=20
PODMAN_ON=1
PLATFORM="${BENCH_PLATFORM:-ptrace}"
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="${2:?}"; shift ;;
        --connections) CONNS="${2:?}"; shift ;;
        --runs) RUNS="${2:?}"; shift ;;
        --no-podman) PODMAN_ON=0 ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "network.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$DURATION$CONNS$RUNS" in *[!0-9]*) echo "network.sh: numbers only" >&2; exit 2 ;; esac
[ "$PLATFORM" = kvm ] && { echo "network.sh: kvm is refused (can hang nested)" >&2; exit 2; }

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'network.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for t in wrk runsc python3; do command -v "$t" >/dev/null || die "$t not found (apt-get install $t)"; done
if [ "$PODMAN_ON" = 1 ] && ! command -v podman >/dev/null; then
    log "podman not found: skipping the podman column"; PODMAN_ON=0
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/gvpod-netbench.XXXXXX)"
GVPOD_ROOT="$WORK/root"
mkdir -p "$GVPOD_ROOT"
GVPOD=""
PODMAN=()
NFT_BEFORE="$(nft list tables 2>/dev/null || true)"
FWD_BEFORE="$(cat /proc/sys/net/ipv4/ip_forward)"

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM
    set +e
    if [ -n "$GVPOD" ]; then
        local pods
        pods="$("$GVPOD" --root "$GVPOD_ROOT" ps -aq 2>/dev/null)"
        [ -n "$pods" ] && "$GVPOD" --root "$GVPOD_ROOT" rm -f $pods >/dev/null 2>&1
        for n in $("$GVPOD" --root "$GVPOD_ROOT" network ls -q 2>/dev/null); do
            "$GVPOD" --root "$GVPOD_ROOT" network rm "$n" >/dev/null 2>&1
        done
        "$GVPOD" --root "$GVPOD_ROOT" system gc >/dev/null 2>&1
    fi
    if [ ${#PODMAN[@]} -gt 0 ]; then
        "${PODMAN[@]}" rm -a -f -t 0 >/dev/null 2>&1
        "${PODMAN[@]}" network rm -f gvbench >/dev/null 2>&1
        "${PODMAN[@]}" rmi -a -f >/dev/null 2>&1
    fi
    # Tables podman's netavark (iptables-nft) added during this run.
    while read -r _ fam name; do
        [ -n "$name" ] || continue
        printf '%s\n' "$NFT_BEFORE" | grep -qx "table $fam $name" || {
            case "$name" in nat|filter|mangle) nft delete table "$fam" "$name" 2>/dev/null ;; esac
        }
    done < <(nft list tables 2>/dev/null)
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | while read -r m; do umount -l "$m"; done
    echo "$FWD_BEFORE" >/proc/sys/net/ipv4/ip_forward # gvpod turned it on for the pods' egress
    rm -rf "$WORK" "/run/gvpod/$(printf '%s' "$GVPOD_ROOT" | sha256sum | cut -c1-12)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${GVPOD_BIN:-}" ]; then
    GVPOD="$(readlink -f "$GVPOD_BIN")"
else
    log "cargo build --release"
    (cd "$REPO" && cargo build --release -q) || die "build failed"
    GVPOD="$REPO/target/release/gvpod"
fi
G() { "$GVPOD" --root "$GVPOD_ROOT" "$@"; }

log "busybox image and payload"
"$REPO/images/busybox/build.sh" "$WORK/busybox.tar" >/dev/null
G import -c 'CMD ["sh"]' "$WORK/busybox.tar" bench-busybox >/dev/null
mkdir -p "$WORK/www"
head -c 612 /dev/zero | tr '\0' 'x' >"$WORK/www/index.html"
head -c 1048576 /dev/urandom >"$WORK/www/big.bin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }

wait_http() { # wait_http URL
    local i
    for i in $(seq 100); do
        wget -q -O /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "no answer from $1"
}

# wrk URL -> "req/s MB/s"
bench() {
    wrk -t2 -c"$CONNS" -d"${DURATION}s" "$1" | python3 -c '
import re, sys
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", t)
mult = {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[m.group(2)]
print(f"{rps:.1f} {float(m.group(1)) * mult:.2f}")'
}

log "gvpod: network, pod with -p HOSTPORT:80 (platform $PLATFORM)"
G network create bench >/dev/null
HP="$(free_port)"
G run -d --name web --platform "$PLATFORM" -p "$HP:80" -v "$WORK/www:/www:ro" bench-busybox httpd -f -p 80 -h /www >/dev/null
POD_IP="$(G inspect web | python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')"
wait_http "http://127.0.0.1:$HP/"
wait_http "http://$POD_IP/"
wrk -t1 -c4 -d2s "http://$POD_IP/" >/dev/null # warm-up

declare -A R
for size in small big; do
    path=/; [ "$size" = big ] && path=/big.bin
    log "wrk $size: published port, then direct"
    R[pub_$size]="$(bench "http://127.0.0.1:$HP$path")"
    R[dir_$size]="$(bench "http://$POD_IP$path")"
done

PODMAN_NOTE=""
if [ "$PODMAN_ON" = 1 ]; then
    log "podman --runtime runsc, the same server publishing a port"
    mkdir -p "$WORK/podman"/{root,runroot,tmp}
    PODMAN=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/runroot" --tmpdir "$WORK/podman/tmp"
            --cgroup-manager cgroupfs --events-backend none)
    "${PODMAN[@]}" import -q "$WORK/busybox.tar" localhost/bench-busybox >/dev/null
    # Never podman's default private-range bridge: one in the benchmarking range.
    sub=""
    for n in $(seq 200 250); do
        ip -4 route | grep -q "^198\.19\.$n\." && continue
        sub="198.19.$n.0/24"; break
    done
    "${PODMAN[@]}" network create --subnet "$sub" gvbench >/dev/null
    PP="$(free_port)"
    out="$("${PODMAN[@]}" --runtime "$(command -v runsc)" --runtime-flag "platform=$PLATFORM" run -d --name pm-default \
        --network gvbench -p "$PP:80" localhost/bench-busybox true 2>&1 || true)"
    PODMAN_NOTE="$(printf '%s\n' "$out" | grep -o 'cannot run with network enabled[^"]*' | head -1 || true)"
    "${PODMAN[@]}" rm -f -t 0 pm-default >/dev/null 2>&1 || true
    PP="$(free_port)"
    "${PODMAN[@]}" --runtime "$(command -v runsc)" --runtime-flag network=host --runtime-flag "platform=$PLATFORM" \
        run -d --name pm --network gvbench -p "$PP:80" -v "$WORK/www:/www:ro" \
        localhost/bench-busybox httpd -f -p 80 -h /www >/dev/null
    wait_http "http://127.0.0.1:$PP/"
    for size in small big; do
        path=/; [ "$size" = big ] && path=/big.bin
        log "wrk $size: podman published port"
        R[pm_$size]="$(bench "http://127.0.0.1:$PP$path")"
    done
    "${PODMAN[@]}" rm -f -t 0 pm >/dev/null
fi
G rm -f web >/dev/null

log "network set-up and tear-down, $RUNS pods (create -p 80, rm)"
: >"$WORK/times"
for i in $(seq "$RUNS"); do
    GVPOD_LOG=debug G create --name "t$i" -p 80 --network bench bench-busybox true 2>>"$WORK/times" >/dev/null
    GVPOD_LOG=debug G rm "t$i" 2>>"$WORK/times" >/dev/null
done

python3 - "$WORK/times" "$PODMAN_ON" "$PODMAN_NOTE" \
    "${R[pub_small]}" "${R[dir_small]}" "${R[pub_big]}" "${R[dir_big]}" \
    "${R[pm_small]:-}" "${R[pm_big]:-}" "$CONNS" "$DURATION" "$PLATFORM" <<'EOF'
import re, statistics, sys
times, pm_on, pm_note, ps, ds, pb, db, pms, pmb, conns, dur, plat = sys.argv[1:13]
text = open(times).read()
setup = [int(x) / 1000 for x in re.findall(r"setup_us=(\d+)", text)]
tear = [int(x) / 1000 for x in re.findall(r"teardown_us=(\d+)", text)]
f = lambda s: tuple(float(x) for x in s.split())
ps, ds, pb, db = f(ps), f(ds), f(pb), f(db)
print(f"\nwrk -t2 -c{conns} -d{dur}s, busybox httpd in a runsc pod (platform {plat}):")
print(f"{'':34} {'small page req/s':>17} {'1 MiB file MB/s':>16}")
print(f"{'gvpod, published port 127.0.0.1':34} {ps[0]:>17.0f} {pb[1]:>16.1f}")
print(f"{'gvpod, direct to pod IP':34} {ds[0]:>17.0f} {db[1]:>16.1f}")
print(f"{'ratio published / direct':34} {ps[0]/ds[0]:>16.2f}x {pb[1]/db[1]:>15.2f}x   (target >= 0.90x)")
if pm_on == "1":
    pms, pmb = f(pms), f(pmb)
    print(f"{'podman+runsc (hostinet), published':34} {pms[0]:>17.0f} {pmb[1]:>16.1f}")
    print(f"{'gvpod published / podman published':34} {ps[0]/pms[0]:>16.2f}x {pb[1]/pmb[1]:>15.2f}x")
    if pm_note:
        print(f"podman with runsc's own netstack (its default) failed: {pm_note} (DESIGN.md fact 3)")
print(f"\nnetwork set-up of one pod (netns, veth, address, route, DNAT rule): median {statistics.median(setup):.1f} ms over {len(setup)} (min {min(setup):.1f}, max {max(setup):.1f}); target <= 20 ms")
print(f"network tear-down of one pod (rules, veth, netns):                median {statistics.median(tear):.1f} ms over {len(tear)} (min {min(tear):.1f}, max {max(tear):.1f}); target <= 20 ms")
EOF
