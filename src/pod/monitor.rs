//! The per-pod monitor: the same binary re-executed (`gvpod __monitor ID`) in
//! its own session, in the spirit of conmon. It owns the pod's stdio
//! (DESIGN.md fact 6: the sandbox holds runsc's stdio open, so only a process
//! that lives as long as the pod can own it), runs `runsc run` as its child,
//! writes the pod's output as JSON lines, relays it to an attached client,
//! records the exit code and finish time, and removes `--rm` pods.
//!
//! Snapshots: given `--restore DIR` it runs `runsc restore` from the memory
//! image in DIR where it would run `runsc run` (both runsc styles, see
//! `runsc::RestoreLaunch`). When the sandbox exits because the pod was
//! checkpointed (`runsc run` then returns 0), it waits for the checkpoint's
//! outcome (`pod::checkpoint::after_sandbox_exit`) and either records the
//! pod as checkpointed or restores it in place, keeping its log and its
//! attached client: that is how `--leave-running` works on runsc releases
//! whose own `--leave-running` destroys the container, and how a checkpoint
//! that fails after the memory image was written leaves the pod running.
//!
//! The start path (client exec → runsc exec, and runsc's exit → the client's
//! answer) is kept to what must precede runsc or the answer: the pid file
//! is waited for without polling (`watch`), and what can wait — the fsync of
//! a bundle the client wrote without one, the WAL checkpoint that keeps
//! every later `Db::open` short — runs on a thread once the pod has run a
//! while or has exited and its client has the answer ([`housekeeping`]). Every host resource is still recorded before it is
//! made (the runsc container before `spawn` runs runsc).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::proto::{self, FromMonitor, ToMonitor};
use super::relay::{copy_winsize, relay, Client, Output, Stdio3};
use super::{failpoint, Ctx, PodError, Result};
use crate::bundle::PodOptions;
use crate::runsc::GlobalFlags;
use crate::state::ResourceKind;

/// Entry point of `gvpod __monitor`; fd 3 is the socket to the starting client.
pub fn monitor_main(root: &Path, id: &str, restore: Option<&Path>) -> i32 {
    // SAFETY: the client passes the socketpair end as fd 3 and nothing else owns it.
    let sync = unsafe { OwnedFd::from_raw_fd(3) };
    tracing::debug!("step monitor:exec");
    let mut ctx = match Ctx::open(root) {
        Ok(c) => c,
        Err(e) => {
            let _ = proto::send(
                &sync,
                &FromMonitor::Failed {
                    code: e.exit_code(),
                    msg: e.to_string(),
                },
                &[],
            );
            return 1;
        }
    };
    match run(&mut ctx, id, sync, restore.map(Path::to_path_buf)) {
        Ok(()) => 0,
        Err((sync, e)) => {
            if let Some(s) = sync {
                let _ = proto::send(
                    &s,
                    &FromMonitor::Failed {
                        code: e.exit_code(),
                        msg: e.to_string(),
                    },
                    &[],
                );
            }
            // The pod did not start: record it as exited so `ps` tells the truth.
            let _ = ctx.db.set_pod_exited(id, &crate::util::now_rfc3339(), None);
            let _ = ctx.db.monitor_done(id, std::process::id() as i32);
            1
        }
    }
}

type MonResult<T> = std::result::Result<T, (Option<OwnedFd>, PodError)>;

/// What the monitor asks runsc to do.
enum Launch {
    /// `runsc run`: a fresh start.
    Run,
    /// Bring the pod back from the memory image in this directory.
    Restore(PathBuf),
}

fn run(ctx: &mut Ctx, id: &str, sync: OwnedFd, restore: Option<PathBuf>) -> MonResult<()> {
    let pod = match ctx.db.pod(id) {
        Ok(Some(p)) => p,
        Ok(None) => return Err((Some(sync), PodError::NotFound(id.to_string()))),
        Err(e) => return Err((Some(sync), e.into())),
    };
    let flags: GlobalFlags = match ctx.flags_of(&pod) {
        Ok(f) => f,
        Err(e) => return Err((Some(sync), e)),
    };
    let opts: PodOptions = match pod.options() {
        Ok(o) => o.clone(),
        Err(e) => return Err((Some(sync), e.into())),
    };

    // The first message says whether the client stays attached. The socket
    // is kept either way until the start is reported; an attached client
    // keeps it until the exit code is sent.
    let mut client = match proto::recv::<ToMonitor>(&sync) {
        Ok(Some((ToMonitor::Attach { stdin }, mut fds)))
            if fds.len() == if stdin { 3 } else { 2 } =>
        {
            let stderr = fds.pop().expect("checked length");
            let stdout = fds.pop().expect("checked length");
            Some(Client {
                stdin: fds.pop(),
                stdout,
                stderr,
            })
        }
        _ => None,
    };
    let mut sync = Some(sync);
    // Published ports: real listening sockets, held for the pod's life
    // (dropped when this process exits). Taken before runsc starts, so a
    // port grabbed since `create` fails the start with a clear error.
    let _held_ports = match super::network::hold_ports(ctx, id) {
        Ok(h) => h,
        Err(e) => return Err((sync.take(), e)),
    };

    let bundle = ctx.bundle_dir(id);
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ctx.log_path(id))
    {
        Ok(l) => l,
        Err(e) => {
            return Err((
                sync.take(),
                super::io("cannot open log", &ctx.log_path(id))(e),
            ))
        }
    };
    let mut out = Output::new(log, opts.tty);
    let runsc = ctx.runsc_for(&flags).ok();
    let signal = |sig: i32| {
        if let Some(r) = &runsc {
            let _ = r.kill(&flags, id, &sig.to_string(), false);
        }
    };
    let mut launch = match restore {
        Some(d) => Launch::Restore(d),
        None => Launch::Run,
    };
    let mut first = true;
    let mut chores = None;
    let mut checkpointed: Option<String> = None;
    // A temp snapshot directory taken over from a killed gvpod, held until
    // the restore from it has loaded.
    let mut claimed = None;
    let status = loop {
        let launched_at = chrono::Utc::now();
        let has_stdin = client.as_ref().is_some_and(|c| c.stdin.is_some());
        let (mut child, stdio) = match spawn(ctx, id, &flags, &opts, &launch, has_stdin) {
            Ok(x) => x,
            Err(e) if first => return Err((sync.take(), e)),
            Err(e) => {
                // A restore after a checkpoint failed: the pod is gone.
                let line = format!("gvpod: pod {} could not be resumed: {e}", pod.name);
                out.line("stderr", line.as_bytes());
                break None;
            }
        };

        // Started once the pid file appears (after create) or the child exits first.
        let pid = super::watch::wait_pid_file(&bundle.join("pid"), &mut child);
        tracing::debug!("step monitor:pid-file");
        // A restore has a sandbox (and a pid file) before the memory image is
        // loaded; it has started only once runsc records it as running.
        let pid = match (&launch, pid) {
            (Launch::Restore(_), Some(p)) => {
                let running = ctx.runsc_for(&flags).ok().is_some_and(|r| {
                    r.wait_status(
                        &flags,
                        id,
                        |s| s == Some("running"),
                        || matches!(child.try_wait(), Ok(Some(_))),
                    )
                });
                running.then_some(p)
            }
            (_, pid) => pid,
        };
        let me = std::process::id() as i32;
        if let Err(e) = ctx
            .db
            .set_pod_started(id, &crate::util::now_rfc3339(), pid, me)
        {
            tracing::warn!("recording start of {id}: {e}");
        }
        if first {
            if let (Some(s), Some(p)) = (&sync, pid) {
                let _ = proto::send(s, &FromMonitor::Started { pid: p }, &[]);
            }
            if client.is_none() {
                sync = None;
            }
            failpoint::hit("monitor:started");
            if pid.is_some() {
                let durable = (!pod.auto_remove)
                    .then(|| (bundle.clone(), matches!(launch, Launch::Restore(_))));
                chores = Some(housekeeping(ctx.root.clone(), durable));
            }
        }
        first = false;
        if let (Launch::Restore(_), Some(_)) = (&launch, pid) {
            super::checkpoint::after_restore_started(ctx, id, &flags, claimed.take());
        }

        if let Stdio3::Pty { master } = &stdio {
            if let Some(c) = &client {
                copy_winsize(c.stdout.as_raw_fd(), master.as_raw_fd());
            }
        }
        let status = relay(&mut child, stdio, &mut client, &mut sync, &mut out, &signal);
        tracing::debug!("step monitor:relayed");
        out.flush();
        let clean = matches!(status, Some(s) if s.success());
        match super::checkpoint::after_sandbox_exit(ctx, id, &flags, launched_at, clean) {
            super::checkpoint::AfterExit::Exit => break status,
            super::checkpoint::AfterExit::Checkpointed(snap) => {
                checkpointed = Some(snap);
                break status;
            }
            super::checkpoint::AfterExit::Resume { dir, claimed: c } => {
                claimed = c;
                tracing::debug!("step monitor:resume");
                // DESIGN.md fact 4: the sandbox that was checkpointed took the
                // interface's addresses; give them back before the restore.
                if let Err(e) = ctx
                    .db
                    .pod(id)
                    .map_err(PodError::from)
                    .and_then(|p| p.ok_or_else(|| PodError::NotFound(id.to_string())))
                    .and_then(|p| super::network::prepare_start(ctx, &p))
                {
                    tracing::warn!("re-provisioning the network of {id}: {e}");
                }
                launch = Launch::Restore(dir);
            }
        }
    };
    if let (Some(snap), Some(c)) = (&checkpointed, &client) {
        let line = format!(
            "gvpod: pod {} was checkpointed to snapshot {snap} (bring it back with `gvpod restore {snap}`)\n",
            pod.name
        );
        let _ = nix::unistd::write(c.stderr.as_fd(), line.as_bytes());
    }

    let mut code = match status {
        // Stopped by gvpod after its checkpoint (as runsc 20221219 does, 0).
        _ if checkpointed.is_some() => Some(0),
        Some(s) => exit_code_of(s),
        None => None,
    };
    // runsc's own failure, not the pod's exit: reported as docker would.
    if let Some(f) = code.and_then(|c| crate::runsc::OwnFailure::of_exit(c, &flags)) {
        let line = format!("gvpod: runsc: {} ({})", f.msg, f.logs_hint());
        out.line("stderr", line.as_bytes());
        if let Some(c) = &client {
            let _ = nix::unistd::write(c.stderr.as_fd(), format!("{line}\n").as_bytes());
        }
        code = Some(f.exit_code());
    }
    failpoint::hit("monitor:exited");
    if let Err(e) = ctx.db.set_pod_exited(id, &crate::util::now_rfc3339(), code) {
        tracing::warn!("recording exit of {id}: {e}");
    }
    // `runsc run` deletes its container when it returns; only a killed runsc
    // leaves one. A failed restore can leave a created container and its
    // sandbox processes behind.
    if matches!(launch, Launch::Restore(_)) && !matches!(status, Some(s) if s.success()) {
        if let Ok(r) = ctx.runsc_for(&flags) {
            let _ = r.delete_force(&flags, id);
        }
        crate::runsc::reap_leftovers(&flags, id);
    } else if !matches!(status, Some(s) if s.code().is_some()) {
        if let Ok(r) = ctx.runsc_for(&flags) {
            let _ = r.delete_force(&flags, id);
        }
    }
    let _ = ctx.db.remove_resource(ResourceKind::Runsc, id);
    failpoint::hit("monitor:recorded");
    let removed = pod.auto_remove
        && match super::cleanup::remove_pod(ctx, id) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("removing --rm pod {id}: {e}");
                false
            }
        };
    // Last: whoever waits for this pod to be wholly stopped (stop, wait,
    // start, rm) waits for this record to go or for this process to end.
    // (A removed pod's record went with its row.)
    if !removed {
        let _ = ctx.db.monitor_done(id, std::process::id() as i32);
    }
    tracing::debug!("step monitor:done");
    if let Some(s) = &sync {
        let _ = proto::send(s, &FromMonitor::Exited { code }, &[]);
    }
    // A pod that exited at once: its chores start now, after the answer.
    if let Some((done, t)) = chores {
        drop(done);
        let _ = t.join();
    }
    Ok(())
}

/// How long a just-started pod runs before the monitor's chores start: a
/// pod that exits sooner (`run --rm … true`) gets them after its client
/// has its answer, so they never compete with the pod's start and exit
/// for a CPU.
const CHORES_AFTER: Duration = Duration::from_millis(200);

/// What the monitor does off the start path, on a thread of its own, once
/// the pod has run for [`CHORES_AFTER`] or has exited, whichever is first
/// (so neither the client nor the pod waits for it; dropping the returned
/// sender says the pod exited):
/// * with `durable` (bundle, restored) — not for `--rm` pods, whose bundle
///   goes with them — makes the bundle durable: the client that started the
///   pod left the fsync of config.json to the monitor (`create` for `run`,
///   `restore`), and a restore also left its rootfs diff unsynced, so a
///   restored pod's bundle filesystem gets a syncfs. runsc has long read
///   the file; this bounds what a host crash can lose to what it could
///   lose before;
/// * checkpoints the state database's WAL ([`crate::state::Db::checkpoint`]),
///   which keeps the next gvpod process's `Db::open` short.
fn housekeeping(
    root: PathBuf,
    durable: Option<(PathBuf, bool)>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (done, exited) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = exited.recv_timeout(CHORES_AFTER);
        if let Some((bundle, restored)) = durable {
            let config = bundle.join("config.json");
            let res = if restored {
                crate::sys::open_dir(&bundle).and_then(|d| crate::sys::syncfs(d.as_fd()))
            } else {
                File::open(&config).and_then(|f| f.sync_all())
            };
            match res {
                Ok(()) => tracing::debug!("step monitor:durable"),
                Err(e) => tracing::warn!("syncing {}: {e}", config.display()),
            }
        }
        match crate::state::Db::open(&root).and_then(|mut db| db.checkpoint()) {
            Ok((frames, done)) => tracing::debug!("step monitor:checkpointed {done}/{frames}"),
            Err(e) => tracing::debug!("checkpoint of the state database: {e}"),
        }
    });
    (done, t)
}

/// Starts runsc for the pod (`run`, or a restore in this release's style)
/// with the monitor holding the other ends of its stdio.
fn spawn(
    ctx: &mut Ctx,
    id: &str,
    flags: &GlobalFlags,
    opts: &PodOptions,
    launch: &Launch,
    client_stdin: bool,
) -> Result<(Child, Stdio3)> {
    let bundle = ctx.bundle_dir(id);
    // Errors in runsc's JSON log must be from this start only.
    let _ = File::create(&flags.log);
    let runsc = ctx.runsc_for(flags)?;
    let pid_file = bundle.join("pid");
    let _ = std::fs::remove_file(&pid_file);
    let (mut cmd, restore_after_create) = match launch {
        Launch::Run => {
            let mut cmd = runsc.command(flags, "run");
            cmd.arg(format!("--bundle={}", bundle.display()))
                .arg(format!("--pid-file={}", pid_file.display()));
            (cmd, None)
        }
        Launch::Restore(dir) => {
            if opts.tty {
                return Err(PodError::Usage(
                    "a pod with a terminal (-t) cannot be restored".into(),
                ));
            }
            let l = runsc.restore_launch(flags, id, &bundle, &pid_file, dir);
            match l.create {
                // Newer releases: the sandbox gets its stdio from `create`.
                Some(create) => (create, Some(l.restore)),
                None => (l.restore, None),
            }
        }
    };
    // The restore command lines already end with the id.
    let id_arg = matches!(launch, Launch::Run).then_some(id);
    ctx.db.add_resource(id, ResourceKind::Runsc, id)?;
    failpoint::hit("monitor:before-runsc");
    if opts.tty {
        let dir = ctx.pod_run_dir(id);
        std::fs::create_dir_all(&dir).map_err(super::io("cannot create", &dir))?;
        let sock_path = dir.join("console.sock");
        let _ = std::fs::remove_file(&sock_path);
        let listener =
            UnixListener::bind(&sock_path).map_err(super::io("cannot listen on", &sock_path))?;
        cmd.arg(format!("--console-socket={}", sock_path.display()))
            .args(id_arg);
        let child = cmd.spawn().map_err(super::io("cannot run", &runsc.bin))?;
        let master = receive_pty(&listener, &child)?;
        let _ = std::fs::remove_file(&sock_path);
        return Ok((child, Stdio3::Pty { master }));
    }
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| PodError::Monitor(format!("pipe: {e}")))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_mine, stdin_theirs) = if opts.interactive && client_stdin {
        let (r, w) = pipe()?;
        (Some(w), Stdio::from(r))
    } else {
        (None, Stdio::null())
    };
    cmd.args(id_arg)
        .stdin(stdin_theirs)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let mut child = cmd.spawn().map_err(super::io("cannot run", &runsc.bin))?;
    drop(cmd); // closes our copies of the write ends
    if let Some(mut restore) = restore_after_create {
        let st = child
            .wait()
            .map_err(super::io("cannot wait for", &runsc.bin))?;
        if !st.success() {
            let msg = crate::runsc::last_error(&flags.log)
                .unwrap_or_else(|| format!("runsc create exited with {st}"));
            return Err(PodError::Monitor(format!("runsc create {id}: {msg}")));
        }
        child = restore
            .spawn()
            .map_err(super::io("cannot run", &runsc.bin))?;
    }
    Ok((
        child,
        Stdio3::Pipes {
            stdin: stdin_mine,
            stdout: out_r,
            stderr: err_r,
        },
    ))
}

/// Accepts runsc's connection on the console socket and takes the pty master
/// it sends (OCI console-socket protocol), unless runsc exits first.
fn receive_pty(listener: &UnixListener, child: &Child) -> Result<OwnedFd> {
    listener
        .set_nonblocking(true)
        .map_err(|e| PodError::Monitor(format!("console socket: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let pidfd = pidfd_open(child.id() as i32)?;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).ok();
                let (_, mut fds) = recv_any(&conn)?;
                return fds.pop().ok_or_else(|| {
                    PodError::Monitor("runsc sent no terminal on the console socket".into())
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(PodError::Monitor(format!("console socket: {e}"))),
        }
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        if fds[1]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            return Err(PodError::Monitor(
                "runsc exited before it opened the terminal; see its log for why".into(),
            ));
        }
        if Instant::now() > deadline {
            return Err(PodError::Monitor(
                "runsc did not open the terminal within 60s".into(),
            ));
        }
    }
}

/// Receives bytes plus fds on a stream socket (the console socket sends a name and the master).
fn recv_any(conn: &std::os::unix::net::UnixStream) -> Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| PodError::Monitor(format!("console socket: {e}")))?;
    let mut fds = vec![];
    for c in msg
        .cmsgs()
        .map_err(|e| PodError::Monitor(format!("console socket: {e}")))?
    {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: freshly received descriptors.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok((msg.bytes, fds))
}

pub(crate) fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    crate::sys::pidfd_open(pid).map_err(|e| PodError::Monitor(format!("pidfd_open({pid}): {e}")))
}

/// Sleeps until process `pid` exits (a pidfd turns readable) or `slice`
/// passes, whichever is first; without a pidfd, a short sleep.
pub(crate) fn sleep_until_exit(pid: Option<i32>, slice: Duration) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    match pid.and_then(|p| pidfd_open(p).ok()) {
        Some(fd) => {
            let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(
                &mut p,
                PollTimeout::try_from(slice).unwrap_or(PollTimeout::NONE),
            );
        }
        None => std::thread::sleep(slice.min(Duration::from_millis(20))),
    }
}

fn exit_code_of(s: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.code().or_else(|| s.signal().map(|sig| 128 + sig))
}
