//! `/gvpod/v1/` for snapshots: checkpoint, restore, commit, and the
//! snapshot store's list, inspect, remove, export and import, over the same
//! `pod` functions as `gvpod checkpoint`, `restore`, `commit`, `snapshot …`.

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::json;

use super::{body_of, required, serve};
use crate::api::http::Request;
use crate::api::After;
use crate::pod;

/// `POST /gvpod/v1/checkpoint` (a [`pod::CheckpointRequest`]): `{"Name"}`.
pub fn checkpoint(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 201, |ctx| {
        let meta = pod::checkpoint(ctx, body_of(req)?)?;
        Ok(json!({"Name": meta.name}))
    })
}

/// `POST /gvpod/v1/restore` (a [`pod::RestoreRequest`]): `{"Id"}`.
pub fn restore(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 201, |ctx| {
        let (p, _) = pod::restore(ctx, body_of(req)?)?;
        Ok(json!({"Id": p.id}))
    })
}

/// `POST /gvpod/v1/commit?pod=&image=`: `{"Id"}` of the new image.
pub fn commit(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 201, |ctx| {
        let img = pod::commit(ctx, required(req, "pod")?, required(req, "image")?)?;
        Ok(json!({"Id": img.id}))
    })
}

/// `GET /gvpod/v1/snapshots`: what `snapshot ls --format json` prints.
pub fn list_snapshots(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, pod::snapshots::views)
}

/// `GET /gvpod/v1/snapshots/{name}`: what `snapshot inspect` prints.
pub fn inspect_snapshot(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| pod::snapshots::inspect(ctx, key))
}

/// `DELETE /gvpod/v1/snapshots/{name}`.
pub fn remove_snapshot(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 204, |ctx| pod::snapshots::remove(ctx, key))
}

/// `POST /gvpod/v1/snapshots/{name}/export?output=/ABS/PATH`.
pub fn export_snapshot(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| {
        let out = Path::new(required(req, "output")?);
        let (name, size) = pod::snapshots::export(ctx, key, out)?;
        Ok(json!({"Name": name, "Size": size}))
    })
}

/// `POST /gvpod/v1/snapshots/import?file=/ABS/PATH[&name=]`: `{"Name"}`.
pub fn import_snapshot(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 201, |ctx| {
        let file = Path::new(required(req, "file")?);
        let name = req.query("name").filter(|n| !n.is_empty());
        let meta = pod::snapshots::import(ctx, file, name)?;
        Ok(json!({"Name": meta.name}))
    })
}
