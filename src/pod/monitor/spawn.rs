//! Starting runsc for a pod with the monitor holding the other ends of its
//! stdio: pipes, or a terminal received over the OCI console socket.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::super::{failpoint, io, Ctx, PodError, Result};
use super::stdio::Stdio3;
use super::watch::pidfd_open;
use super::Launch;
use crate::bundle::PodOptions;
use crate::runsc::GlobalFlags;
use crate::state::ResourceKind;

/// Starts runsc for the pod (`run`, or a restore in this release's style)
/// with the monitor holding the other ends of its stdio.
pub(super) fn spawn(
    ctx: &mut Ctx,
    id: &str,
    flags: &GlobalFlags,
    opts: &PodOptions,
    launch: &Launch,
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
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        let sock_path = dir.join("console.sock");
        let _ = std::fs::remove_file(&sock_path);
        let listener =
            UnixListener::bind(&sock_path).map_err(io("cannot listen on", &sock_path))?;
        cmd.arg(format!("--console-socket={}", sock_path.display()))
            .args(id_arg);
        let child = cmd.spawn().map_err(io("cannot run", &runsc.bin))?;
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
    // An interactive pod's stdin is held open even with no client to feed
    // it yet: one may attach later (`pod::attach`).
    let (stdin_mine, stdin_theirs) = if opts.interactive {
        let (r, w) = pipe()?;
        (Some(w), Stdio::from(r))
    } else {
        (None, Stdio::null())
    };
    cmd.args(id_arg)
        .stdin(stdin_theirs)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let mut child = cmd.spawn().map_err(io("cannot run", &runsc.bin))?;
    drop(cmd); // closes our copies of the write ends
    if let Some(mut restore) = restore_after_create {
        let st = child.wait().map_err(io("cannot wait for", &runsc.bin))?;
        if !st.success() {
            let msg = crate::runsc::last_error(&flags.log)
                .unwrap_or_else(|| format!("runsc create exited with {st}"));
            return Err(PodError::Monitor(format!("runsc create {id}: {msg}")));
        }
        child = restore.spawn().map_err(io("cannot run", &runsc.bin))?;
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
