//! Crash points for the crash-safety tests: when `GVPOD_CRASH_AT` names a
//! step, gvpod kills itself with SIGKILL there, exactly as an OOM kill or a
//! power cut would, so the tests can prove that every step is recoverable.
//! Each step is also a debug log event (`GVPOD_LOG=debug` times the phases).
//! `GVPOD_PAUSE_AT=step` sleeps there for `GVPOD_PAUSE_MS` (500 ms), to
//! widen a race window a test needs to prove closed.

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
