//! Telling runsc's own failures from the container's: what its exit status
//! and its error lines mean. The pod layer asks here instead of matching
//! runsc's words itself.
//!
//! `runsc run`, `runsc exec` and `runsc restore` pass on the exit status of
//! the process they ran, except when runsc itself fails (a command it cannot
//! start, a sandbox that does not come up): it then exits 128 and says why
//! in its JSON log (`--log`, `--log-format=json`; see [`super::last_error`]).
//! A process that really exits 128 leaves no error line there.

use std::path::PathBuf;

use super::{last_error, GlobalFlags, RunscError};

/// The exit status runsc reports for a failure of its own.
pub const OWN_FAILURE: i32 = 128;

/// A failure of runsc itself, with its one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnFailure {
    /// runsc's own explanation (its last error line).
    pub msg: String,
    log: PathBuf,
    debug_log: Option<PathBuf>,
}

impl OwnFailure {
    /// The failure behind exit status `code` of a runsc call with `flags`:
    /// `None` unless runsc exited [`OWN_FAILURE`] and logged why.
    pub fn of_exit(code: i32, flags: &GlobalFlags) -> Option<OwnFailure> {
        if code != OWN_FAILURE {
            return None;
        }
        last_error(&flags.log).map(|msg| OwnFailure {
            msg,
            log: flags.log.clone(),
            debug_log: flags.debug_log.clone(),
        })
    }

    /// The exit code docker gives for the same failure: 127 when the
    /// command was not found, 126 when it could not be executed, 125 for
    /// anything else.
    pub fn exit_code(&self) -> i32 {
        if self.msg.contains("failed to load") && self.msg.contains("no such file") {
            127
        } else if self.msg.contains("permission denied") {
            126
        } else {
            125
        }
    }

    /// Where the details are: the debug logs when they were kept, else the
    /// JSON log and how to get a debug log next time.
    pub fn logs_hint(&self) -> String {
        match &self.debug_log {
            Some(d) => format!("runsc debug logs: {}", d.display()),
            None => format!(
                "runsc log: {}; run gvpod with --debug for a full debug log",
                self.log.display()
            ),
        }
    }

    /// The failure as the error of runsc subcommand `cmd` on pod `pod`.
    pub fn into_error(self, cmd: &str, pod: &str) -> RunscError {
        RunscError::Failed {
            cmd: cmd.into(),
            id: pod.into(),
            msg: self.msg,
            log: self.log,
        }
    }
}

/// The first line of runsc's last error in `log`: runsc appends a goroutine
/// dump to some errors, after a line that ends with a colon.
pub fn last_error_line(log: &std::path::Path) -> Option<String> {
    last_error(log).map(|m| {
        m.lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(log: PathBuf, debug_log: Option<PathBuf>) -> GlobalFlags {
        GlobalFlags {
            root: "/run/gvpod/x/runsc".into(),
            platform: "ptrace".into(),
            network: "none".into(),
            overlay2: None,
            log,
            debug_log,
            extra: vec![],
            net_disconnect_ok: false,
            bin: None,
        }
    }

    fn logged(msg: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("runsc.log");
        let line = serde_json::json!({"msg": msg, "level": "error"});
        std::fs::write(&log, format!("{line}\n")).unwrap();
        (d, log)
    }

    #[test]
    fn only_128_with_an_error_line_is_runscs_own_failure() {
        let (_d, log) =
            logged("starting container: failed to load /bin/x: no such file or directory");
        let f = flags(log.clone(), None);
        assert_eq!(OwnFailure::of_exit(1, &f), None);
        assert_eq!(OwnFailure::of_exit(129, &f), None);
        let e = OwnFailure::of_exit(128, &f).unwrap();
        assert_eq!(e.exit_code(), 127);
        assert!(e.logs_hint().contains("--debug"), "{}", e.logs_hint());
        let silent = flags(log.with_file_name("missing.log"), None);
        assert_eq!(OwnFailure::of_exit(128, &silent), None);
        let e = e.into_error("exec", "web").to_string();
        assert!(e.starts_with("runsc exec web: starting container"), "{e}");
    }

    #[test]
    fn exit_codes_follow_docker() {
        for (msg, code) in [
            (
                "starting container: failed to load /x: no such file or directory",
                127,
            ),
            ("starting container: /etc/passwd: permission denied", 126),
            ("creating sandbox: cannot allocate memory", 125),
        ] {
            let (d, log) = logged(msg);
            let f = flags(log, Some(d.path().join("debug/")));
            let e = OwnFailure::of_exit(128, &f).unwrap();
            assert_eq!(e.exit_code(), code, "{msg}");
            assert!(e.logs_hint().starts_with("runsc debug logs: "));
        }
    }

    #[test]
    fn the_first_line_of_an_error_with_a_dump() {
        let (_d, log) = logged("restoring: bad image:\ngoroutine 1 [running]:\nmain.main()");
        assert_eq!(
            last_error_line(&log).as_deref(),
            Some("restoring: bad image")
        );
    }
}
