//! `run`: create (pulling the image first if the store lacks it, as docker
//! does) and start in one step, with the rollback a front end must not
//! repeat: a `--rm` pod that fails to start is removed again, and a
//! detached pod that never got a sandbox is an error, while one that ran and
//! exited at once still ran (docker's `run -d` does the same).

use super::start::{start_with, EarlyMonitor};
use super::{images, Attach, CreateRequest, Ctx, PodError, Result, StartOutcome};
use crate::state::PodRow;

pub struct RunRequest {
    pub create: CreateRequest,
    /// Return once the pod has started (`-d`), or stay attached.
    pub detach: bool,
    /// Attached: pass our stdin to the pod (`-i`), with a terminal (`-t`).
    pub stdin: bool,
    pub tty: bool,
    /// A monitor started before the data root was opened, to be this
    /// pod's (see `EarlyMonitor`); `None` starts one at the start.
    pub early: Option<EarlyMonitor>,
}

/// How a run ended for its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Detached, and the pod runs (or ran: it exited at once, normally).
    Detached,
    /// Attached until the pod exited with this code (125: gvpod or runsc
    /// failed; no code known is 125 too).
    Exited(i32),
}

/// Creates and starts a pod; returns it and how the run ended.
pub fn run(ctx: &mut Ctx, req: RunRequest) -> Result<(PodRow, RunOutcome)> {
    images::ensure(ctx, &req.create.image)?;
    // The pod takes its early monitor's id (see `EarlyMonitor`).
    let early = req.early;
    let id = early
        .as_ref()
        .map_or_else(super::id::new_id, |e| e.id().to_string());
    let pod = super::create::create_as(ctx, req.create, id)?;
    let attach = if req.detach {
        Attach::Detached
    } else {
        Attach::Foreground {
            stdin: req.stdin,
            tty: req.tty,
        }
    };
    let outcome = match start_with(ctx, &pod, attach, None, early) {
        Ok(o) => o,
        Err(e) => {
            if pod.auto_remove {
                let _ = super::remove(ctx, &pod.id, true);
            }
            return Err(e);
        }
    };
    let outcome = match outcome {
        StartOutcome::Started { .. } => RunOutcome::Detached,
        // A pod that ran and exited at once still ran; only a sandbox that
        // never started (125, or no code) is an error.
        StartOutcome::Exited { code: Some(c) } if req.detach && c != 125 => RunOutcome::Detached,
        StartOutcome::Exited { .. } if req.detach => {
            return Err(PodError::Monitor(format!(
                "pod {} failed to start; see `gvpod logs {}`",
                pod.name, pod.name
            )))
        }
        StartOutcome::Exited { code } => RunOutcome::Exited(code.unwrap_or(125)),
    };
    Ok((pod, outcome))
}
