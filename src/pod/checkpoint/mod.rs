//! `checkpoint`: save a running pod as a snapshot (runsc's memory image,
//! the pod's filesystem changes, its spec and settings), and the monitor's
//! side of a checkpoint.
//!
//! Sequence (each step is a crash point, see `failpoint`):
//!
//! 1. checks: the pod runs, has no terminal and no host network, the name is
//!    free, there is room for the memory image;
//! 2. a locked temp directory and a `pod_checkpoints` row (`saving`);
//! 3. `runsc checkpoint` writes `checkpoint.img`; on 20221219 the sandbox
//!    then exits and `runsc run` returns 0 (row → `saved`);
//! 4. the upper dir becomes `rootfs-diff.tar`, the bundle's spec and
//!    `snapshot.json` are written, the directory is renamed into place and
//!    registered in the same transaction that marks the checkpoint `done`.
//!
//! The pod's monitor sees its sandbox exit and waits for that outcome
//! ([`after_sandbox_exit`]): `done` → the pod is recorded as checkpointed,
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

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod paused;
mod tcp;

use super::{failpoint, Ctx, PodError, Result};
use crate::bundle::{PodOptions, RootfsPaths};
use crate::runsc::{GlobalFlags, Runsc};
use crate::snapshot::{
    self, ImageInfo, NetworkInfo, PodInfo, RunscInfo, SnapshotMeta, SnapshotStore, TempSnapshot,
};
use crate::state::{CheckpointRow, CheckpointState, PodRow, PodStatus};

pub struct CheckpointRequest {
    pub pod: String,
    pub name: Option<String>,
    pub leave_running: bool,
    /// Reset open TCP connections instead of refusing (see `tcp`).
    pub tcp_close: bool,
}

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
        .set_checkpoint_state(&pod.id, CheckpointState::Saved, None)?;
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
        at: crate::util::now_rfc3339(),
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

/// `runsc checkpoint` into the temp directory, with progress shown; its
/// outcome and duration in ms (the `checkpoint:runsc` failpoint makes runsc
/// fail for real: it refuses to overwrite an image).
fn save_image(
    runsc: &Runsc,
    flags: &GlobalFlags,
    pod: &PodRow,
    t: &TempSnapshot,
    leave_running: bool,
) -> (crate::runsc::Result<()>, u64) {
    let t0 = Instant::now();
    if failpoint::fail("checkpoint:runsc") {
        let _ = std::fs::write(t.dir.join(snapshot::IMAGE), b"");
    }
    let _p = snapshot::Progress::watch(
        format!("checkpointing pod {}", pod.name),
        t.dir.join(snapshot::IMAGE),
    );
    let saved = runsc.checkpoint(flags, &pod.id, &t.dir, leave_running);
    (saved, t0.elapsed().as_millis() as u64)
}

/// After runsc saved the pod: [`write_snapshot`], then the directory renamed
/// into place (two crash points and a full-disk failpoint on the way).
#[allow(clippy::too_many_arguments)]
fn complete(
    ctx: &mut Ctx,
    store: &SnapshotStore,
    pod: &PodRow,
    flags: &GlobalFlags,
    opts: &PodOptions,
    t: &mut TempSnapshot,
    (snap_id, name): (&str, &str),
    leave_running: bool,
    checkpoint_ms: u64,
) -> Result<SnapshotMeta> {
    let meta = write_snapshot(
        ctx,
        pod,
        flags,
        opts,
        t,
        snap_id,
        name,
        leave_running,
        checkpoint_ms,
    )?;
    failpoint::hit("checkpoint:written");
    if failpoint::fail("checkpoint:disk-full") {
        return Err(PodError::Io {
            what: "cannot write",
            path: t.dir.join(snapshot::DIFF),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        });
    }
    store.put_in_place(t, snap_id)?;
    Ok(meta)
}

/// Everything but the memory image: the pod's diff, its spec, snapshot.json.
#[allow(clippy::too_many_arguments)]
fn write_snapshot(
    ctx: &mut Ctx,
    pod: &PodRow,
    flags: &GlobalFlags,
    opts: &PodOptions,
    t: &TempSnapshot,
    snap_id: &str,
    name: &str,
    leave_running: bool,
    checkpoint_ms: u64,
) -> Result<SnapshotMeta> {
    let bundle = ctx.bundle_dir(&pod.id);
    let upper = RootfsPaths::new(&bundle).upper;
    let diff_path = t.dir.join(snapshot::DIFF);
    let f = std::fs::File::create(&diff_path).map_err(super::io("cannot create", &diff_path))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    snapshot::diff::write_diff(&upper, &mut w)?;
    let f = w
        .into_inner()
        .map_err(|e| super::io("cannot write", &diff_path)(e.into_error()))?;
    let rootfs_diff_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);

    let spec_src = bundle.join("config.json");
    let spec_dst = t.dir.join(snapshot::SPEC);
    let spec = std::fs::read(&spec_src).map_err(super::io("cannot read", &spec_src))?;
    std::fs::write(&spec_dst, &spec).map_err(super::io("cannot write", &spec_dst))?;
    let hostname = serde_json::from_slice::<serde_json::Value>(&spec)
        .ok()
        .and_then(|v| v["hostname"].as_str().map(str::to_string))
        .unwrap_or_default();

    let image = t.dir.join(snapshot::IMAGE);
    // Nothing of a snapshot is fsynced, nor is writeback forced: with the
    // memory image dirty in the page cache, even the fsync of a small file
    // waits for a journal commit that writes it (measured: +40 ms on a
    // 100 MiB checkpoint, +30 % with forced writeback), and bare runsc pays
    // for none of it. A snapshot is all or nothing against a killed gvpod
    // (temp directory, rename, one transaction); a power cut in the seconds
    // after a checkpoint can cost a snapshot whose restore then fails with
    // one line, as the state database (synchronous=NORMAL) can lose its row.
    let memory_image_bytes = std::fs::metadata(&image)
        .map_err(super::io("cannot stat", &image))?
        .len();
    let runsc = ctx.runsc_for(flags)?;
    let meta = SnapshotMeta {
        format: snapshot::FORMAT,
        id: snap_id.to_string(),
        name: name.to_string(),
        created: crate::util::now_rfc3339(),
        pod: PodInfo {
            id: pod.id.clone(),
            name: pod.name.clone(),
            hostname,
            auto_remove: pod.auto_remove,
        },
        image: ImageInfo {
            id: pod.image_id.clone(),
            reference: pod.image_ref.clone(),
        },
        runsc: RunscInfo {
            version: runsc.version.raw.clone(),
            release: runsc.version.release,
            platform: flags.platform.clone(),
            network: flags.network.clone(),
            overlay2: flags.overlay2.clone(),
            extra: flags.extra.clone(),
        },
        network: NetworkInfo {
            mode: opts.network.clone(),
            ports: ctx
                .db
                .ports_of(&pod.id)?
                .iter()
                .map(|p| format!("{}:{}:{}/{}", p.host_ip, p.host_port, p.pod_port, p.proto))
                .collect(),
            ip: ctx.db.lease_of(&pod.id)?.map(|(_, ip)| ip.to_string()),
        },
        options: opts.clone(),
        process: pod
            .main_process()?
            .map_or_else(|| serde_json::json!({}), |p| serde_json::json!(p)),
        leave_running,
        memory_image_bytes,
        rootfs_diff_bytes,
        checkpoint_ms,
    };
    let meta_path = t.dir.join(snapshot::META);
    std::fs::write(
        &meta_path,
        serde_json::to_vec_pretty(&meta).expect("snapshot metadata serialises"),
    )
    .map_err(super::io("cannot write", &meta_path))?;
    Ok(meta)
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
        .set_checkpoint_state(&pod.id, CheckpointState::Failed, Some(&dir))
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
    if !stops_launch(&pod, &c) {
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
            .is_some_and(|pid| super::monitor_alive(pid, &row.id));
        if row.status != PodStatus::Running || monitor_gone || Instant::now() > deadline {
            return Ok(row);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The snapshot a checkpoint (without `--leave-running`) of this running
/// launch of the pod went to.
fn checkpoint_pending(ctx: &Ctx, pod: &PodRow) -> Option<String> {
    let c = ctx.db.checkpoint_of(&pod.id).ok()??;
    stops_launch(pod, &c).then_some(c.snapshot_name)
}

/// Whether checkpoint `c` (done, without `--leave-running`) ends the pod's
/// current launch.
fn stops_launch(pod: &PodRow, c: &CheckpointRow) -> bool {
    let started = pod.started.as_deref().unwrap_or("");
    c.state == CheckpointState::Done && !c.leave_running && c.at.as_str() >= started
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

/// Refuses a checkpoint that cannot fit: runsc 20221219 ends the sandbox
/// when a save fails half-way (e.g. "no space left on device"), so a full
/// disk must be caught before runsc starts. The memory image is at most the
/// sandbox's allocated memory (runsc compresses it); the diff at most the
/// upper directory.
fn check_space(store: &SnapshotStore, pod: &PodRow, upper: &Path) -> Result<()> {
    let need = pod.pid.map(memory_file_bytes).unwrap_or(0) + tree_size(upper) + (16 << 20);
    let st = nix::sys::statvfs::statvfs(store.dir()).map_err(|e| PodError::Io {
        what: "cannot check free space of",
        path: store.dir().to_owned(),
        source: e.into(),
    })?;
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    if free < need {
        return Err(PodError::Usage(format!(
            "not enough space for a snapshot of pod {} in {}: up to {} MB needed, {} MB free",
            pod.name,
            store.dir().display(),
            need.div_ceil(1 << 20),
            free >> 20
        )));
    }
    Ok(())
}

/// Allocated bytes of the sandbox's memory file (the memfd named
/// `runsc-memory` that backs all pod memory), found among the open files of
/// sandbox process `pid`.
fn memory_file_bytes(pid: i32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains("runsc-memory"))
        })
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .map(|m| m.blocks() * 512)
        .max()
        .unwrap_or(0)
}

/// Bytes of the regular files under `dir`.
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

// ---- the monitor's side ----

/// What the monitor does after its sandbox exited with status 0.
pub(crate) enum AfterExit {
    /// A normal exit.
    Exit,
    /// The pod was checkpointed to this snapshot.
    Checkpointed(String),
    /// Restore the pod in place from the memory image in this directory.
    Resume(PathBuf),
}

/// A temp snapshot directory the monitor took over from a killed gvpod,
/// held until the restore from it has finished loading.
static CLAIMED: Mutex<Option<TempSnapshot>> = Mutex::new(None);

/// Decides what a sandbox exit (`clean`: status 0) means: a checkpoint
/// started after this launch (`launched_at`) explains it; the monitor waits
/// for its outcome. On runsc releases with an in-place `--leave-running`
/// only one checkpoint ends a sandbox: gvpod's kill of a pod whose snapshot
/// is registered ([`paused`]); nothing there is resumed from an image.
pub(crate) fn after_sandbox_exit(
    ctx: &mut Ctx,
    id: &str,
    flags: &GlobalFlags,
    launched_at: &str,
    clean: bool,
) -> AfterExit {
    if ctx
        .runsc_for(flags)
        .is_ok_and(|r| r.features.leave_running_in_place)
    {
        return match ctx.db.checkpoint_of(id) {
            Ok(Some(c))
                if c.at.as_str() >= launched_at
                    && c.state == CheckpointState::Done
                    && !c.leave_running =>
            {
                AfterExit::Checkpointed(c.snapshot_name)
            }
            _ => AfterExit::Exit,
        };
    }
    if !clean {
        return AfterExit::Exit;
    }
    let Ok(store) = SnapshotStore::new(&ctx.root) else {
        return AfterExit::Exit;
    };
    loop {
        let c = match ctx.db.checkpoint_of(id) {
            Ok(Some(c)) if c.at.as_str() >= launched_at => c,
            _ => return AfterExit::Exit,
        };
        let resume = |dir: PathBuf| {
            // Fact 5: lingering 2022 sandbox/gofer processes hold the control socket.
            let reaped = crate::runsc::reap_leftovers(flags, id);
            if !reaped.is_empty() {
                tracing::debug!("reaped leftover runsc processes {reaped:?}");
            }
            AfterExit::Resume(dir)
        };
        match c.state {
            CheckpointState::Resumed => return AfterExit::Exit,
            CheckpointState::Done if c.leave_running => return resume(PathBuf::from(&c.dir)),
            CheckpointState::Done => return AfterExit::Checkpointed(c.snapshot_name),
            CheckpointState::Failed => return resume(PathBuf::from(&c.dir)),
            CheckpointState::Saving | CheckpointState::Saved => {
                // Its gvpod may have been killed: a directory whose lock is
                // free is ours to restore from; none left means nothing to do.
                let dirs = [PathBuf::from(&c.dir), store.path(&c.snapshot_id)];
                if dirs.iter().all(|d| !d.exists()) {
                    let _ = ctx.db.clear_checkpoint(id);
                    return AfterExit::Exit;
                }
                for d in &dirs {
                    if let Ok(Some(t)) = store.claim(d) {
                        // The lock is also free once gvpod has registered the
                        // snapshot (it marks the checkpoint done first): look again.
                        let now = ctx.db.checkpoint_of(id).ok().flatten().map(|c| c.state);
                        if !matches!(now, Some(CheckpointState::Saving | CheckpointState::Saved)) {
                            t.forget();
                            break;
                        }
                        let dir = t.dir.clone();
                        if let Ok(mut g) = CLAIMED.lock() {
                            *g = Some(t);
                        }
                        let _ = ctx
                            .db
                            .set_checkpoint_state(id, CheckpointState::Failed, None);
                        return resume(dir);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// After a restore launched by the monitor has a sandbox: once it runs
/// (the image is loaded), the checkpoint is answered (`resumed`) and a
/// taken-over temp directory is removed.
pub(crate) fn after_restore_started(ctx: &mut Ctx, id: &str, flags: &GlobalFlags) {
    let relevant = matches!(
        ctx.db.checkpoint_of(id),
        Ok(Some(c)) if c.state == CheckpointState::Failed
            || (c.state == CheckpointState::Done && c.leave_running)
    );
    let claimed = CLAIMED.lock().ok().and_then(|mut g| g.take());
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
        .set_checkpoint_state(id, CheckpointState::Resumed, None);
    drop(claimed);
}

/// The snapshot a stopped pod was checkpointed to, if that is why it stopped.
/// (Also while the monitor of a just-checkpointed pod is still recording it.)
pub(crate) fn checkpointed_to(ctx: &Ctx, pod: &PodRow) -> Option<String> {
    if pod.status == PodStatus::Created {
        return None;
    }
    checkpoint_pending(ctx, pod)
}
