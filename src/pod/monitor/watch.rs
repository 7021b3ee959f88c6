//! Waiting without polling: for runsc's pid file ([`wait_pid_file`]) and for
//! a process to exit ([`sleep_until_exit`], on a pidfd).
//!
//! The monitor learns that the sandbox exists when runsc writes `--pid-file`
//! (after `create`, or after the sandbox of a restore is made). It used to
//! look every millisecond for the whole of `runsc run` (~140 ms): ~140
//! wake-ups that competed with runsc for one of the test VM's two cores.
//! Now it sleeps in one `poll` on an inotify watch of the bundle directory
//! (runsc creates, writes and closes the file there: IN_CLOSE_WRITE, or
//! IN_MOVED_TO for a rename) and on a pidfd of the runsc child (it may exit
//! before it writes the file). Invariants:
//! * the file is read once after the watch is in place, so a pid file
//!   written before the watch existed is not missed;
//! * the poll also times out every [`RECHECK`], so a missed event (another
//!   filesystem, an inotify limit) costs at most that much, never a hang;
//! * the watch ([`DirWatch`], shared with `Runsc::wait_status`) is closed on
//!   a background thread: an inotify close waits for an SRCU grace period.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use std::os::fd::OwnedFd;

use super::super::{PodError, Result};
use crate::util::DirWatch;

/// Safety net for a missed inotify event.
const RECHECK: Duration = Duration::from_millis(100);

/// The pid runsc wrote to `pid_file`, or `None` when `child` (runsc)
/// exited first.
pub(crate) fn wait_pid_file(pid_file: &Path, child: &mut Child) -> Option<i32> {
    let dir = pid_file.parent().unwrap_or(Path::new("."));
    // Without inotify a wait is a 1 ms sleep, as the old poll was.
    let watch = DirWatch::new(dir, false, Duration::from_millis(1));
    let pidfd = pidfd_open(child.id() as i32).ok();
    // Without a pidfd (old kernel, fd limit) runsc's exit wakes nobody: short slices.
    let slice = if pidfd.is_some() {
        RECHECK
    } else {
        Duration::from_millis(1)
    };
    loop {
        if let Some(p) = read_pid(pid_file) {
            return Some(p);
        }
        if let Ok(Some(_)) = child.try_wait() {
            // A pid file written just before runsc exited still counts.
            return read_pid(pid_file);
        }
        let also: Vec<_> = pidfd.iter().map(|p| p.as_fd()).collect();
        watch.wait(&also, slice);
    }
}

fn read_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
}

/// A pidfd of process `pid` (see `sys::pidfd_open`).
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
