//! The monitor's stdio relay (conmon's `ctr_stdio`): pod output to the log
//! writer ([`super::log`]) and an attached client, client input (from the
//! starting client, or one attached later on the attach socket, see
//! `pod::attach`) and control messages (resize, signals) to the pod, until
//! runsc exits.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::super::proto::{self, ToMonitor};
use super::log::Output;
use super::watch::pidfd_open;

/// The client's stdio, passed over the socket.
pub(super) struct Client {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Container-side stdio held by the monitor.
pub(super) enum Stdio3 {
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Pty {
        master: OwnedFd,
    },
}

pub(super) fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; the ioctls only read/write it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The monitor's sockets for clients that come later (`pod::attach`):
/// input to the pod, and control messages (resizes) for a terminal pod.
pub(super) struct Listeners<'a> {
    pub attach: Option<&'a std::os::unix::net::UnixListener>,
    pub ctl: Option<&'a std::os::unix::net::UnixListener>,
}

/// Applies one control message (`ROWS COLS`) read from a new connection on
/// the ctl socket to the pod's terminal.
fn control(ctl: &std::os::unix::net::UnixListener, pty: Option<&OwnedFd>) {
    let Ok((mut c, _)) = ctl.accept() else {
        return;
    };
    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
    let mut msg = [0u8; 32];
    let n = std::io::Read::read(&mut c, &mut msg).unwrap_or(0);
    if let (Some((rows, cols)), Some(p)) = (super::super::attach::parse_size(&msg[..n]), pty) {
        if let Err(e) = crate::sys::set_winsize(p.as_fd(), rows, cols) {
            tracing::debug!("resizing the pod's terminal: {e}");
        }
    }
}

/// Moves bytes until runsc exits: pod output to the log and the client,
/// client input to the pod, control messages from the client.
pub(super) fn relay(
    child: &mut Child,
    stdio: Stdio3,
    client: &mut Option<Client>,
    sync: &mut Option<OwnedFd>,
    listeners: Listeners,
    out: &mut Output,
    signal: &dyn Fn(i32),
) -> Option<std::process::ExitStatus> {
    let Ok(pidfd) = pidfd_open(child.id() as i32) else {
        return child.wait().ok();
    };
    let Listeners { attach, ctl } = listeners;
    // The terminal's master, for resizes.
    let pty = match &stdio {
        Stdio3::Pty { master } => master.try_clone().ok(),
        Stdio3::Pipes { .. } => None,
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
    let mut attached: Option<std::os::unix::net::UnixStream> = None;
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
        // A later client's input: accept one when none feeds the pod.
        let attach_slot = match (&attached, attach) {
            (None, Some(l)) if pod_in.is_some() => {
                pfds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
                Some(pfds.len() - 1)
            }
            _ => None,
        };
        let attached_slot = match &attached {
            Some(a) if pod_in.is_some() => {
                pfds.push(PollFd::new(a.as_fd(), PollFlags::POLLIN));
                Some(pfds.len() - 1)
            }
            _ => None,
        };
        let ctl_slot = match ctl {
            Some(l) if exited.is_none() => {
                pfds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
                Some(pfds.len() - 1)
            }
            _ => None,
        };
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
        if attach_slot.is_some_and(|i| ready[i]) {
            if let Some(Ok((a, _))) = attach.map(|l| l.accept()) {
                attached = Some(a);
            }
        }
        if attached_slot.is_some_and(|i| ready[i]) {
            let n = attached
                .as_ref()
                .map(|a| nix::unistd::read(a.as_raw_fd(), &mut buf));
            match n {
                Some(Ok(n)) if n > 0 => {
                    if let Some(p) = &pod_in {
                        let _ = write_all(p.as_raw_fd(), &buf[..n]);
                    }
                }
                Some(Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN)) => {}
                _ => {
                    attached = None;
                    // EOF on a pipe closes the pod's stdin (StdinOnce); a pty keeps it.
                    if !out.tty {
                        pod_in = None;
                    }
                }
            }
        }
        if let (Some(i), Some(l)) = (ctl_slot, ctl) {
            if ready[i] {
                control(l, pty.as_ref());
            }
        }
        idx += attach_slot.is_some() as usize
            + attached_slot.is_some() as usize
            + ctl_slot.is_some() as usize;
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
