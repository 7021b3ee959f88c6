//! `gvpod up`, `down` and `service`: read the spec files (as `gvpod config`
//! does), hand the project to `pod::project`, print what was done. No
//! logic of their own.

use std::path::PathBuf;
#[cfg(host_runtime)]
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::pod::project;
#[cfg(host_runtime)]
use crate::pod::{self, service, Ctx};

#[derive(Args)]
pub struct UpArgs {
    /// Spec file (repeatable: later files override earlier ones key by
    /// key); default ./gvpod.yaml, else ./gvpod.yml.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Wait until every service runs and passes its health check (at most
    /// SECS seconds; default 120 when given without a value).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "120")]
    pub wait: Option<u64>,
    /// Output format of the summary: table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only these pods (their keys in the spec).
    pub pods: Vec<String>,
}

#[derive(Args)]
pub struct DownArgs {
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The project to remove, when there is no spec file at hand.
    #[arg(short = 'p', long, value_name = "NAME")]
    pub project: Option<String>,
    /// Also remove the images the removed pods used (unless another pod uses one).
    #[arg(long)]
    pub rmi: bool,
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only these pods (their keys in the spec); networks stay.
    pub pods: Vec<String>,
}

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// List a pod's services: state, health, restarts, last check.
    Ls {
        pod: String,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Start a pod's stopped services (all when none is named).
    Start {
        pod: String,
        service: Option<String>,
    },
    /// Stop a pod's services (SIGTERM, SIGKILL after 10 s); the pod runs on.
    Stop {
        pod: String,
        service: Option<String>,
    },
    /// Restart a pod's services.
    Restart {
        pod: String,
        service: Option<String>,
    },
}

/// One line per thing `up` or `down` did (stderr, as compose's progress).
pub(super) fn print_done(d: &project::Done, json: bool) {
    if json {
        return;
    }
    if d.action == "orphaned" {
        eprintln!(
            "pod {} is not in the spec any more: `gvpod rm -f {}` or `gvpod down` removes it",
            d.name, d.name
        );
    } else {
        eprintln!("{} {} {}", d.kind, d.name, d.action);
    }
}

#[cfg(host_runtime)]
pub fn up(ctx: &mut Ctx, a: UpArgs, debug: bool) -> anyhow::Result<i32> {
    let json = super::format::check_format(&a.format)?;
    let project = super::config::load(&a.files)?;
    let done = project::up(
        ctx,
        project::UpRequest {
            project: &project,
            only: a.pods,
            wait: a.wait.map(Duration::from_secs),
            debug,
        },
        &|d| print_done(d, json),
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    }
    Ok(0)
}

#[cfg(host_runtime)]
pub fn down(ctx: &mut Ctx, a: DownArgs) -> anyhow::Result<i32> {
    let json = super::format::check_format(&a.format)?;
    let (name, networks) = match (&a.project, a.files.is_empty()) {
        (Some(p), true) => (p.clone(), vec![]),
        _ => {
            let p = super::config::load(&a.files)?;
            let nets = p.networks.values().map(|n| n.name.clone()).collect();
            (p.name, nets)
        }
    };
    let done = project::down(
        ctx,
        project::DownRequest {
            project: name,
            networks,
            only: a.pods,
            rmi: a.rmi,
        },
        &|d| print_done(d, json),
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    }
    Ok(0)
}

#[cfg(host_runtime)]
pub fn service(ctx: &mut Ctx, c: ServiceCmd) -> anyhow::Result<i32> {
    let (key, name, action) = match c {
        ServiceCmd::Ls { pod: key, format } => {
            let json = super::format::check_format(&format)?;
            let v = pod::inspect(ctx, &key)?;
            super::format::services(&v.services, json)?;
            return Ok(0);
        }
        ServiceCmd::Start { pod, service } => (pod, service, service::Action::Start),
        ServiceCmd::Stop { pod, service } => (pod, service, service::Action::Stop),
        ServiceCmd::Restart { pod, service } => (pod, service, service::Action::Restart),
    };
    for n in service::control(ctx, &key, action, name.as_deref())? {
        println!("{n}");
    }
    Ok(0)
}
