//! `restore`: bring a snapshot back as a running pod.
//!
//! * `--name NEW`, or a source pod that is still running → a clone: a new
//!   pod (own id, name, bundle, cgroup, address; ports only from `-p`)
//!   whose rootfs is a fresh overlay of the same image layers with the
//!   snapshot's diff applied;
//! * the source pod gone → the original pod again (same id and name, its
//!   address when still free, its ports);
//! * the source pod stopped → restored in place with its own lease and
//!   ports; its upper dir is reset to the snapshot's diff unless it was not
//!   started since this very checkpoint (then it is already that).
//!
//! DESIGN.md fact 10: the restore spec must match the checkpoint's (mounts
//! by destination, `root.readonly`, process), so the snapshot's own
//! `config.json` is reused and only what may differ is changed: mount
//! sources (the pod's own /etc/hostname, /etc/hosts, /etc/resolv.conf), the
//! network namespace path, `cgroupsPath`. The hostname stays the
//! snapshot's: it lives in the restored kernel's memory. Fact 4: runsc took
//! the addresses off the interface when it checkpointed, so they are put
//! back (`network::setup_pod` for a new pod, `network::prepare_start` in
//! `start`) before `runsc restore`. A snapshot of another runsc release or
//! an unusable platform, or one whose image is gone, is refused before
//! anything is made; a restore that fails removes the pod it made, with its
//! address, ports and namespace (the in-place pod stays stopped).

pub use super::views::RestoreRequest;
use std::path::{Path, PathBuf};

use super::provision::{self, NewRow, RunscChoice};
use super::start::{start_with, Attach, EarlyMonitor, StartOutcome};
use super::{failpoint, id, Ctx, PodError, Result};
use crate::bundle::{PodOptions, RootfsPaths};
use crate::snapshot::{self, SnapshotError, SnapshotMeta, SnapshotStore};
use crate::state::{CheckpointState, PodRow, PodStatus};

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
    restore_with(ctx, req, None)
}

/// [`restore`] with a monitor started before the data root was opened
/// (`EarlyMonitor`): a clone takes its id and it; any other restore keeps
/// its pod's id, so the monitor is dropped unused (it exits at once).
pub fn restore_with(
    ctx: &mut Ctx,
    req: RestoreRequest,
    early: Option<EarlyMonitor>,
) -> Result<(PodRow, RestoreKind)> {
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
    // The sandbox's network mode (none, host, a pod network) is part of
    // the saved kernel; a clone may move to another pod network.
    let pod_net = |n: &str| !matches!(n, "none" | "host" | "");
    let target_net = req
        .network
        .clone()
        .unwrap_or_else(|| meta.options.network.clone());
    if pod_net(&target_net) != pod_net(&meta.options.network)
        || (!pod_net(&target_net) && target_net != meta.options.network)
    {
        return Err(PodError::Usage(format!(
            "invalid --network {target_net:?}: snapshot {} was taken with --network {}; a restored pod keeps that kind of network",
            meta.name, meta.options.network
        )));
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
        Some(p) => Some(ctx.refresh(p)?),
        None => None,
    };
    // A clone gets its own address and only the ports asked for here; the
    // original gets its address back when it is free, and its ports.
    let clone_opts = {
        let mut o = meta.options.clone();
        o.network = target_net.clone();
        o.publish = req.ports.clone();
        o.route = req.route.clone();
        o.ip = None;
        o
    };
    let clone_id = || {
        early
            .as_ref()
            .map_or_else(id::new_id, |e| e.id().to_string())
    };
    let (pod, kind) = match (&req.name, source) {
        (None, Some(p)) if p.status != PodStatus::Running => {
            if !req.ports.is_empty() || req.route.is_some() || target_net != meta.options.network {
                return Err(PodError::Usage(format!(
                    "pod {} still exists and keeps its network, ports and route; restore snapshot {} under a new name (--name) to publish other ports, route it or join another network",
                    p.name, meta.name
                )));
            }
            prepare_in_place(ctx, &p, &meta, &dir, &image)?;
            (p, RestoreKind::InPlace)
        }
        (None, Some(p)) => {
            let who = (clone_id(), clone_name(ctx, &p.name)?, false);
            let pod = make_pod(ctx, &meta, &dir, &image, who, &clone_opts, req.debug)?;
            (pod, RestoreKind::Clone)
        }
        (Some(n), _) => {
            id::validate_name(n)?;
            let who = (clone_id(), n.clone(), false);
            let pod = make_pod(ctx, &meta, &dir, &image, who, &clone_opts, req.debug)?;
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
            let mut opts = meta.options.clone();
            opts.network = target_net.clone();
            if !req.ports.is_empty() {
                opts.publish = req.ports.clone();
            }
            if req.route.is_some() {
                opts.route = req.route.clone();
            }
            // Its old address, if it is still free on the same network.
            opts.ip = meta
                .network
                .ip
                .clone()
                .filter(|_| target_net == meta.options.network);
            let who = (
                meta.pod.id.clone(),
                meta.pod.name.clone(),
                meta.pod.auto_remove,
            );
            let pod = match make_pod(ctx, &meta, &dir, &image, who.clone(), &opts, req.debug) {
                Err(PodError::State(crate::state::StateError::AddressTaken { .. })) => {
                    opts.ip = None;
                    make_pod(ctx, &meta, &dir, &image, who, &opts, req.debug)?
                }
                r => r?,
            };
            (pod, RestoreKind::Original)
        }
    };
    failpoint::hit("restore:prepared");

    let early = early.filter(|_| kind == RestoreKind::Clone);
    let outcome = start_with(ctx, &pod, Attach::Detached, Some(&dir), early);
    let failed = match outcome {
        Ok(StartOutcome::Started { .. }) => None,
        Ok(StartOutcome::Exited { code }) => {
            let flags = ctx.flags_of(&pod)?;
            Some(
                crate::runsc::last_error_line(&flags.log)
                    .map(|first| format!("runsc: {first} (runsc log: {})", flags.log.display()))
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

/// A new pod (clone or original) from the snapshot: row with its address
/// and ports (one transaction, as `create` does), bundle, rootfs with the
/// snapshot's diff, network namespace, spec. Undone entirely on failure:
/// address, ports and namespace included.
fn make_pod(
    ctx: &mut Ctx,
    meta: &SnapshotMeta,
    dir: &Path,
    image: &crate::image::Image,
    (pod_id, name, auto_remove): (String, String, bool),
    opts: &PodOptions,
    debug: bool,
) -> Result<PodRow> {
    let network = super::network::resolve(ctx, &opts.network)?;
    let mut netopts = super::network::parse_opts(opts, network.as_ref())?;
    netopts.route = super::route::resolve(
        opts,
        &name,
        &super::create::exposed_ports(image),
        &ctx.db.tcp_host_ports()?,
        &netopts.ports,
    )?;
    let runsc = ctx.runsc()?.clone();
    let flags = provision::flags(
        ctx,
        &runsc,
        &pod_id,
        RunscChoice {
            platform: meta.runsc.platform.clone(),
            network: meta.runsc.network.clone(),
            overlay2: meta.runsc.overlay2.clone(),
            extra: meta.runsc.extra.clone(),
        },
        debug,
    );
    let row = NewRow {
        id: pod_id,
        name,
        image_id: &image.id,
        image_ref: &meta.image.reference,
        opts,
        process: crate::state::process_column(meta.process.to_string()),
        flags: &flags,
        auto_remove,
    };
    provision::insert_and_make(ctx, row, network.as_ref(), &netopts, |ctx, row, ip| {
        let bundle_dir = ctx.bundle_dir(&row.id);
        let paths = provision::mount_rootfs(ctx, row, &image.layers)?;
        unpack_diff(dir, &paths.merged, &meta.name)?;
        failpoint::hit("restore:rootfs");
        let attach = network.as_ref().zip(ip);
        let netns = provision::attach(ctx, &row.id, attach)?;
        let cgroup = provision::record_cgroup_and_log(ctx, &row.id)?;
        // The snapshot's filesystem holds what the pod's setup and its
        // services' installs did (a pod with services is checkpointed only
        // after they ran): not done again.
        super::service::mark_done(ctx, &row.id, opts)?;
        let hosts = super::network::pod_hosts(
            ctx,
            &row.id,
            &row.name,
            &meta.pod.hostname,
            attach,
            &netopts.add_hosts,
        )?;
        let mut files = BundleFiles::new(
            &bundle_dir,
            super::helpers::helpers_dir(&ctx.root),
            netns.as_deref(),
        );
        files.ssh_keys = super::ssh::keys_mount(ctx, &row.name, &opts.dev)?.map(|m| m.0);
        files.rootfs = Some(paths.merged.clone());
        write_bundle(dir, meta, &files, &cgroup, &hosts, &netopts)?;
        failpoint::hit("restore:bundle");
        Ok(())
    })
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
            && pod
                .started
                .as_deref()
                .and_then(crate::util::parse_rfc3339)
                .is_none_or(|s| s <= c.at)
    });
    if !untouched || !super::start::is_mountpoint(&paths.merged) {
        crate::bundle::unmount(&paths.merged)?;
        // A bounded layer's filesystem first: its upper dir is the one to clear.
        crate::bundle::mount_bounded(&paths)?;
        for d in [&paths.upper, &paths.work] {
            crate::sys::remove_path(d).map_err(super::io("cannot clear", d))?;
        }
        if untouched {
            return Err(PodError::Usage(format!(
                "the rootfs of pod {} is not mounted; restore snapshot {} under a new name with --name",
                pod.name, meta.name
            )));
        }
        provision::mount_overlay(ctx, pod, &image.layers, &paths)?;
        unpack_diff(dir, &paths.merged, &meta.name)?;
    }
    let cgroup = format!("gvpod/{}", pod.id);
    let opts = pod.options()?.clone();
    let network = super::network::resolve(ctx, &opts.network)?;
    let netopts = super::network::PodNetOpts {
        ports: vec![],
        route: None,
        ip: None,
        dns: opts.dns.iter().filter_map(|d| d.parse().ok()).collect(),
        add_hosts: opts
            .add_hosts
            .iter()
            .filter_map(|h| crate::net::dns::parse_add_host(h).ok())
            .collect(),
    };
    let lease = ctx.db.lease_of(&pod.id)?.map(|(_, ip)| ip);
    let hosts = super::network::pod_hosts(
        ctx,
        &pod.id,
        &pod.name,
        &meta.pod.hostname,
        network.as_ref().zip(lease),
        &netopts.add_hosts,
    )?;
    let netns = lease.map(|_| super::network::netns_path(ctx, &pod.id));
    let mut files = BundleFiles::new(
        &bundle,
        super::helpers::helpers_dir(&ctx.root),
        netns.as_deref(),
    );
    files.ssh_keys = super::ssh::keys_mount(ctx, &pod.name, &opts.dev)?.map(|m| m.0);
    write_bundle(dir, meta, &files, &cgroup, &hosts, &netopts)
}

/// Applies the snapshot's diff (an OCI layer) on the pod's freshly mounted
/// rootfs (image layers + empty upper dir) with the image store's secure
/// layer unpacker: entries land in the upper dir, and whiteouts delete in
/// the merged view, which overlayfs records as whiteouts in the upper dir.
/// The diff may come from an imported archive, so it is treated as untrusted.
/// Not synced here: the pod's monitor syncs the bundle once the restore has
/// started (`monitor::make_durable`).
fn unpack_diff(dir: &Path, merged: &Path, snap: &str) -> Result<()> {
    let diff = dir.join(snapshot::DIFF);
    let f = std::fs::File::open(&diff).map_err(super::io("cannot open", &diff))?;
    crate::image::unpack_layer_unsynced(
        std::io::BufReader::with_capacity(1 << 20, f),
        merged,
        &format!("rootfs diff of snapshot {snap}"),
    )?;
    Ok(())
}

/// The restored pod's own files its spec points at.
struct BundleFiles<'a> {
    bundle: PathBuf,
    hostname: PathBuf,
    hosts: PathBuf,
    resolv: PathBuf,
    /// This data root's helpers directory (`pod::helpers`), for snapshots
    /// of pods made before the helpers layer, which bind it at /dev/gvpod
    /// (the relay is installed there only for them: [`write_bundle`]).
    helpers: PathBuf,
    netns: Option<&'a Path>,
    /// The pod's own ssh host keys (by its name), for `--ssh` pods.
    ssh_keys: Option<PathBuf>,
    /// A new pod's rootfs (the snapshot's diff applied): its /etc/hosts is
    /// written there when the snapshot's spec does not bind it
    /// (`bundle::etc`), so a clone lists its own name.
    rootfs: Option<PathBuf>,
}

impl<'a> BundleFiles<'a> {
    fn new(bundle: &Path, helpers: PathBuf, netns: Option<&'a Path>) -> Self {
        BundleFiles {
            helpers,
            bundle: bundle.to_owned(),
            hostname: bundle.join("hostname"),
            hosts: bundle.join("hosts"),
            resolv: bundle.join("resolv.conf"),
            netns,
            ssh_keys: None,
            rootfs: None,
        }
    }
}

/// hostname, hosts, resolv.conf and config.json of a restored pod's bundle.
fn write_bundle(
    dir: &Path,
    meta: &SnapshotMeta,
    f: &BundleFiles,
    cgroup: &str,
    hosts: &str,
    netopts: &super::network::PodNetOpts,
) -> Result<()> {
    std::fs::write(&f.hostname, format!("{}\n", meta.pod.hostname))
        .map_err(super::io("cannot write", &f.hostname))?;
    std::fs::write(&f.hosts, hosts).map_err(super::io("cannot write", &f.hosts))?;
    if meta.options.network != "none" {
        let text = if meta.options.network == "host" && netopts.dns.is_empty() {
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        } else {
            crate::net::dns::resolv_conf(&netopts.dns, crate::net::dns::HOST_RESOLV)
        };
        std::fs::write(&f.resolv, text).map_err(super::io("cannot write", &f.resolv))?;
    }
    let spec_path = dir.join(snapshot::SPEC);
    let data = std::fs::read(&spec_path).map_err(super::io("cannot read", &spec_path))?;
    // A snapshot of a pod made before the helpers layer binds the helpers
    // directory at /dev/gvpod: only such a restore needs the relay there.
    if crate::bundle::spec_mounts_at(&data, crate::runsc::LEGACY_HELPERS_IN_POD) == Some(true) {
        super::helpers::install_relay_in(&f.helpers)?;
    }
    if let Some(rootfs) = &f.rootfs {
        // (An unreadable spec is refused below, by `adapt_spec`.)
        if !crate::bundle::spec_mounts_at(&data, crate::bundle::etc::HOSTS).unwrap_or(true) {
            crate::bundle::etc::write_in_rootfs(
                rootfs,
                crate::bundle::etc::HOSTS,
                hosts.as_bytes(),
            )
            .map_err(super::io("cannot write /etc/hosts in", rootfs))?;
        }
    }
    let spec = adapt_spec(&data, f, cgroup).map_err(|why| {
        PodError::Snapshot(SnapshotError::Unusable {
            name: meta.name.clone(),
            why: format!("its config.json: {why}"),
        })
    })?;
    // No fsync here: the pod's monitor syncs the bundle once the restore has
    // started (a restore always starts the pod at once).
    let out = f.bundle.join("config.json");
    crate::util::write_replacing(&out, &spec, false).map_err(super::io("cannot write", &out))
}

/// The snapshot's spec with what fact 10 lets differ replaced: the mount
/// sources of /etc/hostname, /etc/hosts, /etc/resolv.conf, gvpod's
/// helpers and the ssh host keys (a clone under a new name has its own),
/// the network namespace path, the cgroups path.
fn adapt_spec(data: &[u8], f: &BundleFiles, cgroup: &str) -> std::result::Result<Vec<u8>, String> {
    let mut v: serde_json::Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let mounts = v
        .get_mut("mounts")
        .and_then(|m| m.as_array_mut())
        .ok_or("no mounts")?;
    for m in mounts {
        let src: Option<&Path> = match m.get("destination").and_then(|d| d.as_str()) {
            Some("/etc/hostname") => Some(&f.hostname),
            Some("/etc/hosts") => Some(&f.hosts),
            Some("/etc/resolv.conf") => Some(&f.resolv),
            Some(crate::runsc::LEGACY_HELPERS_IN_POD) => Some(&f.helpers),
            Some(crate::bundle::devuser::HOST_KEYS_DIR) => f.ssh_keys.as_deref(),
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
    if let Some(ns) = f.netns {
        let namespaces = linux
            .get_mut("namespaces")
            .and_then(|n| n.as_array_mut())
            .ok_or("no namespaces")?;
        for n in namespaces {
            if n.get("type").and_then(|t| t.as_str()) == Some("network") {
                n["path"] = serde_json::Value::String(ns.to_string_lossy().into_owned());
            }
        }
    }
    serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{adapt_spec, BundleFiles};
    use std::path::Path;

    #[test]
    fn only_sources_and_cgroup_change() {
        let spec = br#"{"root":{"path":"rootfs","readonly":true},"process":{"args":["sh"]},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                      {"destination":"/etc/hostname","type":"bind","source":"/old/hostname","options":["rbind"]},
                      {"destination":"/etc/hosts","type":"bind","source":"/old/hosts"},
                      {"destination":"/dev/gvpod","type":"bind","source":"/old/helpers","options":["ro"]}],
            "linux":{"cgroupsPath":"/gvpod/old","namespaces":[{"type":"pid"},{"type":"network","path":"/old/netns"}]}}"#;
        let files = BundleFiles::new(
            Path::new("/new"),
            "/root2/helpers".into(),
            Some(Path::new("/new/netns")),
        );
        let out = adapt_spec(spec, &files, "gvpod/new").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["mounts"][1]["source"], "/new/hostname");
        assert_eq!(v["mounts"][1]["options"][0], "rbind");
        assert_eq!(v["mounts"][2]["source"], "/new/hosts");
        assert_eq!(v["mounts"][3]["source"], "/root2/helpers");
        assert_eq!(v["mounts"][3]["options"][0], "ro");
        assert_eq!(v["mounts"][0]["source"], "proc");
        assert_eq!(v["linux"]["cgroupsPath"], "/gvpod/new");
        assert_eq!(v["linux"]["namespaces"][1]["path"], "/new/netns");
        assert!(v["linux"]["namespaces"][0].get("path").is_none());
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["args"][0], "sh");
        assert!(adapt_spec(b"{}", &files, "c").is_err());
    }
}
