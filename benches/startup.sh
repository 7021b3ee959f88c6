#!/usr/bin/env bash
# Startup benchmark: `gvpod run --rm` vs a bare `runsc run` of an equivalent
# OCI bundle vs `podman --runtime runsc run --rm`, measured side by side in ONE
# run of interleaved hyperfine rounds (benches/lib/rounds.sh) on the same
# busybox rootfs, with no network at all.
#
# Usage: benches/startup.sh [--quick] [--runs N] [--warmup N] [--strict] [--keep-json FILE]
#   --quick        few runs (CI smoke test): warmup 1, 5 runs each, one round
#   --runs N       runs per command (default 20, at least 20 unless --quick)
#   --warmup N     warmup runs per command (default 3)
#   --strict       exit 1 when gvpod misses the target
#   --keep-json F  copy the merged JSON of the rounds to F
# Environment:
#   GVPOD_BIN        use this gvpod binary instead of `cargo build --release`
#   GVPOD_RUNSC      the runsc to use for all three (default: `runsc` in $PATH),
#                    e.g. $(scripts/fetch-runsc.sh)
#   BENCH_PLATFORM   gVisor platform for all three (default: that runsc's own
#                    default, ptrace before 20230621, systrap since; kvm is refused)
#
# Target: gvpod's median at most 1.10x bare runsc's, and below podman's.
# Needs root. Everything it creates (data roots, runsc state, podman storage,
# mounts, containers) lives in temporary directories removed on exit, even on
# failure or Ctrl-C.
set -euo pipefail

TARGET_RATIO=1.10
RUNS=20
WARMUP=3
QUICK=0
STRICT=0
KEEP_JSON=""
PLATFORM="${BENCH_PLATFORM:-}"

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; RUNS=5; WARMUP=1 ;;
        --runs) RUNS="${2:?--runs needs a number}"; shift ;;
        --warmup) WARMUP="${2:?--warmup needs a number}"; shift ;;
        --strict) STRICT=1 ;;
        --keep-json) KEEP_JSON="${2:?--keep-json needs a file}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "startup.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$RUNS$WARMUP" in *[!0-9]*) echo "startup.sh: --runs and --warmup take numbers" >&2; exit 2 ;; esac
if [ "$QUICK" = 0 ] && [ "$RUNS" -lt 20 ]; then
    echo "startup.sh: --runs must be at least 20 (use --quick for a smoke run)" >&2; exit 2
fi

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'startup.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
[ "$(id -u)" = 0 ] || die "must run as root (gvpod, runsc and podman with a private storage root need it)"
need() { # need CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: install it with \`apt-get install $2\`"
}
need hyperfine hyperfine
if [ -n "${GVPOD_RUNSC:-}" ]; then
    [ -x "$GVPOD_RUNSC" ] || die "GVPOD_RUNSC=$GVPOD_RUNSC is not an executable"
else
    need runsc runsc
fi
need podman podman
need busybox busybox-static
need python3 python3
need tar tar
need findmnt util-linux
need sha256sum coreutils
if [ -z "${GVPOD_BIN:-}" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs, or \`apt-get install cargo\`) or set GVPOD_BIN"
fi
RUNSC="$(readlink -f "${GVPOD_RUNSC:-$(command -v runsc)}")"
export GVPOD_RUNSC="$RUNSC" # gvpod uses the same runsc
RUNSC_VERSION="$("$RUNSC" --version | sed -n 1p)"
if [ -z "$PLATFORM" ]; then
    # runsc's own default, as `runsc flags` states it: `(default "ptrace")`.
    PLATFORM="$("$RUNSC" flags 2>&1 | grep -A1 -- '^ *-platform ' | sed -n 's/.*(default "\([a-z0-9]*\)").*/\1/p' | sed -n 1p)"
    [ -n "$PLATFORM" ] || die "cannot tell the default platform of $RUNSC from \`runsc flags\`; set BENCH_PLATFORM"
fi
case "$PLATFORM" in ''|*[!a-z0-9]*) die "bad BENCH_PLATFORM $PLATFORM" ;; esac
if [ "$PLATFORM" = kvm ]; then
    echo "startup.sh: BENCH_PLATFORM=kvm is refused (it can hang under nested virtualisation)" >&2; exit 2
fi
BUSYBOX="$(readlink -f "$(command -v busybox)")"
if ! busybox --list >/dev/null 2>&1 || ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is not a static busybox with --list: install it with \`apt-get install busybox-static\`"
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=benches/lib/rounds.sh
. "$SCRIPT_DIR/lib/rounds.sh"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"

# ---------------------------------------------------------------- cleanup
WORK=""
GVPOD_ROOT=""
GVPOD=""
GVPOD_RUN_DIR=""
RUN_GVPOD_EXISTED=1
PODMAN=()
HF_PID=""
RUNSC_ID_PREFIX=""
CGROUPS_BEFORE=""
PODMAN_HOST_NEW=()

umount_under() { # unmount everything mounted at or below $1, deepest first
    local dir="$1" m
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1 || $0 == d' | sort -r |
        while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
}

runsc_delete_all() { # runsc_delete_all STATE_ROOT: force-delete every container runsc knows there
    local root="$1" c
    [ -n "$root" ] && [ -d "$root" ] || return 0
    for c in $("$RUNSC" --root "$root" list --quiet 2>/dev/null); do
        "$RUNSC" --root "$root" delete --force "$c" >/dev/null 2>&1 || true
    done
}

cgroup_dirs() { # parent cgroups made by podman's cgroupfs manager and by gvpod (runsc removes the leaves)
    find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d \( -name libpod_parent -o -name gvpod \) 2>/dev/null | sort || true
}

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM # let the cleanup finish
    set +e
    local d
    if [ -n "$HF_PID" ]; then
        # hyperfine leads its own process group (setsid): stop it and the run in flight.
        kill -TERM -- "-$HF_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 -- "-$HF_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$HF_PID" 2>/dev/null
        wait "$HF_PID" 2>/dev/null
    fi
    # gvpod: pods first (normally none: every run used --rm), then its gc.
    if [ -n "$GVPOD" ] && [ -n "$GVPOD_ROOT" ] && [ -d "$GVPOD_ROOT" ]; then
        local pods
        pods="$("$GVPOD" --root "$GVPOD_ROOT" ps -aq 2>/dev/null)"
        [ -n "$pods" ] && "$GVPOD" --root "$GVPOD_ROOT" rm -f $pods >/dev/null 2>&1
        "$GVPOD" --root "$GVPOD_ROOT" system gc >/dev/null 2>&1
    fi
    if [ -n "$GVPOD_RUN_DIR" ]; then
        runsc_delete_all "$GVPOD_RUN_DIR/runsc"
        umount_under "$GVPOD_RUN_DIR"
        rm -rf "$GVPOD_RUN_DIR"
        [ "$RUN_GVPOD_EXISTED" = 0 ] && rmdir /run/gvpod 2>/dev/null
    fi
    if [ -n "$GVPOD_ROOT" ]; then
        umount_under "$GVPOD_ROOT"
        rm -rf "$GVPOD_ROOT"
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        runsc_delete_all "$WORK/runsc-root"
        if [ ${#PODMAN[@]} -gt 0 ] && [ -d "$WORK/podman" ]; then
            "${PODMAN[@]}" rm -a -f -t 0 >/dev/null 2>&1
            "${PODMAN[@]}" rmi -a -f >/dev/null 2>&1
            runsc_delete_all "$WORK/podman/runroot/runsc"
        fi
        umount_under "$WORK"
        rm -rf "$WORK"
    fi
    if [ -n "$RUNSC_ID_PREFIX" ]; then
        for d in /sys/fs/cgroup/*/"$RUNSC_ID_PREFIX"-*; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
    fi
    local p
    for p in "${PODMAN_HOST_NEW[@]}"; do
        case "$p" in
            */cache|*/networks) rm -rf "$p" ;;
            *) rmdir "$p" 2>/dev/null ;;
        esac
    done
    # Parent cgroups that appeared during this run, bottom-up; rmdir leaves
    # any that still hold a process or another tool's cgroup.
    for d in $(comm -13 <(printf '%s\n' "$CGROUPS_BEFORE") <(cgroup_dirs)); do
        case "$d" in
            */libpod_parent) find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null ;;
            *) rmdir "$d" 2>/dev/null ;; # gvpod/: never touch other users' pod cgroups
        esac
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

CGROUPS_BEFORE="$(cgroup_dirs)"
# Host paths podman writes whatever --root/--runroot say (its blob-info cache,
# netavark's runtime dir); removed afterwards only when this run created them.
PODMAN_HOST_PATHS=(/var/lib/containers/cache /var/lib/containers /run/containers/networks /run/containers)
PODMAN_HOST_NEW=()
for p in "${PODMAN_HOST_PATHS[@]}"; do [ -e "$p" ] || PODMAN_HOST_NEW+=("$p"); done
[ -d /run/gvpod ] || RUN_GVPOD_EXISTED=0

WORK="$(mktemp -d /tmp/gvpod-bench.XXXXXX)"

# ---------------------------------------------------------------- 1. gvpod binary
if [ -n "${GVPOD_BIN:-}" ]; then
    GVPOD="$GVPOD_BIN"
    [ -x "$GVPOD" ] || die "GVPOD_BIN=$GVPOD is not an executable"
else
    log "building gvpod (cargo build --release in $REPO)"
    if ! (cd "$REPO" && cargo build --release) >"$WORK/build.log" 2>&1; then
        tail -n 40 "$WORK/build.log" >&2
        die "cargo build --release failed (output above)"
    fi
    GVPOD="$REPO/target/release/gvpod"
fi
GVPOD="$(readlink -f "$GVPOD")"

GVPOD_ROOT="$(mktemp -d /tmp/gvpod-bench-root.XXXXXX)"
export GVPOD_ROOT
# gvpod keeps runsc state under /run/gvpod/<12 hex of sha256(canonical data root)>.
GVPOD_RUN_DIR="/run/gvpod/$(printf '%s' "$(readlink -f "$GVPOD_ROOT")" | sha256sum | cut -c1-12)"

# ---------------------------------------------------------------- 2. rootfs tarball
TARBALL="$WORK/busybox.tar"
if [ -x "$REPO/images/busybox/build.sh" ]; then
    log "building the busybox rootfs with images/busybox/build.sh"
    "$REPO/images/busybox/build.sh" "$TARBALL" >&2
else
    log "building a busybox rootfs inline ($BUSYBOX)"
    R="$WORK/rootfs-src"
    mkdir -p "$R/bin" "$R/etc" "$R/root" "$R/tmp"
    chmod 1777 "$R/tmp"
    chmod 700 "$R/root"
    cp "$BUSYBOX" "$R/bin/busybox"
    chmod 755 "$R/bin/busybox"
    for a in $(busybox --list); do
        [ "$a" = busybox ] && continue
        ln -s busybox "$R/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$R" -cf "$TARBALL" .
fi
[ -s "$TARBALL" ] || die "no rootfs tarball at $TARBALL"

log "importing into gvpod (data root $GVPOD_ROOT)"
"$GVPOD" --root "$GVPOD_ROOT" import -c 'CMD ["sh"]' "$TARBALL" bench-busybox >/dev/null ||
    die "gvpod import failed ($GVPOD --root $GVPOD_ROOT import -c 'CMD [\"sh\"]' $TARBALL bench-busybox)"

# ---------------------------------------------------------------- 3. bare runsc bundle
log "building the bare OCI bundle for runsc"
BUNDLE="$WORK/bundle"
mkdir -p "$BUNDLE/rootfs" "$WORK/runsc-root"
tar -C "$BUNDLE/rootfs" -xf "$TARBALL"
(cd "$BUNDLE" && "$RUNSC" spec)
python3 - "$BUNDLE/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
# Writable root like gvpod's (overlay upper dir) and podman's.
c["root"]["readonly"] = False
c["hostname"] = "bench"
json.dump(c, open(p, "w"), indent=2)
EOF
RUNSC_ROOT="$WORK/runsc-root"
# The bundle has no cgroupsPath, so runsc names each run's cgroup after its
# container id: a per-invocation prefix lets the cleanup find any left behind.
RUNSC_ID_PREFIX="gvpodbench${WORK##*.}"

# ---------------------------------------------------------------- 4. podman
log "importing into a private podman storage root"
mkdir -p "$WORK/podman/root" "$WORK/podman/runroot" "$WORK/podman/tmp"
PODMAN=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/runroot" --tmpdir "$WORK/podman/tmp"
        --cgroup-manager cgroupfs --events-backend none)
"${PODMAN[@]}" import -q "$TARBALL" localhost/bench-busybox >/dev/null || die "podman import failed"

# ---------------------------------------------------------------- commands
q() { printf '%q' "$1"; }
# hyperfine runs each command with `sh -c`; `$$` is that shell's pid, unique
# among live processes, so every bare runsc run gets its own container id.
CMD_GVPOD="$(q "$GVPOD") --root $(q "$GVPOD_ROOT") run --rm --network none --platform $PLATFORM bench-busybox true"
CMD_RUNSC="$(q "$RUNSC") --root $(q "$RUNSC_ROOT") --network=none --platform=$PLATFORM run --bundle $(q "$BUNDLE") $RUNSC_ID_PREFIX-\$\$"
CMD_PODMAN="$(printf '%q ' "${PODMAN[@]}")--runtime $(q "$RUNSC") --runtime-flag network=none --runtime-flag platform=$PLATFORM run --rm --network none localhost/bench-busybox true"

log "sanity check: each command once"
for c in "$CMD_GVPOD" "$CMD_RUNSC" "$CMD_PODMAN"; do
    sh -c "$c" </dev/null || die "this command failed: $c"
done
out="$("$GVPOD" --root "$GVPOD_ROOT" run --rm --network none --platform "$PLATFORM" bench-busybox echo gvpod-ok </dev/null)"
[ "$out" = gvpod-ok ] || die "gvpod run did not print the pod's output (got: $out)"

# ---------------------------------------------------------------- 5. hyperfine
JSON="$WORK/startup.json"
LOAD_BEFORE="$(cut -d' ' -f1 /proc/loadavg)"
log "hyperfine: $RUNS runs per command in interleaved rounds of 5, warmup $WARMUP (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
hf_rounds "$JSON" "$RUNS" "$WARMUP" \
    'gvpod run --rm' "$CMD_GVPOD" \
    'bare runsc run' "$CMD_RUNSC" \
    'podman+runsc' "$CMD_PODMAN" || die "hyperfine failed"
[ -n "$KEEP_JSON" ] && cp "$JSON" "$KEEP_JSON"

leftover="$("$GVPOD" --root "$GVPOD_ROOT" ps -aq 2>/dev/null || true)"
[ -z "$leftover" ] || log "warning: gvpod run --rm left pods behind: $leftover"

set +e
PYTHONPATH="$SCRIPT_DIR/lib" python3 - "$JSON" "$TARGET_RATIO" "$RUNS" "$PLATFORM" "$LOAD_BEFORE" "$RUNSC_VERSION" <<'EOF'
import json, os, sys
path, target, runs, platform, load0 = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
version = sys.argv[6]
data = json.load(open(path))
res = {r["command"]: r for r in data["results"]}
g, b, p = (res[k] for k in ("gvpod run --rm", "bare runsc run", "podman+runsc"))
ms = lambda r: r["median"] * 1000
rb, rp = g["median"] / b["median"], g["median"] / p["median"]
print()
print(f"startup, median of {runs} runs each in {data['rounds']} interleaved rounds, {version}, platform {platform}, --network none, busybox `true`:")
print(f"gvpod run --rm: {ms(g):.0f} ms (median) | bare runsc run: {ms(b):.0f} ms | "
      f"podman+runsc: {ms(p):.0f} ms | gvpod/runsc {rb:.2f}x | gvpod/podman {rp:.2f}x")
print()
print(f"  {'command':<16} {'median':>9} {'mean':>9} {'stddev':>8} {'min':>8} {'max':>8}")
for name, r in (("gvpod run --rm", g), ("bare runsc run", b), ("podman+runsc", p)):
    print(f"  {name:<16} {ms(r):7.1f}ms {r['mean']*1000:7.1f}ms {r['stddev']*1000:6.1f}ms "
          f"{r['min']*1000:6.1f}ms {r['max']*1000:6.1f}ms")
pr = [r["gvpod run --rm"] / r["bare runsc run"] for r in data["per_round"]]
print(f"  gvpod/bare round by round: median {sorted(pr)[len(pr) // 2]:.3f}x, range {min(pr):.3f}x..{max(pr):.3f}x")
from ratio import median_ratio_interval
lo, hi = median_ratio_interval(g["times"], b["times"])
print(f"  gvpod/bare ratio of the medians: {rb:.3f}x, 90 % bootstrap interval {lo:.3f}x..{hi:.3f}x")
print()
ok_b, ok_p = rb <= target, rp < 1.0
print(f"target: gvpod <= {target:.2f}x bare runsc: {'PASS' if ok_b else 'MISS'} ({rb:.3f}x"
      + ("" if ok_b else f", {(rb - target) * b['median'] * 1000:.0f} ms over") + ")")
print(f"target: gvpod faster than podman:  {'PASS' if ok_p else 'MISS'} ({rp:.2f}x)")
if load0 > 0.5 * (os.cpu_count() or 1):
    print(f"note: load average was {load0:.2f} on {os.cpu_count()} cpus before the run: other work was "
          "competing for the CPU, so the figures are noisy (rerun on an idle machine)")
sys.exit(0 if ok_b and ok_p else 3)
EOF
verdict=$?
set -e
if [ "$verdict" = 3 ] && [ "$STRICT" = 1 ]; then exit 1; fi
[ "$verdict" = 0 ] || [ "$verdict" = 3 ] || exit "$verdict"
exit 0
