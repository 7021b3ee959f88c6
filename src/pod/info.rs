//! Views of pods for `ps` and `inspect`, and of the host for `system info`.

pub use super::views::{PodView, RouteView, SystemInfo};

use super::{Ctx, Result};
use crate::state::PodRow;

fn view(ctx: &Ctx, p: PodRow) -> Result<PodView> {
    let bundle = ctx.bundle_dir(&p.id);
    let command = p
        .main_process()?
        .map(|m| m.args.clone())
        .unwrap_or_default();
    let config = p.options()?.clone();
    let runsc = serde_json::to_value(p.flags()?).expect("runsc flags serialise");
    let checkpointed = super::checkpoint::checkpointed_to(ctx, &p);
    // A just-checkpointed pod is stopped even while its monitor records it.
    let status = if checkpointed.is_some() {
        "exited".to_string()
    } else {
        p.status.as_str().to_string()
    };
    let restarting = p.restarting();
    let port_rows = ctx.db.ports_of(&p.id).unwrap_or_default();
    let services = super::service::views(ctx, &p)?;
    let health = (p.status == crate::state::PodStatus::Running && checkpointed.is_none())
        .then(|| super::service::summary(&services))
        .flatten()
        .map(str::to_string);
    Ok(PodView {
        services,
        health,
        status,
        restart_count: p.restart_count,
        restarting,
        checkpointed,
        log_path: ctx.log_path(&p.id).display().to_string(),
        bundle: bundle.display().to_string(),
        command,
        pid: p.pid,
        exit_code: p.exit_code,
        created: p.created,
        started: p.started,
        finished: p.finished,
        ip: ctx
            .db
            .lease_of(&p.id)
            .ok()
            .flatten()
            .map(|(_, ip)| ip.to_string()),
        network: ctx.db.lease_of(&p.id).ok().flatten().map(|(n, _)| n),
        ports: super::network::mappings(&port_rows)
            .iter()
            .map(|m| m.to_string())
            .collect(),
        route: super::route::route_in(&port_rows).map(|m| RouteView {
            address: format!("{}:{}", m.host_ip, m.host_port),
            default_port: m.pod_port,
        }),
        auto_remove: p.auto_remove,
        monitor_pid: p.monitor_pid,
        config,
        runsc,
        image: p.image_ref,
        image_id: p.image_id,
        name: p.name,
        id: p.id,
    })
}

/// Pods, oldest first, their status reconciled with the host.
pub fn list(ctx: &mut Ctx, all: bool) -> Result<Vec<PodView>> {
    let mut out = vec![];
    for p in ctx.db.pods()? {
        let p = ctx.refresh(p)?;
        if all || p.status.can_stop() {
            out.push(view(ctx, p)?);
        }
    }
    Ok(out)
}

pub fn inspect(ctx: &mut Ctx, key: &str) -> Result<PodView> {
    let p = ctx.lookup(key)?;
    let p = ctx.refresh(p)?;
    view(ctx, p)
}

pub fn system_info(ctx: &mut Ctx) -> Result<SystemInfo> {
    let r = ctx.runsc()?.clone();
    let f = &r.features;
    Ok(SystemInfo {
        gvpod_version: env!("CARGO_PKG_VERSION").to_string(),
        data_root: ctx.root.display().to_string(),
        runsc_root: ctx.run_dir.join("runsc").display().to_string(),
        runsc_path: r.bin.display().to_string(),
        runsc_version: r.version.raw.clone(),
        runsc_release: r.version.release,
        platforms: f.platforms.clone(),
        default_platform: f.default_platform.clone(),
        features: serde_json::json!({
            "overlay2": f.has_flag("overlay2"),
            "restore_creates_container": r.restore_in_one_step(),
            "root_netns_false_positive": f.root_netns_false_positive,
            "leave_running_in_place": f.leave_running_in_place,
            "net_disconnect_ok": f.can_reset_tcp(),
            "live_tcp_migration": f.migrates_tcp(),
        }),
        cgroup_version: cgroup_version(),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        pods: ctx.db.pods()?.len(),
        images: ctx.db.images()?.len(),
    })
}

/// 2 when /sys/fs/cgroup is a cgroup2 mount, else 1.
pub fn cgroup_version() -> u8 {
    match nix::sys::statfs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => 2,
        _ => 1,
    }
}
