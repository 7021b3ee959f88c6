//! `gvpod system boot`: after a host reboot the pods' monitors and sandboxes
//! are gone while the state database still says `running`. Each pod is
//! reconciled with the host (`Ctx::refresh` records it exited, its code
//! unknown) and started again when its restart policy says so
//! ([`super::restart::at_boot`]: docker's daemon start). Invariants:
//! * whether a pod was running is read before the reconciliation;
//! * one pod failing to start does not keep the others down: every pod gets
//!   its line, and the caller exits non-zero if any failed;
//! * a pod whose monitor is alive (boot run twice, or not after a reboot) is
//!   left alone.

pub use super::views::BootLine;

use super::restart::{at_boot, AtBoot};
use super::{start, Attach, Ctx, PodError, Result, StartOutcome};
use crate::state::PodStatus;

/// Starts, oldest first, the pods whose restart policy says so; one line
/// per pod.
pub fn boot(ctx: &mut Ctx) -> Result<Vec<BootLine>> {
    let mut lines = vec![];
    for row in ctx.db.pods()? {
        let was_running = row.status == PodStatus::Running;
        let mut line = BootLine {
            id: row.id.clone(),
            name: row.name.clone(),
            restart: row.options().map_or("no", |o| o.restart.name()),
            action: "left",
            reason: None,
            code: None,
        };
        match boot_one(ctx, row, was_running) {
            Ok((action, reason)) => {
                line.action = action;
                line.reason = reason.map(str::to_string);
            }
            Err(e) => {
                line.action = "failed";
                line.code = Some(e.exit_code());
                line.reason = Some(e.to_string());
            }
        }
        lines.push(line);
    }
    Ok(lines)
}

fn boot_one(
    ctx: &mut Ctx,
    row: crate::state::PodRow,
    was_running: bool,
) -> Result<(&'static str, Option<&'static str>)> {
    let pod = ctx.refresh(row)?;
    if pod.status == PodStatus::Running {
        return Ok(("left", Some("already running")));
    }
    let policy = pod.options()?.restart;
    let b = AtBoot {
        was_running,
        started_before: pod.started.is_some(),
        stopped_by_user: pod.stopped_by_user,
    };
    if !at_boot(policy, &b) {
        let why = match policy {
            crate::bundle::RestartPolicy::No => "restart policy no",
            _ if !b.started_before => "never started",
            _ if b.stopped_by_user => "stopped by the user",
            _ => "not running when the host went down",
        };
        return Ok(("left", Some(why)));
    }
    match start(ctx, &pod, Attach::Detached)? {
        StartOutcome::Started { .. } => Ok(("started", None)),
        // Ran and exited at once: it started (its monitor may restart it).
        StartOutcome::Exited { code: Some(c) } if c != 125 => {
            Ok(("started", Some("exited at once")))
        }
        StartOutcome::Exited { .. } => Err(PodError::Monitor(format!(
            "pod {} failed to start; see `gvpod logs {}`",
            pod.name, pod.name
        ))),
    }
}
