//! Undoing pods: `rm`, the rollback of a failed create, and `system gc`,
//! which finds what crashed processes left behind. Every resource kind in
//! `pod_resources` has exactly one undo here, and every undo is idempotent.

pub use super::views::GcReport;

use std::path::{Path, PathBuf};

use super::{Ctx, PodError, Result};
use crate::runsc::GlobalFlags;
use crate::state::{PodStatus, Resource, ResourceKind};

/// `rm [-f]`: a running pod is refused unless `force`, which kills it first.
pub fn remove(ctx: &mut Ctx, key: &str, force: bool) -> Result<String> {
    let pod = ctx.lookup(key)?;
    // A `start` of the pod finishes first (see `lock`); so may another `rm`.
    let _lock = super::lock::lock(ctx, &pod.id);
    let Some(pod) = ctx.db.pod(&pod.id)? else {
        return Err(PodError::NotFound(key.to_string()));
    };
    let pod = ctx.refresh(pod)?;
    if !pod.status.can_remove_without_force() && !force {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "stop it first or use `gvpod rm -f`",
        });
    }
    if pod.status == PodStatus::Running || pod.monitor_pid.is_some() {
        // Before the kill: the pod's monitor must not restart it (one in
        // its restart back-off ends on seeing this).
        ctx.db.set_pod_stopped_by_user(&pod.id)?;
        if pod.status == PodStatus::Running {
            // Corrupt flags (the row's runsc_json) must not keep `rm -f`
            // from removing the pod: `release` deletes its container with
            // this root's default flags then.
            match ctx.flags_of(&pod) {
                Ok(flags) => {
                    if let Ok(r) = ctx.runsc_for(&flags) {
                        let _ = r.kill(&flags, &pod.id, "KILL", false);
                    }
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        // Let the monitor record the exit and let go of the pod; then make sure it is gone.
        if let Some(pid) = pod.monitor_pid {
            if !super::await_monitor(&pod) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    // A --rm pod's monitor may have removed it meanwhile.
    if ctx.db.pod(&pod.id)?.is_some() {
        remove_pod(ctx, &pod.id)?;
    }
    Ok(pod.name)
}

/// Releases every resource of a pod and deletes its row.
pub(crate) fn remove_pod(ctx: &mut Ctx, id: &str) -> Result<()> {
    release(ctx, id)?;
    forget_pod(ctx, id)
}

/// [`remove_pod`] for a caller with an answer to give first (the monitor of
/// a `--rm` pod, whose client waits for the removal): the pod's bundle
/// directory is renamed to `bundles/.gone-<id>` (one syscall, after its
/// mounts are undone) instead of removed entry by entry; the caller removes
/// the returned directories once it has answered. A monitor killed before
/// that leaves a `.gone-*` directory, which `system gc` removes.
pub(crate) fn remove_pod_deferring(ctx: &mut Ctx, id: &str) -> Result<Vec<PathBuf>> {
    let mut later = vec![];
    release_with(ctx, id, Some(&mut later))?;
    forget_pod(ctx, id)?;
    Ok(later)
}

/// Prefix of bundle directories whose removal was deferred.
pub(crate) const GONE_PREFIX: &str = ".gone-";

/// Deletes a released pod's row (its lease and ports go in the same
/// transaction) and updates its network peers' hosts files.
fn forget_pod(ctx: &mut Ctx, id: &str) -> Result<()> {
    let lease = ctx.db.lease_of(id)?;
    // The lease and published ports go with the row (same transaction).
    ctx.db.delete_pod(id)?;
    if let Some((net, _)) = lease {
        let _ = super::network::refresh_peer_hosts(ctx, &net);
    }
    Ok(())
}

/// Undoes a pod's recorded resources, newest first; each undone one is forgotten.
pub(crate) fn release(ctx: &mut Ctx, id: &str) -> Result<()> {
    release_with(ctx, id, None)
}

/// [`release`]; with `defer`, the pod's bundle directory is renamed aside
/// and pushed there instead of removed (see [`remove_pod_deferring`]).
fn release_with(ctx: &mut Ctx, id: &str, mut defer: Option<&mut Vec<PathBuf>>) -> Result<()> {
    let bundle = ctx.bundle_dir(id);
    let flags = match ctx.db.pod(id)? {
        Some(p) => ctx.flags_of(&p).ok(),
        None => None,
    };
    let mut first_err = None;
    let mut done = vec![];
    let mut net_time = std::time::Duration::ZERO;
    for r in ctx.db.resources(Some(id))? {
        let t0 = std::time::Instant::now();
        let aside = match (&mut defer, r.kind) {
            (Some(later), ResourceKind::Path) if Path::new(&r.value) == bundle => {
                let gone = bundle.with_file_name(format!("{GONE_PREFIX}{id}"));
                match std::fs::rename(&bundle, &gone) {
                    Ok(()) => {
                        later.push(gone);
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        };
        let res = if aside {
            Ok(())
        } else {
            undo(ctx, &r, flags.as_ref())
        };
        if matches!(
            r.kind,
            ResourceKind::Netns | ResourceKind::Veth | ResourceKind::Firewall
        ) {
            net_time += t0.elapsed();
            tracing::trace!("undo {} {:?}", r.kind.as_str(), t0.elapsed());
        }
        match res {
            Ok(()) => done.push(r),
            Err(e) => {
                tracing::warn!("releasing {} {}: {e}", r.kind.as_str(), r.value);
                first_err.get_or_insert(e);
            }
        }
    }
    ctx.db.remove_resources(&done)?;
    if !net_time.is_zero() {
        // Read by benches/network.sh (GVPOD_LOG=debug).
        tracing::debug!("step net:released teardown_us={}", net_time.as_micros());
    }
    let _ = std::fs::remove_dir_all(ctx.pod_run_dir(id));
    // The log's rotated files (`monitor::log`) go with the recorded log.
    for old in super::logs::rotated_logs(&ctx.log_path(id)) {
        let _ = ctx.host().remove_path(&old);
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn undo(ctx: &Ctx, r: &Resource, flags: Option<&GlobalFlags>) -> Result<()> {
    match r.kind {
        ResourceKind::Runsc => {
            let fallback;
            let flags = match flags {
                Some(f) => f,
                None => {
                    fallback = default_flags(ctx);
                    &fallback
                }
            };
            ctx.runsc_for(flags)?.delete_force(flags, &r.value)?;
        }
        ResourceKind::Mount => ctx.host().unmount(Path::new(&r.value))?,
        ResourceKind::Path => ctx.host().remove_path(Path::new(&r.value))?,
        ResourceKind::Cgroup => ctx.host().remove_cgroup(&r.value)?,
        ResourceKind::Netns => ctx.host().remove_netns(Path::new(&r.value))?,
        ResourceKind::Veth => {
            // The pod's namespace is undone right after (it was recorded
            // first); destroying it destroys both ends of the pair in the
            // kernel's background namespace cleanup, where a synchronous
            // RTM_DELLINK waits for RCU grace periods (15-350 ms measured on
            // the 2-core test VM). A veth whose namespace is already gone
            // is deleted by name.
            let ns = super::network::netns_path(ctx, &r.pod_id);
            if !ctx.host().netns_exists(&ns) {
                ctx.host().delete_link(&r.value)?;
            }
        }
        ResourceKind::Firewall => {
            let rules = super::network::port_rules(ctx, &r.pod_id)?;
            ctx.host()
                .remove_ports(&crate::net::table_name(&ctx.root), &r.pod_id, &rules)?;
        }
    }
    Ok(())
}

/// Flags for runsc calls about containers whose pod row is gone (`gc`).
pub(crate) fn default_flags(ctx: &Ctx) -> GlobalFlags {
    GlobalFlags {
        root: ctx.run_dir.join("runsc"),
        platform: ctx
            .runsc()
            .map(|r| r.features.default_platform.clone())
            .unwrap_or_else(|_| "ptrace".into()),
        network: "none".into(),
        overlay2: None,
        log: ctx.root.join("logs").join("gc-runsc.log"),
        debug_log: None,
        extra: vec![],
        net_disconnect_ok: false,
        bin: None,
    }
}

/// Finds and removes everything of this data root that no live pod owns.
/// Safe while pods run: nothing that belongs to an existing pod row is touched
/// except exited `--rm` pods, which are removed as their monitor would have.
pub fn gc(ctx: &mut Ctx) -> Result<GcReport> {
    let mut rep = GcReport::default();
    for pod in ctx.db.pods()? {
        let pod = ctx.refresh(pod)?;
        if pod.auto_remove && pod.status == PodStatus::Exited {
            remove_pod(ctx, &pod.id)?;
            rep.pods_removed.push(pod.name.clone());
        }
    }
    let live: std::collections::HashSet<String> =
        ctx.db.pods()?.into_iter().map(|p| p.id).collect();
    // Resources recorded for pods whose rows are gone.
    let orphans: Vec<String> = {
        let mut v: Vec<String> = ctx
            .db
            .resources(None)?
            .into_iter()
            .map(|r| r.pod_id)
            .filter(|p| !live.contains(p))
            .collect();
        v.dedup();
        v
    };
    for id in orphans {
        let n = ctx.db.resources(Some(&id))?.len();
        release(ctx, &id)?;
        rep.resources_released += n;
    }
    // runsc containers under our runsc root with no pod.
    if let Ok(runsc) = ctx.runsc() {
        let runsc = runsc.clone();
        let flags = default_flags(ctx);
        for c in runsc.list(&flags)? {
            if !live.contains(&c.id) {
                runsc.delete_force(&flags, &c.id)?;
                rep.runsc_containers.push(c.id);
            }
        }
    }
    // Mounts under our bundles with no pod.
    let bundles = ctx.root.join("bundles");
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mi.lines() {
            let Some(mp) = line.split(' ').nth(4) else {
                continue;
            };
            let mp = crate::util::unescape_mountinfo(mp);
            let p = Path::new(&mp);
            if let Ok(rest) = p.strip_prefix(&bundles) {
                let id = rest
                    .components()
                    .next()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !live.contains(&id) {
                    crate::bundle::unmount(p)?;
                    rep.mounts.push(mp.clone());
                }
            }
        }
    }
    // Helpers layers of earlier relays no mounted overlay uses, read after
    // the orphan mounts above are gone, so one gc also frees their layers.
    // (Without the mount table none is known unused: none goes.)
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo");
    let stale = mountinfo.map_or_else(|_| vec![], |m| super::helpers::stale_layers(&ctx.root, &m));
    for layer in stale {
        match crate::sys::remove_path(&layer) {
            Ok(()) => rep.paths.push(layer.display().to_string()),
            Err(e) => tracing::warn!("removing {}: {e}", layer.display()),
        }
    }
    // Bundle directories and logs with no pod.
    rep.paths.extend(sweep_paths(ctx, &live)?);
    // Snapshot directories left by killed checkpoints and imports.
    let snapshots = crate::snapshot::SnapshotStore::new(&ctx.root)?;
    for p in snapshots.sweep(&ctx.db)? {
        rep.paths.push(p.display().to_string());
    }
    ctx.db.clear_orphan_checkpoints()?;
    // Temp files of killed pulls, loads, imports and commits (their
    // writer's pid is gone); unused cached layers stay for `image prune`.
    for p in ctx.images.sweep_dead_temps()? {
        rep.paths.push(p.display().to_string());
    }
    // Our cgroups with no pod (each controller of v1, or the v2 tree).
    let mut cg_ids = std::collections::BTreeSet::new();
    for base in cgroup_parents() {
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.len() == 64
                    && name.chars().all(|c| c.is_ascii_hexdigit())
                    && e.path().is_dir()
                    && !live.contains(&name)
                    && belongs_here(ctx, &name)
                {
                    cg_ids.insert(name);
                }
            }
        }
    }
    for id in cg_ids {
        ctx.host().remove_cgroup(&format!("gvpod/{id}"))?;
        rep.cgroups.push(format!("gvpod/{id}"));
    }
    gc_network(ctx, &live, &mut rep)?;
    // What a killed `gvpod bench` left (its own sweep, which uses only the
    // modules below this one; benches still running are not touched).
    rep.network.extend(crate::bench::gc::sweep_dead(&ctx.root));
    Ok(rep)
}

/// The network part of `gc`: claims of vanished pods, and host objects that
/// carry this data root's mark but belong to no pod or network. Links are
/// found by their alias, namespaces by their directory, rules by comment.
fn gc_network(
    ctx: &mut Ctx,
    live: &std::collections::HashSet<String>,
    rep: &mut GcReport,
) -> Result<()> {
    use crate::net;
    rep.resources_released += ctx.db.drop_orphan_claims()?;
    let networks: std::collections::HashSet<String> =
        ctx.db.networks()?.into_iter().map(|n| n.name).collect();
    // `live` was read before the scan: a pod or network created since then
    // is not an orphan, so each candidate is checked again just before.
    let gone_pod = |ctx: &Ctx, id: &str| -> Result<bool> {
        Ok(!live.contains(id) && ctx.db.pod(id)?.is_none())
    };
    let gone_net = |ctx: &Ctx, n: &str| -> Result<bool> {
        Ok(!networks.contains(n) && ctx.db.network(n)?.is_none())
    };
    let Ok(links) = net::host_links() else {
        return Ok(()); // no netlink (no CAP_NET_ADMIN): nothing of ours can exist
    };
    for (name, alias) in links {
        let orphan = match alias
            .as_deref()
            .and_then(|a| net::parse_alias(&ctx.root, a))
        {
            Some(("pod", id)) => gone_pod(ctx, id)?,
            Some(("net", n)) => gone_net(ctx, n)?,
            _ => false,
        };
        if orphan {
            net::delete_link(&name)?;
            rep.network.push(format!("link {name}"));
        }
    }
    let dir = ctx.root.join("netns");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if gone_pod(ctx, &id)? {
                net::netns::remove(&e.path())?;
                rep.network.push(format!("netns {}", e.path().display()));
            }
        }
    }
    let fw = net::Firewall::new(net::table_name(&ctx.root));
    for tag in fw.tags()? {
        let orphan = match tag.split_once(':') {
            Some(("pod", id)) => gone_pod(ctx, id)?,
            Some(("net", n)) => gone_net(ctx, n)?,
            _ => false,
        };
        if orphan {
            fw.remove_tag(&tag, None)?;
            rep.network.push(format!("firewall rules {tag}"));
        }
    }
    if ctx.db.networks()?.is_empty() {
        fw.delete_table()?;
    }
    Ok(())
}

/// Cgroups are shared by every data root on the host; only those whose
/// pod id is recorded in this data root's runsc state or log dir are ours.
fn belongs_here(ctx: &Ctx, id: &str) -> bool {
    ctx.run_dir.join("runsc").join(id).exists()
        || ctx.root.join("logs").join(format!("{id}.json")).exists()
        || ctx.bundle_dir(id).exists()
}

pub(crate) fn cgroup_parents() -> Vec<std::path::PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut v = vec![base.join("gvpod")];
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            v.push(e.path().join("gvpod"));
        }
    }
    v
}

/// Removes the bundle directories, logs and run directories of no pod in
/// `live` (and bundle
/// directories a `--rm` pod's monitor renamed aside and did not get to
/// delete); returns what it removed.
pub(crate) fn sweep_paths(
    ctx: &Ctx,
    live: &std::collections::HashSet<String>,
) -> Result<Vec<String>> {
    let mut removed = vec![];
    let bundles = ctx.root.join("bundles");
    for (dir, strip) in [
        (bundles, ""),
        (ctx.root.join("logs"), ".json"),
        // Run directories an `exec` made again while `rm` removed the pod.
        (ctx.run_dir.join("pods"), ""),
    ] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // A log's rotated files are `<id>.json.N`.
                let id = match name.split_once(".json.") {
                    Some((id, n)) if !strip.is_empty() && n.parse::<u32>().is_ok() => id,
                    _ => name.strip_suffix(strip).unwrap_or(&name),
                };
                let gone = strip.is_empty() && name.starts_with(GONE_PREFIX);
                // `live` was read before: a pod made since is asked for again.
                if gone || (id.len() == 64 && !live.contains(id) && ctx.db.pod(id)?.is_none()) {
                    ctx.host().remove_path(&e.path())?;
                    removed.push(e.path().display().to_string());
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use crate::util::unescape_mountinfo;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\"), "/x\\");
    }
}
