//! The end of a launch (conmon's `ctr_exit`): the pod's exit code (runsc's
//! own failures reported as docker does: 125, or 126/127 for a command that
//! cannot run), what runsc left behind removed, then either a restart (the
//! pod's restart policy, decided by `pod::restart`: recorded, a back-off
//! that ends early when the user stops or removes the pod) or the exit
//! recorded, `--rm` pods removed, and last the monitor's own record
//! (whoever waits for the pod to be wholly stopped waits for it).

use std::os::fd::AsFd;
use std::process::ExitStatus;
use std::time::Duration;

use super::super::{failpoint, restart, Ctx};
use super::log::Output;
use super::stdio::Client;
use crate::bundle::RestartPolicy;
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

/// The pod's exit code for the launch that ended as `e`: runsc's own
/// failure (not the pod's exit) is reported as docker would, with a line in
/// the pod's log and to an attached client.
pub(super) fn code_of(
    e: &Ended,
    flags: &GlobalFlags,
    client: &Option<Client>,
    out: &mut Output,
) -> Option<i32> {
    let code = match e.status {
        // Stopped by gvpod after its checkpoint (as runsc 20221219 does, 0).
        _ if e.checkpointed => Some(0),
        Some(s) => exit_code_of(s),
        None => None,
    };
    let failure = code.and_then(|c| crate::runsc::OwnFailure::of_exit(c, flags));
    let Some(f) = failure else {
        return code;
    };
    let line = format!("gvpod: runsc: {} ({})", f.msg, f.logs_hint());
    out.line("stderr", line.as_bytes());
    if let Some(c) = &client {
        let _ = nix::unistd::write(c.stderr.as_fd(), format!("{line}\n").as_bytes());
    }
    Some(f.exit_code())
}

/// Removes what the launch that ended as `e` left of runsc, and its record.
/// `runsc run` deletes its container when it returns; only a killed runsc
/// (or a sandbox killed under it) leaves one. A failed restore can leave a
/// created container and its sandbox processes behind.
pub(super) fn clear_launch(ctx: &mut Ctx, id: &str, flags: &GlobalFlags, e: &Ended) {
    // runsc's orphaned gofer, reaped before `runsc delete` waits on it.
    super::reap::reap_adopted();
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
}

/// Records the end of `pod`'s last launch, which ended as `e` with `code`;
/// returns the directories of a removed `--rm` pod left to delete once its
/// client has the answer (`cleanup::remove_pod_deferring`).
pub(super) fn record(
    ctx: &mut Ctx,
    pod: &PodRow,
    flags: &GlobalFlags,
    e: &Ended,
    code: Option<i32>,
) -> Vec<std::path::PathBuf> {
    let id = pod.id.as_str();
    failpoint::hit("monitor:exited");
    if let Err(e) = ctx.db.set_pod_exited(id, &crate::util::now_rfc3339(), code) {
        tracing::warn!("recording exit of {id}: {e}");
    }
    clear_launch(ctx, id, flags, e);
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
    later
}

/// Whether the pod's restart policy restarts it now that a launch begun at
/// `launched_at` ended with `code`, and after what back-off (`last_delay`:
/// the back-off before this launch). A restart is recorded at once: the
/// pod stays `running`, with its last exit code and one restart more.
pub(super) fn restart_after(
    ctx: &mut Ctx,
    id: &str,
    policy: RestartPolicy,
    code: Option<i32>,
    launched_at: chrono::DateTime<chrono::Utc>,
    last_delay: Option<Duration>,
) -> Option<Duration> {
    if policy == RestartPolicy::No {
        return None;
    }
    // Read now: a stop by the user is written before its signal.
    let row = ctx.db.pod(id).ok().flatten()?;
    let ended = restart::Ended {
        code,
        restarts: row.restart_count,
        stopped_by_user: row.stopped_by_user,
        ran_for: (chrono::Utc::now() - launched_at)
            .to_std()
            .unwrap_or_default(),
        last_delay,
    };
    let delay = restart::after_exit(policy, &ended)?;
    let count = row.restart_count.saturating_add(1);
    match ctx
        .db
        .set_pod_restarting(id, &crate::util::now_rfc3339(), code, count)
    {
        Ok(true) => {
            tracing::info!(
                "pod {id} exited ({code:?}); restart {count} in {delay:?} ({})",
                policy.name()
            );
            Some(delay)
        }
        Ok(false) => None,
        Err(e) => {
            tracing::warn!("recording the restart of {id}: {e}");
            None
        }
    }
}

/// How often the back-off looks whether the user stopped or removed the pod.
const BACKOFF_LOOK: Duration = Duration::from_millis(50);

/// Sleeps `delay` before a restart; false as soon as the user stopped,
/// killed or removed the pod meanwhile (it stays down then).
pub(super) fn back_off(ctx: &Ctx, id: &str, delay: Duration) -> bool {
    let deadline = std::time::Instant::now() + delay;
    loop {
        if !wanted(ctx, id) {
            return false;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(BACKOFF_LOOK));
    }
}

/// The pod is still there and the user has not stopped it.
pub(super) fn wanted(ctx: &Ctx, id: &str) -> bool {
    matches!(ctx.db.pod(id), Ok(Some(r)) if !r.stopped_by_user)
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
