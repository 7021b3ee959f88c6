#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration tests against the
# real runsc twice, once per runsc release (DESIGN.md fact 11): the system's
# (Debian 12: 20221219, ptrace) and Debian trixie's 20240729 (systrap),
# fetched by scripts/fetch-runsc.sh to a side path; then a host-wide leak
# check. Needs the packages that `scripts/setup.sh --deps-only` installs.
#
#   GVPOD_RUNSC_SECOND=/path/to/runsc   use this one as the second release
#
# No test may skip: GVPOD_REQUIRE_ROOT_TESTS=1 turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (sudo scripts/test.sh): the integration tests start real sandboxes" >&2
    exit 2
fi
for t in runsc busybox nft ip curl; do
    command -v "$t" >/dev/null || { echo "test.sh: $t is missing; run: sudo scripts/setup.sh --deps-only" >&2; exit 2; }
done

# gvpod turns on IPv4 forwarding for networks with egress (as docker and
# podman do); the suite puts the host's setting back afterwards.
fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
# shellcheck disable=SC2317 # called by the EXIT traps
restore_fwd() { echo "$fwd_before" > /proc/sys/net/ipv4/ip_forward; }
trap restore_fwd EXIT

# Two pods at a time per test binary keep a 2-core machine responsive.
# The leak check compares against what was already on the host before the
# suite (another gvpod's pods, a developer's experiments): only what the
# suite left counts.
before=$(mktemp); after=$(mktemp)
trap 'restore_fwd; rm -f "$before" "$after"' EXIT
scripts/leak-check.sh 2>"$before" >/dev/null || true

first=$(command -v runsc)
second=${GVPOD_RUNSC_SECOND:-$(scripts/fetch-runsc.sh --quiet)}
[ -x "$second" ] || { echo "test.sh: no second runsc ($second); run scripts/fetch-runsc.sh" >&2; exit 2; }
export GVPOD_REQUIRE_ROOT_TESTS=1

# The integration test binaries (tests/*.rs). The Debian recipes are not
# among them: they download and build whole images (minutes) and have their
# own command, `GVPOD_TEST_RECIPES=1 cargo test --test recipes`.
tests=()
for f in tests/*.rs; do
    n=$(basename "$f" .rs)
    [ "$n" = recipes ] || tests+=(--test "$n")
done

status=0
# The client build, what a macOS build compiles (no Linux-only module or
# crate: see src/lib.rs and Cargo.toml's features), checked on Linux as no
# darwin toolchain is here: it must build and its unit tests pass.
echo "==> client build (--no-default-features --features client)"
cargo check --locked --no-default-features --features client || status=$?
cargo test --locked --no-default-features --features client --lib || status=$?

# Pass 1: unit tests and the integration tests with the system's runsc.
echo "==> pass 1: $("$first" --version | sed -n 1p) ($first)"
GVPOD_RUNSC="$first" GVPOD_RUNSC_OTHER="$second" \
    cargo test --locked --no-fail-fast --lib "${tests[@]}" -- --test-threads=2 || status=$?

# Pass 2: the integration tests with the second release.
echo "==> pass 2: $("$second" --version | sed -n 1p) ($second)"
GVPOD_RUNSC="$second" GVPOD_RUNSC_OTHER="$first" \
    cargo test --locked --no-fail-fast "${tests[@]}" -- --test-threads=2 || status=$?

# The fuzz targets, 10 s each (fuzz/; long form: scripts/fuzz.sh --time 3600).
scripts/fuzz.sh || status=$?

scripts/leak-check.sh 2>"$after" >/dev/null || true
new=$(grep -vxF -f "$before" "$after" || true)
if [ -n "$new" ]; then
    echo "$new" >&2
    echo "leak-check: the test suite left the above behind" >&2
    status=1
else
    echo "leak-check: clean (nothing left by the suite)"
fi
exit $status
