//! `create`: validate, register the pod, assemble its bundle. Every host
//! resource is recorded before it is made; any failure undoes them all.

pub use super::views::CreateRequest;

use super::provision::{self, NewRow, RunscChoice};
use super::{failpoint, id, network, Ctx, PodError, Result};
use crate::bundle::{self, PodOptions, SpecInput};
use crate::state::PodRow;

/// Creates a pod and returns its row (status `created`).
pub fn create(ctx: &mut Ctx, req: CreateRequest) -> Result<PodRow> {
    create_as(ctx, req, id::new_id())
}

/// [`create`] with the id the pod gets (`run` starts its monitor first).
pub(crate) fn create_as(ctx: &mut Ctx, mut req: CreateRequest, pod_id: String) -> Result<PodRow> {
    check_options(&req.opts)?;
    super::ssh::check(&mut req.opts)?;
    if req.auto_remove && req.opts.restart != bundle::RestartPolicy::No {
        return Err(PodError::Usage(format!(
            "restart policy {} cannot be used with --rm (AutoRemove): a removed pod cannot be restarted; drop one of them",
            req.opts.restart.name()
        )));
    }
    let name = match &req.name {
        Some(n) => {
            id::validate_name(n)?;
            n.clone()
        }
        // A routed pod is reached by name in a host name: no '_' there.
        None if req.opts.route.is_some() => id::generate_name().replace('_', "-"),
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
    super::ssh::check_image(&req.opts, &image)?;
    let network = network::resolve(ctx, &req.opts.network)?;
    // Ports are checked (and picked) here, before the pod exists.
    let mut netopts = network::parse_opts(&req.opts, network.as_ref())?;
    netopts.route = super::route::resolve(
        &req.opts,
        &name,
        &exposed_ports(&image),
        &ctx.db.tcp_host_ports()?,
        &netopts.ports,
    )?;

    let flags = provision::flags(
        ctx,
        &runsc,
        &pod_id,
        RunscChoice {
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
            extra: req.opts.runsc_flags.clone(),
        },
        req.debug,
    );
    let row = NewRow {
        id: pod_id,
        name,
        image_id: &image.id,
        image_ref: &image.reference,
        opts: &req.opts,
        process: None,
        flags: &flags,
        auto_remove: req.auto_remove,
    };
    provision::insert_and_make(ctx, row, network.as_ref(), &netopts, |ctx, row, ip| {
        failpoint::hit("create:inserted");
        assemble(
            ctx,
            row,
            &req.opts,
            &image,
            network.as_ref().zip(ip),
            &netopts,
            !req.starting,
        )
    })
}

fn assemble(
    ctx: &mut Ctx,
    row: &PodRow,
    opts: &PodOptions,
    image: &crate::image::Image,
    attach: Option<(&crate::net::Network, std::net::Ipv4Addr)>,
    netopts: &network::PodNetOpts,
    sync_config: bool,
) -> Result<()> {
    let bundle_dir = ctx.bundle_dir(&row.id);
    let paths = provision::mount_rootfs(ctx, row, &image.layers)?;
    failpoint::hit("create:mounted");
    // The dev user before the process: `--user` may name it.
    super::ssh::prepare(opts, &paths.merged, &image.reference)?;

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
    let netns = provision::attach(ctx, &row.id, attach)?;
    // Derived files, rebuilt from the database if lost: no fsync on the
    // start-up path. In the rootfs when nothing changes them while the pod
    // runs (`bundle::etc`), else bound from the bundle.
    let mut etc = vec![];
    etc_file(
        &paths.merged,
        &bundle_dir,
        bundle::etc::HOSTNAME,
        format!("{hostname}\n"),
        true,
        &mut etc,
    )?;
    let hosts = network::pod_hosts(
        ctx,
        &row.id,
        &row.name,
        &hostname,
        attach,
        &netopts.add_hosts,
    )?;
    // A pod on a bridge network has peers, listed as they come and go.
    let hosts_fixed = attach.is_none();
    etc_file(
        &paths.merged,
        &bundle_dir,
        bundle::etc::HOSTS,
        hosts,
        hosts_fixed,
        &mut etc,
    )?;
    if opts.network != "none" {
        let text = if opts.network == "host" && netopts.dns.is_empty() {
            // The host's own stack: its stub resolver on 127.0.0.53 works too.
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        } else {
            crate::net::dns::resolv_conf(&netopts.dns, crate::net::dns::HOST_RESOLV)
        };
        etc_file(
            &paths.merged,
            &bundle_dir,
            bundle::etc::RESOLV,
            text,
            false,
            &mut etc,
        )?;
    }
    // For --ssh, the pod's host keys (by its name, bound read-only).
    etc.extend(super::ssh::keys_mount(ctx, &row.name, &opts.dev)?);
    let cgroup = provision::record_cgroup_and_log(ctx, &row.id)?;
    let spec = bundle::build_spec(
        &process,
        &SpecInput {
            opts,
            hostname: &hostname,
            cgroups_path: &cgroup,
            etc_files: &etc,
            readonly_binds: &[],
            netns: netns.as_deref(),
        },
    )?;
    bundle::write_config(&bundle_dir, &spec, sync_config)?;
    ctx.db.set_pod_process(&row.id, &process)?;
    failpoint::hit("create:configured");
    Ok(())
}

/// The TCP and UDP ports an image exposes, as `80/tcp`.
pub(super) fn exposed_ports(image: &crate::image::Image) -> Vec<String> {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default()
}

/// Puts the pod's file `dest` (/etc/hostname, /etc/hosts, /etc/resolv.conf)
/// in its rootfs when `in_rootfs` and it can be written there; otherwise
/// writes it in the bundle (under its own name) and adds its bind mount to
/// `binds`.
fn etc_file(
    rootfs: &std::path::Path,
    bundle_dir: &std::path::Path,
    dest: &'static str,
    text: String,
    in_rootfs: bool,
    binds: &mut Vec<(std::path::PathBuf, &'static str)>,
) -> Result<()> {
    if in_rootfs {
        match bundle::etc::write_in_rootfs(rootfs, dest, text.as_bytes()) {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!("{dest} bound instead of written in the rootfs: {e}"),
        }
    }
    let name = dest.rsplit('/').next().unwrap_or(dest);
    let src = bundle_dir.join(name);
    write_plain(&src, text)?;
    binds.push((src, dest));
    Ok(())
}

fn write_plain(path: &std::path::Path, data: String) -> Result<()> {
    std::fs::write(path, data.as_bytes()).map_err(super::io("cannot write", path))
}

/// Lowest `--pids-limit` that leaves the sandbox room to start and run a few processes.
const MIN_PIDS_LIMIT: i64 = 64;

/// What every front end's options must satisfy before anything is made.
fn check_options(opts: &PodOptions) -> Result<()> {
    if let Some(p) = &opts.platform {
        if !matches!(p.as_str(), "ptrace" | "systrap" | "kvm") {
            return Err(PodError::Usage(format!(
                "invalid --platform {p:?}: use ptrace, systrap or kvm"
            )));
        }
    }
    if let Some(n) = opts.pids_limit {
        // The limit applies to the sandbox's host tasks: gVisor's own threads
        // (and, on ptrace, one stub process per address space) count too, and
        // below ~40 the sandbox cannot even start (measured on 20221219).
        if n < MIN_PIDS_LIMIT {
            return Err(PodError::Usage(format!(
                "invalid --pids-limit {n}: the gVisor sandbox's own threads count against it; use at least {MIN_PIDS_LIMIT}"
            )));
        }
    }
    Ok(())
}
