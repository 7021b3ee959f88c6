#!/usr/bin/env bash
# The full-size concurrency test of issue 15: 50 networked `run -d` with a
# published port at once, then 50 checkpoints and 50 restores at once
# (tests/reliability.rs runs 20 in CI, to stay under a minute on 2 cores).
# Usage: scripts/stress.sh [N] (default 50); GVPOD_RUNSC picks the runsc.
# Then N `rm -f` at once. Measured on the 2-core test VM, runsc 20221219,
# N=50: runs 33.6 s, checkpoints 4.3 s, restores 7.7 s.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
GVPOD_STRESS_N=$n GVPOD_REQUIRE_ROOT_TESTS=1 \
    cargo test --test reliability many_networked_runs -- --nocapture --test-threads=1
