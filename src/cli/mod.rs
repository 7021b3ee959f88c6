//! Command-line interface: clap argument structs and output formatting.
//! Logic lives in `pod` and `image`; this layer parses, calls, prints, and
//! maps errors to gvpod's exit codes (2 usage, 125 gvpod failed, 126/127
//! command cannot run / not found, else the pod's own exit code).

mod args;
mod bench;
mod config;
#[cfg(host_runtime)]
mod fast;
mod format;
mod kube;
mod machine;
mod project;
mod remote;
mod snapshot;
mod ssh;
mod stats;

#[cfg(host_runtime)]
use std::io::Write;
#[cfg(host_runtime)]
use std::time::Duration;

use clap::Parser;

use crate::bundle::PodOptions;
#[cfg(host_runtime)]
use crate::image::registry;
use crate::pod::{self, PodError};
#[cfg(host_runtime)]
use crate::pod::{Attach, Ctx, StartOutcome};
use args::{Cli, Cmd, RunArgs, SystemCmd};
#[cfg(host_runtime)]
use args::{ImageCmd, NetworkCmd, SaveFormat};

pub fn main() -> i32 {
    // A monitor's own command line skips clap (see `fast`).
    #[cfg(host_runtime)]
    {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if let Some(m) = fast::monitor_line(&args) {
            // As clap would: GVPOD_LOG, else warn (a monitor gets no --log-level).
            let level = std::env::var("GVPOD_LOG").ok().filter(|l| !l.is_empty());
            init_tracing(level.as_deref().unwrap_or("warn"));
            return pod::monitor_main(&m.root, &m.id, m.restore.as_deref(), m.early);
        }
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(&cli.log_level);
    #[cfg(host_runtime)]
    if let Cmd::Monitor { id, restore, early } = &cli.cmd {
        return pod::monitor_main(&cli.root, id, restore.as_deref(), *early);
    }
    #[cfg(host_runtime)]
    if let Cmd::SshProxy(a) = cli.cmd {
        return ssh::ssh_proxy(&cli.root, a);
    }
    // Short commands end quietly when their reader goes (`gvpod ps | head`);
    // the long-lived servers keep ignoring SIGPIPE (a client that hangs up
    // must not end them).
    if !matches!(
        cli.cmd,
        Cmd::System(SystemCmd::Service { .. }) | Cmd::Router { .. }
    ) {
        crate::sys::default_sigpipe();
    }
    let res = match cli.cmd {
        // Need no root and no data root: before the context is opened.
        Cmd::Config(a) => config::config(a),
        Cmd::Machine(c) => machine::machine(c),
        Cmd::System(SystemCmd::Service { .. }) => dispatch(cli),
        // Read files: no root, no data root, the same under --url.
        #[cfg(host_runtime)]
        Cmd::Bench(a) if bench::is_compare(&a) => bench::compare(a),
        #[cfg(host_runtime)]
        Cmd::Bench(a) if bench::is_chart(&a) => bench::chart(a),
        // From spec files: as `config`, on this host even under --url.
        Cmd::Generate(kube::GenerateCmd::Kube(ref a)) if a.wants_specs().unwrap_or(true) => {
            a.wants_specs().and_then(|_| kube::from_files(a))
        }
        _ => match machine::target(cli.url.as_deref()) {
            Ok(Some(t)) => machine::check_paths(&cli.cmd, t.mounts.as_ref())
                .and_then(|()| remote::dispatch(cli, &t.url)),
            Ok(None) => dispatch(cli),
            Err(e) => Err(e.into()),
        },
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            // One clean line, whatever the error quotes (archive errors can
            // carry raw header bytes, runsc's a goroutine dump).
            let msg: String = e
                .to_string()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            // A spec error names its file, line and column first, the form
            // editors jump to.
            match e.downcast_ref::<crate::spec::SpecError>() {
                Some(crate::spec::SpecError::At { .. }) => eprintln!("{msg}"),
                _ => eprintln!("gvpod: {msg}"),
            }
            crate::error::exit_code(&e)
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[cfg(host_runtime)]
/// Where `system service` listens when given no address.
const DEFAULT_SOCKET: &str = "/run/gvpod/gvpod.sock";

#[cfg(host_runtime)]
/// Binds the shared router's address and says where it listens
/// (`127.0.0.1:0` asks for any free port).
fn bind_router(listen: &str) -> anyhow::Result<(std::net::TcpListener, String)> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        PodError::Usage(format!(
            "invalid router address {listen:?}: use IP:PORT, e.g. 127.0.0.1:8080"
        ))
    })?;
    let l = std::net::TcpListener::bind(addr).map_err(|e| {
        PodError::Usage(format!(
            "cannot listen on {addr}: {e}; pick another address with --listen"
        ))
    })?;
    let addr = l.local_addr().unwrap_or(addr);
    let port = addr.port();
    eprintln!(
        "gvpod router: listening on {addr}; open http://localhost-PORT.pod-NAME.localhost:{port}/ or http://PORT--NAME.localhost:{port}/"
    );
    Ok((l, addr.to_string()))
}

#[cfg(host_runtime)]
/// `gvpod router`: binds, says where, serves until stopped.
fn router(ctx: Ctx, listen: &str) -> anyhow::Result<i32> {
    let (l, addr) = bind_router(listen)?;
    pod::route::serve_shared(ctx, l, addr);
    Ok(0)
}

/// The client build (see lib.rs) runs no pods: a verb that goes to no
/// machine and no `--url` (only `system service` gets here) is refused.
#[cfg(not(host_runtime))]
fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    drop(cli);
    Err(PodError::Usage(
        "this gvpod is a client build, which runs no pods: they run in a machine (`gvpod machine start`) or behind --url, where `gvpod system service` runs"
            .into(),
    )
    .into())
}

#[cfg(host_runtime)]
fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    tracing::debug!("step cli:start");
    // The monitor of a new pod (`run`, a named clone) starts while this
    // process opens the root and makes the pod.
    let new_pod = match &cli.cmd {
        Cmd::Run(_) => true,
        Cmd::Restore(a) => a.name.is_some(),
        _ => false,
    };
    let mut early = new_pod
        .then(|| pod::EarlyMonitor::spawn(&cli.root))
        .flatten();
    let mut ctx = Ctx::open(&cli.root)?;
    tracing::debug!("step cli:opened");
    let debug = cli.debug;
    match cli.cmd {
        Cmd::Run(a) => {
            let req = pod::RunRequest {
                create: create_request(&a, debug, true)?,
                detach: a.detach,
                stdin: a.pod.interactive,
                tty: a.pod.tty,
                early: early.take(),
            };
            match pod::run(&mut ctx, req)? {
                (pod, pod::RunOutcome::Detached) => {
                    println!("{}", pod.id);
                    Ok(0)
                }
                (_, pod::RunOutcome::Exited(code)) => Ok(code),
            }
        }
        Cmd::Create(a) => {
            pod::ensure_image(&mut ctx, &a.image)?;
            let pod = pod::create(&mut ctx, create_request(&a, debug, false)?)?;
            println!("{}", pod.id);
            Ok(0)
        }
        Cmd::Start { attach, pods } => {
            let mut code = 0;
            for key in pods {
                let pod = ctx.lookup(&key)?;
                let opts = pod.options()?;
                let mode = if attach {
                    Attach::Foreground {
                        stdin: opts.interactive,
                        tty: opts.tty,
                    }
                } else {
                    Attach::Detached
                };
                match pod::start(&mut ctx, &pod, mode)? {
                    StartOutcome::Exited { code: c } if attach => code = c.unwrap_or(125),
                    _ => println!("{key}"),
                }
            }
            Ok(code)
        }
        Cmd::Ps {
            all,
            quiet,
            project,
            format,
        } => {
            let mut pods = pod::list(&mut ctx, all)?;
            if let Some(p) = &project {
                pods.retain(|v| v.config.labels.get(pod::service::PROJECT_LABEL) == Some(p));
            }
            format::ps(&pods, quiet, &format)?;
            Ok(0)
        }
        Cmd::Inspect { pods } => {
            let views = pods
                .iter()
                .map(|k| pod::inspect(&mut ctx, k))
                .collect::<Result<Vec<_>, _>>()?;
            format::inspect(&views)?;
            Ok(0)
        }
        Cmd::Logs {
            follow,
            tail,
            since,
            timestamps,
            service,
            pod: key,
        } => {
            let pod = ctx.lookup(&key)?;
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let mut emit = |l: Option<&pod::LogLine>| {
                let Some(l) = l else {
                    return true;
                };
                let text = if timestamps {
                    format!("{} {}\n", l.t, l.line)
                } else {
                    format!("{}\n", l.line)
                };
                // A reader gone (a closed pipe) ends a follow.
                let res = if l.stream == "stderr" {
                    stderr.lock().write_all(text.as_bytes())
                } else {
                    stdout.lock().write_all(text.as_bytes())
                };
                res.is_ok()
            };
            pod::logs(
                &mut ctx,
                &pod,
                pod::LogsRequest {
                    follow,
                    tail,
                    since,
                    service,
                },
                &mut emit,
            )?;
            Ok(0)
        }
        Cmd::Exec {
            interactive,
            tty,
            env,
            user,
            workdir,
            pod: key,
            cmd,
        } => {
            let pod = ctx.lookup(&key)?;
            let code = pod::exec(
                &mut ctx,
                &pod,
                pod::ExecRequest {
                    cmd,
                    env,
                    user,
                    workdir,
                    interactive,
                    tty,
                },
            )?;
            Ok(code)
        }
        Cmd::Stop { time, pods } => {
            for key in pods {
                let pod = ctx.lookup(&key)?;
                pod::stop(&mut ctx, &pod, Duration::from_secs(time))?;
                println!("{key}");
            }
            Ok(0)
        }
        Cmd::Kill { signal, pods } => {
            for key in pods {
                let pod = ctx.lookup(&key)?;
                pod::kill(&mut ctx, &pod, &signal)?;
                println!("{key}");
            }
            Ok(0)
        }
        Cmd::Rm { force, pods } => Ok(format::each_name(&pods, PodError::exit_code, |key| {
            pod::remove(&mut ctx, key, force).map(|_| ())
        })),
        Cmd::Wait { pods } => {
            for key in pods {
                let pod = ctx.lookup(&key)?;
                let row = pod::wait(&mut ctx, &pod)?;
                println!(
                    "{}",
                    row.exit_code
                        .map_or("unknown".to_string(), |c| c.to_string())
                );
            }
            Ok(0)
        }
        Cmd::Import {
            change,
            file,
            reference,
        } => {
            let img = ctx
                .images
                .import_tarball(&mut ctx.db, &file, &reference, &change)?;
            println!("{}", img.id);
            Ok(0)
        }
        Cmd::Pull {
            quiet,
            tls_verify,
            platform,
            image,
        } => {
            let opts = registry::PullOptions {
                tls_verify,
                platform,
                quiet,
                sink: None,
            };
            let img = registry::pull(&ctx.images, &mut ctx.db, &ctx.root, &image, &opts)?;
            println!("{}", img.id);
            Ok(0)
        }
        Cmd::Push {
            quiet,
            tls_verify,
            image,
            dest,
        } => {
            let opts = registry::PushOptions { tls_verify, quiet };
            let digest = registry::push(
                &ctx.images,
                &ctx.db,
                &ctx.root,
                &image,
                dest.as_deref(),
                &opts,
            )?;
            println!("{digest}");
            Ok(0)
        }
        Cmd::Login {
            username,
            password_stdin,
            tls_verify,
            registry: reg,
        } => {
            let key = registry::login(
                &ctx.root,
                registry::LoginRequest {
                    registry: reg,
                    username,
                    password_stdin,
                    tls_verify,
                },
            )?;
            println!("Login Succeeded: {key}");
            Ok(0)
        }
        Cmd::Logout { registry: reg } => {
            let key = registry::logout(&ctx.root, &reg)?;
            println!("Removed login credentials for {key}");
            Ok(0)
        }
        Cmd::Load { input, quiet } => {
            let names = ctx.images.load(&mut ctx.db, &input)?;
            if !quiet {
                names.iter().for_each(|n| println!("Loaded image: {n}"));
            }
            Ok(0)
        }
        Cmd::Save {
            output,
            format,
            images,
        } => {
            let format = match format {
                SaveFormat::OciArchive => crate::image::ArchiveFormat::OciArchive,
                SaveFormat::DockerArchive => crate::image::ArchiveFormat::DockerArchive,
            };
            ctx.images.save(&ctx.db, &images, &output, format)?;
            Ok(0)
        }
        Cmd::Tag { source, target } => {
            ctx.images.tag(&mut ctx.db, &source, &target)?;
            Ok(0)
        }
        Cmd::Image(ImageCmd::Inspect { images }) => {
            let views = images
                .iter()
                .map(|n| ctx.images.inspect(&ctx.db, n))
                .collect::<Result<Vec<_>, _>>()?;
            format::inspect(&views)?;
            Ok(0)
        }
        Cmd::Image(ImageCmd::Prune { format }) => {
            let rep = ctx.images.prune(&ctx.db)?;
            format::prune(&rep, &format)?;
            Ok(0)
        }
        Cmd::Images { quiet, format } => {
            let list = ctx.images.list(&ctx.db)?;
            format::images(&list, quiet, &format)?;
            Ok(0)
        }
        Cmd::Image(ImageCmd::Ls { quiet, format }) => {
            let list = ctx.images.list(&ctx.db)?;
            format::images(&list, quiet, &format)?;
            Ok(0)
        }
        Cmd::Image(ImageCmd::Rm { force, images }) | Cmd::Rmi { force, images } => {
            rmi(&mut ctx, images, force)
        }
        Cmd::Network(NetworkCmd::Create {
            subnet,
            gateway,
            internal,
            name,
        }) => {
            let n = pod::create_network(
                &mut ctx,
                &name,
                subnet.as_deref(),
                gateway.as_deref(),
                internal,
            )?;
            println!("{}", n.name);
            Ok(0)
        }
        Cmd::Network(NetworkCmd::Ls { quiet, format }) => {
            format::networks(&pod::list_networks(&ctx)?, quiet, &format)?;
            Ok(0)
        }
        Cmd::Network(NetworkCmd::Inspect { names }) => {
            let views = names
                .iter()
                .map(|n| pod::inspect_network(&ctx, n))
                .collect::<Result<Vec<_>, _>>()?;
            format::inspect(&views)?;
            Ok(0)
        }
        Cmd::Network(NetworkCmd::Rm { names }) => {
            Ok(format::each_name(&names, PodError::exit_code, |n| {
                pod::remove_network(&mut ctx, n)
            }))
        }
        Cmd::Stats {
            pods,
            all,
            no_stream,
            format,
        } => stats::stats(&mut ctx, &pods, all, no_stream, &format),
        Cmd::Top { pod: key, format } => {
            stats::top(&pod::top(&mut ctx, &key)?, &format)?;
            Ok(0)
        }
        Cmd::Generate(kube::GenerateCmd::Kube(a)) => kube::from_pods(&mut ctx, &a),
        Cmd::Port {
            pod: key,
            listening: true,
            format,
        } => {
            let json = format::check_format(&format)?;
            let ports = pod::route::listening(&mut ctx, &key)?;
            format::listening(&ports, json)?;
            Ok(0)
        }
        Cmd::Port { pod: key, .. } => {
            let v = pod::inspect(&mut ctx, &key)?;
            format::ports(&v);
            Ok(0)
        }
        Cmd::Router { listen } => router(ctx, &listen),
        Cmd::System(SystemCmd::Info { format }) => {
            let info = pod::system_info(&mut ctx)?;
            format::info(&info, &format)?;
            Ok(0)
        }
        Cmd::System(SystemCmd::Service {
            time,
            address,
            router,
        }) => {
            // The router is a long-lived entry: a service that carries one
            // never idles out.
            let idle = (time > 0 && router.is_none()).then(|| Duration::from_secs(time));
            match router {
                Some(listen) => {
                    let (l, addr) = bind_router(&listen)?;
                    std::thread::spawn(move || pod::route::serve_shared(ctx, l, addr));
                }
                None => drop(ctx),
            }
            let listen = match (&address, crate::api::systemd_socket()) {
                (Some(a), _) => crate::api::Listen::Path(crate::api::parse_address(a)?),
                (None, Some(fd)) => crate::api::Listen::Inherited(fd),
                (None, None) => crate::api::Listen::Path(DEFAULT_SOCKET.into()),
            };
            crate::api::serve(&cli.root, listen, idle)?;
            Ok(0)
        }
        Cmd::System(SystemCmd::Boot { format }) => {
            let lines = pod::boot(&mut ctx)?;
            format::boot(&lines, &format)?;
            Ok(lines.iter().find_map(|l| l.code).unwrap_or(0))
        }
        Cmd::System(SystemCmd::Gc {
            format,
            orphans: true,
            dry_run,
        }) => {
            let rep = pod::gc_orphans(&ctx, dry_run)?;
            format::orphans(&rep, &format)?;
            Ok(i32::from(!rep.failed.is_empty()))
        }
        Cmd::System(SystemCmd::Gc { format, .. }) => {
            let rep = pod::gc(&mut ctx)?;
            format::gc(&rep, &format)?;
            Ok(0)
        }
        Cmd::Checkpoint(a) => snapshot::checkpoint(&mut ctx, a),
        Cmd::Restore(a) => snapshot::restore(&mut ctx, a, debug, early.take()),
        Cmd::Snapshot(c) => snapshot::snapshot(&mut ctx, c),
        Cmd::Commit(a) => snapshot::commit(&mut ctx, a),
        Cmd::Ssh(a) => ssh::ssh(&mut ctx, a),
        Cmd::Bench(a) => bench::bench(&mut ctx, a),
        Cmd::SshConfig(a) => ssh::ssh_config(&mut ctx, &cli.root, a),
        Cmd::Up(a) => project::up(&mut ctx, a, debug),
        Cmd::Down(a) => project::down(&mut ctx, a),
        Cmd::Service(c) => project::service(&mut ctx, c),
        Cmd::Monitor { .. } | Cmd::SshProxy(_) | Cmd::Config(_) | Cmd::Machine(_) => {
            unreachable!("handled before the context is opened")
        }
    }
}

#[cfg(host_runtime)]
fn rmi(ctx: &mut Ctx, images: Vec<String>, force: bool) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in images {
        match pod::remove_image(ctx, &name, force) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("gvpod: {e}");
                code = code.max(e.exit_code());
            }
        }
    }
    Ok(code)
}

/// The create request of `run`/`create` arguments.
fn create_request(a: &RunArgs, debug: bool, starting: bool) -> anyhow::Result<pod::CreateRequest> {
    Ok(pod::CreateRequest {
        image: a.image.clone(),
        name: a.pod.name.clone(),
        opts: PodOptions::try_from(a)?,
        auto_remove: a.rm,
        debug,
        starting,
    })
}
