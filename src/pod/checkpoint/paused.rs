//! The save on runsc releases whose `checkpoint --leave-running` keeps the
//! sandbox running in place (20240415+, probed: see `runsc::detect`). On
//! those a save that fails *without* `--leave-running` ends the sandbox,
//! and with it the user's pod (REFERENCES.md "TCP and saves"), so gvpod
//! always asks for `--leave-running`, and stops the pod itself afterwards
//! when the user did not:
//!
//! 1. `runsc pause`: the pod's processes stop, so its memory image and its
//!    filesystem diff (written after runsc returns) describe one moment,
//!    and nothing runs between the save and the stop;
//! 2. `runsc checkpoint --leave-running`: a failure leaves the sandbox
//!    running (still paused): gvpod resumes it and reports one line;
//! 3. the diff, spec and snapshot.json, registered with the checkpoint
//!    marked `done`;
//! 4. `--leave-running`: resume (checkpoint marked `resumed`); otherwise
//!    the sandbox process is killed and the pod's monitor, seeing a
//!    `done` checkpoint of this launch, records the pod as checkpointed.
//!
//! Invariant: the pod is paused only while its checkpointing gvpod holds
//! the pod's `checkpoint.lock` (under its run dir). A gvpod killed in
//! between leaves the lock free: the next command that looks at the pod
//! ([`recover`], from `Ctx::refresh`) resumes it, or stops it when the
//! snapshot was already registered without `--leave-running`, and drops an
//! unfinished checkpoint row (its temp directory is swept as usual).

use std::fs::File;

use super::super::{failpoint, Ctx, PodError, Result};
use super::{one_line, CheckpointRequest};
use crate::bundle::PodOptions;
use crate::runsc::{GlobalFlags, Runsc};
use crate::snapshot::{SnapshotMeta, SnapshotStore, TempSnapshot};
use crate::state::{CheckpointEvent, CheckpointRow, CheckpointState, PodRow};

/// Held by the gvpod checkpointing a pod, for as long as the pod may be
/// paused: the lock is released when it drops.
pub(super) struct Owner {
    _lock: nix::fcntl::Flock<File>,
}

fn lock_path(ctx: &Ctx, pod_id: &str) -> std::path::PathBuf {
    ctx.pod_run_dir(pod_id).join("checkpoint.lock")
}

/// Takes the pod's checkpoint lock; `None` when another gvpod holds it.
fn try_own(ctx: &Ctx, pod_id: &str) -> Result<Option<Owner>> {
    Ok(
        super::super::lock::try_lock_file(ctx, pod_id, "checkpoint.lock")?
            .map(|l| Owner { _lock: l }),
    )
}

/// Takes the lock before anything is paused (see the module docs).
pub(super) fn own(ctx: &Ctx, pod: &PodRow) -> Result<Owner> {
    try_own(ctx, &pod.id)?.ok_or_else(|| PodError::BadState {
        name: pod.name.clone(),
        status: "being checkpointed",
        hint: "wait for the other checkpoint to finish",
    })
}

/// Steps 1-4 of the module docs; the checkpoint row is `saving` and the
/// temp directory `t` locked by the caller.
#[allow(clippy::too_many_arguments)]
pub(super) fn save(
    ctx: &mut Ctx,
    runsc: &Runsc,
    flags: &GlobalFlags,
    pod: &PodRow,
    opts: &PodOptions,
    req: &CheckpointRequest,
    store: &SnapshotStore,
    mut t: TempSnapshot,
    (snap_id, name): (&str, &str),
) -> Result<SnapshotMeta> {
    let give_up = |ctx: &mut Ctx, e: PodError| -> PodError {
        let _ = ctx.db.clear_checkpoint(&pod.id);
        if let Err(r) = runsc.resume(flags, &pod.id) {
            tracing::warn!("resuming pod {} after a failed checkpoint: {r}", pod.name);
        }
        e
    };
    if let Err(e) = runsc.pause(flags, &pod.id) {
        let _ = ctx.db.clear_checkpoint(&pod.id);
        return Err(PodError::Checkpoint {
            pod: pod.name.clone(),
            msg: format!("cannot pause it: {}", one_line(&e.to_string())),
        });
    }
    failpoint::hit("checkpoint:paused");
    let (saved, checkpoint_ms) = super::save_image(runsc, flags, pod, &t, true);
    if let Err(e) = saved {
        let e = give_up(ctx, e.into());
        return Err(super::save_failed(runsc, flags, pod, &e));
    }
    ctx.db
        .advance_checkpoint(&pod.id, CheckpointEvent::ImageWritten, None)?;
    failpoint::hit("checkpoint:saved");

    let written = super::complete(
        ctx,
        store,
        pod,
        flags,
        opts,
        &mut t,
        (snap_id, name),
        req.leave_running,
        checkpoint_ms,
    );
    let meta = match written {
        Ok(m) => m,
        Err(e) => return Err(give_up(ctx, e)),
    };
    store.register_checkpoint(&mut ctx.db, t, &meta, true)?;
    failpoint::hit("checkpoint:registered");
    finish(ctx, runsc, flags, pod, req.leave_running)?;
    Ok(meta)
}

/// Step 4: the pod runs on, or stops as checkpointed.
fn finish(
    ctx: &mut Ctx,
    runsc: &Runsc,
    flags: &GlobalFlags,
    pod: &PodRow,
    leave_running: bool,
) -> Result<()> {
    if leave_running {
        runsc.resume(flags, &pod.id)?;
        ctx.db
            .advance_checkpoint(&pod.id, CheckpointEvent::Resumed, None)?;
        return Ok(());
    }
    // The sandbox is paused: a signal to the pod would wait for a resume;
    // its host process ends at once (runsc's `run` in the monitor then
    // returns and deletes the container).
    let sandbox = ctx.db.pod(&pod.id)?.and_then(|p| p.pid).or(pod.pid);
    match sandbox {
        Some(pid) if pid > 1 && sandbox_alive(pid, &pod.id) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            Ok(())
        }
        _ => runsc.delete_force(flags, &pod.id).map_err(Into::into),
    }
}

/// A pod left paused (or a snapshot left unfinished) by a gvpod killed
/// while checkpointing it: resumed, or stopped if its snapshot was
/// registered without `--leave-running`. Nothing when the checkpoint's
/// owner still holds the lock, or there is nothing to recover (`c` is
/// the pod's checkpoint row).
pub(crate) fn recover(ctx: &mut Ctx, pod: &PodRow, c: &CheckpointRow) -> Result<()> {
    if matches!(c.state, CheckpointState::Resumed | CheckpointState::Failed)
        || !lock_path(ctx, &pod.id).exists()
    {
        return Ok(());
    }
    let Some(_owner) = try_own(ctx, &pod.id)? else {
        return Ok(());
    };
    let flags = ctx.flags_of(pod)?;
    let runsc = ctx.runsc_for(&flags)?;
    if !runsc.features.leave_running_in_place
        || runsc.status(&flags, &pod.id).as_deref() != Some("paused")
    {
        return Ok(());
    }
    if c.state == CheckpointState::Done {
        // Its owner may have stopped it already (the sandbox reads as paused
        // until runsc's `run` in the monitor has deleted the container).
        if !c.leave_running && !pod.pid.is_some_and(|p| sandbox_alive(p, &pod.id)) {
            return Ok(());
        }
        tracing::warn!(
            "pod {} was left paused by a checkpoint that did not finish; {} it (its snapshot is complete)",
            pod.name,
            if c.leave_running { "resuming" } else { "stopping" }
        );
        return finish(ctx, &runsc, &flags, pod, c.leave_running);
    }
    tracing::warn!(
        "pod {} was left paused by a checkpoint that did not finish; resuming it",
        pod.name
    );
    ctx.db.clear_checkpoint(&pod.id)?;
    runsc.resume(&flags, &pod.id)?;
    Ok(())
}

/// Whether `pid` is the sandbox process of pod `id` (`runsc-sandbox … boot
/// … ID`), not a process that reused its pid.
fn sandbox_alive(pid: i32, id: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        args.first().is_some_and(|a| a.ends_with(b"runsc-sandbox")) && args.contains(&id.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_pods_own_sandbox_is_killed() {
        // This test process is no sandbox, whatever id is asked about.
        let me = std::process::id() as i32;
        assert!(!super::sandbox_alive(me, "x"));
        assert!(!super::sandbox_alive(i32::MAX, "x"));
    }
}
