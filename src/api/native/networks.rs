//! `/gvpod/v1/` for networks and stats: what `gvpod network ls|inspect|
//! create|rm` and `gvpod stats` print, over the same `pod` functions.

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use super::{body_of, ctx_or_answer, pod_err};
use crate::api::http::Request;
use crate::api::{After, Reply};
use crate::pod::{self, Ctx};

/// `GET /gvpod/v1/networks`: what `network ls --format json` prints.
pub fn list_networks(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let ctx = ctx_or_answer!(root, w, keep);
    match pod::list_networks(&ctx) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/networks/{name}`: what `network inspect` prints.
pub fn inspect_network(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let ctx = ctx_or_answer!(root, w, keep);
    match pod::inspect_network(&ctx, name) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// The body of `POST /gvpod/v1/networks`.
#[derive(Deserialize)]
struct Create {
    name: String,
    subnet: Option<String>,
    gateway: Option<String>,
    #[serde(default)]
    internal: bool,
}

/// `POST /gvpod/v1/networks`: `network create`; `{"Name"}`.
pub fn create_network(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: Create = match body_of(req) {
        Ok(b) => b,
        Err(reply) => return reply.send(w, keep),
    };
    let mut ctx: Ctx = ctx_or_answer!(root, w, keep);
    let made = pod::create_network(
        &mut ctx,
        &body.name,
        body.subnet.as_deref(),
        body.gateway.as_deref(),
        body.internal,
    );
    match made {
        Ok(n) => Reply::Json(201, json!({"Name": n.name})),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `DELETE /gvpod/v1/networks/{name}`.
pub fn remove_network(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::remove_network(&mut ctx, name) {
        Ok(()) => Reply::Empty(204),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/stats?pods=A,B&all=1`: one sample per pod, taken now
/// (`gvpod stats` computes CPU % from two of them).
pub fn stats(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let keys: Vec<String> = req
        .query("pods")
        .unwrap_or("")
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::samples(&mut ctx, &keys, req.flag("all")) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}
