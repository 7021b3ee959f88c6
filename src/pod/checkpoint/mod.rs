//! `checkpoint`: save a running pod as a snapshot (runsc's memory image,
//! the pod's filesystem changes, its spec and settings). One concern per
//! file: this one is the client verb; [`write`] writes the snapshot,
//! [`space`] refuses one that cannot fit, [`monitor`] is the pod monitor's
//! side, [`outcome`] holds the decisions as pure functions (with the row's
//! transitions, `CheckpointState::next`), [`paused`] is the flow of runsc
//! releases with an in-place `--leave-running`, [`tcp`] the connection check.
//!
//! Sequence (each step is a crash point, see `failpoint`):
//!
//! 1. checks: the pod runs, has no terminal, no host network and no
//!    supervised service running, the name is free, there is room for the
//!    memory image;
//! 2. a locked temp directory and a `pod_checkpoints` row (`saving`);
//! 3. `runsc checkpoint` writes `checkpoint.img`; on 20221219 the sandbox
//!    then exits and `runsc run` returns 0 (row → `saved`);
//! 4. the upper dir becomes `rootfs-diff.tar`, the bundle's spec and
//!    `snapshot.json` are written, the directory is renamed into place and
//!    registered in the same transaction that marks the checkpoint `done`.
//!
//! The pod's monitor sees its sandbox exit and waits for that outcome
//! ([`monitor::after_sandbox_exit`]): `done` → the pod is recorded as checkpointed,
//! or, for `--leave-running` on a runsc that cannot keep the sandbox
//! running itself, restored in place from the new snapshot; `failed`, or a
//! gvpod killed after step 3 (its temp directory's lock is free) → restored
//! from the memory image in the temp directory, so the pod is as it was.
//! A runsc failure in step 3 registers nothing; on 20221219 runsc itself
//! ends the sandbox when a save fails, which the error says.
//!
//! That is the flow for runsc releases without an in-place
//! `--leave-running` (20221219). Releases with one (probed) never let a
//! save end the pod: the save is taken paused and with `--leave-running`,
//! and gvpod stops the pod itself afterwards ([`paused`]); a failure
//! leaves the pod running as it was. On both, [`tcp`] refuses first a pod
//! whose TCP connections would fail the save (or be reset without
//! `--tcp-close`), with one line naming them.

pub use super::views::CheckpointRequest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod monitor;
mod outcome;
mod paused;
mod space;
mod tcp;
mod write;

pub(crate) use monitor::{
    after_restore_started, after_sandbox_exit, checkpointed_to, settle, AfterExit,
};

use super::{failpoint, Ctx, PodError, Result};
use crate::bundle::{PodOptions, RootfsPaths};
use crate::runsc::{GlobalFlags, Runsc};
use crate::snapshot::{self, SnapshotMeta, SnapshotStore, TempSnapshot};
use crate::state::{CheckpointEvent, CheckpointRow, CheckpointState, PodRow, PodStatus};
use space::check_space;
use write::{complete, save_image};

/// Checkpoints a running pod; returns the registered snapshot.
pub fn checkpoint(ctx: &mut Ctx, req: CheckpointRequest) -> Result<SnapshotMeta> {
    let pod = ctx.lookup(&req.pod)?;
    let pod = ctx.refresh(pod)?;
    if pod.status != PodStatus::Running {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "only a running pod can be checkpointed (start it first)",
        });
    }
    let opts: PodOptions = pod.options()?.clone();
    if opts.tty {
        return Err(PodError::Usage(format!(
            "pod {} has a terminal (-t): runsc cannot carry a terminal across a checkpoint; run it without -t to snapshot it",
            pod.name
        )));
    }
    if opts.network == "host" {
        return Err(PodError::Usage(format!(
            "pod {} uses --network host: gVisor cannot checkpoint host networking; use --network none",
            pod.name
        )));
    }
    // A service's output goes to its monitor through host pipes, which a
    // sandbox cannot carry across a save (the restore fails in
    // `host.inode.afterLoad`, and the pod is lost): refused before anything.
    let live: Vec<String> = super::service::views(ctx, &pod)?
        .into_iter()
        .filter(|s| matches!(s.state.as_str(), "running" | "installing" | "restarting"))
        .map(|s| s.name)
        .collect();
    if !live.is_empty() {
        return Err(PodError::Usage(format!(
            "pod {} runs supervised services ({}) whose output gvpod carries over host pipes, which runsc cannot checkpoint; stop them first (`gvpod service stop {}`): they start again when the snapshot is restored",
            pod.name,
            live.join(", "),
            pod.name
        )));
    }
    let name = match &req.name {
        Some(n) => {
            snapshot::validate_name(n)?;
            n.clone()
        }
        None => snapshot::default_name(&pod.name),
    };
    if ctx.db.snapshot_name_taken(&name)? {
        return Err(crate::state::StateError::SnapshotNameInUse(name).into());
    }
    let flags = ctx.flags_of(&pod)?;
    let runsc = ctx.runsc_for(&flags)?;
    let store = SnapshotStore::new(&ctx.root)?;
    store.sweep(&ctx.db)?;
    let bundle = ctx.bundle_dir(&pod.id);
    check_space(&store, &pod, &RootfsPaths::new(&bundle).upper)?;

    tcp::check(ctx, &runsc, &flags, &pod, req.tcp_close)?;
    // Where a failed save can leave the sandbox running, it is taken so
    // that it must (paused.rs); 20221219 ends the sandbox on any failed
    // save, hence the checks above and the monitor's own recovery below.
    let in_place = runsc.features.leave_running_in_place;
    let _owner = if in_place {
        Some(paused::own(ctx, &pod)?)
    } else {
        None
    };
    let mut t = store.temp()?;
    let snap_id = crate::util::random_hex(32);
    begin(
        ctx,
        &store,
        &pod,
        &snap_id,
        &name,
        &t.dir,
        req.leave_running,
    )?;
    failpoint::hit("checkpoint:begun");
    if in_place {
        return paused::save(
            ctx,
            &runsc,
            &flags,
            &pod,
            &opts,
            &req,
            &store,
            t,
            (&snap_id, &name),
        );
    }

    // Does the sandbox go away (20221219, or no --leave-running) or stay?
    let sandbox_stops = !(req.leave_running && runsc.features.leave_running_in_place);
    let (saved, checkpoint_ms) = save_image(&runsc, &flags, &pod, &t, req.leave_running);
    if let Err(e) = saved {
        let _ = ctx.db.clear_checkpoint(&pod.id);
        return Err(save_failed(&runsc, &flags, &pod, &e.into()));
    }
    ctx.db
        .advance_checkpoint(&pod.id, CheckpointEvent::ImageWritten, None)?;
    failpoint::hit("checkpoint:saved");

    let written = complete(
        ctx,
        &store,
        &pod,
        &flags,
        &opts,
        &mut t,
        (&snap_id, &name),
        req.leave_running,
        checkpoint_ms,
    );
    let meta = match written {
        Ok(m) => m,
        Err(e) => return Err(fail(ctx, &pod, t, sandbox_stops, e)),
    };
    store.register_checkpoint(&mut ctx.db, t, &meta, true)?;
    failpoint::hit("checkpoint:registered");

    if sandbox_stops && req.leave_running {
        // The monitor restores the pod from the snapshot (emulated
        // --leave-running, like runsc 20221219's own destroy + restore);
        // the pod must run again when this returns.
        wait_for_monitor(ctx, &pod)?;
    }
    // Without --leave-running the snapshot is complete here; runsc tears the
    // sandbox down for a few tens of ms more and the monitor then records the
    // pod as checkpointed. Nothing waits for that: whoever needs the pod
    // stopped calls [`settle`] (restore in place does).
    Ok(meta)
}

/// runsc's save errors can carry a goroutine dump and a whole endpoint
/// structure: the first line, with a known cause put plainly.
fn one_line(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or_default();
    if let Some(i) = first.find("save rejected due to ") {
        return format!("runsc: {}", first[i..].trim_end_matches(':'));
    }
    let mut s: String = first.chars().take(400).collect();
    if s.len() < first.len() {
        s.push('…');
    }
    s
}

/// Registers the checkpoint row, taking over one left by a killed gvpod.
fn begin(
    ctx: &mut Ctx,
    store: &SnapshotStore,
    pod: &PodRow,
    snap_id: &str,
    name: &str,
    dir: &Path,
    leave_running: bool,
) -> Result<()> {
    let row = CheckpointRow {
        pod_id: pod.id.clone(),
        snapshot_id: snap_id.to_string(),
        snapshot_name: name.to_string(),
        dir: dir.to_string_lossy().into_owned(),
        leave_running,
        state: CheckpointState::Saving,
        at: chrono::Utc::now(),
    };
    if ctx.db.begin_checkpoint(&row)? {
        return Ok(());
    }
    // Another checkpoint is recorded: under way, or abandoned by a killed gvpod.
    if let Some(old) = ctx.db.checkpoint_of(&pod.id)? {
        if owner_gone(store, &old) {
            ctx.db.clear_checkpoint(&pod.id)?;
            if ctx.db.begin_checkpoint(&row)? {
                return Ok(());
            }
        }
    }
    Err(PodError::BadState {
        name: pod.name.clone(),
        status: "being checkpointed",
        hint: "wait for the other checkpoint to finish",
    })
}

/// Whether nobody holds the directories of checkpoint `c` any more.
fn owner_gone(store: &SnapshotStore, c: &CheckpointRow) -> bool {
    let dirs = [PathBuf::from(&c.dir), store.path(&c.snapshot_id)];
    dirs.iter().all(|d| {
        !d.exists()
            || match store.claim(d) {
                Ok(Some(t)) => {
                    t.forget();
                    true
                }
                _ => false,
            }
    })
}

/// The one line for a save runsc refused, saying whether the pod still
/// runs (it does, unless this runsc ended the sandbox: 20221219).
fn save_failed(runsc: &Runsc, flags: &GlobalFlags, pod: &PodRow, e: &PodError) -> PodError {
    let running = runsc
        .state(flags, &pod.id)
        .ok()
        .flatten()
        .is_some_and(|s| s.status == "running" || s.status == "paused");
    let note = if running {
        format!("; pod {} is still running as it was", pod.name)
    } else {
        format!(
            "; runsc {} ended the sandbox, so pod {} has stopped",
            runsc.version.release, pod.name
        )
    };
    PodError::Checkpoint {
        pod: pod.name.clone(),
        msg: format!("{}{note}", one_line(&e.to_string())),
    }
}

/// A failure after runsc saved the pod: bring the pod back from the image
/// just written (the monitor does it; we wait), then drop the temp dir.
fn fail(
    ctx: &mut Ctx,
    pod: &PodRow,
    t: TempSnapshot,
    sandbox_stopped: bool,
    e: PodError,
) -> PodError {
    if !sandbox_stopped {
        let _ = ctx.db.clear_checkpoint(&pod.id);
        return e;
    }
    let dir = t.dir.to_string_lossy().into_owned();
    if let Err(e2) = ctx
        .db
        .advance_checkpoint(&pod.id, CheckpointEvent::SaveFailed, Some(&dir))
    {
        tracing::warn!("recording the failed checkpoint of {}: {e2}", pod.name);
    }
    let resumed = wait_state(ctx, &pod.id, Duration::from_secs(60), |s| {
        s == Some(CheckpointState::Resumed)
    });
    drop(t);
    if resumed {
        e
    } else {
        PodError::Monitor(format!(
            "{e}; pod {} could not be resumed from its memory image (see `gvpod logs {}`)",
            pod.name, pod.name
        ))
    }
}

/// Waits until the monitor has restored the pod after an emulated
/// `--leave-running` checkpoint.
fn wait_for_monitor(ctx: &mut Ctx, pod: &PodRow) -> Result<()> {
    let resumed = wait_state(ctx, &pod.id, Duration::from_secs(60), |s| {
        !matches!(s, Some(CheckpointState::Done))
    });
    let state = ctx.db.checkpoint_of(&pod.id)?.map(|c| c.state);
    if resumed && state == Some(CheckpointState::Resumed) {
        return Ok(());
    }
    Err(PodError::Monitor(format!(
        "pod {} was checkpointed, but its monitor did not resume it (see {})",
        pod.name,
        ctx.bundle_dir(&pod.id).join("monitor.log").display()
    )))
}

fn wait_state(
    ctx: &Ctx,
    pod_id: &str,
    limit: Duration,
    done: impl Fn(Option<CheckpointState>) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let s = ctx.db.checkpoint_of(pod_id).ok().flatten().map(|c| c.state);
        if done(s) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}
