//! `exec`: run another process in a running pod through `runsc exec`.
//!
//! The caller chooses the process's stdio ([`ExecStdio`]): gvpod's own
//! (the CLI; with `-t` the sentry drives the caller's terminal directly),
//! or descriptors it hands over — pipe ends, or the slave side of a pty it
//! allocated (`sys::openpty`), as the API's exec does. [`exec_spawn`]
//! starts the process and returns at once; [`ExecProcess::wait`] gives its
//! exit code (runsc passes the process's own on). Invariants: the process
//! file written for runsc is removed once runsc has ended; descriptors
//! handed over are closed in this process once runsc holds them, so the
//! caller sees EOF (EIO on a pty master) when the process and runsc end.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Ctx, PodError, Result};
use crate::bundle::{self, ProcessSpec};
use crate::runsc::GlobalFlags;
use crate::state::PodRow;

pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub interactive: bool,
    pub tty: bool,
}

/// Where an exec'd process's stdio comes from.
pub enum ExecStdio {
    /// gvpod's own stdio (what the CLI does): stdin only when interactive
    /// or with a terminal (which must then be gvpod's stdin).
    Inherit,
    /// Descriptors the caller hands over: pipe ends, or with `tty` the
    /// slave side of a pty three times. No stdin: `/dev/null`.
    Fds {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// A started `runsc exec`.
pub struct ExecProcess {
    child: Child,
    file: PathBuf,
    /// Where runsc writes the process's pid inside the sandbox.
    pid_file: PathBuf,
    id: String,
    flags: GlobalFlags,
    bin: PathBuf,
    pod_name: String,
    /// Copiers from pipes to gvpod's own stdout/stderr (see [`ExecStdio::Inherit`]).
    copiers: Vec<JoinHandle<std::io::Result<u64>>>,
}

impl ExecProcess {
    /// The host pid of the `runsc exec` process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What signals the process inside the sandbox (a signal to `runsc
    /// exec` itself is not always passed on).
    pub fn killer(&self) -> ExecKiller {
        ExecKiller {
            bin: self.bin.clone(),
            flags: self.flags.clone(),
            id: self.id.clone(),
            pid_file: self.pid_file.clone(),
        }
    }

    /// Waits for the process; its exit code (128+N when killed by signal
    /// N), or runsc's own failure.
    pub fn wait(mut self) -> Result<i32> {
        let status = self.child.wait();
        for t in self.copiers.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.pid_file);
        let status = status.map_err(super::io("cannot run", &self.bin))?;
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        if let Some(f) = crate::runsc::OwnFailure::of_exit(code, &self.flags) {
            return Err(f.into_error("exec", &self.pod_name).into());
        }
        Ok(code)
    }
}

/// Signals an exec'd process inside its sandbox ([`ExecProcess::killer`]).
#[derive(Debug, Clone)]
pub struct ExecKiller {
    bin: PathBuf,
    flags: GlobalFlags,
    id: String,
    pid_file: PathBuf,
}

impl ExecKiller {
    /// `runsc kill --pid`; false when the process is not known (yet) or gone.
    pub fn signal(&self, ctx: &Ctx, signal: &str) -> bool {
        let Some(pid) = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        else {
            return false;
        };
        let Ok(runsc) = ctx.runsc_for(&self.flags) else {
            return false;
        };
        debug_assert_eq!(runsc.bin, self.bin);
        runsc.kill_pid(&self.flags, &self.id, pid, signal).is_ok()
    }
}

/// How long a failed exec waits for a sandbox whose kill is under way to
/// stop reading "running" (runsc's state lags the kill by tens of ms).
const SETTLE: Duration = Duration::from_millis(600);

/// Runs the command with gvpod's own stdio and returns its exit code.
pub fn exec(ctx: &mut Ctx, pod: &PodRow, req: ExecRequest) -> Result<i32> {
    let res = exec_spawn(ctx, pod, req, ExecStdio::Inherit)?.wait();
    // runsc fails (or reports 128) when the sandbox goes away under it: a
    // `stop` or `rm -f` meanwhile is said as such, not as runsc saw it.
    if matches!(res, Err(_) | Ok(128)) {
        // A process may exit 128 itself: asked once, with no wait for it.
        let settle = if res.is_err() { SETTLE } else { Duration::ZERO };
        if ended_meanwhile(ctx, pod, settle)? {
            return Err(PodError::EndedDuringExec(pod.name.clone()));
        }
    }
    res
}

/// Whether the pod stopped or went away while an exec in it failed. Not a
/// guess from runsc's words, which race in more ways than one can list
/// ("container ... has stopped", on 20240729 "connecting to control
/// server", once in CI "out of memory"): an `rm` holds the pod's lock for
/// its whole removal ([`super::lock`]), so waiting for the lock and reading
/// the row again tells a removal for certain; a stop shows as runsc's state leaving
/// "running", which lags the kill, so it is read again for up to `settle`
/// ([`SETTLE`] when runsc itself failed). Only failed execs pay that wait,
/// and only in a pod that is still running.
fn ended_meanwhile(ctx: &mut Ctx, pod: &PodRow, settle: Duration) -> Result<bool> {
    drop(super::lock::lock(ctx, &pod.id));
    let Some(p) = ctx.db.pod(&pod.id)? else {
        // The `rm` may have removed the pod's run directory before
        // `exec_spawn` made it again (`system gc` sweeps it too).
        let _ = std::fs::remove_dir(ctx.pod_run_dir(&pod.id));
        return Ok(true);
    };
    let flags = ctx.flags_of(&p)?;
    let runsc = ctx.runsc_for(&flags)?;
    let deadline = std::time::Instant::now() + settle;
    loop {
        // runsc itself, not the row (the monitor records the end later).
        let state = runsc.state(&flags, &p.id).ok().flatten();
        if state.is_none_or(|s| s.status != "running") {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the command with the stdio given; see [`ExecProcess`].
pub fn exec_spawn(
    ctx: &mut Ctx,
    pod: &PodRow,
    req: ExecRequest,
    stdio: ExecStdio,
) -> Result<ExecProcess> {
    let pod = ctx.refresh(pod.clone())?;
    if pod.restarting() {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: "restarting",
            hint: "wait until its restart policy has started it again, or stop it",
        });
    }
    if !pod.status.can_exec() {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "start it first (`gvpod start`)",
        });
    }
    if req.cmd.is_empty() {
        return Err(PodError::Usage(
            "exec needs a command after the pod name".into(),
        ));
    }
    // With a terminal, the sentry drives the caller's stdin as the pod's tty,
    // so stdin must be that terminal (with or without -i).
    if matches!(stdio, ExecStdio::Inherit)
        && req.tty
        && !nix::unistd::isatty(std::io::stdin().as_raw_fd()).unwrap_or(false)
    {
        return Err(PodError::Usage(
            "the input device is not a TTY: drop -t, or run gvpod in a terminal".into(),
        ));
    }
    let bundle_dir = ctx.bundle_dir(&pod.id);
    let rootfs = bundle_dir.join("rootfs");
    let main: &ProcessSpec = pod
        .main_process()?
        .ok_or_else(|| PodError::Monitor(format!("pod {} has no recorded process", pod.name)))?;
    for e in &req.env {
        bundle::check_env(e)?;
    }
    let env = bundle::merge_env(&main.env, &req.env, req.tty, None);
    let (uid, gid, additional_gids) = match &req.user {
        Some(u) => {
            let r = bundle::resolve_user(&rootfs, u)?;
            (r.uid, r.gid, r.additional_gids)
        }
        None => (main.uid, main.gid, main.additional_gids.clone()),
    };
    let cwd = req.workdir.clone().unwrap_or_else(|| main.cwd.clone());
    super::check_command(&rootfs, &req.cmd[0], &env, &cwd, &pod.image_ref)?;
    let process = bundle::exec_process(&ProcessSpec {
        args: req.cmd.clone(),
        env,
        cwd,
        uid,
        gid,
        additional_gids,
        terminal: req.tty,
    })?;
    let dir = ctx.pod_run_dir(&pod.id);
    std::fs::create_dir_all(&dir).map_err(super::io("cannot create", &dir))?;
    let tag = crate::util::random_hex(6);
    let file = dir.join(format!("exec-{tag}.json"));
    let pid_file = dir.join(format!("exec-{tag}.pid"));
    let data = serde_json::to_vec(&process).expect("a process spec serialises");
    crate::util::write_atomic(&file, &data).map_err(super::io("cannot write", &file))?;
    let flags = ctx.flags_of(&pod)?;
    let runsc = ctx.runsc_for(&flags)?;
    let mut cmd = runsc.command(&flags, "exec");
    cmd.arg(format!("--process={}", file.display()))
        .arg(format!("--internal-pid-file={}", pid_file.display()))
        .arg(&pod.id);
    let mut copiers = vec![];
    match stdio {
        ExecStdio::Inherit => {
            // The sentry writes a donated regular file at its own offset
            // (clobbering what the caller already wrote there), so files get
            // a pipe in between.
            let (out_file, err_file) = (
                is_regular_file(&std::io::stdout()),
                is_regular_file(&std::io::stderr()),
            );
            cmd.stdin(if req.interactive || req.tty {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stdout(if out_file {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .stderr(if err_file {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        }
        ExecStdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            cmd.stdin(stdin.map(Stdio::from).unwrap_or_else(Stdio::null))
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr));
        }
    }
    let spawned = cmd.spawn();
    // The descriptors handed over are closed here with the command.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            return Err(super::io("cannot run", &runsc.bin)(e));
        }
    };
    if let Some(mut r) = child.stdout.take() {
        copiers.push(std::thread::spawn(move || {
            std::io::copy(&mut r, &mut std::io::stdout())
        }));
    }
    if let Some(mut r) = child.stderr.take() {
        copiers.push(std::thread::spawn(move || {
            std::io::copy(&mut r, &mut std::io::stderr())
        }));
    }
    Ok(ExecProcess {
        child,
        file,
        pid_file,
        id: pod.id.clone(),
        flags,
        bin: runsc.bin.clone(),
        pod_name: pod.name.clone(),
        copiers,
    })
}

fn is_regular_file(fd: &impl std::os::fd::AsFd) -> bool {
    crate::sys::fstat(fd.as_fd()).is_ok_and(|st| (st.st_mode & libc::S_IFMT) == libc::S_IFREG)
}
