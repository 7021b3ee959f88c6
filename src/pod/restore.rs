//! `restore`: bring a snapshot back as a running pod.
//!
//! * `--name NEW`, or a source pod that is still running → a clone: a new
//!   pod (own id, name, bundle, cgroup) whose rootfs is a fresh overlay of
//!   the same image layers with the snapshot's diff as its upper dir;
//! * the source pod gone → the original pod again (same id and name);
//! * the source pod stopped → restored in place; its upper dir is reset to
//!   the snapshot's diff unless it was not started since this very
//!   checkpoint (then it is already that).
//!
//! DESIGN.md fact 10: the restore spec must match the checkpoint's (mounts
//! by destination, `root.readonly`, process), so the snapshot's own
//! `config.json` is reused and only what may differ is changed: mount
//! sources (the clone's own /etc/hostname and /etc/hosts), `cgroupsPath`.
//! The hostname stays the snapshot's: it lives in the restored kernel's
//! memory. A snapshot of another runsc release or an unusable platform, or
//! one whose image is gone, is refused before anything is made; a restore
//! that fails removes the pod it made (the in-place pod stays stopped).

use std::path::{Path, PathBuf};

use super::start::{start_with, Attach, StartOutcome};
use super::{failpoint, id, Ctx, PodError, Result};
use crate::bundle::RootfsPaths;
use crate::runsc::GlobalFlags;
use crate::snapshot::{self, SnapshotError, SnapshotMeta, SnapshotStore};
use crate::state::{CheckpointState, PodRow, PodStatus, ResourceKind};

pub struct RestoreRequest {
    pub snapshot: String,
    pub name: Option<String>,
    /// `-p` specs: need pod networking, which this gvpod does not have yet.
    pub ports: Vec<String>,
    pub network: Option<String>,
    pub debug: bool,
}

/// How the snapshot came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreKind {
    Original,
    InPlace,
    Clone,
}

impl RestoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreKind::Original => "original",
            RestoreKind::InPlace => "in place",
            RestoreKind::Clone => "clone",
        }
    }
}

pub fn restore(ctx: &mut Ctx, req: RestoreRequest) -> Result<(PodRow, RestoreKind)> {
    let store = SnapshotStore::new(&ctx.root)?;
    let row = store.lookup(&ctx.db, &req.snapshot)?;
    let meta = store.meta(&row)?;
    let dir = store.path(&row.id);
    let unusable = |why: String| {
        PodError::Snapshot(SnapshotError::Unusable {
            name: meta.name.clone(),
            why,
        })
    };
    if !req.ports.is_empty() {
        return Err(PodError::Usage(format!(
            "invalid -p {:?}: publishing ports needs pod networking, which this gvpod does not have yet",
            req.ports[0]
        )));
    }
    if let Some(n) = &req.network {
        if *n != meta.network.mode {
            return Err(PodError::Usage(format!(
                "invalid --network {n:?}: snapshot {} was taken with --network {}, and this gvpod cannot move a pod to another network",
                meta.name, meta.network.mode
            )));
        }
    }
    // Fact 10: only the same runsc release restores its snapshots.
    let runsc = ctx.runsc()?.clone();
    if meta.runsc.version != runsc.version.raw {
        return Err(unusable(format!(
            "it was taken with {:?} and this host has {:?}; runsc restores only snapshots of its own release",
            meta.runsc.version, runsc.version.raw
        )));
    }
    if let Err(e) = runsc.probe_platform(&meta.runsc.platform, &ctx.root) {
        return Err(unusable(format!(
            "it was taken on platform {}, which cannot be used here: {e}",
            meta.runsc.platform
        )));
    }
    let image = match ctx.images.resolve(&ctx.db, &meta.image.id) {
        Ok(i) => i,
        Err(crate::image::ImageError::NotFound(_)) => {
            return Err(unusable(format!(
                "it needs image {} ({}), which is not in the image store; import or pull it first",
                meta.image.reference, meta.image.id
            )))
        }
        Err(e) => return Err(e.into()),
    };
    for f in [
        snapshot::META,
        snapshot::SPEC,
        snapshot::DIFF,
        snapshot::IMAGE,
    ] {
        if !dir.join(f).is_file() {
            return Err(unusable(format!(
                "its directory {} has no {f}; remove it with `gvpod snapshot rm {}`",
                dir.display(),
                meta.name
            )));
        }
    }
    for v in &meta.options.volumes {
        if !v.host.exists() {
            return Err(unusable(format!(
                "volume source {} (mounted at {}) no longer exists",
                v.host.display(),
                v.pod
            )));
        }
    }

    tracing::debug!("step restore:checked");
    let source = ctx.db.pod(&meta.pod.id)?;
    let source = match source {
        Some(p) => {
            let p = ctx.refresh(p)?;
            Some(super::checkpoint::settle(ctx, p)?)
        }
        None => None,
    };
    let (pod, kind) = match (&req.name, source) {
        (None, Some(p)) if p.status != PodStatus::Running => {
            prepare_in_place(ctx, &p, &meta, &dir, &image)?;
            (p, RestoreKind::InPlace)
        }
        (None, Some(p)) => {
            let name = clone_name(ctx, &p.name)?;
            let pod = make_pod(
                ctx,
                &meta,
                &dir,
                &image,
                id::new_id(),
                name,
                false,
                req.debug,
            )?;
            (pod, RestoreKind::Clone)
        }
        (Some(n), _) => {
            id::validate_name(n)?;
            let pod = make_pod(
                ctx,
                &meta,
                &dir,
                &image,
                id::new_id(),
                n.clone(),
                false,
                req.debug,
            )?;
            (pod, RestoreKind::Clone)
        }
        (None, None) => {
            if ctx
                .lookup(&meta.pod.name)
                .is_ok_and(|p| p.name == meta.pod.name)
            {
                return Err(PodError::Usage(format!(
                    "pod name {:?} of snapshot {} is taken by another pod; restore it under another name with --name",
                    meta.pod.name, meta.name
                )));
            }
            let pod = make_pod(
                ctx,
                &meta,
                &dir,
                &image,
                meta.pod.id.clone(),
                meta.pod.name.clone(),
                meta.pod.auto_remove,
                req.debug,
            )?;
            (pod, RestoreKind::Original)
        }
    };
    failpoint::hit("restore:prepared");

    let outcome = start_with(ctx, &pod, Attach::Detached, Some(&dir));
    let failed = match outcome {
        Ok(StartOutcome::Started { .. }) => None,
        Ok(StartOutcome::Exited { code }) => {
            let flags = ctx.flags_of(&pod)?;
            Some(
                crate::runsc::last_error(&flags.log)
                    .map(|m| {
                        // runsc appends a goroutine dump to some errors: one line is enough.
                        let first = m.lines().next().unwrap_or_default().trim_end_matches(':');
                        format!("runsc: {first} (runsc log: {})", flags.log.display())
                    })
                    .unwrap_or_else(|| {
                        format!(
                            "the pod exited at once (code {}); see `gvpod logs {}`",
                            code.map_or("unknown".into(), |c| c.to_string()),
                            pod.name
                        )
                    }),
            )
        }
        Err(e) => Some(e.to_string()),
    };
    if let Some(msg) = failed {
        if kind != RestoreKind::InPlace {
            if let Err(e) = super::cleanup::remove_pod(ctx, &pod.id) {
                tracing::warn!("removing pod {} after a failed restore: {e}", pod.name);
            }
        }
        return Err(PodError::Restore {
            snapshot: meta.name.clone(),
            msg,
        });
    }
    let pod = ctx.db.pod(&pod.id)?.unwrap_or(pod);
    Ok((pod, kind))
}

/// `<source>-<4 hex>`, unused.
fn clone_name(ctx: &Ctx, source: &str) -> Result<String> {
    let base: String = source.chars().take(58).collect();
    for _ in 0..100 {
        let n = format!("{base}-{}", crate::util::random_hex(2));
        if ctx.db.find_pods(&n)?.iter().all(|p| p.name != n) {
            return Ok(n);
        }
    }
    Err(PodError::Usage(format!(
        "no free clone name for pod {source}; give one with --name"
    )))
}

/// A new pod (clone or original) from the snapshot: row, bundle, rootfs
/// with the snapshot's diff, spec. Undone entirely on failure.
#[allow(clippy::too_many_arguments)]
fn make_pod(
    ctx: &mut Ctx,
    meta: &SnapshotMeta,
    dir: &Path,
    image: &crate::image::Image,
    pod_id: String,
    name: String,
    auto_remove: bool,
    debug: bool,
) -> Result<PodRow> {
    let bundle_dir = ctx.bundle_dir(&pod_id);
    let flags = GlobalFlags {
        root: ctx.run_dir.join("runsc"),
        platform: meta.runsc.platform.clone(),
        network: meta.runsc.network.clone(),
        overlay2: meta.runsc.overlay2.clone(),
        log: bundle_dir.join("runsc.log"),
        debug_log: debug.then(|| bundle_dir.join("debug")),
        extra: meta.runsc.extra.clone(),
    };
    let row = PodRow {
        id: pod_id,
        name,
        image_id: image.id.clone(),
        image_ref: meta.image.reference.clone(),
        status: PodStatus::Created,
        config_json: serde_json::to_string(&meta.options).expect("options serialise"),
        process_json: meta.process.to_string(),
        runsc_json: serde_json::to_string(&flags).expect("flags serialise"),
        created: crate::util::now_rfc3339(),
        started: None,
        finished: None,
        exit_code: None,
        pid: None,
        monitor_pid: None,
        auto_remove,
    };
    ctx.db.insert_pod(&row)?;
    let made = (|| -> Result<()> {
        ctx.db
            .add_resource(&row.id, ResourceKind::Path, &bundle_dir.to_string_lossy())?;
        std::fs::create_dir(&bundle_dir).map_err(super::io("cannot create bundle", &bundle_dir))?;
        let paths = RootfsPaths::new(&bundle_dir);
        ctx.db.add_resource(
            &row.id,
            ResourceKind::Mount,
            &paths.merged.to_string_lossy(),
        )?;
        crate::bundle::mount_overlay(&image.layers, &paths)?;
        unpack_diff(dir, &paths.merged, &meta.name)?;
        let cgroup = format!("gvpod/{}", row.id);
        ctx.db
            .add_resource(&row.id, ResourceKind::Cgroup, &cgroup)?;
        let log = ctx.log_path(&row.id);
        ctx.db
            .add_resource(&row.id, ResourceKind::Path, &log.to_string_lossy())?;
        write_bundle(&bundle_dir, dir, meta, &row, &cgroup)
    })();
    match made {
        Ok(()) => Ok(row),
        Err(e) => {
            if let Err(e2) = super::cleanup::release(ctx, &row.id) {
                tracing::warn!("rollback of pod {}: {e2}", row.name);
            }
            let _ = ctx.db.delete_pod(&row.id);
            Err(e)
        }
    }
}

/// Makes a stopped pod's bundle match the snapshot again.
fn prepare_in_place(
    ctx: &mut Ctx,
    pod: &PodRow,
    meta: &SnapshotMeta,
    dir: &Path,
    image: &crate::image::Image,
) -> Result<()> {
    let flags = ctx.flags_of(pod)?;
    if flags.platform != meta.runsc.platform || flags.network != meta.runsc.network {
        return Err(PodError::Usage(format!(
            "pod {} no longer has the platform and network of snapshot {}; restore it under a new name with --name",
            pod.name, meta.name
        )));
    }
    let runsc = ctx.runsc()?.clone();
    if runsc.has_state(&flags, &pod.id) {
        runsc.delete_force(&flags, &pod.id)?;
    }
    crate::runsc::reap_leftovers(&flags, &pod.id);
    let bundle = ctx.bundle_dir(&pod.id);
    let paths = RootfsPaths::new(&bundle);
    // Not started since this checkpoint: the upper dir is the snapshot's already.
    let untouched = ctx.db.checkpoint_of(&pod.id)?.is_some_and(|c| {
        c.snapshot_id == meta.id
            && c.state == CheckpointState::Done
            && pod.started.as_deref().unwrap_or("") <= c.at.as_str()
    });
    if !untouched || !super::start::is_mountpoint(&paths.merged) {
        crate::bundle::unmount(&paths.merged)?;
        for d in [&paths.upper, &paths.work] {
            snapshot::remove_tree(d).map_err(super::io("cannot clear", d))?;
        }
        if untouched {
            return Err(PodError::Usage(format!(
                "the rootfs of pod {} is not mounted; restore snapshot {} under a new name with --name",
                pod.name, meta.name
            )));
        }
        crate::bundle::mount_overlay(&image.layers, &paths)?;
        unpack_diff(dir, &paths.merged, &meta.name)?;
    }
    let cgroup = format!("gvpod/{}", pod.id);
    write_bundle(&bundle, dir, meta, pod, &cgroup)
}

/// Applies the snapshot's diff (an OCI layer) on the pod's freshly mounted
/// rootfs (image layers + empty upper dir) with the image store's secure
/// layer unpacker: entries land in the upper dir, and whiteouts delete in
/// the merged view, which overlayfs records as whiteouts in the upper dir.
/// The diff may come from an imported archive, so it is treated as untrusted.
fn unpack_diff(dir: &Path, merged: &Path, snap: &str) -> Result<()> {
    let diff = dir.join(snapshot::DIFF);
    let f = std::fs::File::open(&diff).map_err(super::io("cannot open", &diff))?;
    crate::image::unpack_layer(
        std::io::BufReader::with_capacity(1 << 20, f),
        merged,
        &format!("rootfs diff of snapshot {snap}"),
    )?;
    Ok(())
}

/// hostname, hosts and config.json of a restored pod's bundle.
fn write_bundle(
    bundle: &Path,
    dir: &Path,
    meta: &SnapshotMeta,
    pod: &PodRow,
    cgroup: &str,
) -> Result<()> {
    let hostname = &meta.pod.hostname;
    let etc_hostname = bundle.join("hostname");
    let etc_hosts = bundle.join("hosts");
    std::fs::write(&etc_hostname, format!("{hostname}\n"))
        .map_err(super::io("cannot write", &etc_hostname))?;
    std::fs::write(
        &etc_hosts,
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname} {}\n", pod.name),
    )
    .map_err(super::io("cannot write", &etc_hosts))?;
    let spec_path = dir.join(snapshot::SPEC);
    let data = std::fs::read(&spec_path).map_err(super::io("cannot read", &spec_path))?;
    let spec = adapt_spec(&data, &etc_hostname, &etc_hosts, cgroup).map_err(|why| {
        PodError::Snapshot(SnapshotError::Unusable {
            name: meta.name.clone(),
            why: format!("its config.json: {why}"),
        })
    })?;
    let out = bundle.join("config.json");
    crate::util::write_atomic(&out, &spec).map_err(super::io("cannot write", &out))
}

/// The snapshot's spec with the mount sources of /etc/hostname and
/// /etc/hosts and the cgroups path replaced (fact 10: those may differ).
fn adapt_spec(
    data: &[u8],
    hostname: &Path,
    hosts: &Path,
    cgroup: &str,
) -> std::result::Result<Vec<u8>, String> {
    let mut v: serde_json::Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let mounts = v
        .get_mut("mounts")
        .and_then(|m| m.as_array_mut())
        .ok_or("no mounts")?;
    for m in mounts {
        let src: Option<PathBuf> = match m.get("destination").and_then(|d| d.as_str()) {
            Some("/etc/hostname") => Some(hostname.to_owned()),
            Some("/etc/hosts") => Some(hosts.to_owned()),
            _ => None,
        };
        if let Some(s) = src {
            m["source"] = serde_json::Value::String(s.to_string_lossy().into_owned());
        }
    }
    let linux = v
        .get_mut("linux")
        .and_then(|l| l.as_object_mut())
        .ok_or("no linux section")?;
    linux.insert(
        "cgroupsPath".into(),
        serde_json::Value::String(format!("/{cgroup}")),
    );
    serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::adapt_spec;
    use std::path::Path;

    #[test]
    fn only_sources_and_cgroup_change() {
        let spec = br#"{"root":{"path":"rootfs","readonly":true},"process":{"args":["sh"]},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                      {"destination":"/etc/hostname","type":"bind","source":"/old/hostname","options":["rbind"]},
                      {"destination":"/etc/hosts","type":"bind","source":"/old/hosts"}],
            "linux":{"cgroupsPath":"/gvpod/old"}}"#;
        let out = adapt_spec(
            spec,
            Path::new("/new/hostname"),
            Path::new("/new/hosts"),
            "gvpod/new",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["mounts"][1]["source"], "/new/hostname");
        assert_eq!(v["mounts"][1]["options"][0], "rbind");
        assert_eq!(v["mounts"][2]["source"], "/new/hosts");
        assert_eq!(v["mounts"][0]["source"], "proc");
        assert_eq!(v["linux"]["cgroupsPath"], "/gvpod/new");
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["args"][0], "sh");
        assert!(adapt_spec(b"{}", Path::new("/a"), Path::new("/b"), "c").is_err());
    }
}
