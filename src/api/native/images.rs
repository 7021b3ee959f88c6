//! `/gvpod/v1/` for the image store: list, inspect, load, save, import, tag,
//! remove and prune, over the same functions as `gvpod images`, `image
//! inspect`, `load`, `save`, `import`, `tag`, `rmi` and `image prune`.
//! Archive paths are the service host's (absolute: the client resolves
//! them).

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use super::{body_of, required, serve};
use crate::api::http::Request;
use crate::api::After;
use crate::image::ArchiveFormat;
use crate::pod::{self, PodError};

/// `GET /gvpod/v1/images`: what `gvpod images --format json` prints.
pub fn list_images(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| Ok(ctx.images.list(&ctx.db)?))
}

/// `GET /gvpod/v1/images/{name}`: what `gvpod image inspect` prints.
pub fn inspect_image(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| {
        Ok(ctx.images.inspect(&ctx.db, name)?)
    })
}

/// `POST /gvpod/v1/images/load?input=/ABS/PATH`: the names loaded.
pub fn load(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| {
        let input = Path::new(required(req, "input")?);
        Ok(ctx.images.load(&mut ctx.db, input)?)
    })
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
    serve(root, req, w, 200, |ctx| {
        let body: Save = body_of(req)?;
        let format = match body.format.as_deref() {
            None | Some("oci-archive") => ArchiveFormat::OciArchive,
            Some("docker-archive") => ArchiveFormat::DockerArchive,
            Some(f) => {
                return Err(PodError::Usage(format!(
                    "invalid format {f:?}: use oci-archive or docker-archive"
                )))
            }
        };
        let out = Path::new(&body.output);
        Ok(ctx.images.save(&ctx.db, &body.images, out, format)?)
    })
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
    serve(root, req, w, 201, |ctx| {
        let b: Import = body_of(req)?;
        let file = Path::new(&b.file);
        let img = ctx
            .images
            .import_tarball(&mut ctx.db, file, &b.reference, &b.change)?;
        Ok(json!({"Id": img.id}))
    })
}

/// `POST /gvpod/v1/images/tag?source=&target=`.
pub fn tag(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 201, |ctx| {
        let (source, target) = (required(req, "source")?, required(req, "target")?);
        Ok(ctx.images.tag(&mut ctx.db, source, target)?)
    })
}

/// `DELETE /gvpod/v1/images/{name}?force=1`: the lines `gvpod rmi` prints.
pub fn remove(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| {
        pod::remove_image(ctx, name, req.flag("force"))
    })
}

/// `POST /gvpod/v1/images/prune`: what `gvpod image prune --format json` prints.
pub fn prune(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    serve(root, req, w, 200, |ctx| Ok(ctx.images.prune(&ctx.db)?))
}
