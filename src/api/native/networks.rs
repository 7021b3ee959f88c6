//! `/gvpod/v1/` for networks and stats: what `gvpod network ls|inspect|
//! create|rm` and `gvpod stats` print, over the same `pod` functions.

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use super::{body_of, serve};
use crate::api::http::Request;
use crate::api::After;
use crate::pod;

/// `GET /gvpod/v1/networks`: what `network ls --format json` prints.
pub fn list_networks(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| pod::list_networks(ctx))
}

/// `GET /gvpod/v1/networks/{name}`: what `network inspect` prints.
pub fn inspect_network(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| pod::inspect_network(ctx, name))
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
    serve(root, req, w, 201, |ctx| {
        let b: Create = body_of(req)?;
        let n = pod::create_network(
            ctx,
            &b.name,
            b.subnet.as_deref(),
            b.gateway.as_deref(),
            b.internal,
        )?;
        Ok(json!({"Name": n.name}))
    })
}

/// `DELETE /gvpod/v1/networks/{name}`.
pub fn remove_network(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 204, |ctx| pod::remove_network(ctx, name))
}

/// `GET /gvpod/v1/stats?pods=A,B&all=1`: one sample per pod, taken now
/// (`gvpod stats` computes CPU % from two of them).
pub fn stats(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keys: Vec<String> = req
        .query("pods")
        .unwrap_or("")
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    serve(root, req, w, 200, |ctx| {
        pod::samples(ctx, &keys, req.flag("all"))
    })
}
