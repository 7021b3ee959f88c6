//! `/gvpod/v1/` for the image store: list, inspect, load, save, import, tag,
//! remove and prune, over the same functions as `gvpod images`, `image
//! inspect`, `load`, `save`, `import`, `tag`, `rmi` and `image prune`.
//! Archive paths are the service host's (absolute: the client resolves
//! them).

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use super::{body_of, ctx_or_answer, pod_err, required};
use crate::api::http::Request;
use crate::api::{After, Reply};
use crate::image::ArchiveFormat;
use crate::pod::{self, Ctx, PodError};

macro_rules! or_answer {
    ($e:expr, $w:expr, $keep:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return reply.send($w, $keep),
        }
    };
}

/// The answer of an image-store call: `ok` as JSON, or its error.
fn answer<T: serde::Serialize>(res: Result<T, crate::image::ImageError>, status: u16) -> Reply {
    match res {
        Ok(v) => Reply::Json(status, json!(v)),
        Err(e) => pod_err(e.into()),
    }
}

/// `GET /gvpod/v1/images`: what `gvpod images --format json` prints.
pub fn list_images(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let ctx = ctx_or_answer!(root, w, keep);
    answer(ctx.images.list(&ctx.db), 200).send(w, keep)
}

/// `GET /gvpod/v1/images/{name}`: what `gvpod image inspect` prints.
pub fn inspect_image(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let ctx = ctx_or_answer!(root, w, keep);
    answer(ctx.images.inspect(&ctx.db, name), 200).send(w, keep)
}

/// `POST /gvpod/v1/images/load?input=/ABS/PATH`: the names loaded.
pub fn load(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let input = or_answer!(required(req, "input"), w, keep);
    let mut ctx: Ctx = ctx_or_answer!(root, w, keep);
    answer(ctx.images.load(&mut ctx.db, Path::new(input)), 200).send(w, keep)
}

/// The body of `POST /gvpod/v1/images/save`.
#[derive(Deserialize)]
struct Save {
    images: Vec<String>,
    output: String,
    /// `oci-archive` (default) or `docker-archive`.
    #[serde(default)]
    format: Option<String>,
}

/// `POST /gvpod/v1/images/save`: `{images, output, format}`.
pub fn save(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: Save = or_answer!(body_of(req), w, keep);
    let format = match body.format.as_deref() {
        None | Some("oci-archive") => ArchiveFormat::OciArchive,
        Some("docker-archive") => ArchiveFormat::DockerArchive,
        Some(f) => {
            let e = PodError::Usage(format!(
                "invalid format {f:?}: use oci-archive or docker-archive"
            ));
            return pod_err(e).send(w, keep);
        }
    };
    let ctx = ctx_or_answer!(root, w, keep);
    let out = Path::new(&body.output);
    answer(ctx.images.save(&ctx.db, &body.images, out, format), 200).send(w, keep)
}

/// The body of `POST /gvpod/v1/images/import`.
#[derive(Deserialize)]
struct Import {
    file: String,
    reference: String,
    #[serde(default)]
    change: Vec<String>,
}

/// `POST /gvpod/v1/images/import`: `{file, reference, change}` → `{"Id"}`.
pub fn import(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: Import = or_answer!(body_of(req), w, keep);
    let mut ctx: Ctx = ctx_or_answer!(root, w, keep);
    let res = ctx.images.import_tarball(
        &mut ctx.db,
        Path::new(&body.file),
        &body.reference,
        &body.change,
    );
    answer(res.map(|img| json!({"Id": img.id})), 201).send(w, keep)
}

/// `POST /gvpod/v1/images/tag?source=&target=`.
pub fn tag(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let source = or_answer!(required(req, "source"), w, keep);
    let target = or_answer!(required(req, "target"), w, keep);
    let mut ctx: Ctx = ctx_or_answer!(root, w, keep);
    answer(ctx.images.tag(&mut ctx.db, source, target), 201).send(w, keep)
}

/// `DELETE /gvpod/v1/images/{name}?force=1`: the lines `gvpod rmi` prints.
pub fn remove(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::remove_image(&mut ctx, name, req.flag("force")) {
        Ok(lines) => Reply::Json(200, json!(lines)),
        Err(e) => pod_err(e),
    }
    .send(w, keep)
}

/// `POST /gvpod/v1/images/prune`: what `gvpod image prune --format json` prints.
pub fn prune(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let ctx = ctx_or_answer!(root, w, keep);
    answer(ctx.images.prune(&ctx.db), 200).send(w, keep)
}
