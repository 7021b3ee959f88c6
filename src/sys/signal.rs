//! Signal dispositions the front end sets: portable (the client build has
//! them, see lib.rs), so they sit in this submodule of `sys` (the one
//! place for `unsafe`).

/// Restores SIGPIPE's default action (Rust's runtime ignores it, so a
/// closed reader makes `println!` panic): a command whose output is piped
/// into `head` then ends quietly, as other Unix tools do. Children are not
/// affected (std resets SIGPIPE in every child it spawns).
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL installs no handler, so nothing runs in signal
    // context; called once, early, before other threads exist.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}
