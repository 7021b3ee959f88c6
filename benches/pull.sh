#!/usr/bin/env bash
# Pull benchmark: pull + unpack of a multi-layer Debian image (debootstrap
# minbase, about 200 MB unpacked, split into 4 gzip layers) from a local
# registry, four commands measured side by side, interleaved round by round
# (each round one hyperfine invocation running all four once):
#
#   1. `gvpod pull` into a fresh data root  vs  `skopeo copy docker://… oci:DIR`
#      + `umoci unpack` (the two-tool way);
#   2. gvpod's unpack alone (every blob already in the store, so the pull
#      downloads nothing and only unpacks and registers)  vs  `tar -xzf` of the
#      same layer blobs, one after the other, into one directory (the
#      practical limit: tar's gzip runs in its own process).
#
# Usage: benches/pull.sh [--runs N] [--warmup N] [--cache DIR] [--strict] [--keep-json DIR]
#   --runs N       rounds, i.e. runs per command (default 10, at least 3)
#   --warmup N     warmup rounds, not counted (default 1)
#   --cache DIR    keep the debootstrap rootfs in DIR and reuse it next time
#   --strict       exit 1 when a target is missed
#   --keep-json D  copy hyperfine's JSON exports (one per round) into directory D
# Environment:
#   GVPOD_BIN      use this gvpod binary instead of `cargo build --release`
#   BENCH_MIRROR   Debian mirror for debootstrap (default http://deb.debian.org/debian)
#
# Targets: gvpod pull at least 1.5x faster than skopeo + umoci; gvpod's
# unpack within 1.3x of tar -xzf. Needs root. The registry runs on 127.0.0.1
# at a free port with its storage in the work directory; everything (work
# directory under /var/tmp, registry process, gvpod's runtime dir) is removed
# on exit, even on failure or Ctrl-C.
set -euo pipefail

RUNS=10
WARMUP=1
CACHE=""
STRICT=0
KEEP_JSON=""
MIRROR="${BENCH_MIRROR:-http://deb.debian.org/debian}"
PULL_TARGET=1.5
UNPACK_TARGET=1.3

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="${2:?--runs needs a number}"; shift ;;
        --warmup) WARMUP="${2:?--warmup needs a number}"; shift ;;
        --cache) CACHE="${2:?--cache needs a directory}"; shift ;;
        --strict) STRICT=1 ;;
        --keep-json) KEEP_JSON="${2:?--keep-json needs a directory}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "pull.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$RUNS$WARMUP" in *[!0-9]*) echo "pull.sh: --runs and --warmup take numbers" >&2; exit 2 ;; esac
[ "$RUNS" -ge 3 ] || { echo "pull.sh: --runs must be at least 3" >&2; exit 2; }

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'pull.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (gvpod and debootstrap need it)"
need() { # need CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: install it with \`apt-get install $2\`"
}
need docker-registry docker-registry
need skopeo skopeo
need umoci umoci
need hyperfine hyperfine
need debootstrap debootstrap
need python3 python3
need sha256sum coreutils

cd "$(dirname "$0")/.."
if [ -n "${GVPOD_BIN:-}" ]; then
    GVPOD="$GVPOD_BIN"
else
    log "building gvpod (release)"
    cargo build --release --locked -q
    GVPOD="$PWD/target/release/gvpod"
fi
[ -x "$GVPOD" ] || die "no gvpod binary at $GVPOD"

# Everything lives on disk (/var/tmp), like a real data root, not on tmpfs.
WORK=$(mktemp -d /var/tmp/gvpod-bench-pull.XXXXXX)
REG_PID=""
cleanup() {
    if [ -n "$REG_PID" ]; then
        kill "$REG_PID" 2>/dev/null || true
        wait "$REG_PID" 2>/dev/null || true
    fi
    # gvpod's runtime dir per data root: /run/gvpod/<first 12 hex of sha256(root)>.
    for r in "$WORK"/runs/gv-* "$WORK"/runs/gvu-*; do
        [ -d "$r" ] || continue
        h=$(printf %s "$r" | sha256sum | cut -c1-12)
        rm -rf "/run/gvpod/$h"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the image
if [ -n "$CACHE" ]; then
    mkdir -p "$CACHE"
    ROOTFS="$CACHE/rootfs"
else
    ROOTFS="$WORK/rootfs"
fi
if [ ! -x "$ROOTFS/bin/sh" ]; then
    log "debootstrap --variant=minbase bookworm (from $MIRROR)"
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
fi
UNPACKED_MB=$(du -sm --apparent-size "$ROOTFS" | cut -f1)
[ "$UNPACKED_MB" -ge 150 ] || die "rootfs is only ${UNPACKED_MB} MB; the benchmark wants at least 150"

log "splitting the rootfs into 4 layers and writing an OCI layout with umoci"
LAYERS="$WORK/layers"
mkdir -p "$LAYERS"
# Layer 1: everything but the three big trees; then one layer per tree.
tar -C "$ROOTFS" --numeric-owner --exclude=./usr/lib --exclude=./usr/share --exclude=./var \
    -cf "$LAYERS/1.tar" .
tar -C "$ROOTFS" --numeric-owner -cf "$LAYERS/2.tar" ./usr/lib
tar -C "$ROOTFS" --numeric-owner -cf "$LAYERS/3.tar" ./usr/share
tar -C "$ROOTFS" --numeric-owner -cf "$LAYERS/4.tar" ./var
LAYOUT="$WORK/layout"
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:big"
for i in 1 2 3 4; do
    umoci raw add-layer --image "$LAYOUT:big" "$LAYERS/$i.tar"
    rm -f "$LAYERS/$i.tar"
done
umoci config --image "$LAYOUT:big" --config.cmd=/bin/sh --os linux --architecture amd64
# The gzip layer blobs, lowest first, for tar -xzf.
mapfile -t LAYER_BLOBS < <(python3 - "$LAYOUT" <<'EOF'
import json, sys
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
m = next(x for x in idx["manifests"] if x.get("annotations", {}).get("org.opencontainers.image.ref.name") == "big")
man = json.load(open(f"{d}/blobs/sha256/{m['digest'][7:]}"))
for l in man["layers"]:
    print(f"{d}/blobs/sha256/{l['digest'][7:]}")
EOF
)
[ "${#LAYER_BLOBS[@]}" = 4 ] || die "expected 4 layer blobs in the layout"
COMPRESSED_MB=$(du -cm --apparent-size "${LAYER_BLOBS[@]}" | tail -1 | cut -f1)

# ---------------------------------------------------------------- the registry
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: 127.0.0.1:$PORT
  secret: gvpod-bench
EOF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "the registry did not start: $(tail -5 "$WORK/registry/log")"
IMAGE="127.0.0.1:$PORT/bench/debian:minbase"
log "pushing the image to $IMAGE"
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$LAYOUT:big" "docker://$IMAGE"

# ---------------------------------------------------------------- measuring
# Every run writes into a NEW directory and nothing is deleted until the end:
# on ext4, creating files soon after deleting thousands of others is several
# times slower (the inode allocator's `recently_deleted` scan): runs that
# followed an `rm -rf` of the previous tree drifted from 0.4 s to 4 s here.
# `--prepare` makes the next directory and records its path in cur-NAME; the
# timed command reads it back (one `cat`, the same for every command).
RUNS_DIR="$WORK/runs"
mkdir -p "$RUNS_DIR"
{
    echo '#!/bin/sh'
    echo '# next.sh NAME [seed]: a fresh run directory for NAME; with "seed", a gvpod'
    echo '# data root whose store already holds every blob of the image.'
    echo 'set -e'
    echo "work=$(printf %q "$WORK"); layout=$(printf %q "$LAYOUT")"
    echo 'n=$(( $(cat "$work/count" 2>/dev/null || echo 0) + 1 ))'
    echo 'echo $n >"$work/count"'
    echo 'd="$work/runs/$1-$n"'
    echo 'mkdir -p "$d"'
    echo 'if [ "${2:-}" = seed ]; then'
    echo '    mkdir -p "$d/images/blobs/sha256"'
    echo '    cp "$layout"/blobs/sha256/* "$d/images/blobs/sha256/"'
    echo 'fi'
    echo 'echo "$d" >"$work/cur-$1"'
    echo 'sync'
} >"$WORK/next.sh"
chmod +x "$WORK/next.sh"
q() { printf '%q' "$1"; }
cur() { printf '"$(cat %q)"' "$WORK/cur-$1"; }

# The four commands run interleaved: each round is ONE hyperfine invocation
# that runs every command once, so a burst of background load (a shared
# 2-core machine) hits all of them alike instead of whichever hyperfine
# happened to be timing. Round 0 is the warmup and is not counted.
CMDS=(
    --prepare "$(q "$WORK/next.sh") gv"
    --command-name "gvpod pull"
    "$(q "$GVPOD") --root $(cur gv) pull -q $(q "$IMAGE")"
    --prepare "$(q "$WORK/next.sh") sk"
    --command-name "skopeo copy + umoci unpack"
    "d=$(cur sk); skopeo copy --quiet --src-tls-verify=false docker://$(q "$IMAGE") oci:\$d/layout:big && umoci unpack --image \$d/layout:big \$d/bundle"
    # gvpod's unpack alone: a data root whose store already holds every blob,
    # so `pull` downloads nothing (one HEAD for the manifest) and only unpacks
    # and registers; tar -xzf extracts the same four gzip blobs in order.
    --prepare "$(q "$WORK/next.sh") gvu seed"
    --command-name "gvpod unpack (pull, every blob present)"
    "$(q "$GVPOD") --root $(cur gvu) pull -q $(q "$IMAGE")"
    --prepare "$(q "$WORK/next.sh") tar"
    --command-name "tar -xzf (same 4 layers)"
    "d=$(cur tar); for l in ${LAYER_BLOBS[*]}; do tar -xzf \$l -C \$d || exit 1; done"
)
log "hyperfine: $RUNS interleaved rounds (+$WARMUP warmup) of gvpod pull, skopeo + umoci, gvpod unpack, tar -xzf"
mkdir -p "$WORK/json"
for i in $(seq $((1 - WARMUP)) "$RUNS"); do
    hyperfine --style none --runs 1 --export-json "$WORK/json/round-$i.json" "${CMDS[@]}" >/dev/null
    printf '.' >&2
    [ "$i" -ge 1 ] || rm -f "$WORK/json/round-$i.json"
done
echo >&2

# Sanity: both unpacked trees have the image's size.
GV_MB=$(du -sm --apparent-size "$(cat "$WORK/cur-gvu")/images/layers" | cut -f1)
TAR_MB=$(du -sm --apparent-size "$(cat "$WORK/cur-tar")" | cut -f1)

if [ -n "$KEEP_JSON" ]; then
    mkdir -p "$KEEP_JSON"
    cp "$WORK"/json/round-*.json "$KEEP_JSON/"
fi

python3 - "$WORK/json" "$PULL_TARGET" "$UNPACK_TARGET" \
    "$UNPACKED_MB" "$COMPRESSED_MB" "$GV_MB" "$TAR_MB" "$STRICT" <<'EOF'
import glob, json, statistics, sys
times = {}
for f in sorted(glob.glob(f"{sys.argv[1]}/round-*.json")):
    for r in json.load(open(f))["results"]:
        times.setdefault(r["command"], []).extend(r["times"])
pull_t, unpack_t = float(sys.argv[2]), float(sys.argv[3])
unpacked, compressed, gv_mb, tar_mb, strict = sys.argv[4:9]
names = list(times)
med = {n: statistics.median(t) for n, t in times.items()}
print(f"\nimage: debootstrap minbase bookworm, 4 gzip layers, {compressed} MB compressed, "
      f"{unpacked} MB unpacked (gvpod layers {gv_mb} MB, tar tree {tar_mb} MB)")
print(f"{'command':44} {'runs':>4} {'median':>8} {'min':>8} {'max':>8}")
for n in names:
    t = times[n]
    print(f"{n:44} {len(t):4} {med[n]*1000:6.0f}ms {min(t)*1000:6.0f}ms {max(t)*1000:6.0f}ms")
speedup = med[names[1]] / med[names[0]]
ratio = med[names[2]] / med[names[3]]
ok1, ok2 = speedup >= pull_t, ratio <= unpack_t
print(f"\ngvpod pull is {speedup:.2f}x faster than skopeo + umoci (target >= {pull_t}x): "
      f"{'met' if ok1 else 'MISSED'}")
print(f"gvpod unpack takes {ratio:.2f}x tar -xzf's time (target <= {unpack_t}x): "
      f"{'met' if ok2 else 'MISSED'}")
sys.exit(1 if strict == "1" and not (ok1 and ok2) else 0)
EOF
