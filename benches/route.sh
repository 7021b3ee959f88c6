#!/usr/bin/env bash
# Route benchmark (issue 11), side by side in ONE run on the same busybox
# httpd pod, one data root:
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
# Usage: benches/route.sh [--duration SECONDS] [--connections N]
# Environment: GVPOD_BIN (else cargo build --release), GVPOD_RUNSC (the
# runsc to use), BENCH_PLATFORM (default: the runsc's own default).
#
# Needs root, wrk, runsc, python3. Everything it makes (data root, pods,
# network, the router process) is removed on exit, even on failure or
# Ctrl-C. Traffic goes only to 127.0.0.1 and to the pod's own address.
set -euo pipefail

DURATION=10
CONNS=32
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="${2:?}"; shift ;;
        --connections) CONNS="${2:?}"; shift ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "route.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$DURATION$CONNS" in *[!0-9]*) echo "route.sh: numbers only" >&2; exit 2 ;; esac

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

declare -A R
log "wrk, $CONNS connections, ${DURATION}s each: direct, route port, shared router"
R[dir]="$(bench "" "http://$POD_IP/" 2 "$CONNS")"
R[route]="$(bench "localhost-80.pod-web.localhost" "http://127.0.0.1:$RP/" 2 "$CONNS")"
R[router]="$(bench "80--web.localhost" "http://127.0.0.1:$SP/" 2 "$CONNS")"
log "wrk, one connection at a time (connection set-up latency)"
R[dir1]="$(bench "" "http://$POD_IP/" 1 1)"
R[route1]="$(bench "localhost-80.pod-web.localhost" "http://127.0.0.1:$RP/" 1 1)"
R[router1]="$(bench "80--web.localhost" "http://127.0.0.1:$SP/" 1 1)"
log "wrk, one connection at a time, to the service on the pod's loopback"
R[lo_route1]="$(bench "localhost-8000.x" "http://127.0.0.1:$RP/" 1 1)"
R[lo_router1]="$(bench "8000--web.localhost" "http://127.0.0.1:$SP/" 1 1)"

RUNSC_VERSION="$(G system info --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["runsc_version"])' 2>/dev/null || echo '?')"
python3 - "$RUNSC_VERSION" "$CONNS" "$DURATION" "${R[dir]}" "${R[route]}" "${R[router]}" \
    "${R[dir1]}" "${R[route1]}" "${R[router1]}" "${R[lo_route1]}" "${R[lo_router1]}" <<'EOF'
import sys
ver, conns, dur = sys.argv[1:4]
d, r, s, d1, r1, s1, lr1, ls1 = [list(map(float, a.split())) for a in sys.argv[4:12]]
print(f"\nroute benchmark: busybox httpd (closes every connection), {ver}, wrk {conns} connections, {dur}s each\n")
print(f"{'entry':<34}{'req/s':>10}{'ratio':>8}{'p50 ms (1 conn)':>18}{'p99 ms':>9}")
for name, a, one in [("direct to the pod's address", d, d1),
                     ("the pod's route port (--route)", r, r1),
                     ("the shared router (gvpod router)", s, s1)]:
    print(f"{name:<34}{a[0]:>10.0f}{a[0] / d[0]:>7.2f}x{one[1]:>18.2f}{one[2]:>9.2f}")
print(f"{'loopback service, route port':<34}{lr1[0]:>10.0f}{'':>8}{lr1[1]:>18.2f}{lr1[2]:>9.2f}")
print(f"{'loopback service, shared router':<34}{ls1[0]:>10.0f}{'':>8}{ls1[1]:>18.2f}{ls1[2]:>9.2f}")
ok = r[0] / d[0] >= 0.9 and s[0] / d[0] >= 0.9
print(f"\ntarget: route and router >= 0.90x direct requests/s: {'met' if ok else 'MISSED'}")
print(f"extra set-up per connection (p50): route {r1[1] - d1[1]:+.2f} ms, router {s1[1] - d1[1]:+.2f} ms")
EOF
