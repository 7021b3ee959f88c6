//! Writing a snapshot once runsc has saved the pod: the memory image with
//! progress shown ([`save_image`]), then the filesystem diff, the spec and
//! `snapshot.json` ([`write_snapshot`]), and the rename into place
//! ([`complete`]). Nothing here registers the snapshot: the caller does that
//! in the transaction that marks the checkpoint done.

use std::time::Instant;

use super::super::{failpoint, io, Ctx, PodError, Result};
use crate::bundle::{PodOptions, RootfsPaths};
use crate::runsc::{GlobalFlags, Runsc};
use crate::snapshot::{
    self, ImageInfo, NetworkInfo, PodInfo, RunscInfo, SnapshotMeta, SnapshotStore, TempSnapshot,
};
use crate::state::PodRow;

/// `runsc checkpoint` into the temp directory, with progress shown; its
/// outcome and duration in ms (the `checkpoint:runsc` failpoint makes runsc
/// fail for real: it refuses to overwrite an image).
pub(super) fn save_image(
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
pub(super) fn complete(
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
    let f = std::fs::File::create(&diff_path).map_err(io("cannot create", &diff_path))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    snapshot::diff::write_diff(&upper, &mut w)?;
    let f = w
        .into_inner()
        .map_err(|e| io("cannot write", &diff_path)(e.into_error()))?;
    let rootfs_diff_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);

    let spec_src = bundle.join("config.json");
    let spec_dst = t.dir.join(snapshot::SPEC);
    let spec = std::fs::read(&spec_src).map_err(io("cannot read", &spec_src))?;
    std::fs::write(&spec_dst, &spec).map_err(io("cannot write", &spec_dst))?;
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
        .map_err(io("cannot stat", &image))?
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
                .filter(|p| !p.route)
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
    .map_err(io("cannot write", &meta_path))?;
    Ok(meta)
}
