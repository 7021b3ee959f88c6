//! The pod monitor's side of a checkpoint, and the wait every command does
//! on a pod that was just checkpointed. The decisions are in [`outcome`]
//! (pure, unit-tested); this module reads the rows, claims directories and
//! waits.
//!
//! A temp snapshot directory taken over from a killed gvpod is held by the
//! monitor (returned in [`AfterExit::Resume`]) until the restore from it has
//! loaded ([`after_restore_started`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::outcome::{self, Next, SandboxExit};
use super::{paused, Ctx, PodError, Result};
use crate::runsc::GlobalFlags;
use crate::snapshot::{SnapshotStore, TempSnapshot};
use crate::state::{CheckpointEvent, CheckpointState, PodRow, PodStatus};

/// A pod whose sandbox was just checkpointed (without `--leave-running`)
/// is still recorded as running while runsc tears the sandbox down (a few
/// tens of ms): waits (10 s at most, and only while its monitor lives) for
/// the monitor to record it, and returns the row. `checkpoint` itself does
/// not wait, so that its time stays runsc's; every command that looks at the
/// pod goes through here (via [`Ctx::refresh`]).
pub(crate) fn settle(ctx: &mut Ctx, pod: PodRow) -> Result<PodRow> {
    if pod.status != PodStatus::Running {
        return Ok(pod);
    }
    let Some(c) = ctx.db.checkpoint_of(&pod.id)? else {
        return Ok(pod);
    };
    paused::recover(ctx, &pod, &c)?;
    if !outcome::stops_launch(started(&pod), &c) {
        return Ok(pod);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = ctx
            .db
            .pod(&pod.id)?
            .ok_or_else(|| PodError::NotFound(pod.name.clone()))?;
        let monitor_gone = !row
            .monitor_pid
            .is_some_and(|pid| ctx.monitor_alive(pid, &row.id));
        if row.status != PodStatus::Running || monitor_gone || Instant::now() > deadline {
            return Ok(row);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// When the pod's current launch started, as a time.
fn started(pod: &PodRow) -> Option<DateTime<Utc>> {
    pod.started.as_deref().and_then(crate::util::parse_rfc3339)
}

/// The snapshot a stopped pod was checkpointed to, if that is why it stopped.
/// (Also while the monitor of a just-checkpointed pod is still recording it.)
pub(crate) fn checkpointed_to(ctx: &Ctx, pod: &PodRow) -> Option<String> {
    if pod.status == PodStatus::Created {
        return None;
    }
    let c = ctx.db.checkpoint_of(&pod.id).ok()??;
    outcome::stops_launch(started(pod), &c).then_some(c.snapshot_name)
}

/// What the monitor does after its sandbox exited.
pub(crate) enum AfterExit {
    /// A normal exit.
    Exit,
    /// The pod was checkpointed to this snapshot.
    Checkpointed(String),
    /// Restore the pod in place from the memory image in `dir`; `claimed`
    /// is the temp directory taken over from a killed gvpod, if that is
    /// where the image is (held until [`after_restore_started`]).
    Resume {
        dir: PathBuf,
        claimed: Option<TempSnapshot>,
    },
}

/// Decides what a sandbox exit (`clean`: status 0) of the launch begun at
/// `launched` means ([`outcome::after_exit`]), waiting while a save is
/// under way for its outcome.
pub(crate) fn after_sandbox_exit(
    ctx: &mut Ctx,
    id: &str,
    flags: &GlobalFlags,
    launched: DateTime<Utc>,
    clean: bool,
) -> AfterExit {
    let in_place = ctx
        .runsc_for(flags)
        .is_ok_and(|r| r.features.leave_running_in_place);
    let Ok(store) = SnapshotStore::new(&ctx.root) else {
        return AfterExit::Exit;
    };
    let resume = |dir: PathBuf, claimed: Option<TempSnapshot>| {
        // Fact 5: lingering 2022 sandbox/gofer processes hold the control socket.
        let reaped = crate::runsc::reap_leftovers(flags, id);
        if !reaped.is_empty() {
            tracing::debug!("reaped leftover runsc processes {reaped:?}");
        }
        AfterExit::Resume { dir, claimed }
    };
    loop {
        let row = ctx.db.checkpoint_of(id).ok().flatten();
        let exit = SandboxExit {
            in_place,
            clean,
            launched,
            checkpoint: row.as_ref(),
        };
        match outcome::after_exit(exit, |sid| store.path(sid), |d| d.exists()) {
            Next::Exit => return AfterExit::Exit,
            Next::Checkpointed(snap) => return AfterExit::Checkpointed(snap),
            Next::Resume(dir) => return resume(dir, None),
            Next::Forget => {
                let _ = ctx.db.clear_checkpoint(id);
                return AfterExit::Exit;
            }
            Next::Claim(dirs) => {
                // Its gvpod may have been killed: a directory whose lock is
                // free is ours to restore from.
                for d in &dirs {
                    if let Ok(Some(t)) = store.claim(d) {
                        // The lock is also free once gvpod has registered the
                        // snapshot: the move to `failed` then loses the race
                        // (CheckpointState::next) and we look again.
                        match ctx
                            .db
                            .advance_checkpoint(id, CheckpointEvent::SaveFailed, None)
                        {
                            Ok(_) => {
                                let dir = t.dir.clone();
                                return resume(dir, Some(t));
                            }
                            Err(_) => {
                                t.forget();
                                break;
                            }
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// After a restore launched by the monitor has a sandbox: once it runs
/// (the image is loaded), the checkpoint is answered (`resumed`) and a
/// taken-over temp directory (`claimed`) is removed.
pub(crate) fn after_restore_started(
    ctx: &mut Ctx,
    id: &str,
    flags: &GlobalFlags,
    claimed: Option<TempSnapshot>,
) {
    let relevant = matches!(
        ctx.db.checkpoint_of(id),
        Ok(Some(c)) if c.state == CheckpointState::Failed
            || (c.state == CheckpointState::Done && c.leave_running)
    );
    if !relevant && claimed.is_none() {
        return;
    }
    if let Ok(r) = ctx.runsc_for(flags) {
        // Until it runs (or stops instead), 60 s at most.
        let deadline = Instant::now() + Duration::from_secs(60);
        r.wait_status(
            flags,
            id,
            |s| s != Some("created"),
            || Instant::now() > deadline,
        );
    }
    let _ = ctx
        .db
        .advance_checkpoint(id, CheckpointEvent::Resumed, None);
    drop(claimed);
}
