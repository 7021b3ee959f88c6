//! `/gvpod/v1/` for snapshots: checkpoint, restore, commit, and the
//! snapshot store's list, inspect, remove, export and import, over the same
//! `pod` functions as `gvpod checkpoint`, `restore`, `commit`, `snapshot …`.

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::json;

use super::{body_of, ctx_or_answer, pod_err, required};
use crate::api::http::Request;
use crate::api::{After, Reply};
use crate::pod::{self, Ctx};

macro_rules! or_answer {
    ($e:expr, $w:expr, $keep:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return reply.send($w, $keep),
        }
    };
}

/// `POST /gvpod/v1/checkpoint` (a [`pod::CheckpointRequest`]): `{"Name"}`.
pub fn checkpoint(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: pod::CheckpointRequest = or_answer!(body_of(req), w, keep);
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::checkpoint(&mut ctx, body) {
        Ok(meta) => Reply::Json(201, json!({"Name": meta.name})),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `POST /gvpod/v1/restore` (a [`pod::RestoreRequest`]): `{"Id"}`.
pub fn restore(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: pod::RestoreRequest = or_answer!(body_of(req), w, keep);
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::restore(&mut ctx, body) {
        Ok((p, _)) => Reply::Json(201, json!({"Id": p.id})),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `POST /gvpod/v1/commit?pod=&image=`: `{"Id"}` of the new image.
pub fn commit(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let key = or_answer!(required(req, "pod"), w, keep);
    let image = or_answer!(required(req, "image"), w, keep);
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::commit(&mut ctx, key, image) {
        Ok(img) => Reply::Json(201, json!({"Id": img.id})),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/snapshots`: what `snapshot ls --format json` prints.
pub fn list_snapshots(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::snapshots::views(&mut ctx) {
        Ok(v) => Reply::Json(200, json!(v)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `GET /gvpod/v1/snapshots/{name}`: what `snapshot inspect` prints.
pub fn inspect_snapshot(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let ctx = ctx_or_answer!(root, w, keep);
    match pod::snapshots::inspect(&ctx, key) {
        Ok(v) => Reply::Json(200, v),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `DELETE /gvpod/v1/snapshots/{name}`.
pub fn remove_snapshot(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::snapshots::remove(&mut ctx, key) {
        Ok(()) => Reply::Empty(204),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `POST /gvpod/v1/snapshots/{name}/export?output=/ABS/PATH`.
pub fn export_snapshot(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let out = or_answer!(required(req, "output"), w, keep);
    let ctx = ctx_or_answer!(root, w, keep);
    match pod::snapshots::export(&ctx, key, Path::new(out)) {
        Ok((name, size)) => Reply::Json(200, json!({"Name": name, "Size": size})),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `POST /gvpod/v1/snapshots/import?file=/ABS/PATH[&name=]`: `{"Name"}`.
pub fn import_snapshot(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let file = or_answer!(required(req, "file"), w, keep);
    let name = req.query("name").filter(|n| !n.is_empty());
    let mut ctx: Ctx = ctx_or_answer!(root, w, keep);
    match pod::snapshots::import(&mut ctx, Path::new(file), name) {
        Ok(meta) => Reply::Json(201, json!({"Name": meta.name})),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}
