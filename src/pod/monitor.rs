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

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::proto::{self, FromMonitor, ToMonitor};
use super::{failpoint, Ctx, PodError, Result};
use crate::bundle::PodOptions;
use crate::runsc::GlobalFlags;
use crate::state::ResourceKind;

/// Entry point of `gvpod __monitor`; fd 3 is the socket to the starting client.
pub fn monitor_main(root: &Path, id: &str, restore: Option<&Path>) -> i32 {
    // SAFETY: the client passes the socketpair end as fd 3 and nothing else owns it.
    let sync = unsafe { OwnedFd::from_raw_fd(3) };
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

/// The client's stdio, passed over the socket.
struct Client {
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// Container-side stdio held by the monitor.
enum Stdio3 {
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Pty {
        master: OwnedFd,
    },
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
    let opts: PodOptions = serde_json::from_str(&pod.config_json).unwrap_or_default();

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
    let mut checkpointed: Option<String> = None;
    let status = loop {
        let launched_at = crate::util::now_rfc3339();
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
        let pid_file = bundle.join("pid");
        let pid = loop {
            if let Ok(s) = std::fs::read_to_string(&pid_file) {
                if let Ok(p) = s.trim().parse::<i32>() {
                    break Some(p);
                }
            }
            if let Ok(Some(_)) = child.try_wait() {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
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
        }
        first = false;
        if let (Launch::Restore(_), Some(_)) = (&launch, pid) {
            super::checkpoint::after_restore_started(ctx, id, &flags);
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
        match super::checkpoint::after_sandbox_exit(ctx, id, &flags, &launched_at, clean) {
            super::checkpoint::AfterExit::Exit => break status,
            super::checkpoint::AfterExit::Checkpointed(snap) => {
                checkpointed = Some(snap);
                break status;
            }
            super::checkpoint::AfterExit::Resume(dir) => {
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
    // runsc exits 128 when it, not the pod, failed; its JSON log says why.
    if code == Some(128) {
        if let Some(msg) = crate::runsc::last_error(&flags.log) {
            let mapped = if msg.contains("failed to load") && msg.contains("no such file") {
                127
            } else if msg.contains("permission denied") {
                126
            } else {
                125
            };
            let where_ = match &flags.debug_log {
                Some(d) => format!("runsc debug logs: {}", d.display()),
                None => format!(
                    "runsc log: {}; run gvpod with --debug for a full debug log",
                    flags.log.display()
                ),
            };
            let line = format!("gvpod: runsc: {msg} ({where_})");
            out.line("stderr", line.as_bytes());
            if let Some(c) = &client {
                let _ = nix::unistd::write(c.stderr.as_fd(), format!("{line}\n").as_bytes());
            }
            code = Some(mapped);
        }
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
    if pod.auto_remove {
        if let Err(e) = super::cleanup::remove_pod(ctx, id) {
            tracing::warn!("removing --rm pod {id}: {e}");
        }
    }
    // Last: whoever waits for this pod to be wholly stopped (stop, wait,
    // start, rm) waits for this record to go or for this process to end.
    let _ = ctx.db.monitor_done(id, std::process::id() as i32);
    tracing::debug!("step monitor:done");
    if let Some(s) = &sync {
        let _ = proto::send(s, &FromMonitor::Exited { code }, &[]);
    }
    Ok(())
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
    // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(PodError::Monitor(format!(
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
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

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; the ioctls only read/write it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn exit_code_of(s: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.code().or_else(|| s.signal().map(|sig| 128 + sig))
}

/// Moves bytes until runsc exits: pod output to the log and the client,
/// client input to the pod, control messages from the client.
fn relay(
    child: &mut Child,
    stdio: Stdio3,
    client: &mut Option<Client>,
    sync: &mut Option<OwnedFd>,
    out: &mut Output,
    signal: &dyn Fn(i32),
) -> Option<std::process::ExitStatus> {
    let Ok(pidfd) = pidfd_open(child.id() as i32) else {
        return child.wait().ok();
    };
    let (mut pod_in, mut sources): (Option<OwnedFd>, Vec<(OwnedFd, &'static str)>) = match stdio {
        Stdio3::Pipes {
            stdin,
            stdout,
            stderr,
        } => (stdin, vec![(stdout, "stdout"), (stderr, "stderr")]),
        Stdio3::Pty { master } => {
            let dup = master.try_clone().ok();
            (dup, vec![(master, "stdout")])
        }
    };
    let mut exited: Option<std::process::ExitStatus> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if sources.is_empty() && exited.is_some() {
            break;
        }
        if let Some(d) = drain_deadline {
            if Instant::now() > d {
                break;
            }
        }
        let mut pfds: Vec<PollFd> = sources
            .iter()
            .map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let n_src = pfds.len();
        let client_in = client
            .as_ref()
            .and_then(|c| c.stdin.as_ref())
            .filter(|_| pod_in.is_some());
        if let Some(fd) = client_in {
            pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        let has_in = client_in.is_some();
        if let Some(s) = sync.as_ref() {
            pfds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let has_sock = sync.is_some();
        if exited.is_none() {
            pfds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if exited.is_some() {
            PollTimeout::from(50u16)
        } else {
            PollTimeout::NONE
        };
        if let Err(e) = poll(&mut pfds, timeout) {
            if e == nix::errno::Errno::EINTR {
                continue;
            }
            break;
        }
        let ready: Vec<bool> = pfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(pfds);
        // Pod output.
        let mut closed = vec![];
        for (i, (fd, stream)) in sources.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => closed.push(i),
                Ok(n) => {
                    out.write(stream, &buf[..n]);
                    if let Some(c) = client.as_ref() {
                        let target = if *stream == "stderr" {
                            &c.stderr
                        } else {
                            &c.stdout
                        };
                        if write_all(target.as_raw_fd(), &buf[..n]).is_err() {
                            // The client went away; keep logging.
                            *client = None;
                            *sync = None;
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            sources.remove(i);
        }
        let mut idx = n_src;
        // Client input.
        if has_in {
            if ready[idx] {
                let fd = client
                    .as_ref()
                    .and_then(|c| c.stdin.as_ref())
                    .map(|f| f.as_raw_fd());
                if let Some(fd) = fd {
                    match nix::unistd::read(fd, &mut buf) {
                        Ok(0) | Err(_) => {
                            if let Some(c) = client.as_mut() {
                                c.stdin = None;
                            }
                            // EOF on a pipe closes the pod's stdin; a pty keeps it.
                            if !out.tty {
                                pod_in = None;
                            }
                        }
                        Ok(n) => {
                            if let Some(p) = &pod_in {
                                let _ = write_all(p.as_raw_fd(), &buf[..n]);
                            }
                        }
                    }
                }
            }
            idx += 1;
        }
        // Control messages.
        if has_sock {
            if ready[idx] {
                let msg = sync.as_ref().map(proto::recv::<ToMonitor>);
                match msg {
                    Some(Ok(Some((ToMonitor::Resize, _)))) => {
                        if let (Some(c), Some(p)) = (client.as_ref(), pod_in.as_ref()) {
                            copy_winsize(c.stdout.as_raw_fd(), p.as_raw_fd());
                        }
                    }
                    Some(Ok(Some((ToMonitor::Signal(sig), _)))) => signal(sig),
                    Some(Ok(Some(_))) => {}
                    _ => {
                        *client = None;
                        *sync = None;
                    }
                }
            }
            idx += 1;
        }
        if exited.is_none() && ready.get(idx).copied().unwrap_or(false) {
            exited = child.wait().ok();
            tracing::debug!("step monitor:runsc-exited");
            // The sandbox is gone; what is still in the pipes arrives promptly.
            drain_deadline = Some(Instant::now() + Duration::from_millis(500));
            pod_in = None;
        }
    }
    exited.or_else(|| child.wait().ok())
}

fn write_all(fd: RawFd, mut data: &[u8]) -> nix::Result<()> {
    // SAFETY: fd is owned by the caller for the duration of the call.
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    while !data.is_empty() {
        match nix::unistd::write(bfd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The pod log: one JSON object per line, `{"t":…,"stream":…,"line":…}`.
struct Output {
    file: File,
    tty: bool,
    partial: [Vec<u8>; 2],
}

/// Longer lines are split, like docker's 16 KiB log chunks.
const MAX_LINE: usize = 16 * 1024;

impl Output {
    fn new(file: File, tty: bool) -> Self {
        Output {
            file,
            tty,
            partial: [vec![], vec![]],
        }
    }

    fn write(&mut self, stream: &'static str, data: &[u8]) {
        let i = usize::from(stream == "stderr");
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let mut line = &buf[start..start + pos];
            if self.tty && line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            self.line(stream, line);
            start += pos + 1;
        }
        let mut rest = buf[start..].to_vec();
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.line(stream, &rest);
            rest = tail;
        }
        self.partial[i] = rest;
    }

    fn line(&mut self, stream: &str, line: &[u8]) {
        let rec = serde_json::json!({
            "t": crate::util::now_rfc3339(),
            "stream": stream,
            "line": String::from_utf8_lossy(line),
        });
        let mut s = rec.to_string();
        s.push('\n');
        let _ = self.file.write_all(s.as_bytes());
    }

    fn flush(&mut self) {
        for (i, stream) in ["stdout", "stderr"].iter().enumerate() {
            if !self.partial[i].is_empty() {
                let p = std::mem::take(&mut self.partial[i]);
                self.line(stream, &p);
            }
        }
    }
}
