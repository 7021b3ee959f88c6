#!/bin/sh
# RUSTC_WRAPPER for scripts/fuzz.sh: adds the coverage instrumentation
# ($GVPOD_FUZZ_RUSTFLAGS, what cargo-fuzz passes) to gvpod's library and to
# the fuzz targets only. Every other crate is compiled exactly as in the
# main build, so its artifacts in the shared target/ are reused.
rustc=$1
shift
instrument=
case " $* " in
*" --crate-name gvpod "*) instrument=1 ;;
esac
[ "${CARGO_PKG_NAME:-}" = gvpod-fuzz ] && instrument=1
if [ -n "$instrument" ]; then
    # shellcheck disable=SC2086 # the flags are words
    exec "$rustc" "$@" $GVPOD_FUZZ_RUSTFLAGS
fi
exec "$rustc" "$@"
