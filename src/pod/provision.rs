//! What every new pod goes through, whether `create` makes it from an image
//! or `restore` from a snapshot: its runsc flags, its row inserted with its
//! address and host ports in one transaction, its bundle directory and
//! rootfs overlay, its cgroup and log recorded before they exist, and — if
//! any step fails — the undoing of all of it.

use std::net::Ipv4Addr;

use super::{network, Ctx, Result};
use crate::bundle::{PodOptions, ProcessSpec, RootfsPaths};
use crate::net::Network;
use crate::runsc::{GlobalFlags, Runsc};
use crate::state::{Json, PodRow, PodStatus, ResourceKind};

/// The runsc choices of a pod; the rest of its global flags follow from
/// where gvpod keeps the pod (DESIGN.md fact 1: replayed on every call).
pub(super) struct RunscChoice {
    pub platform: String,
    pub network: String,
    pub overlay2: Option<String>,
    pub extra: Vec<(String, String)>,
}

pub(super) fn flags(
    ctx: &Ctx,
    runsc: &Runsc,
    pod_id: &str,
    c: RunscChoice,
    debug: bool,
) -> GlobalFlags {
    let bundle_dir = ctx.bundle_dir(pod_id);
    // A pod on a network can later be checkpointed with `--tcp-close` only
    // if its NIC was built with the capability (unless the user set it).
    let net_disconnect_ok = c.network == "sandbox"
        && runsc.features.can_reset_tcp()
        && !c.extra.iter().any(|(k, _)| k == "net-disconnect-ok");
    GlobalFlags {
        root: ctx.run_dir.join("runsc"),
        platform: c.platform,
        network: c.network,
        overlay2: c.overlay2,
        log: bundle_dir.join("runsc.log"),
        debug_log: debug.then(|| bundle_dir.join("debug")),
        extra: c.extra,
        net_disconnect_ok,
        bin: Some(runsc.bin.clone()),
    }
}

/// A pod row in state `created`.
pub(super) struct NewRow<'a> {
    pub id: String,
    pub name: String,
    pub image_id: &'a str,
    pub image_ref: &'a str,
    pub opts: &'a PodOptions,
    /// The resolved process (`None` until the bundle is written).
    pub process: Option<Json<ProcessSpec>>,
    pub flags: &'a GlobalFlags,
    pub auto_remove: bool,
}

impl NewRow<'_> {
    fn into_row(self) -> PodRow {
        PodRow {
            id: self.id,
            name: self.name,
            image_id: self.image_id.to_string(),
            image_ref: self.image_ref.to_string(),
            status: PodStatus::Created,
            config: Json::new(self.opts.clone()),
            process: self.process,
            runsc: Json::new(self.flags.clone()),
            created: crate::util::now_rfc3339(),
            started: None,
            finished: None,
            exit_code: None,
            pid: None,
            monitor_pid: None,
            auto_remove: self.auto_remove,
            restart_count: 0,
            stopped_by_user: false,
        }
    }
}

/// Inserts the pod with its address and host ports (one transaction), then
/// runs `make` with the address. When `make` fails, every resource it
/// recorded is released and the row (with lease and ports) deleted; the
/// original error is returned, as that is what the user needs. On success
/// older pods on the network learn the new name.
pub(super) fn insert_and_make(
    ctx: &mut Ctx,
    row: NewRow,
    network: Option<&Network>,
    netopts: &network::PodNetOpts,
    make: impl FnOnce(&mut Ctx, &PodRow, Option<Ipv4Addr>) -> Result<()>,
) -> Result<PodRow> {
    let row = row.into_row();
    let ip = network::insert_pod(ctx, &row, network, netopts)?;
    match make(ctx, &row, ip) {
        Ok(()) => {
            if let Some(n) = network {
                let _ = network::refresh_peer_hosts(ctx, &n.name);
            }
            Ok(row)
        }
        Err(e) => {
            if let Err(e2) = super::cleanup::release(ctx, &row.id) {
                tracing::warn!("rollback of pod {}: {e2}", row.name);
            }
            let _ = ctx.db.delete_pod(&row.id);
            Err(e)
        }
    }
}

/// Records, then makes, the pod's bundle directory and its rootfs: an
/// overlay of the image's cached layers and gvpod's helpers layer with an
/// empty upper dir of its own ([`mount_overlay`]).
pub(super) fn mount_rootfs(
    ctx: &mut Ctx,
    row: &PodRow,
    layers: &[std::path::PathBuf],
) -> Result<RootfsPaths> {
    let pod_id = row.id.as_str();
    let bundle_dir = ctx.bundle_dir(pod_id);
    let paths = RootfsPaths::create(&bundle_dir, row.options()?.storage_size);
    // All recorded in one transaction before any is made (each undo is
    // idempotent: a mount never made is no mount). A bounded writable
    // layer's filesystem comes before the overlay, so the undo (in
    // reverse) unmounts the overlay before the filesystem under it.
    let bundle = bundle_dir.to_string_lossy();
    let bounded = paths.bounded.as_ref().map(|b| b.mount.to_string_lossy());
    let merged = paths.merged.to_string_lossy();
    let mut records = vec![(ResourceKind::Path, &*bundle)];
    records.extend(bounded.as_deref().map(|b| (ResourceKind::Mount, b)));
    records.push((ResourceKind::Mount, &*merged));
    ctx.db.add_resources(pod_id, &records)?;
    std::fs::create_dir(&bundle_dir).map_err(super::io("cannot create bundle", &bundle_dir))?;
    mount_overlay(ctx, row, layers, &paths)?;
    Ok(paths)
}

/// Mounts pod `row`'s rootfs overlay at `paths`: the image's `layers`
/// under gvpod's helpers layer (`super::helpers`, made if missing), with
/// the pod's upper dir (`volatile` for a `--rm` pod, see
/// [`crate::bundle::mount_overlay`]). Every mount of a pod's rootfs goes
/// through here (create, restore, the remounts after a reboot and for an
/// in-place restore), so none can miss the layer.
pub(super) fn mount_overlay(
    ctx: &Ctx,
    row: &PodRow,
    layers: &[std::path::PathBuf],
    paths: &RootfsPaths,
) -> Result<()> {
    let helpers = super::helpers::layer(&ctx.root)?;
    let mut all = Vec::with_capacity(layers.len() + 1);
    all.extend_from_slice(layers);
    all.push(helpers);
    crate::bundle::mount_overlay(&all, paths, row.auto_remove)?;
    Ok(())
}

/// Records the pod's cgroup (runsc makes it) and log files (the monitor
/// does: the pod's, and its services' directory); returns the spec's
/// `cgroupsPath`.
pub(super) fn record_cgroup_and_log(ctx: &mut Ctx, pod_id: &str) -> Result<String> {
    let cgroup = super::blkio::cgroup_of(pod_id);
    let log = ctx.log_path(pod_id);
    let services = super::service::log_dir(&ctx.root, pod_id);
    ctx.db.add_resources(
        pod_id,
        &[
            (ResourceKind::Cgroup, &cgroup),
            (ResourceKind::Path, &log.to_string_lossy()),
            (ResourceKind::Path, &services.to_string_lossy()),
        ],
    )?;
    Ok(cgroup)
}

/// Sets up the pod's namespace and veth when it has an address; returns
/// the namespace path for the spec.
pub(super) fn attach(
    ctx: &mut Ctx,
    pod_id: &str,
    attach: Option<(&Network, Ipv4Addr)>,
) -> Result<Option<std::path::PathBuf>> {
    match attach {
        Some((n, ip)) => {
            network::setup_pod(ctx, pod_id, n, ip)?;
            Ok(Some(network::netns_path(ctx, pod_id)))
        }
        None => Ok(None),
    }
}
