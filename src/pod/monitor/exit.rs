//! The end of a launch (conmon's `ctr_exit`): the pod's exit code (runsc's
//! own failures reported as docker does: 125, or 126/127 for a command that
//! cannot run), the exit recorded, what runsc left behind removed, `--rm`
//! pods removed, and last the monitor's own record (whoever waits for the
//! pod to be wholly stopped waits for it).

use std::os::fd::AsFd;
use std::process::ExitStatus;

use super::super::{failpoint, Ctx};
use super::log::Output;
use super::stdio::Client;
use crate::runsc::GlobalFlags;
use crate::state::{PodRow, ResourceKind};

/// How the launch ended.
pub(super) struct Ended {
    /// runsc's exit status (`None`: it never ran).
    pub status: Option<ExitStatus>,
    /// The launch was a restore.
    pub restored: bool,
    /// The pod was checkpointed (stopped by gvpod or runsc after its save).
    pub checkpointed: bool,
}

/// Records the end of `pod`'s launch; returns its exit code and the
/// directories of a removed `--rm` pod left to delete once its client has
/// the answer (`cleanup::remove_pod_deferring`).
pub(super) fn record(
    ctx: &mut Ctx,
    pod: &PodRow,
    flags: &GlobalFlags,
    e: Ended,
    client: &Option<Client>,
    out: &mut Output,
) -> (Option<i32>, Vec<std::path::PathBuf>) {
    let id = pod.id.as_str();
    let mut code = match e.status {
        // Stopped by gvpod after its checkpoint (as runsc 20221219 does, 0).
        _ if e.checkpointed => Some(0),
        Some(s) => exit_code_of(s),
        None => None,
    };
    // runsc's own failure, not the pod's exit: reported as docker would.
    if let Some(f) = code.and_then(|c| crate::runsc::OwnFailure::of_exit(c, flags)) {
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
    if e.restored && !matches!(e.status, Some(s) if s.success()) {
        if let Ok(r) = ctx.runsc_for(flags) {
            let _ = r.delete_force(flags, id);
        }
        crate::runsc::reap_leftovers(flags, id);
    } else if !matches!(e.status, Some(s) if s.code().is_some()) {
        if let Ok(r) = ctx.runsc_for(flags) {
            let _ = r.delete_force(flags, id);
        }
    }
    let _ = ctx.db.remove_resource(ResourceKind::Runsc, id);
    failpoint::hit("monitor:recorded");
    let mut later = vec![];
    let removed = pod.auto_remove
        && match super::super::cleanup::remove_pod_deferring(ctx, id) {
            Ok(dirs) => {
                later = dirs;
                true
            }
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
    (code, later)
}

/// The shell's convention: a signal's exit code is 128 + its number.
fn exit_code_of(s: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.code().or_else(|| s.signal().map(|sig| 128 + sig))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn signals_become_128_plus_the_number() {
        let exited = std::process::ExitStatus::from_raw(3 << 8);
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(super::exit_code_of(exited), Some(3));
        assert_eq!(super::exit_code_of(killed), Some(137));
    }
}
