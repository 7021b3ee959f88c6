//! What the pod layer adds to the image store: the pull a `run` or `create`
//! of a missing image does first, and `rmi -f`, which removes the pods that
//! use an image before the image, and the pull a front end reports
//! itself ([`pull`]: the API's `images/create`).

use super::{Ctx, PodError, Result};
use crate::image::registry;

/// Pulls `image` when the store does not have it, like docker's `run`; a
/// name that is an image id (or id prefix) is never pulled. Any other
/// lookup error is left for `create` to report the usual way.
pub fn ensure(ctx: &mut Ctx, image: &str) -> Result<()> {
    match ctx.images.resolve(&ctx.db, image) {
        Err(crate::image::ImageError::NotFound(_)) if !image.starts_with("sha256:") => {
            let opts = registry::PullOptions {
                tls_verify: true,
                platform: None,
                quiet: false,
                sink: None,
            };
            registry::pull(&ctx.images, &mut ctx.db, &ctx.root, image, &opts)?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The image `name` names in the store (no pull): what `gvpod bench`
/// makes its bundle from.
pub fn resolve(ctx: &Ctx, name: &str) -> Result<crate::image::Image> {
    Ok(ctx.images.resolve(&ctx.db, name)?)
}

/// Removes image `name` (its tag, or the image once untagged). Untagging one
/// of several names always works (pods keep the image, as docker's do);
/// deleting an image that pods use is refused unless `force`, which removes
/// those pods first.
/// Returns the store's lines (`Untagged: …`, `Deleted: …`).
pub fn remove(ctx: &mut Ctx, name: &str, force: bool) -> Result<Vec<String>> {
    let img = ctx.images.resolve(&ctx.db, name)?;
    let users = if ctx.images.remove_deletes(&ctx.db, name)? {
        ctx.db.pods_using_image(&img.id)?
    } else {
        vec![]
    };
    if !users.is_empty() {
        if !force {
            return Err(PodError::ImageInUse {
                image: name.to_string(),
                pods: users.join(", "),
            });
        }
        for p in &users {
            super::remove(ctx, p, true)?;
        }
    }
    Ok(ctx.images.remove(&mut ctx.db, name)?)
}

/// Pulls `name` (always asking the registry, as `docker pull` does),
/// reporting progress to `sink`. Returns whether the reference now names
/// another image than before (docker's "Downloaded newer image" rather
/// than "Image is up to date").
pub fn pull(
    ctx: &mut Ctx,
    name: &str,
    platform: Option<String>,
    sink: registry::ProgressSink,
) -> Result<bool> {
    let before = ctx.images.resolve(&ctx.db, name).ok().map(|i| i.id);
    let opts = registry::PullOptions {
        tls_verify: true,
        platform,
        quiet: false,
        sink: Some(sink),
    };
    let image = registry::pull(&ctx.images, &mut ctx.db, &ctx.root, name, &opts)?;
    Ok(before.as_deref() != Some(image.id.as_str()))
}
