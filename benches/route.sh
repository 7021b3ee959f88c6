#!/usr/bin/env bash
# Route benchmark (issue 11), side by side in ONE run on the same busybox
# httpd pod, one data root, in interleaved rounds (each round runs every
# entry once, in a rotated order, so drift hits all alike; medians shown):
#   1. wrk requests/s on a small page through the pod's own route port
#      (--route) and through the shared router (`gvpod router`) vs straight
#      to the pod's address (target: both >= 0.9x direct);
#   2. connection set-up latency: wrk with one connection, where busybox
#      httpd closes every connection, so each request is a new connection
#      through each entry (median and 99th percentile, ms);
#   3. the same through each entry to a service bound only to the pod's
#      loopback (runsc port-forward, or gvpod's relay under runsc exec on
#      releases without it): one runsc process per connection.
#
# Usage: benches/route.sh [--rounds N] [--duration SECONDS] [--connections N]
#   --rounds N        rounds (default 5)
#   --duration S      seconds per wrk run (default 4)
#   --connections N   wrk connections of the throughput runs (default 32)
# Environment: GVPOD_BIN (else cargo build --release), GVPOD_RUNSC (the
# runsc to use), BENCH_PLATFORM (default: the runsc's own default).
#
# Needs root, wrk, runsc, python3. Everything it makes (data root, pods,
# network, the router process) is removed on exit, even on failure or
# Ctrl-C. Traffic goes only to 127.0.0.1 and to the pod's own address.
set -euo pipefail

DURATION=4
CONNS=32
ROUNDS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="${2:?}"; shift ;;
        --duration) DURATION="${2:?}"; shift ;;
        --connections) CONNS="${2:?}"; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "route.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$DURATION$CONNS$ROUNDS" in *[!0-9]*) echo "route.sh: numbers only" >&2; exit 2 ;; esac

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'route.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for t in wrk python3 curl; do command -v "$t" >/dev/null || die "$t not found (apt-get install $t)"; done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/gvpod-routebench.XXXXXX)"
GVPOD_ROOT="$WORK/root"
mkdir -p "$GVPOD_ROOT"
GVPOD=""
ROUTER_PID=""
FWD_BEFORE="$(cat /proc/sys/net/ipv4/ip_forward)"

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM
    set +e
    [ -n "$ROUTER_PID" ] && kill "$ROUTER_PID" 2>/dev/null && wait "$ROUTER_PID" 2>/dev/null
    if [ -n "$GVPOD" ]; then
        "$GVPOD" --root "$GVPOD_ROOT" rm -f web >/dev/null 2>&1
        "$GVPOD" --root "$GVPOD_ROOT" network rm bench >/dev/null 2>&1
        "$GVPOD" --root "$GVPOD_ROOT" system gc >/dev/null 2>&1
    fi
    findmnt -rn -o TARGET | grep "^$WORK" | sort -r | while read -r m; do umount -l "$m"; done
    echo "$FWD_BEFORE" >/proc/sys/net/ipv4/ip_forward
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

platform=()
[ -n "${BENCH_PLATFORM:-}" ] && platform=(--platform "$BENCH_PLATFORM")
G network create bench >/dev/null
G run -d --name web "${platform[@]}" --network bench --route auto -v "$WORK/www:/www:ro" bench-busybox \
    sh -c '(httpd -f -p 127.0.0.1:8000 -h /www &); exec httpd -f -p 80 -h /www' >/dev/null
POD_IP="$(G inspect web | python3 -c 'import json,sys; print(json.load(sys.stdin)["ip"])')"
RP="$(G port web | sed -n 's/^route -> 127\.0\.0\.1:\([0-9]*\).*/\1/p')"
[ -n "$RP" ] || die "no route port"
# Not through G(): $! must be the router itself, for the kill on exit.
"$GVPOD" --root "$GVPOD_ROOT" router --listen 127.0.0.1:0 2>"$WORK/router.log" &
ROUTER_PID=$!
for _ in $(seq 100); do grep -q 'listening on' "$WORK/router.log" && break; sleep 0.1; done
SP="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$WORK/router.log")"
[ -n "$SP" ] || die "the router did not start: $(cat "$WORK/router.log")"

wait_http() { # wait_http URL [HOST]
    for _ in $(seq 100); do
        curl -fsS -o /dev/null -m 2 ${2:+-H "Host: $2"} "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "no answer from $1 ${2:-}"
}
wait_http "http://$POD_IP/"
wait_http "http://127.0.0.1:$RP/" "localhost-8000.x"
wait_http "http://127.0.0.1:$SP/" "80--web.localhost"
wrk -t1 -c4 -d2s "http://$POD_IP/" >/dev/null # warm-up

# Reads wrk --latency output: "req/s p50_ms p99_ms".
cat >"$WORK/parse.py" <<'EOF'
import re, sys
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(label):
    m = re.search(r"\s" + label + r"\s+([\d.]+)(us|ms|s)\b", t)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]
print(f"{rps:.1f} {ms('50%'):.2f} {ms('99%'):.2f}")
EOF

# bench HOST URL THREADS CONNS -> "req/s p50_ms p99_ms" (HOST may be empty)
bench() {
    local host="$1" url="$2" t="$3" c="$4"
    local hdr=()
    [ -n "$host" ] && hdr=(-H "Host: $host")
    wrk --latency -t"$t" -c"$c" -d"${DURATION}s" "${hdr[@]}" "$url" | python3 "$WORK/parse.py"
}

# One line per run: "ENTRY MODE req/s p50 p99".
: >"$WORK/results"
entries=(dir route router lo_route lo_router)
host_of() {
    case "$1" in
        dir) echo "" ;;
        route) echo "localhost-80.pod-web.localhost" ;;
        router) echo "80--web.localhost" ;;
        lo_route) echo "localhost-8000.x" ;;
        lo_router) echo "8000--web.localhost" ;;
    esac
}
url_of() {
    case "$1" in
        dir) echo "http://$POD_IP/" ;;
        route | lo_route) echo "http://127.0.0.1:$RP/" ;;
        router | lo_router) echo "http://127.0.0.1:$SP/" ;;
    esac
}
for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS"
    n=${#entries[@]}
    for k in $(seq 0 $((n - 1))); do
        e=${entries[$(((k + round) % n))]}
        # Throughput only for the address path (the loopback path is a
        # runsc process per connection: its set-up latency is the figure).
        case "$e" in lo_*) ;; *) echo "$e many $(bench "$(host_of "$e")" "$(url_of "$e")" 2 "$CONNS")" >>"$WORK/results" ;; esac
        echo "$e one $(bench "$(host_of "$e")" "$(url_of "$e")" 1 1)" >>"$WORK/results"
    done
done

RUNSC_VERSION="$(G system info --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["runsc_version"])' 2>/dev/null || echo '?')"
python3 - "$RUNSC_VERSION" "$CONNS" "$DURATION" "$ROUNDS" "$WORK/results" <<'EOF'
import statistics, sys
ver, conns, dur, rounds, path = sys.argv[1:6]
runs = {}
for line in open(path):
    e, mode, rps, p50, p99 = line.split()
    runs.setdefault((e, mode), []).append((float(rps), float(p50), float(p99)))
def med(e, mode, i):
    return statistics.median(r[i] for r in runs[(e, mode)])
print(f"\nroute benchmark: busybox httpd (closes every connection), {ver}; {rounds} interleaved rounds of "
      f"{dur}s wrk runs; medians\n")
print(f"{'entry':<34}{'req/s (' + conns + ' conns)':>18}{'ratio':>8}{'p50 ms (1 conn)':>18}{'p99 ms':>9}")
d = med("dir", "many", 0)
for e, name in [("dir", "direct to the pod's address"), ("route", "the pod's route port (--route)"),
                ("router", "the shared router (gvpod router)")]:
    r = med(e, "many", 0)
    print(f"{name:<34}{r:>18.0f}{r / d:>7.2f}x{med(e, 'one', 1):>18.2f}{med(e, 'one', 2):>9.2f}")
for e, name in [("lo_route", "loopback service, route port"), ("lo_router", "loopback service, shared router")]:
    print(f"{name:<34}{med(e, 'one', 0):>18.0f}{'':>8}{med(e, 'one', 1):>18.2f}{med(e, 'one', 2):>9.2f}")
ratios = [med(e, "many", 0) / d for e in ("route", "router")]
print(f"\ntarget: route and router >= 0.90x direct requests/s: {'met' if min(ratios) >= 0.9 else 'MISSED'}")
print(f"extra set-up per connection (p50): route {med('route', 'one', 1) - med('dir', 'one', 1):+.2f} ms, "
      f"router {med('router', 'one', 1) - med('dir', 'one', 1):+.2f} ms")
print("(loopback rows: one connection at a time, each a runsc exec of gvpod's relay)")
EOF
