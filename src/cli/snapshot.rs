//! Arguments and output of the snapshot verbs: `checkpoint`, `restore`,
//! `snapshot ls|inspect|rm|export|import` and `commit`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::pod;
#[cfg(host_runtime)]
use crate::pod::Ctx;

#[derive(Args)]
pub struct CheckpointArgs {
    /// Keep the pod running after the snapshot is taken.
    #[arg(long)]
    pub leave_running: bool,
    /// Reset the pod's open TCP connections instead of refusing the
    /// checkpoint (their clients see a reset; needs a runsc with
    /// --net-disconnect-ok).
    #[arg(long)]
    pub tcp_close: bool,
    /// Snapshot name (default: POD-<UTC time>).
    #[arg(long)]
    pub name: Option<String>,
    pub pod: String,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// Restore as a new pod (a clone) with this name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub ports: super::args::PublishArgs,
    /// Network of the restored pod (must be the snapshot's).
    #[arg(long)]
    pub network: Option<String>,
    pub snapshot: String,
}

#[derive(Args)]
pub struct CommitArgs {
    pub pod: String,
    /// The new image's reference, NAME[:TAG].
    pub image: String,
}

#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// List snapshots.
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show snapshots as JSON.
    Inspect {
        #[arg(required = true)]
        snapshots: Vec<String>,
    },
    /// Remove snapshots.
    Rm {
        #[arg(required = true)]
        snapshots: Vec<String>,
    },
    /// Write a snapshot to one portable, compressed archive.
    Export {
        snapshot: String,
        /// The archive to write.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Register a snapshot from an archive made by `snapshot export`.
    Import {
        file: PathBuf,
        /// Name of the imported snapshot (default: the one it was exported with).
        #[arg(long)]
        name: Option<String>,
    },
}

#[cfg(host_runtime)]
pub fn checkpoint(ctx: &mut Ctx, a: CheckpointArgs) -> anyhow::Result<i32> {
    let meta = pod::checkpoint(
        ctx,
        pod::CheckpointRequest {
            pod: a.pod,
            name: a.name,
            leave_running: a.leave_running,
            tcp_close: a.tcp_close,
        },
    )?;
    println!("{}", meta.name);
    Ok(0)
}

#[cfg(host_runtime)]
pub fn restore(
    ctx: &mut Ctx,
    a: RestoreArgs,
    debug: bool,
    early: Option<pod::EarlyMonitor>,
) -> anyhow::Result<i32> {
    let (pod, kind) = pod::restore_with(
        ctx,
        pod::RestoreRequest {
            snapshot: a.snapshot,
            name: a.name,
            ports: a.ports.publish,
            route: a.ports.route,
            network: a.network,
            debug,
        },
        early,
    )?;
    tracing::info!("restored pod {} ({})", pod.name, kind.as_str());
    println!("{}", pod.id);
    Ok(0)
}

#[cfg(host_runtime)]
pub fn commit(ctx: &mut Ctx, a: CommitArgs) -> anyhow::Result<i32> {
    let img = pod::commit(ctx, &a.pod, &a.image)?;
    println!("{}", img.id);
    Ok(0)
}

/// `snapshot ls`: a table, names (`-q`) or JSON.
pub fn print_snapshots(
    rows: &[pod::snapshots::SnapshotView],
    quiet: bool,
    format: &str,
) -> anyhow::Result<()> {
    let json = super::format::check_format(format)?;
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else if quiet {
        rows.iter().for_each(|r| println!("{}", r.name));
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.id[..12.min(r.id.len())].to_string(),
                    r.pod_name.clone(),
                    r.image.clone(),
                    format!("{} ago", super::format::ago(&r.created)),
                    super::format::human_size(r.size),
                ]
            })
            .collect();
        super::format::table(
            &["NAME", "SNAPSHOT ID", "POD", "IMAGE", "CREATED", "SIZE"],
            &table,
        );
    }
    Ok(())
}

#[cfg(host_runtime)]
pub fn snapshot(ctx: &mut Ctx, cmd: SnapshotCmd) -> anyhow::Result<i32> {
    match cmd {
        SnapshotCmd::Ls { quiet, format } => {
            print_snapshots(&pod::snapshots::views(ctx)?, quiet, &format)?;
            Ok(0)
        }
        SnapshotCmd::Inspect { snapshots } => {
            let out = snapshots
                .iter()
                .map(|k| pod::snapshots::inspect(ctx, k))
                .collect::<Result<Vec<_>, _>>()?;
            super::format::inspect(&out)?;
            Ok(0)
        }
        SnapshotCmd::Rm { snapshots } => Ok(super::format::each_name(
            &snapshots,
            pod::PodError::exit_code,
            |key| pod::snapshots::remove(ctx, key),
        )),
        SnapshotCmd::Export { snapshot, output } => {
            let (name, size) = pod::snapshots::export(ctx, &snapshot, &output)?;
            tracing::info!("exported {name} ({size} bytes)");
            println!("{}", output.display());
            Ok(0)
        }
        SnapshotCmd::Import { file, name } => {
            let meta = pod::snapshots::import(ctx, &file, name.as_deref())?;
            println!("{}", meta.name);
            Ok(0)
        }
    }
}
