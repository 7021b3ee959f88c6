#!/usr/bin/env bash
# API overhead benchmark: `docker run --rm busybox true` through gvpod's
# Docker API socket (`gvpod system service`) vs `gvpod run --rm busybox true`
# straight on the data root, side by side in ONE run of interleaved hyperfine
# rounds (benches/lib/rounds.sh), same
# data root, same image, no network. A third command, the remote CLI
# (`gvpod --url … run --rm`), shows what the API costs gvpod's own client.
#
# Usage: benches/api.sh [--quick] [--runs N] [--warmup N] [--strict]
#   --quick      few runs (smoke test): warmup 1, 5 runs each
#   --runs N     runs per command (default 20, at least 20 unless --quick)
#   --warmup N   warmup runs per command (default 3)
#   --strict     exit 1 when docker-through-the-socket misses the target
# Environment:
#   GVPOD_BIN    use this gvpod binary instead of `cargo build --release`
#   GVPOD_RUNSC  the runsc to use (default: `runsc` in $PATH)
#
# Target: docker run through the socket at most 1.20x gvpod run (medians).
# Needs root, the docker CLI (no daemon: it only talks to gvpod's socket) and
# hyperfine. Everything it makes lives in temporary directories removed on
# exit, even on failure or Ctrl-C.
set -euo pipefail

TARGET_RATIO=1.20
RUNS=20
WARMUP=3
QUICK=0
STRICT=0

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; RUNS=5; WARMUP=1 ;;
        --runs) RUNS="${2:?--runs needs a number}"; shift ;;
        --warmup) WARMUP="${2:?--warmup needs a number}"; shift ;;
        --strict) STRICT=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "api.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$RUNS$WARMUP" in *[!0-9]*) echo "api.sh: --runs and --warmup take numbers" >&2; exit 2 ;; esac
if [ "$QUICK" = 0 ] && [ "$RUNS" -lt 20 ]; then
    echo "api.sh: --runs must be at least 20 (use --quick for a smoke run)" >&2; exit 2
fi

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'api.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (gvpod starts sandboxes)"
for t in hyperfine docker python3 sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found: run scripts/setup.sh --deps-only"
done
if [ -n "${GVPOD_RUNSC:-}" ]; then
    [ -x "$GVPOD_RUNSC" ] || die "GVPOD_RUNSC=$GVPOD_RUNSC is not an executable"
else
    command -v runsc >/dev/null 2>&1 || die "runsc not found: apt-get install runsc"
fi
RUNSC="$(readlink -f "${GVPOD_RUNSC:-$(command -v runsc)}")"
export GVPOD_RUNSC="$RUNSC"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/lib/rounds.sh
. "$REPO/benches/lib/rounds.sh"

WORK=""
GVPOD=""
GVPOD_ROOT=""
GVPOD_RUN_DIR=""
SERVICE_PID=""
HF_PID=""
cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM
    set +e
    if [ -n "$HF_PID" ]; then
        kill -TERM -- "-$HF_PID" 2>/dev/null
        wait "$HF_PID" 2>/dev/null
    fi
    if [ -n "$SERVICE_PID" ]; then
        kill "$SERVICE_PID" 2>/dev/null
        wait "$SERVICE_PID" 2>/dev/null
    fi
    if [ -n "$GVPOD" ] && [ -n "$GVPOD_ROOT" ] && [ -d "$GVPOD_ROOT" ]; then
        local pods
        pods="$("$GVPOD" --root "$GVPOD_ROOT" ps -aq 2>/dev/null)"
        # shellcheck disable=SC2086 # one word per pod id
        [ -n "$pods" ] && "$GVPOD" --root "$GVPOD_ROOT" rm -f $pods >/dev/null 2>&1
        "$GVPOD" --root "$GVPOD_ROOT" system gc >/dev/null 2>&1
        findmnt -rn -o TARGET | grep -F "$GVPOD_ROOT" | sort -r | xargs -r -n1 umount -l 2>/dev/null
        rm -rf "$GVPOD_ROOT"
    fi
    [ -n "$GVPOD_RUN_DIR" ] && rm -rf "$GVPOD_RUN_DIR"
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK="$(mktemp -d /tmp/gvpod-bench-api.XXXXXX)"
if [ -n "${GVPOD_BIN:-}" ]; then
    GVPOD="$(readlink -f "$GVPOD_BIN")"
else
    log "building gvpod (cargo build --release)"
    (cd "$REPO" && cargo build --release) >"$WORK/build.log" 2>&1 ||
        { tail -n 40 "$WORK/build.log" >&2; die "cargo build --release failed"; }
    GVPOD="$REPO/target/release/gvpod"
fi
GVPOD_ROOT="$(mktemp -d /tmp/gvpod-bench-api-root.XXXXXX)"
GVPOD_RUN_DIR="/run/gvpod/$(printf '%s' "$(readlink -f "$GVPOD_ROOT")" | sha256sum | cut -c1-12)"

log "importing busybox (images/busybox/build.sh)"
"$REPO/images/busybox/build.sh" "$WORK/busybox.tar" >/dev/null
"$GVPOD" --root "$GVPOD_ROOT" import -c 'CMD ["sh"]' "$WORK/busybox.tar" busybox >/dev/null

SOCK="$WORK/api.sock"
"$GVPOD" --root "$GVPOD_ROOT" system service --time 0 "unix://$SOCK" 2>"$WORK/service.log" &
SERVICE_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || die "the service did not listen on $SOCK: $(cat "$WORK/service.log")"

q() { printf '%q' "$1"; }
export DOCKER_CONFIG="$WORK/docker-config"
CMD_DOCKER="DOCKER_HOST=unix://$(q "$SOCK") docker run --rm --network none busybox true"
CMD_GVPOD="$(q "$GVPOD") --root $(q "$GVPOD_ROOT") run --rm --network none busybox true"
CMD_REMOTE="$(q "$GVPOD") --url unix://$(q "$SOCK") run --rm --network none busybox true"
log "sanity check: each command once"
for c in "$CMD_DOCKER" "$CMD_GVPOD" "$CMD_REMOTE"; do
    sh -c "$c" </dev/null || die "this command failed: $c"
done

JSON="$WORK/api.json"
log "hyperfine: $RUNS runs per command in interleaved rounds of 5, warmup $WARMUP ($("$RUNSC" --version | sed -n 1p))"
hf_rounds "$JSON" "$RUNS" "$WARMUP" \
    'docker run --rm (API)' "$CMD_DOCKER" \
    'gvpod run --rm' "$CMD_GVPOD" \
    'gvpod --url run --rm' "$CMD_REMOTE" || die "hyperfine failed"

set +e
python3 - "$JSON" "$TARGET_RATIO" "$RUNS" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
res = {r["command"]: r for r in data["results"]}
target, runs = float(sys.argv[2]), sys.argv[3]
d, g, r = (res[k] for k in ("docker run --rm (API)", "gvpod run --rm", "gvpod --url run --rm"))
ms = lambda x: x["median"] * 1000
ratio, remote = d["median"] / g["median"], r["median"] / g["median"]
print(f"\nAPI overhead, median of {runs} runs each in {data['rounds']} interleaved rounds, busybox `true`, --network none:")
print(f"docker run --rm via the socket: {ms(d):.0f} ms | gvpod run --rm: {ms(g):.0f} ms | "
      f"gvpod --url run --rm: {ms(r):.0f} ms | docker/gvpod {ratio:.2f}x | remote/gvpod {remote:.2f}x")
pr = sorted(r["docker run --rm (API)"] / r["gvpod run --rm"] for r in data["per_round"])
print(f"docker/gvpod round by round: median {pr[len(pr) // 2]:.3f}x, range {pr[0]:.3f}x..{pr[-1]:.3f}x")
verdict = "meets" if ratio <= target else "MISSES"
print(f"target docker/gvpod <= {target:.2f}x: {verdict}")
sys.exit(0 if ratio <= target else 3)
EOF
rc=$?
set -e
if [ "$rc" = 3 ] && [ "$STRICT" = 1 ]; then exit 1; fi
[ "$rc" = 0 ] || [ "$rc" = 3 ] || die "could not read hyperfine's results"
