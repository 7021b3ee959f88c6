//! gvpod's own endpoints, under `/gvpod/v1/` (podman's `libpod` API beside
//! its Docker-compatible one is the model): what the remote CLI
//! (`gvpod --url`) needs in gvpod's own terms, so that its output, `--format
//! json` included, is byte for byte what the same verb prints on the host.
//! Everything the Docker API already says (start, stop, kill, wait, rm,
//! logs, attach, exec) the remote CLI takes from the Docker endpoints.
//!
//! [`snapshots`] holds checkpoint, restore, commit and the snapshot store,
//! [`images`] the image store's verbs; paths in requests (archives to read
//! or write) are the service host's, made absolute by the client (on a Mac
//! they are the same path in the Lima machine).
//!
//! Every handler is one call of [`serve`]: open the data root, run the pod
//! layer, answer its value or its error. The bodies are the pod layer's own types ([`crate::pod::PodView`],
//! [`crate::pod::CreateRequest`], [`crate::image::ImageSummary`]), so the
//! two ends cannot drift apart. An error is `{"message", "exitCode"}`: the
//! HTTP status of its kind, and the exit code the CLI would have ended with
//! on the host (126/127 for a command that cannot run in the pod).

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::json;

mod images;
mod networks;
mod projects;
mod snapshots;

pub use images::*;
pub use networks::*;
pub use projects::{down as project_down, services, up as project_up};
pub use snapshots::*;

use super::http::Request;
use super::{After, Reply};
use crate::pod::{self, Ctx, PodError};

/// The answer for a pod-layer error, with the exit code the host's CLI
/// would end with.
fn pod_err(e: PodError) -> Reply {
    let status = super::status_of(e.kind());
    Reply::Json(
        status,
        json!({"message": e.to_string(), "exitCode": e.exit_code()}),
    )
}

/// What every handler here does: opens the data root, runs `f` and answers
/// its value as JSON with `status` (nothing for 204), or its error as
/// [`pod_err`] shapes it.
fn serve<T: serde::Serialize>(
    root: &Path,
    req: &Request,
    w: &mut UnixStream,
    status: u16,
    f: impl FnOnce(&mut Ctx) -> Result<T, PodError>,
) -> std::io::Result<After> {
    let res = Ctx::open(root).and_then(|mut ctx| f(&mut ctx));
    match res {
        Ok(_) if status == 204 => Reply::Empty(204),
        Ok(v) => Reply::Json(status, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, req.keep_alive())
}

/// The body as `T`, or the usage error that names what is wrong with it.
fn body_of<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, PodError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| PodError::Usage(format!("invalid request body: {e}")))
}

/// A query parameter that must be there (a path, a name).
fn required<'a>(req: &'a Request, name: &str) -> Result<&'a str, PodError> {
    req.query(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PodError::Usage(format!("the {name} parameter is missing")))
}

/// `POST /gvpod/v1/system/gc`: what `gvpod system gc --format json` prints;
/// with `orphans=1` (and `dry_run=1`), what `system gc --orphans` prints.
pub fn gc(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    if req.flag("orphans") {
        let dry_run = req.flag("dry_run");
        return serve(root, req, w, 200, |ctx| pod::gc_orphans(ctx, dry_run));
    }
    serve(root, req, w, 200, pod::gc)
}

/// `GET /gvpod/v1/pods?all=1`: what `gvpod ps --format json` prints.
pub fn list_pods(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| pod::list(ctx, req.flag("all")))
}

/// `GET /gvpod/v1/pods/{name or id}`: what `gvpod inspect` prints.
pub fn inspect_pod(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| pod::inspect(ctx, key))
}

/// `GET /gvpod/v1/pods/{name or id}/listening`: `gvpod port --listening`.
pub fn listening(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| pod::route::listening(ctx, key))
}

/// `GET /gvpod/v1/pods/{key}/top`: what `gvpod top --format json` prints.
pub fn top(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| pod::top(ctx, key))
}

/// `GET /gvpod/v1/kube?pods=A,B`: `gvpod generate kube A B`, as `{"yaml"}`.
pub fn kube(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keys: Vec<String> = req
        .query("pods")
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    serve(root, req, w, 200, |ctx| {
        Ok(json!({ "yaml": pod::generate_kube(ctx, &keys)? }))
    })
}

/// `POST /gvpod/v1/pods`: `gvpod create` (the image is pulled first when
/// missing, as `run` and `create` do on the host); answers `{"Id"}`.
pub fn create_pod(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 201, |ctx| {
        let create: pod::CreateRequest = body_of(req)?;
        pod::ensure_image(ctx, &create.image)?;
        let p = pod::create(ctx, create)?;
        Ok(json!({"Id": p.id, "Name": p.name}))
    })
}

/// `GET /gvpod/v1/info`: what `gvpod system info --format json` prints.
pub fn info(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, pod::system_info)
}
