//! `sys` in the client build (see lib.rs): only the portable wrappers;
//! the Linux syscalls are `sys.rs`, compiled only with `host_runtime`.

mod signal;

pub use signal::default_sigpipe;
