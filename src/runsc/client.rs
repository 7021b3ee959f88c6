//! `runsc` in the client build (see lib.rs): only [`Process`], a row of
//! `gvpod top` as the API sends it; the runsc driver is `mod.rs`, compiled
//! only with `host_runtime`.

mod process;

pub use process::Process;
