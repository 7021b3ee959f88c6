//! Crash points for the crash-safety tests: when `GVPOD_CRASH_AT` names a
//! step, gvpod kills itself with SIGKILL there, exactly as an OOM kill or a
//! power cut would, so the tests can prove that every step is recoverable.
//! Each step is also a debug log event (`GVPOD_LOG=debug` times the phases).
//! `GVPOD_PAUSE_AT=step` sleeps there for `GVPOD_PAUSE_MS` (500 ms), to
//! widen a race window a test needs to prove closed.
//!
//! Crate-level (not under `pod`) so that the layers below the orchestrator
//! (`image`, `net`, `snapshot`) can name their own steps without depending
//! on `pod` (DESIGN.md's module table). Steps are `verb:step` strings; the
//! ones outside `run` and `checkpoint`: `pull:fetched`, `import:scanned`,
//! `import:placed`, `load:staged`, `commit:paused`, `commit:written`,
//! `register:placed` (layers of a pull, load or commit in the cache, the
//! image not yet recorded), `network-create:recorded|firewalled|bridged`,
//! `network-rm:unfirewalled|unbridged|deleted`,
//! `snapshot-export:member`, `snapshot-import:member|placed`,
//! `restore:rootfs|bundle|prepared`. tests/faults.rs kills gvpod at each.

pub fn hit(step: &str) {
    tracing::debug!("step {step}");
    if let Some(v) = std::env::var_os("GVPOD_CRASH_AT") {
        if v.to_str() == Some(step) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
    if std::env::var_os("GVPOD_PAUSE_AT").is_some_and(|v| v.to_str() == Some(step)) {
        let ms = std::env::var("GVPOD_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Fault injection for the failure tests: true when `GVPOD_FAIL_AT` names
/// `step`, where the caller then fails the way the step really can (a
/// runsc error, a full disk).
pub fn fail(step: &str) -> bool {
    std::env::var_os("GVPOD_FAIL_AT").is_some_and(|v| v.to_str() == Some(step))
}
