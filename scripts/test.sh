#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests against the real runsc
# (as root), then a host-wide leak check. Needs the packages that
# `scripts/setup.sh --deps-only` installs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (sudo scripts/test.sh): the integration tests start real sandboxes" >&2
    exit 2
fi
for t in runsc busybox nft ip; do
    command -v "$t" >/dev/null || { echo "test.sh: $t is missing; run: sudo scripts/setup.sh --deps-only" >&2; exit 2; }
done

# gvpod turns on IPv4 forwarding for networks with egress (as docker and
# podman do); the suite puts the host's setting back afterwards.
fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
restore_fwd() { echo "$fwd_before" > /proc/sys/net/ipv4/ip_forward; }
trap restore_fwd EXIT

# Two pods at a time per test binary keep a 2-core machine responsive.
# The leak check compares against what was already on the host before the
# suite (another gvpod's pods, a developer's experiments): only what the
# suite left counts.
before=$(mktemp); after=$(mktemp)
trap 'restore_fwd; rm -f "$before" "$after"' EXIT
scripts/leak-check.sh 2>"$before" >/dev/null || true

status=0
cargo test --locked -- --test-threads=2 || status=$?

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
