//! The one place that builds runsc command lines, parses runsc's output and
//! knows its version quirks. Nothing else in gvpod spawns runsc.
//!
//! Facts from DESIGN.md handled here:
//! 1. every call on a container repeats the exact global flags it was created
//!    with ([`GlobalFlags`] is stored per pod and replayed);
//! 2. ids are prefix-matched by runsc, so callers pass fixed-length ids;
//! 3. old releases see every network namespace as the root one on new
//!    kernels; networked `run`/`start`/`restore` get the workaround in
//!    [`Runsc::command`];
//! 5. the restore style depends on the release ([`Features::restore_creates`]);
//! 6. runsc's stdio is inherited by the sandbox: callers that pipe it must not
//!    wait for EOF ([`Runsc::command`] hands out a plain `Command`, the pod
//!    monitor owns the pipes);
//! 7. the platform list and default depend on the release; kvm is never chosen
//!    without an explicit request.

mod detect;
mod exec;
mod failure;
#[cfg(test)]
pub mod fake;
mod flags;
mod forward;
mod probe;
mod process;
mod procs;
mod ps;
mod snapshot;
mod statedir;
mod stats;

pub use detect::{Features, Version};
pub use exec::Exec;
pub use failure::{last_error_line, OwnFailure};
pub use flags::GlobalFlags;
pub use forward::{HELPERS_IN_POD, LEGACY_HELPERS_IN_POD, LEGACY_RELAY_IN_POD, RELAY_IN_POD};
pub use ps::Process;
pub use snapshot::reap_leftovers;
pub use statedir::{read_state_dir, StateFile};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RunscError {
    #[error("runsc not found (looked for {0}); install gVisor's runsc (Debian/Ubuntu: apt-get install runsc) or set GVPOD_RUNSC to its path")]
    NotFound(String),
    #[error("could not run {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("runsc {cmd} {id}: {msg} (runsc log: {log})")]
    Failed {
        cmd: String,
        id: String,
        msg: String,
        log: PathBuf,
    },
    #[error("cannot parse the output of `runsc {cmd}`: {msg}")]
    Parse { cmd: String, msg: String },
    #[error(
        "platform {0:?} is not supported by this runsc (it offers: {1}); pick one with --platform"
    )]
    Platform(String, String),
    #[error("platform {platform} does not work on this host: {why}; use --platform {fallback}")]
    PlatformUnusable {
        platform: String,
        why: String,
        fallback: String,
    },
}

impl RunscError {
    /// See [`crate::error::Kind`]: a missing runsc or an unusable platform
    /// is the user's to fix (install it, pick another).
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            RunscError::NotFound(_)
            | RunscError::Platform(..)
            | RunscError::PlatformUnusable { .. } => Kind::User,
            RunscError::Spawn { .. } | RunscError::Failed { .. } | RunscError::Parse { .. } => {
                Kind::Internal
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, RunscError>;

/// A detected runsc binary.
#[derive(Debug, Clone)]
pub struct Runsc {
    pub bin: PathBuf,
    pub version: Version,
    pub features: Features,
    /// How its short subcommands run (the test seam, see [`Exec`]).
    exec: Arc<dyn Exec>,
}

/// The OCI state runsc reports for a container (`runsc state`).
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub status: String,
}

impl Runsc {
    /// Finds runsc (`GVPOD_RUNSC`, else `$PATH`) and detects its version and
    /// features, using `cache_dir` to avoid re-running `runsc --version` on
    /// every invocation (the cache is keyed by the binary's path, size and mtime).
    pub fn detect(cache_dir: &Path) -> Result<Runsc> {
        Runsc::at(&find_binary()?, cache_dir)
    }

    /// The runsc binary at `bin`, detected (or read from the cache).
    pub fn at(bin: &Path, cache_dir: &Path) -> Result<Runsc> {
        if !bin.is_file() {
            return Err(RunscError::NotFound(bin.display().to_string()));
        }
        let (version, features) = detect::detect(bin, cache_dir)?;
        Ok(Runsc {
            bin: bin.to_owned(),
            version,
            features,
            exec: Arc::new(exec::System),
        })
    }

    /// A `runsc` command with the container's global flags and `sub` appended;
    /// stdio is null until the caller sets it.
    ///
    /// DESIGN.md fact 3: runsc before 20240807 decides "this is the root
    /// network namespace" from access("/proc/sys/net/core/rmem_default"),
    /// which kernels >= 6.11 show in every namespace, and then refuses
    /// sandbox networking. The subcommands that set up the sandbox's network
    /// (`run`, `start`, `restore`) of such a release therefore run in a
    /// private mount namespace with an empty tmpfs over /proc/sys/net (the
    /// check then sees no file). Newer releases check
    /// /proc/sys/net/core/dev_weight and get the plain command.
    pub fn command(&self, flags: &GlobalFlags, sub: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(flags.to_args()).arg(sub);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.features.root_netns_false_positive
            && flags.network == "sandbox"
            && matches!(sub, "run" | "start" | "restore")
        {
            hide_proc_sys_net(&mut cmd);
        }
        cmd
    }

    /// Runs `cmd` to completion through the [`Exec`] seam.
    fn output(&self, cmd: &mut Command) -> Result<std::process::Output> {
        self.exec.output(cmd).map_err(|source| RunscError::Spawn {
            bin: self.bin.clone(),
            source,
        })
    }

    /// Runs a short runsc subcommand to completion, returning stdout; a failure
    /// carries runsc's own error line and the log path.
    pub fn call(&self, flags: &GlobalFlags, sub: &str, args: &[&str], id: &str) -> Result<String> {
        let mut cmd = self.command(flags, sub);
        cmd.args(args)
            .arg(id)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = self.output(&mut cmd)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = last_error(&flags.log)
            .or_else(|| {
                stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("exited with {}", out.status));
        Err(RunscError::Failed {
            cmd: sub.to_string(),
            id: id.to_string(),
            msg,
            log: flags.log.clone(),
        })
    }

    /// `runsc state ID`; `None` when runsc does not know the container.
    pub fn state(&self, flags: &GlobalFlags, id: &str) -> Result<Option<ContainerState>> {
        let mut cmd = self.command(flags, "state");
        cmd.arg(id).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = self.output(&mut cmd)?;
        if !out.status.success() {
            return Ok(None);
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| RunscError::Parse {
                cmd: "state".into(),
                msg: e.to_string(),
            })
    }

    /// `runsc kill ID SIG` (`--all`: every process of the container).
    pub fn kill(&self, flags: &GlobalFlags, id: &str, signal: &str, all: bool) -> Result<()> {
        self.kill_with(flags, id, signal, all.then(|| "--all".to_string()))
    }

    /// `runsc kill --pid=PID ID SIGNAL`: one process of the sandbox, by its
    /// pid inside (an exec'd process's `--internal-pid-file`).
    pub fn kill_pid(&self, flags: &GlobalFlags, id: &str, pid: i32, signal: &str) -> Result<()> {
        self.kill_with(flags, id, signal, Some(format!("--pid={pid}")))
    }

    fn kill_with(
        &self,
        flags: &GlobalFlags,
        id: &str,
        signal: &str,
        which: Option<String>,
    ) -> Result<()> {
        let mut cmd = self.command(flags, "kill");
        cmd.args(which).arg(id).arg(signal).stderr(Stdio::piped());
        let out = self.output(&mut cmd)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(RunscError::Failed {
                cmd: "kill".into(),
                id: id.into(),
                msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                log: flags.log.clone(),
            })
        }
    }

    /// `runsc delete --force ID`; succeeds when the container is already gone.
    pub fn delete_force(&self, flags: &GlobalFlags, id: &str) -> Result<()> {
        match self.state(flags, id)? {
            None => Ok(()),
            Some(_) => self.call(flags, "delete", &["--force"], id).map(|_| ()),
        }
    }

    /// Ids of every container under the given runsc root (for `system gc`).
    pub fn list(&self, flags: &GlobalFlags) -> Result<Vec<ContainerState>> {
        let mut cmd = self.command(flags, "list");
        cmd.arg("--format=json").stdout(Stdio::piped());
        let out = self.output(&mut cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() || text.trim() == "null" {
            return Ok(vec![]);
        }
        serde_json::from_str(&text).map_err(|e| RunscError::Parse {
            cmd: "list".into(),
            msg: e.to_string(),
        })
    }

    /// Checks that a platform name is one this runsc offers.
    pub fn check_platform(&self, platform: &str) -> Result<()> {
        if self.features.platforms.iter().any(|p| p == platform) {
            Ok(())
        } else {
            Err(RunscError::Platform(
                platform.to_string(),
                self.features.platforms.join(", "),
            ))
        }
    }
}

/// Runs the command in a new mount namespace (a slave of the host's, so
/// later host mounts and unmounts still reach it, and nothing it mounts
/// leaks back) with an empty tmpfs over /proc/sys/net. See [`Runsc::command`].
fn hide_proc_sys_net(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe syscalls run
    // (unshare, mount), on C strings built before the fork.
    unsafe {
        cmd.pre_exec(|| {
            let root = c"/";
            let target = c"/proc/sys/net";
            let tmpfs = c"tmpfs";
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    tmpfs.as_ptr(),
                    target.as_ptr(),
                    tmpfs.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// SIGKILLs every runsc process (sandbox, gofer) whose `--root` is `root`
/// or inside it: the backstop of a cleanup after an interrupted run.
pub fn kill_under_root(root: &Path) -> Vec<i32> {
    procs::kill_under_root(root, |_| true)
}

/// The live runsc processes whose `--root` is `root` or inside it.
pub fn pids_under_root(root: &Path) -> Vec<i32> {
    procs::under_root(root)
}

/// The runsc this process uses: `GVPOD_RUNSC`, else the first on `$PATH`.
pub fn find_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("GVPOD_RUNSC") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(RunscError::NotFound(p.display().to_string()))
        };
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let cand = dir.join("runsc");
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(RunscError::NotFound("runsc in $PATH".into()))
}

/// The last error-level message of a runsc JSON log (`--log-format=json`),
/// i.e. runsc's own one-line explanation of a failure.
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let level = v.get("level")?.as_str()?;
        if level == "error" || level == "fatal" || level == "warning" {
            v.get("msg")?.as_str().map(str::to_string)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_picks_the_newest_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runsc.log");
        std::fs::write(
            &log,
            "{\"msg\":\"old\",\"level\":\"error\"}\n{\"msg\":\"info\",\"level\":\"info\"}\n{\"msg\":\"starting container: failed to load /bin/x: no such file or directory\",\"level\":\"error\"}\nplain text tail\n",
        )
        .unwrap();
        assert_eq!(
            last_error(&log).as_deref(),
            Some("starting container: failed to load /bin/x: no such file or directory")
        );
        assert_eq!(last_error(&dir.path().join("missing")), None);
    }
}
