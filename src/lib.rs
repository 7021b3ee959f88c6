//! gvpod: run OCI containers ("pods") in gVisor sandboxes with no daemon.
//!
//! The crate is a library with one thin binary (`src/main.rs`) so that the
//! unit tests run with `cargo test --lib`, as any user and with no runsc: the
//! orchestrator reaches runsc and the host only through the seams described in
//! the README's "Design in brief", which the tests replace with in-memory fakes.
//! The modules stay private: the only public entry point is [`main`]
//! (and the hidden `fuzzing` entry points of the fuzz targets in `fuzz/`).

mod api;
mod bench;
mod bundle;
mod cli;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod image;
mod machine;
mod net;
mod pod;
mod router;
mod runsc;
mod snapshot;
mod spec;
mod state;
mod sys;
mod util;

/// Runs the command line and returns the process exit code (see `cli`).
pub fn main() -> i32 {
    cli::main()
}
