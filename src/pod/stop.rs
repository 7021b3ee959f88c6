//! `stop`, `kill` and `wait`: signals go through runsc; the monitor records
//! the exit, so waiting means waiting for the monitor process to end.

use std::time::{Duration, Instant};

use super::{Ctx, PodError, Result};
use crate::state::{PodRow, PodStatus};

/// Sends the image's stop signal (default SIGTERM), waits `timeout`, then SIGKILL.
/// Stopping a pod that is not running is not an error (as in docker).
pub fn stop(ctx: &mut Ctx, pod: &PodRow, timeout: Duration) -> Result<PodRow> {
    let pod = ctx.refresh(pod.clone())?;
    if !pod.status.can_stop() {
        return Ok(pod);
    }
    let flags = ctx.flags_of(&pod)?;
    let signal = stop_signal(ctx, &pod);
    let runsc = ctx.runsc_for(&flags)?;
    // Before the signal: the pod's monitor must not restart it (a pod in
    // its restart back-off has no process: its monitor ends on seeing this).
    ctx.db.set_pod_stopped_by_user(&pod.id)?;
    // The container may exit between refresh and kill: that is a stop too.
    let _ = runsc.kill(&flags, &pod.id, &signal, false);
    let pod = wait_exit(ctx, &pod, Some(timeout))?;
    if pod.status != PodStatus::Running {
        return Ok(pod);
    }
    let _ = runsc.kill(&flags, &pod.id, "KILL", false);
    let pod = wait_exit(ctx, &pod, Some(Duration::from_secs(10)))?;
    if pod.status == PodStatus::Running {
        return Err(PodError::Monitor(format!(
            "pod {} did not stop after SIGKILL",
            pod.name
        )));
    }
    Ok(pod)
}

fn stop_signal(ctx: &Ctx, pod: &PodRow) -> String {
    ctx.images
        .resolve(&ctx.db, &pod.image_id)
        .ok()
        .and_then(|i| {
            i.config
                .config()
                .as_ref()
                .and_then(|c| c.stop_signal().clone())
        })
        .map(|s| s.trim_start_matches("SIG").to_string())
        .unwrap_or_else(|| "TERM".to_string())
}

/// `kill -s SIG`: the pod must be running.
pub fn kill(ctx: &mut Ctx, pod: &PodRow, signal: &str) -> Result<()> {
    let pod = ctx.refresh(pod.clone())?;
    if !pod.status.can_stop() {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "only a running pod can be signalled",
        });
    }
    let sig = parse_signal(signal)?;
    let flags = ctx.flags_of(&pod)?;
    // As docker: any kill by the user is a stop no restart policy undoes.
    ctx.db.set_pod_stopped_by_user(&pod.id)?;
    match ctx.runsc_for(&flags)?.kill(&flags, &pod.id, &sig, false) {
        Ok(()) => Ok(()),
        // In its restart back-off there is no process to signal: its
        // monitor ends the pod on seeing the stop.
        Err(_) if restarting(ctx, &pod.id) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The pod is between two launches of its restart policy: `running`, with
/// a monitor and no process.
fn restarting(ctx: &Ctx, id: &str) -> bool {
    matches!(ctx.db.pod(id), Ok(Some(r))
        if r.status == PodStatus::Running && r.pid.is_none() && r.monitor_pid.is_some())
}

/// Accepts `TERM`, `SIGTERM`, `15`; returns the name runsc understands.
pub fn parse_signal(s: &str) -> Result<String> {
    let bad = || {
        PodError::Usage(format!(
            "invalid signal {s:?}: use a name such as TERM or KILL, or a number"
        ))
    };
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|_| n.to_string())
            .map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|_| name[3..].to_string())
        .map_err(|_| bad())
}

/// Blocks until the pod has exited and returns its row (`wait` prints its exit code).
pub fn wait(ctx: &mut Ctx, pod: &PodRow) -> Result<PodRow> {
    wait_exit(ctx, pod, None)
}

/// A pod removed while we waited (a `--rm` pod's monitor removes it): its
/// exit as kept at removal, so `wait` still prints the code.
fn removed_meanwhile(ctx: &Ctx, pod: &PodRow) -> Result<PodRow> {
    let exit_code = ctx
        .db
        .exit_of_removed(&pod.id)?
        .ok_or_else(|| PodError::NotFound(pod.name.clone()))?;
    Ok(PodRow {
        status: PodStatus::Exited,
        exit_code,
        pid: None,
        monitor_pid: None,
        ..pod.clone()
    })
}

/// Waits for the monitor to record the exit, at most `timeout`.
fn wait_exit(ctx: &mut Ctx, pod: &PodRow, timeout: Option<Duration>) -> Result<PodRow> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let Some(row) = ctx.db.pod(&pod.id)? else {
            return removed_meanwhile(ctx, pod);
        };
        let row = ctx.refresh(row)?;
        if row.status != PodStatus::Running {
            // Stopped once its monitor has finished too (a `--rm` pod is
            // gone then: the row as last seen).
            if row.monitor_pid.is_some() && super::await_monitor(&row) {
                return Ok(ctx.db.pod(&row.id)?.unwrap_or(row));
            }
            return Ok(row);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            return Ok(row);
        }
        // Sleep until the monitor exits (pidfd) or 200 ms pass, whichever is first.
        let slice = left
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        super::monitor::sleep_until_exit(row.monitor_pid, slice);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), "TERM");
        assert_eq!(parse_signal("sigkill").unwrap(), "KILL");
        assert_eq!(parse_signal("9").unwrap(), "9");
        assert!(parse_signal("NOPE")
            .unwrap_err()
            .to_string()
            .contains("\"NOPE\""));
        assert!(parse_signal("99").is_err());
    }
}
