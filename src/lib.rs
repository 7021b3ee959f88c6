//! gvpod: run OCI containers ("pods") in gVisor sandboxes with no daemon.
//!
//! The crate is a library with one thin binary (`src/main.rs`) so that the
//! unit tests run with `cargo test --lib`, as any user and with no runsc: the
//! orchestrator reaches runsc and the host only through the seams described in
//! the README's "Design in brief", which the tests replace with in-memory fakes.
//! The modules stay private: the only public entry point is [`main`]
//! (and the hidden `fuzzing` entry points of the fuzz targets in `fuzz/`).
//!
//! Two builds (DESIGN: `machine` must not depend on Linux-only modules):
//! with `cfg(host_runtime)` (Linux and feature `host`, the default; set by
//! build.rs) the whole of gvpod; without it (macOS, or `--no-default-features
//! --features client` on Linux, which checks the same split) only the client:
//! the CLI in remote/machine mode, `machine`, `spec` and `error`. There each
//! Linux-only module that owns types the client shares with the server (wire
//! views, options and their parsers, error enums) is its `client.rs` face,
//! which declares only those portable files; everything else is not compiled.
//! Items of those files that only the runtime uses are dead code there.
#![cfg_attr(not(host_runtime), allow(dead_code))]

#[cfg(host_runtime)]
mod api;
#[cfg(host_runtime)]
mod bench;
#[cfg(host_runtime)]
mod bundle;
#[cfg(not(host_runtime))]
#[path = "bundle/client.rs"]
mod bundle;
mod cli;
mod error;
#[cfg(host_runtime)]
mod failpoint;
#[cfg(host_runtime)]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(host_runtime)]
mod image;
#[cfg(not(host_runtime))]
#[path = "image/client.rs"]
mod image;
mod machine;
#[cfg(host_runtime)]
mod net;
#[cfg(not(host_runtime))]
#[path = "net/client.rs"]
mod net;
#[cfg(host_runtime)]
mod pod;
#[cfg(not(host_runtime))]
#[path = "pod/client.rs"]
mod pod;
#[cfg(host_runtime)]
mod router;
#[cfg(not(host_runtime))]
#[path = "router/client.rs"]
mod router;
#[cfg(host_runtime)]
mod runsc;
#[cfg(not(host_runtime))]
#[path = "runsc/client.rs"]
mod runsc;
#[cfg(host_runtime)]
mod snapshot;
mod spec;
#[cfg(host_runtime)]
mod state;
#[cfg(host_runtime)]
mod sys;
#[cfg(not(host_runtime))]
#[path = "sys/client.rs"]
mod sys;
mod util;

/// Runs the command line and returns the process exit code (see `cli`).
pub fn main() -> i32 {
    cli::main()
}
