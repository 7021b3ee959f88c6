//! `start`: hand a created (or exited) pod to a fresh monitor process and,
//! for a foreground pod, stay attached until it exits.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::proto::{self, FromMonitor, ToMonitor};
use super::{failpoint, Ctx, PodError, Result};
use crate::bundle::RootfsPaths;
use crate::state::{PodRow, PodStatus};
use crate::sys::Spawned;

/// How the caller wants to follow the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Return once the pod runs (`-d`, `start`).
    Detached,
    /// Stream the pod's output (and stdin with `stdin`) until it exits.
    Foreground { stdin: bool, tty: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started { pid: i32 },
    Exited { code: Option<i32> },
}

pub fn start(ctx: &mut Ctx, pod: &PodRow, attach: Attach) -> Result<StartOutcome> {
    start_with(ctx, pod, attach, None, None)
}

/// A monitor started before its pod exists (`run`, and `restore --name`,
/// whose clone is a new pod): its exec and its own `Ctx::open` (3-4 ms of
/// a start) overlap the client's create instead of following it. It waits
/// for [`ToMonitor::Go`], sent once the pod's row and bundle exist; dropped
/// without it (the create failed, the client was killed), it reads end of
/// file and exits without touching the data root.
pub struct EarlyMonitor {
    /// Both `Some` until [`EarlyMonitor::take`] hands them to the start.
    child: Option<Spawned>,
    sock: Option<OwnedFd>,
    id: String,
}

impl EarlyMonitor {
    /// Starts the monitor of a pod about to be created in data root `root`,
    /// under a fresh pod id ([`EarlyMonitor::id`]); none when it cannot
    /// start (the start then makes one as `start` does).
    pub fn spawn(root: &std::path::Path) -> Option<EarlyMonitor> {
        // The monitor's command line names the root as `Ctx` does (`orphans`).
        let root = std::fs::canonicalize(root).ok()?;
        let id = super::id::new_id();
        match spawn_monitor(&root, &id, MonitorLaunch::Early, None) {
            Ok((child, sock)) => Some(EarlyMonitor {
                child: Some(child),
                sock: Some(sock),
                id,
            }),
            Err(e) => {
                tracing::debug!("no early monitor: {e}");
                None
            }
        }
    }

    /// The id of the pod this monitor is for.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn take(mut self) -> Option<(Spawned, OwnedFd)> {
        self.child.take().zip(self.sock.take())
    }
}

impl Drop for EarlyMonitor {
    fn drop(&mut self) {
        // Unused: closing the socket tells it to exit; a long-lived caller
        // (the API service) must reap it, or it stays a zombie.
        drop(self.sock.take());
        if let Some(mut child) = self.child.take() {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

/// [`start`], or with `restore` the memory image directory to bring the
/// pod back from (`runsc restore` instead of `runsc run`); with `early` the
/// monitor [`EarlyMonitor::spawn`] started for this pod.
pub(crate) fn start_with(
    ctx: &mut Ctx,
    pod: &PodRow,
    attach: Attach,
    restore: Option<&std::path::Path>,
    early: Option<EarlyMonitor>,
) -> Result<StartOutcome> {
    // Until the monitor reports, an `rm` of this pod waits (`lock`); one
    // that came first has removed the row.
    let lock = super::lock::lock(ctx, &pod.id);
    let pod = match ctx.db.pod(&pod.id)? {
        Some(p) => ctx.refresh(p)?,
        None => return Err(PodError::NotFound(pod.name.clone())),
    };
    if !pod.status.can_start() {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "stop it first or use `gvpod exec`",
        });
    }
    if pod.status == PodStatus::Exited {
        // A restart: the last run's monitor may still be finishing.
        if !super::await_monitor(&pod) {
            return Err(PodError::Monitor(format!(
                "the last monitor of pod {} did not finish; see {}",
                pod.name,
                ctx.bundle_dir(&pod.id).join("monitor.log").display()
            )));
        }
        // Clear what a killed runsc may have left, remount after a reboot.
        let flags = ctx.flags_of(&pod)?;
        let runsc = ctx.runsc_for(&flags)?;
        if runsc.has_state(&flags, &pod.id) {
            runsc.delete_force(&flags, &pod.id)?;
        }
        let paths = RootfsPaths::new(&ctx.bundle_dir(&pod.id));
        if !is_mountpoint(&paths.merged) {
            let image = ctx.images.resolve(&ctx.db, &pod.image_id)?;
            super::provision::mount_overlay(ctx, &pod, &image.layers, &paths)?;
        }
    }
    // DESIGN.md fact 4: a previous sandbox stripped the addresses; after a
    // reboot the namespace itself is gone.
    super::network::prepare_start(ctx, &pod)?;
    if let Attach::Foreground {
        stdin: true,
        tty: true,
    } = attach
    {
        if !nix::unistd::isatty(std::io::stdin().as_raw_fd()).unwrap_or(false) {
            return Err(PodError::Usage(
                "the input device is not a TTY: drop -t, or run gvpod in a terminal".into(),
            ));
        }
    }

    // A start by the user: the restart count and an earlier stop are forgotten.
    ctx.db.set_pod_start_by_user(&pod.id)?;
    let monitor_log = ctx.bundle_dir(&pod.id).join("monitor.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&monitor_log)
        .map_err(super::io("cannot open", &monitor_log))?;
    let early = early
        .filter(|e| e.id == pod.id)
        .and_then(EarlyMonitor::take);
    let (mut child, mine) = match early {
        Some((child, sock)) => {
            // The pod exists now: the monitor takes its log as stderr and goes on.
            let go = ToMonitor::Go {
                restore: restore.map(std::path::Path::to_path_buf),
            };
            if let Err(err) = proto::send(&sock, &go, &[log.as_raw_fd()]) {
                // It failed on its own (it said why) or died.
                return Err(match proto::recv::<FromMonitor>(&sock) {
                    Ok(Some((FromMonitor::Failed { code, msg }, _))) => monitor_error(code, msg),
                    _ => PodError::Monitor(format!(
                        "the monitor of pod {} exited before the pod was made ({err})",
                        pod.name
                    )),
                });
            }
            (child, sock)
        }
        None => {
            let launch = restore.map_or(MonitorLaunch::Start, MonitorLaunch::Restore);
            spawn_monitor(&ctx.root, &pod.id, launch, Some(&log))?
        }
    };
    ctx.db.set_pod_monitor(&pod.id, child.id() as i32)?;
    failpoint::hit("start:spawned");

    let monitor_died = || {
        PodError::Monitor(format!(
            "the monitor of pod {} exited before reporting; see {}",
            pod.name,
            monitor_log.display()
        ))
    };
    match attach {
        Attach::Detached => {
            proto::send(&mine, &ToMonitor::Detach, &[]).map_err(|_| monitor_died())?;
            let outcome = match proto::recv::<FromMonitor>(&mine) {
                Ok(Some((FromMonitor::Started { pid }, _))) => Ok(StartOutcome::Started { pid }),
                Ok(Some((FromMonitor::Failed { code, msg }, _))) => Err(monitor_error(code, msg)),
                Ok(Some((FromMonitor::Exited { code }, _))) => Ok(StartOutcome::Exited { code }),
                _ => {
                    // Exited before the pid file appeared: the monitor recorded why.
                    let _ = child.wait();
                    let row = ctx.db.pod(&pod.id)?;
                    match row {
                        Some(r) if r.status == PodStatus::Exited => {
                            Ok(StartOutcome::Exited { code: r.exit_code })
                        }
                        _ => Err(monitor_died()),
                    }
                }
            };
            // A long-lived caller (the API service) must reap the monitor
            // when it ends, or it stays a zombie until the caller exits; a
            // CLI process exits first and init reaps it.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            drop(lock);
            outcome
        }
        Attach::Foreground { stdin, tty } => {
            // The monitor has finished its work when it reports the exit; it
            // is not waited for (init reaps it once we are gone).
            let out = foreground(&mine, stdin, tty, lock);
            tracing::debug!("step start:ended");
            match out? {
                Some(FromMonitor::Exited { code }) => Ok(StartOutcome::Exited { code }),
                Some(FromMonitor::Failed { code, msg }) => Err(monitor_error(code, msg)),
                _ => Err(monitor_died()),
            }
        }
    }
}

/// Starts `gvpod __monitor ID` (`--early` for [`EarlyMonitor::spawn`]'s,
/// `--restore=DIR` to bring the pod back from a memory image) in its own
/// session, with fd 3 its end of the socket pair and `log` its stderr
/// (/dev/null for an early monitor until [`ToMonitor::Go`] brings the
/// log); returns it and our end. It does not wait for the monitor's exec
/// (`sys::spawn_session`): an exec that fails is end of file on the
/// socket, handled as a monitor that died. So that the common cause (the
/// binary replaced or removed since this process started) still gets its
/// own clear error, the binary is checked first.
fn spawn_monitor(
    root: &std::path::Path,
    id: &str,
    launch: MonitorLaunch<'_>,
    log: Option<&std::fs::File>,
) -> Result<(Spawned, OwnedFd)> {
    use std::os::unix::ffi::OsStrExt;
    let (mine, theirs) =
        proto::pair().map_err(|e| PodError::Monitor(format!("socketpair: {e}")))?;
    let exe = own_binary()?;
    if let Err(e) = std::fs::metadata(&exe) {
        return Err(PodError::Monitor(format!(
            "cannot start the monitor: {}: {e} (was gvpod replaced or removed while it ran? run the command again)",
            exe.display()
        )));
    }
    let last = match launch {
        MonitorLaunch::Early => Some("--early".to_string()),
        MonitorLaunch::Start => None,
        MonitorLaunch::Restore(d) => Some(format!("--restore={}", d.display())),
    };
    let argv = [
        exe.as_os_str().as_bytes(),
        b"--root",
        root.as_os_str().as_bytes(),
        b"__monitor",
        id.as_bytes(),
    ]
    .into_iter()
    .chain(last.as_deref().map(str::as_bytes))
    .map(std::ffi::CString::new)
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|_| {
        PodError::Monitor(format!(
            "a NUL byte in the monitor's command line ({})",
            root.display()
        ))
    })?;
    let child = crate::sys::spawn_session(&argv, theirs.as_fd(), log.map(|l| l.as_fd()))
        .map_err(|e| PodError::Monitor(format!("cannot start the monitor: {e}")))?;
    Ok((child, mine))
}

/// What a monitor is started for ([`spawn_monitor`]).
#[derive(Clone, Copy)]
enum MonitorLaunch<'a> {
    /// Before its pod exists ([`EarlyMonitor`]).
    Early,
    /// `runsc run` of an existing pod.
    Start,
    /// `runsc restore` from the memory image in this directory.
    Restore(&'a std::path::Path),
}

fn own_binary() -> Result<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| PodError::Monitor(format!("cannot find own binary: {e}")))
}

fn monitor_error(code: i32, msg: String) -> PodError {
    if code == 2 {
        PodError::Usage(msg)
    } else {
        PodError::Monitor(msg)
    }
}

/// Passes our stdio to the monitor and waits for the pod's exit, forwarding
/// terminal resizes and signals (docker's sig-proxy); the pod's lock is let
/// go once the monitor reports the start.
fn foreground(
    sock: &std::os::fd::OwnedFd,
    stdin: bool,
    tty: bool,
    lock: super::lock::PodLock,
) -> Result<Option<FromMonitor>> {
    let mut lock = Some(lock);
    let fds: Vec<i32> = if stdin { vec![0, 1, 2] } else { vec![1, 2] };
    proto::send(sock, &ToMonitor::Attach { stdin }, &fds)
        .map_err(|e| PodError::Monitor(format!("attach: {e}")))?;
    let _raw = if tty {
        crate::util::RawMode::enter()
    } else {
        None
    };
    let mask = crate::util::block_forwarded_signals();
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).ok();
    loop {
        let mut pfds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if let Some(s) = &sfd {
            pfds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut pfds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(PodError::Monitor(format!("poll: {e}"))),
            Ok(_) => {}
        }
        let sig_ready = pfds
            .get(1)
            .and_then(|p| p.revents())
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let sock_ready = pfds[0].revents().is_some_and(|r| !r.is_empty());
        drop(pfds);
        if sig_ready {
            if let Some(Ok(Some(info))) = sfd.as_ref().map(|s| s.read_signal()) {
                let msg = if info.ssi_signo == Signal::SIGWINCH as u32 {
                    ToMonitor::Resize
                } else {
                    ToMonitor::Signal(info.ssi_signo as i32)
                };
                let _ = proto::send(sock, &msg, &[]);
            }
        }
        if sock_ready {
            match proto::recv::<FromMonitor>(sock) {
                Ok(Some((FromMonitor::Started { .. }, _))) => drop(lock.take()),
                Ok(Some((m, _))) => return Ok(Some(m)),
                _ => return Ok(None),
            }
        }
    }
}

/// A directory is a mount point when it sits on another device than its parent.
pub(crate) fn is_mountpoint(p: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}
