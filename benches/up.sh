#!/usr/bin/env bash
# Project benchmark: `gvpod up` of a 5-pod project from cold (no pod exists;
# the image is in the store; the project network exists) vs the same five
# pods made with `gvpod run -d` one after another, side by side in ONE
# hyperfine invocation on the same data root. Each run ends with every pod
# running; hyperfine's --prepare removes the pods before each run.
#
# Usage: benches/up.sh [--quick] [--runs N] [--warmup N] [--strict]
#   --quick      few runs (smoke test): warmup 1, 5 runs each
#   --runs N     runs per command (default 10, at least 10 unless --quick)
#   --warmup N   warmup runs per command (default 2)
#   --strict     exit 1 when `up` misses the target
# Environment:
#   GVPOD_BIN    use this gvpod binary instead of `cargo build --release`
#   GVPOD_RUNSC  the runsc to use (default: `runsc` in $PATH)
#
# Target: `up` at most 0.60x the sequential `run -d` time (medians), on 2 cores.
# Needs root and hyperfine. Everything it makes lives in temporary
# directories removed on exit, even on failure or Ctrl-C.
set -euo pipefail

TARGET_RATIO=0.60
RUNS=10
WARMUP=2
QUICK=0
STRICT=0
PODS=5

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; RUNS=5; WARMUP=1 ;;
        --runs) RUNS="${2:?--runs needs a number}"; shift ;;
        --warmup) WARMUP="${2:?--warmup needs a number}"; shift ;;
        --strict) STRICT=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "up.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$RUNS$WARMUP" in *[!0-9]*) echo "up.sh: --runs and --warmup take numbers" >&2; exit 2 ;; esac
if [ "$QUICK" = 0 ] && [ "$RUNS" -lt 10 ]; then
    echo "up.sh: --runs must be at least 10 (use --quick for a smoke run)" >&2; exit 2
fi

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'up.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (gvpod starts sandboxes)"
for t in hyperfine python3 sha256sum; do
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

WORK=""
GVPOD=""
GVPOD_ROOT=""
GVPOD_RUN_DIR=""
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
    if [ -n "$GVPOD" ] && [ -n "$GVPOD_ROOT" ] && [ -d "$GVPOD_ROOT" ]; then
        local pods
        pods="$("$GVPOD" --root "$GVPOD_ROOT" ps -aq 2>/dev/null)"
        # shellcheck disable=SC2086 # one word per pod id
        [ -n "$pods" ] && "$GVPOD" --root "$GVPOD_ROOT" rm -f $pods >/dev/null 2>&1
        "$GVPOD" --root "$GVPOD_ROOT" network rm bench-net >/dev/null 2>&1
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

WORK="$(mktemp -d /tmp/gvpod-bench-up.XXXXXX)"
if [ -n "${GVPOD_BIN:-}" ]; then
    GVPOD="$(readlink -f "$GVPOD_BIN")"
else
    log "building gvpod (cargo build --release)"
    (cd "$REPO" && cargo build --release) >"$WORK/build.log" 2>&1 ||
        { tail -n 40 "$WORK/build.log" >&2; die "cargo build --release failed"; }
    GVPOD="$REPO/target/release/gvpod"
fi
GVPOD_ROOT="$(mktemp -d /tmp/gvpod-bench-up-root.XXXXXX)"
GVPOD_RUN_DIR="/run/gvpod/$(printf '%s' "$(readlink -f "$GVPOD_ROOT")" | sha256sum | cut -c1-12)"

log "importing busybox (images/busybox/build.sh)"
"$REPO/images/busybox/build.sh" "$WORK/busybox.tar" >/dev/null
"$GVPOD" --root "$GVPOD_ROOT" import -c 'CMD ["sh"]' "$WORK/busybox.tar" busybox >/dev/null
# One network for both ways, made once (a project's network outlives its pods).
"$GVPOD" --root "$GVPOD_ROOT" network create --subnet 198.19.70.0/24 bench-net >/dev/null

# The project: five identical busybox pods on that network, each running a
# process until stopped (what `run -d … sleep` runs too).
{
    printf 'name: bench\npods:\n'
    for i in $(seq "$PODS"); do
        printf '  p%s: {image: busybox, network: bench-net, command: [sleep, "100000"]}\n' "$i"
    done
} >"$WORK/gvpod.yaml"

q() { printf '%q' "$1"; }
G="$(q "$GVPOD") --root $(q "$GVPOD_ROOT")"
RM="pods=\$($G ps -aq); [ -z \"\$pods\" ] || $G rm -f \$pods >/dev/null"
CMD_UP="$G up -f $(q "$WORK/gvpod.yaml")"
CMD_SEQ="for i in \$(seq $PODS); do $G run -d --name bench-p\$i --network bench-net busybox sleep 100000 >/dev/null || exit 1; done"
log "sanity check: each way once"
for c in "$CMD_UP" "$CMD_SEQ"; do
    sh -c "$RM" </dev/null
    sh -c "$c" </dev/null 2>/dev/null || die "this command failed: $c"
    n="$("$GVPOD" --root "$GVPOD_ROOT" ps -q | wc -l)"
    [ "$n" = "$PODS" ] || die "$c left $n pods running, not $PODS"
done

JSON="$WORK/up.json"
log "hyperfine: warmup $WARMUP, $RUNS runs each ($("$RUNSC" --version | sed -n 1p), $(nproc) cores)"
setsid hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic --export-json "$JSON" \
    --prepare "$RM" \
    -n "gvpod up ($PODS pods)" "$CMD_UP" \
    -n "gvpod run -d x$PODS" "$CMD_SEQ" >&2 &
HF_PID=$!
wait "$HF_PID" || die "hyperfine failed"
HF_PID=""

set +e
python3 - "$JSON" "$TARGET_RATIO" "$RUNS" "$PODS" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
target, runs, pods = float(sys.argv[2]), sys.argv[3], sys.argv[4]
up, seq = res
ms = lambda x: x["median"] * 1000
ratio = up["median"] / seq["median"]
print(f"\n{pods}-pod project from cold, median of {runs} runs each:")
print(f"gvpod up: {ms(up):.0f} ms | gvpod run -d one by one: {ms(seq):.0f} ms | up/sequential {ratio:.2f}x")
verdict = "meets" if ratio <= target else "MISSES"
print(f"target up/sequential <= {target:.2f}x: {verdict}")
sys.exit(0 if ratio <= target else 3)
PY
rc=$?
set -e
if [ "$rc" = 3 ] && [ "$STRICT" = 1 ]; then exit 1; fi
[ "$rc" = 0 ] || [ "$rc" = 3 ] || die "could not read hyperfine's results"
