//! Supervised services (issue 12): a spec pod's `setup` and `services`
//! (`bundle::PodOptions::{setup, services}`), carried out by the pod's own
//! monitor for each launch of the pod ([`supervise`]), never by a daemon
//! (DESIGN.md: "services, health checks and restart policies are
//! supervised by each pod's monitor"). The rules it keeps:
//! * `setup` runs once per pod, as root, in order, after the pod's first
//!   start; a failed command is reported in the pod's log and no service
//!   starts (the pod stays up for the user to look). Recorded done only
//!   when every command succeeded (`pods.setup_done`).
//! * a service starts once what it `depends_on` is up: a service of the
//!   same pod that runs and, if it has a health check, is healthy; or a
//!   pod of the same project (label [`PROJECT_LABEL`]) all of whose
//!   services are. Its `install` runs once per pod (as root) before its
//!   first start; a failed install leaves it `failed`.
//! * a service runs as `sh -c START` under gvpod's relay (`--group`, see
//!   src/router/relay.c), as the pod's dev user when it has one (else the
//!   pod's user), with its output in its own log ([`log_path`],
//!   `gvpod logs POD --service NAME`). Its restart policy (`no` by
//!   default, `on-failure[:N]`, `always`, `unless-stopped`) and back-off are
//!   the pod's own (`pod::restart`, docker's semantics); a stop by the user
//!   (`gvpod service stop`) is never undone by the policy.
//! * health checks run from the host ([`health`]); ps shows a pod's
//!   services' health ([`summary`]) as docker shows a container's.
//! * the front ends talk to the monitor over its `services.sock` (one JSON
//!   request, one JSON reply), as conmon takes commands on its ctl socket.

pub use super::views::{ServiceView, PROJECT_LABEL};

mod health;
mod supervise;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Ctx, PodError, Result};
use crate::state::{PodRow, PodStatus, ServiceRow};

pub(crate) use supervise::supervise;

/// Where the monitor of pod `id` takes service commands.
pub(crate) fn socket_path(ctx: &Ctx, id: &str) -> PathBuf {
    ctx.pod_run_dir(id).join("services.sock")
}

/// The directory of a pod's service logs (removed with the pod).
pub fn log_dir(root: &Path, id: &str) -> PathBuf {
    root.join("logs").join(format!("{id}.services"))
}

/// The log of service `name` of pod `id` (JSON lines, as the pod's own).
pub fn log_path(root: &Path, id: &str, name: &str) -> PathBuf {
    log_dir(root, id).join(format!("{name}.json"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Stop,
    Restart,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub action: Action,
    pub service: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Reply {
    Ok,
    Error(String),
}

/// The services of `pod` as last recorded; those of a pod that does not
/// run are shown `exited` (its monitor is gone) unless it never started.
pub fn views(ctx: &Ctx, pod: &PodRow) -> Result<Vec<ServiceView>> {
    let opts = pod.options()?;
    if opts.services.is_empty() {
        return Ok(vec![]);
    }
    let rows = ctx.db.services(&pod.id)?;
    let running = pod.status == PodStatus::Running;
    Ok(opts
        .services
        .iter()
        .map(|(name, svc)| {
            let row = rows.iter().find(|r| r.name == *name);
            view(name, svc.port, row, running)
        })
        .collect())
}

fn view(name: &str, port: Option<u16>, row: Option<&ServiceRow>, running: bool) -> ServiceView {
    let mut v = ServiceView {
        name: name.to_string(),
        state: "created".into(),
        health: "none".into(),
        restarts: 0,
        exit_code: None,
        started_at: None,
        port,
        failing: 0,
        last_check: None,
        check_output: String::new(),
    };
    if let Some(r) = row {
        v.state = r.state.clone();
        v.health = r.health.clone();
        v.restarts = r.restarts;
        v.exit_code = r.exit_code;
        v.started_at = r.started_at.clone();
        v.failing = r.failing;
        v.last_check = r.checked_at.clone();
        v.check_output = r.check_output.clone();
        if !running && !matches!(v.state.as_str(), "failed" | "stopped") {
            v.state = "exited".into();
        }
        // A stopped service is not checked; one that ended is not healthy.
        match v.state.as_str() {
            "stopped" => v.health = "none".into(),
            "exited" | "failed" if v.health != "none" => v.health = "unhealthy".into(),
            _ => {}
        }
    }
    v
}

/// Records pod `id`'s setup and its services' installs as done (a pod
/// restored from a snapshot, whose filesystem holds what they did).
pub(crate) fn mark_done(ctx: &mut Ctx, id: &str, opts: &crate::bundle::PodOptions) -> Result<()> {
    if opts.services.is_empty() && opts.setup.is_empty() {
        return Ok(());
    }
    ctx.db.set_setup_done(id)?;
    let rows: Vec<(String, bool)> = opts
        .services
        .iter()
        .map(|(n, s)| (n.clone(), s.health.is_some()))
        .collect();
    ctx.db.reset_services(id, &rows)?;
    for n in opts.services.keys() {
        ctx.db
            .update_service(id, n, crate::state::ServiceUpdate::Installed)?;
    }
    Ok(())
}

/// The health a pod shows for its services (`Up 2 minutes (healthy)`):
/// `unhealthy` if one is, else `starting` if one is, else `healthy` when at
/// least one has a check; `None` when none has.
pub fn summary(views: &[ServiceView]) -> Option<&'static str> {
    let checked: Vec<&str> = views
        .iter()
        .map(|v| v.health.as_str())
        .filter(|h| *h != "none")
        .collect();
    if checked.is_empty() {
        None
    } else if checked.contains(&"unhealthy") {
        Some("unhealthy")
    } else if checked.contains(&"starting") {
        Some("starting")
    } else {
        Some("healthy")
    }
}

/// `gvpod service start|stop|restart POD [NAME]`: asks the pod's monitor;
/// every service when `name` is `None`. Returns the services acted on.
pub fn control(
    ctx: &mut Ctx,
    key: &str,
    action: Action,
    name: Option<&str>,
) -> Result<Vec<String>> {
    let pod = ctx.lookup(key)?;
    let pod = ctx.refresh(pod)?;
    let opts = pod.options()?;
    if opts.services.is_empty() {
        return Err(PodError::Usage(format!(
            "pod {} has no services (services come from a spec: see `gvpod up`)",
            pod.name
        )));
    }
    let names: Vec<String> = match name {
        Some(n) if opts.services.contains_key(n) => vec![n.to_string()],
        Some(n) => {
            return Err(PodError::Usage(format!(
                "pod {} has no service {n:?} (it has {})",
                pod.name,
                opts.services.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
        None => opts.services.keys().cloned().collect(),
    };
    if pod.status != PodStatus::Running {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "its services run only while it runs: start it first (`gvpod start`)",
        });
    }
    let path = socket_path(ctx, &pod.id);
    for n in &names {
        ask(
            &path,
            &pod.name,
            &Request {
                action,
                service: n.clone(),
            },
        )?;
    }
    Ok(names)
}

fn ask(path: &Path, pod: &str, req: &Request) -> Result<()> {
    use std::io::{BufRead, Write};
    let fail = |e: std::io::Error| {
        PodError::Monitor(format!(
            "cannot reach the services of pod {pod} ({}: {e}); the pod may be restarting, try again",
            path.display()
        ))
    };
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(fail)?;
    let mut text = serde_json::to_string(req).expect("a request serialises");
    text.push('\n');
    s.write_all(text.as_bytes()).map_err(fail)?;
    // A stop waits up to its grace for the service to end.
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .map_err(fail)?;
    let mut line = String::new();
    std::io::BufReader::new(&s)
        .read_line(&mut line)
        .map_err(fail)?;
    match serde_json::from_str::<Reply>(&line) {
        Ok(Reply::Ok) => Ok(()),
        Ok(Reply::Error(e)) => Err(PodError::Usage(e)),
        Err(e) => Err(PodError::Monitor(format!(
            "pod {pod}'s monitor answered {line:?}: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(health: &str) -> ServiceView {
        view("s", None, None, true).with_health(health)
    }

    impl ServiceView {
        fn with_health(mut self, h: &str) -> ServiceView {
            self.health = h.into();
            self
        }
    }

    #[test]
    fn a_pod_is_as_healthy_as_its_least_healthy_checked_service() {
        assert_eq!(summary(&[]), None);
        assert_eq!(summary(&[v("none")]), None);
        assert_eq!(summary(&[v("none"), v("healthy")]), Some("healthy"));
        assert_eq!(summary(&[v("starting"), v("healthy")]), Some("starting"));
        assert_eq!(
            summary(&[v("starting"), v("unhealthy"), v("healthy")]),
            Some("unhealthy")
        );
    }

    #[test]
    fn services_of_a_stopped_pod_show_exited_but_keep_a_failure() {
        let row = ServiceRow {
            name: "a".into(),
            state: "running".into(),
            health: "healthy".into(),
            installed: true,
            restarts: 2,
            exit_code: None,
            started_at: Some("t".into()),
            failing: 0,
            checked_at: None,
            check_output: String::new(),
        };
        assert_eq!(view("a", Some(80), Some(&row), true).state, "running");
        assert_eq!(view("a", Some(80), Some(&row), false).state, "exited");
        assert_eq!(view("a", Some(80), Some(&row), false).health, "unhealthy");
        let stopped = ServiceRow {
            state: "stopped".into(),
            ..row.clone()
        };
        assert_eq!(view("a", None, Some(&stopped), true).health, "none");
        let failed = ServiceRow {
            state: "failed".into(),
            ..row
        };
        assert_eq!(view("a", None, Some(&failed), false).state, "failed");
        assert_eq!(view("b", None, None, false).state, "created");
    }
}
