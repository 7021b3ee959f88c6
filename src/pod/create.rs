//! `create`: validate, register the pod, assemble its bundle. Every host
//! resource is recorded before it is made; any failure undoes them all.

use super::{failpoint, id, network, Ctx, PodError, Result};
use crate::bundle::{self, PodOptions, RootfsPaths, SpecInput};
use crate::runsc::GlobalFlags;
use crate::state::{PodRow, PodStatus, ResourceKind};

pub struct CreateRequest {
    pub image: String,
    pub name: Option<String>,
    pub opts: PodOptions,
    pub auto_remove: bool,
    /// Keep a full runsc debug log under the bundle (`gvpod --debug`).
    pub debug: bool,
}

/// Creates a pod and returns its row (status `created`).
pub fn create(ctx: &mut Ctx, req: CreateRequest) -> Result<PodRow> {
    let name = match &req.name {
        Some(n) => {
            id::validate_name(n)?;
            n.clone()
        }
        None => id::generate_name(),
    };
    let runsc = ctx.runsc()?.clone();
    let platform = req
        .opts
        .platform
        .clone()
        .unwrap_or_else(|| runsc.features.default_platform.clone());
    runsc.probe_platform(&platform, &ctx.root)?;
    for (k, _) in &req.opts.runsc_flags {
        if !runsc.features.has_flag(k) {
            return Err(PodError::Usage(format!(
                "invalid --runsc-flag {k:?}: this runsc ({}) has no such flag (see `runsc flags`)",
                runsc.version.raw
            )));
        }
    }
    let image = ctx.images.resolve(&ctx.db, &req.image)?;
    let network = network::resolve(ctx, &req.opts.network)?;
    // Ports are checked (and picked) here, before the pod exists.
    let netopts = network::parse_opts(&req.opts, network.as_ref())?;

    let pod_id = id::new_id();
    let bundle_dir = ctx.bundle_dir(&pod_id);
    let flags = GlobalFlags {
        root: ctx.run_dir.join("runsc"),
        platform,
        // A pod network is a namespace the sandbox joins (spec path) and
        // takes over with its own netstack: runsc's "sandbox" mode.
        network: match (&network, req.opts.network.as_str()) {
            (Some(_), _) => "sandbox".to_string(),
            (None, "host") => "host".to_string(),
            (None, _) => "none".to_string(),
        },
        // Writes go to the pod's upper directory on the host (persist across
        // restarts, visible to commit), not to a filestore or sandbox memory.
        overlay2: runsc
            .features
            .has_flag("overlay2")
            .then(|| "none".to_string()),
        log: bundle_dir.join("runsc.log"),
        debug_log: req.debug.then(|| bundle_dir.join("debug")),
        extra: req.opts.runsc_flags.clone(),
    };
    let row = PodRow {
        id: pod_id.clone(),
        name,
        image_id: image.id.clone(),
        image_ref: image.reference.clone(),
        status: PodStatus::Created,
        config_json: serde_json::to_string(&req.opts).expect("options serialise"),
        process_json: "{}".to_string(),
        runsc_json: serde_json::to_string(&flags).expect("flags serialise"),
        created: crate::util::now_rfc3339(),
        started: None,
        finished: None,
        exit_code: None,
        pid: None,
        monitor_pid: None,
        auto_remove: req.auto_remove,
    };
    // The pod, its address and its host ports in one transaction.
    let ip = network::insert_pod(ctx, &row, network.as_ref(), &netopts)?;
    failpoint::hit("create:inserted");
    let attach = network.as_ref().zip(ip);
    match assemble(ctx, &row, &req.opts, &image, attach, &netopts) {
        Ok(()) => {
            if let Some(n) = &network {
                // Older pods on the network learn the new name.
                let _ = network::refresh_peer_hosts(ctx, &n.name);
            }
            Ok(row)
        }
        Err(e) => {
            // Undo whatever was made; the original error is what the user needs.
            if let Err(e2) = super::cleanup::release(ctx, &row.id) {
                tracing::warn!("rollback of pod {}: {e2}", row.name);
            }
            let _ = ctx.db.delete_pod(&row.id);
            Err(e)
        }
    }
}

fn assemble(
    ctx: &mut Ctx,
    row: &PodRow,
    opts: &PodOptions,
    image: &crate::image::Image,
    attach: Option<(&crate::net::Network, std::net::Ipv4Addr)>,
    netopts: &network::PodNetOpts,
) -> Result<()> {
    let bundle_dir = ctx.bundle_dir(&row.id);
    ctx.db
        .add_resource(&row.id, ResourceKind::Path, &bundle_dir.to_string_lossy())?;
    std::fs::create_dir(&bundle_dir).map_err(super::io("cannot create bundle", &bundle_dir))?;
    let paths = RootfsPaths::new(&bundle_dir);
    ctx.db.add_resource(
        &row.id,
        ResourceKind::Mount,
        &paths.merged.to_string_lossy(),
    )?;
    bundle::mount_overlay(&image.layers, &paths)?;
    failpoint::hit("create:mounted");

    let process = bundle::resolve_process(&image.reference, &image.config, opts, &paths.merged)?;
    super::check_command(
        &paths.merged,
        &process.args[0],
        &process.env,
        &process.cwd,
        &image.reference,
    )?;

    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| row.id[..12].to_string());
    let netns = match attach {
        Some((n, ip)) => {
            network::setup_pod(ctx, &row.id, n, ip)?;
            Some(network::netns_path(ctx, &row.id))
        }
        None => None,
    };
    let etc_hostname = bundle_dir.join("hostname");
    let etc_hosts = bundle_dir.join("hosts");
    let etc_resolv = bundle_dir.join("resolv.conf");
    // Derived files, rebuilt from the database if lost: no fsync on the start-up path.
    write_plain(&etc_hostname, format!("{hostname}\n"))?;
    let names = [hostname.as_str(), row.name.as_str()];
    let names: &[&str] = if names[0] == names[1] {
        &names[..1]
    } else {
        &names
    };
    let hosts = match attach {
        Some((n, ip)) => network::hosts_file(
            Some((ip, names)),
            &network::peers(ctx, &n.name, &row.id)?,
            &netopts.add_hosts,
        ),
        None => network::hosts_file(
            Some((std::net::Ipv4Addr::new(127, 0, 1, 1), names)),
            &[],
            &netopts.add_hosts,
        ),
    };
    write_plain(&etc_hosts, hosts)?;
    let mut etc = vec![(etc_hostname, "/etc/hostname"), (etc_hosts, "/etc/hosts")];
    if opts.network != "none" {
        let text = if opts.network == "host" && netopts.dns.is_empty() {
            // The host's own stack: its stub resolver on 127.0.0.53 works too.
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        } else {
            crate::net::dns::resolv_conf(&netopts.dns, crate::net::dns::HOST_RESOLV)
        };
        write_plain(&etc_resolv, text)?;
        etc.push((etc_resolv, "/etc/resolv.conf"));
    }
    let cgroup = format!("gvpod/{}", row.id);
    ctx.db
        .add_resource(&row.id, ResourceKind::Cgroup, &cgroup)?;
    let log = ctx.log_path(&row.id);
    ctx.db
        .add_resource(&row.id, ResourceKind::Path, &log.to_string_lossy())?;
    let spec = bundle::build_spec(
        &process,
        &SpecInput {
            opts,
            hostname: &hostname,
            cgroups_path: &cgroup,
            etc_files: &etc,
            netns: netns.as_deref(),
        },
    )?;
    bundle::write_config(&bundle_dir, &spec)?;
    ctx.db.set_pod_process(
        &row.id,
        &serde_json::to_string(&process).expect("process serialises"),
    )?;
    failpoint::hit("create:configured");
    Ok(())
}

fn write_plain(path: &std::path::Path, data: String) -> Result<()> {
    std::fs::write(path, data.as_bytes()).map_err(super::io("cannot write", path))
}
