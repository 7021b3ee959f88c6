//! `router` in the client build (see lib.rs): only the pure Host parser
//! (spec files' ports are checked with its port rule); the router itself is
//! `mod.rs`, compiled only with `host_runtime`.

pub mod host;
