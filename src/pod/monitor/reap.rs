//! The monitor as its runsc tree's reaper.
//!
//! runsc re-executes itself (`/proc/self/exe`, so the kernel names those
//! processes `exe`) for the gofer, the sandbox and short helpers. When the
//! runsc process that started them exits first, as `runsc restore` does
//! once a restored pod is killed, they are orphaned and, without a
//! subreaper, handed to the host's PID 1. `runsc delete` then waits until
//! the gofer is gone, testing it with `kill(pid, 0)`, which a zombie still
//! passes: on a host whose PID 1 reaps lazily (a container's init, this
//! project's test VM, whose init reaps every few seconds) every `rm -f` of
//! a restored pod waited out runsc's one-second deadline (1.4-1.9 s
//! measured, against 0.2 s for a pod that was run).
//!
//! So the monitor declares itself a child subreaper (as conmon does) and
//! reaps the zombies it adopts before it asks runsc to delete. Invariants:
//! * only adopted zombies named `exe` are reaped: every other child of the
//!   monitor is a [`std::process::Command`] whose owner waits for it (a
//!   `waitpid(-1)` here could steal its exit status); the runsc processes
//!   the monitor itself starts are named `runsc`, never `exe`;
//! * a zombie is reaped with `WNOHANG` on its own pid, so a pid that is not
//!   (or no longer) a zombie child is left alone;
//! * adopted processes that are not zombies yet are not waited for: they
//!   are reaped at a later call, or by PID 1 once the monitor exits;
//! * only this process's children are read (`/proc/self/task/*/children`,
//!   a few entries), never the whole of /proc: a scan of every process
//!   cost about 1 ms of each pod's exit path.

use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Makes this process the reaper of its orphaned descendants; a failure
/// (an old kernel) only means orphans go to PID 1 as before.
pub(super) fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::debug!("PR_SET_CHILD_SUBREAPER: {e}");
    }
}

/// `(ppid, state, comm)` from the text of `/proc/PID/stat`; comm is in
/// parentheses and may itself hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(i32, char, &str)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, state, comm))
}

/// This process's children: each thread's `children` file lists the
/// children it is the parent of (an adopted orphan's parent is one of the
/// subreaper's threads). A kernel without those files
/// (CONFIG_PROC_CHILDREN) gets every pid, filtered by parent afterwards.
fn children() -> Vec<i32> {
    let pids_in = |dir: &str| -> Vec<i32> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut pids = Vec::new();
    for tid in pids_in("/proc/self/task") {
        match std::fs::read_to_string(format!("/proc/self/task/{tid}/children")) {
            Ok(s) => pids.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return pids_in("/proc"),
            Err(_) => {} // the thread ended meanwhile
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Reaps this process's zombie children named `exe` (runsc's adopted
/// helpers, see the module docs); returns their pids.
pub(super) fn reap_adopted() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut reaped = Vec::new();
    for pid in children() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if parse_stat(&stat)
            .is_some_and(|(ppid, state, comm)| ppid == me && state == 'Z' && comm == "exe")
            && waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))
                .is_ok_and(|s| s.pid().is_some())
        {
            reaped.push(pid);
        }
    }
    if !reaped.is_empty() {
        tracing::debug!("reaped adopted runsc processes {reaped:?}");
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_odd_names() {
        assert_eq!(
            parse_stat("4242 (exe) Z 17 4242 4242 0 -1"),
            Some((17, 'Z', "exe"))
        );
        assert_eq!(
            parse_stat("7 (a (b) c) S 1 7 7 0"),
            Some((1, 'S', "a (b) c"))
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) Z notanumber"), None);
    }

    #[test]
    fn an_adopted_zombie_named_exe_is_reaped_and_nothing_else() {
        // A child that forks a grandchild named `exe` and exits: the
        // grandchild is adopted by this test process (a subreaper here) and
        // becomes a zombie once it exits.
        become_subreaper();
        let dir = std::env::temp_dir().join(format!("gvpod-reap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("exe");
        std::os::unix::fs::symlink("/bin/sleep", &exe).unwrap();
        let script = format!("{} 0.2 & exit 0", exe.display());
        let mut other = std::process::Command::new("/bin/true").spawn().unwrap();
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(std::time::Duration::from_millis(600));
        let reaped = reap_adopted();
        assert_eq!(reaped.len(), 1, "reaped {reaped:?}");
        // The other child, named `true`, is still its owner's to wait for.
        assert!(other.wait().unwrap().success());
        assert!(reap_adopted().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
