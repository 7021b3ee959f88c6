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
//! The bodies are the pod layer's own types ([`crate::pod::PodView`],
//! [`crate::pod::CreateRequest`], [`crate::image::ImageSummary`]), so the
//! two ends cannot drift apart. An error is `{"message", "exitCode"}`: the
//! HTTP status of its kind, and the exit code the CLI would have ended with
//! on the host (126/127 for a command that cannot run in the pod).

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::json;

mod images;
mod networks;
mod snapshots;

pub use images::*;
pub use networks::*;
pub use snapshots::*;

use super::http::Request;
use super::{After, Reply};
use crate::pod::{self, Ctx, PodError};

/// The answer for a pod-layer error, with the exit code the host's CLI
/// would end with.
pub(super) fn pod_err(e: PodError) -> Reply {
    let status = super::status_of(e.kind());
    Reply::Json(
        status,
        json!({"message": e.to_string(), "exitCode": e.exit_code()}),
    )
}

/// The body as `T`, or the 400 answer that names what is wrong with it.
pub(super) fn body_of<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, Reply> {
    serde_json::from_slice(&req.body)
        .map_err(|e| pod_err(PodError::Usage(format!("invalid request body: {e}"))))
}

/// A query parameter that must be there (a path, a name).
pub(super) fn required<'a>(req: &'a Request, name: &str) -> Result<&'a str, Reply> {
    req.query(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| pod_err(PodError::Usage(format!("the {name} parameter is missing"))))
}

/// Opens the data root, or answers why not.
macro_rules! ctx_or_answer {
    ($root:expr, $w:expr, $keep:expr) => {
        match Ctx::open($root) {
            Ok(c) => c,
            Err(e) => return pod_err(e).send($w, $keep),
        }
    };
}

pub(super) use ctx_or_answer;

/// `POST /gvpod/v1/system/gc`: what `gvpod system gc --format json` prints.
pub fn gc(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::gc(&mut ctx) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/pods?all=1`: what `gvpod ps --format json` prints.
pub fn list_pods(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::list(&mut ctx, req.flag("all")) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/pods/{name or id}`: what `gvpod inspect` prints.
pub fn inspect_pod(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::inspect(&mut ctx, key) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `POST /gvpod/v1/pods`: `gvpod create` (the image is pulled first when
/// missing, as `run` and `create` do on the host); answers `{"Id"}`.
pub fn create_pod(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let create: pod::CreateRequest = match body_of(req) {
        Ok(c) => c,
        Err(reply) => return reply.send(w, keep),
    };
    let mut ctx = ctx_or_answer!(root, w, keep);
    let made =
        pod::ensure_image(&mut ctx, &create.image).and_then(|()| pod::create(&mut ctx, create));
    match made {
        Ok(p) => Reply::Json(201, json!({"Id": p.id, "Name": p.name})),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/info`: what `gvpod system info --format json` prints.
pub fn info(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::system_info(&mut ctx) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/version`: the service's gvpod version (the remote CLI
/// refuses a service of another version with one line).
pub fn version(req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    Reply::Json(200, json!({"Version": env!("CARGO_PKG_VERSION")})).send(w, req.keep_alive())
}
