#!/usr/bin/env bash
# Fuzzes gvpod's parsers of hostile input (fuzz/, issue 15 item 7): the
# layer unpacker, image references, pod-spec YAML, the run option parsers
# and the snapshot archive reader. For each target: builds it, replays its
# committed seed corpus (fuzz/corpus/TARGET) and what earlier runs found
# (fuzz/work/TARGET), then fuzzes for SECS seconds. Exits 1 on any crash,
# naming the input that crashed (saved under fuzz/artifacts/TARGET/). A
# crash found becomes a fix, a unit test in its module and a seed (copy
# the input into fuzz/corpus/TARGET/).
#
#   scripts/fuzz.sh                      every target, 10 s each (CI)
#   scripts/fuzz.sh --time 3600 unpack   one target for an hour
#
# Works on the stable toolchain (no cargo-fuzz, no nightly): the targets are
# libFuzzer binaries (libfuzzer-sys from crates.io) built by cargo with the
# coverage flags cargo-fuzz passes with `--sanitizer none`, added by
# fuzz/rustc-wrapper.sh to gvpod's library and the targets only. The build
# shares target/ with the main build, so after `cargo test` only gvpod and
# the targets are compiled (no sanitizer: Rust's own checks, debug
# assertions and overflow checks are the oracles).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=10
targets=()
while [ $# -gt 0 ]; do
    case $1 in
    --time)
        if [ $# -lt 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
            echo "fuzz.sh: --time needs a number of seconds, e.g. --time 60" >&2
            exit 2
        fi
        secs=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*) echo "fuzz.sh: unknown option $1; use [--time SECS] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
all=(unpack reference spec options snapshot)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] ||
        { echo "fuzz.sh: no fuzz target $t; the targets are: ${all[*]}" >&2; exit 2; }
done

# The stable toolchain, whatever the directory or the environment prefers.
if command -v rustup >/dev/null; then
    export RUSTUP_TOOLCHAIN=stable
fi
unset RUSTC_BOOTSTRAP
echo "==> fuzz: $(rustc --version), ${secs} s per target"

root=$PWD
export CARGO_TARGET_DIR="$root/target"
export RUSTC_WRAPPER="$root/fuzz/rustc-wrapper.sh"
export GVPOD_FUZZ_RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0
 -Cllvm-args=-sanitizer-coverage-stack-depth --cfg fuzzing -Clink-dead-code -Cdebug-assertions"
# The fuzz workspace resolves the same dependency versions as the main one.
cp Cargo.lock fuzz/Cargo.lock
start=$(date +%s)
cargo build --quiet --manifest-path fuzz/Cargo.toml --bins
echo "==> fuzz: built in $(($(date +%s) - start)) s"

# Scratch files of the targets (unpacked roots, a snapshot store) go here.
scratch=$(mktemp -d /tmp/gvpod-fuzz-XXXXXX)
trap 'rm -rf "$scratch"' EXIT

status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
    log="$scratch/$t.log"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="fuzz/artifacts/$t/" "fuzz/work/$t" "fuzz/corpus/$t")
    case $t in unpack | snapshot) args=(-max_len=16384 "${args[@]}") ;; esac
    rc=0
    # A layer's sparse file can claim any size: writes past 128 MiB fail (EFBIG).
    (ulimit -f 131072; trap '' XFSZ; TMPDIR=$scratch exec "target/debug/$t" "${args[@]}") \
        >"$log" 2>&1 || rc=$?
    stats=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    if [ "$rc" = 0 ]; then
        echo "    $t: ok, ${stats:-?} runs in ${secs} s, corpus $(find "fuzz/work/$t" -type f | wc -l) found + $(find "fuzz/corpus/$t" -type f | wc -l) seeds"
    else
        status=1
        tail -n 40 "$log" >&2
        input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "fuzz.sh: $t failed (exit $rc); crashing input: ${input:-none saved, see the log above}; reproduce: target/debug/$t ${input:-}" >&2
    fi
done
echo "==> fuzz: done in $(($(date +%s) - start)) s"
exit "$status"
