//! `/gvpod/v1/` for projects and services: `gvpod up`, `down` and
//! `service` through the service, over the same `pod::project` and
//! `pod::service` functions. Spec files are named by absolute path, read by
//! the service (the client has validated them first, so a spec error is
//! printed as on the host).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{body_of, serve};
use crate::api::http::Request;
use crate::api::After;
use crate::pod::{self, project, service, PodError};

/// The body of `POST /gvpod/v1/projects/up`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpBody {
    pub files: Vec<PathBuf>,
    #[serde(default)]
    pub pods: Vec<String>,
    #[serde(default)]
    pub wait: Option<u64>,
    #[serde(default)]
    pub debug: bool,
}

/// The body of `POST /gvpod/v1/projects/down`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DownBody {
    /// The spec files, or none with `project`.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub pods: Vec<String>,
    #[serde(default)]
    pub rmi: bool,
}

fn absolute(files: &[PathBuf]) -> Result<(), PodError> {
    match files.iter().find(|f| !f.is_absolute()) {
        Some(f) => Err(PodError::Usage(format!(
            "spec file {} is not an absolute path",
            f.display()
        ))),
        None if files.is_empty() => Err(PodError::Usage("no spec files given".into())),
        None => Ok(()),
    }
}

/// `POST /gvpod/v1/projects/up`: what `gvpod up --format json` prints.
pub fn up(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| {
        let b: UpBody = body_of(req)?;
        absolute(&b.files)?;
        let p = project::files::load(&b.files, Path::new("/"))?;
        project::up(
            ctx,
            project::UpRequest {
                project: &p,
                only: b.pods,
                wait: b.wait.map(Duration::from_secs),
                debug: b.debug,
            },
            &|_| {},
        )
    })
}

/// `POST /gvpod/v1/projects/down`: what `gvpod down --format json` prints.
pub fn down(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| {
        let b: DownBody = body_of(req)?;
        let (name, networks) = match b.project {
            Some(p) if b.files.is_empty() => (p, vec![]),
            _ => {
                absolute(&b.files)?;
                let p = project::files::load(&b.files, Path::new("/"))?;
                let nets = p.networks.values().map(|n| n.name.clone()).collect();
                (p.name, nets)
            }
        };
        project::down(
            ctx,
            project::DownRequest {
                project: name,
                networks,
                only: b.pods,
                rmi: b.rmi,
            },
            &|_| {},
        )
    })
}

/// `POST /gvpod/v1/pods/{key}/services/{start|stop|restart}[?service=NAME]`:
/// the services acted on.
pub fn services(
    root: &Path,
    key: &str,
    action: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| {
        let a = match action {
            "start" => service::Action::Start,
            "stop" => service::Action::Stop,
            "restart" => service::Action::Restart,
            other => {
                return Err(PodError::Usage(format!(
                    "unknown service action {other:?}: start, stop or restart"
                )))
            }
        };
        pod::service::control(ctx, key, a, req.query("service"))
    })
}
