//! Waiting for runsc's pid file without polling.
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
//! * the inotify instance is closed on a background thread: its close waits
//!   for an SRCU grace period (10-30 ms measured), see
//!   [`crate::util::drop_in_background`].

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Safety net for a missed inotify event.
const RECHECK: Duration = Duration::from_millis(100);

/// The pid runsc wrote to `pid_file`, or `None` when `child` (runsc)
/// exited first.
pub(super) fn wait_pid_file(pid_file: &Path, child: &mut Child) -> Option<i32> {
    let watch = pid_file.parent().and_then(|dir| {
        let i = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        i.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
        )
        .ok()?;
        Some(i)
    });
    let pidfd = super::monitor::pidfd_open(child.id() as i32).ok();
    // Without a watch or a pidfd (old kernel, fd limit): a short poll.
    let slice = if watch.is_some() && pidfd.is_some() {
        RECHECK
    } else {
        Duration::from_millis(1)
    };
    let pid = loop {
        if let Some(p) = read_pid(pid_file) {
            break Some(p);
        }
        if let Ok(Some(_)) = child.try_wait() {
            // A pid file written just before runsc exited still counts.
            break read_pid(pid_file);
        }
        let mut fds: Vec<PollFd> = watch
            .iter()
            .map(|i| PollFd::new(i.as_fd(), PollFlags::POLLIN))
            .chain(
                pidfd
                    .iter()
                    .map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN)),
            )
            .collect();
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(slice).unwrap_or(PollTimeout::NONE),
        );
        if let Some(i) = &watch {
            // Drain; what matters is the file, read again above.
            let _ = i.read_events();
        }
    };
    if let Some(w) = watch {
        crate::util::drop_in_background(w);
    }
    pid
}

fn read_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
}
