//! `commit`: a pod's filesystem changes become a new image layer on top of
//! its image (OCI whiteouts for deletions), registered in the image store.
//!
//! The changes are the pod's overlay upper directory (runsc runs with
//! `--overlay2=none`, DESIGN.md fact 8), written as an OCI layer by
//! `snapshot::diff`. A running pod is paused (`runsc pause`) while its
//! upper directory is read, so the layer is one consistent state, and
//! resumed whatever happens.

use super::{Ctx, PodError, Result};
use crate::bundle::RootfsPaths;
use crate::image::Image;
use crate::state::PodStatus;

pub fn commit(ctx: &mut Ctx, key: &str, reference: &str) -> Result<Image> {
    // Bad references fail before any work.
    crate::image::Reference::parse(reference)?;
    let pod = ctx.lookup(key)?;
    let pod = ctx.refresh(pod)?;
    let base = ctx.images.resolve(&ctx.db, &pod.image_id)?;
    let bundle = ctx.bundle_dir(&pod.id);
    let upper = RootfsPaths::new(&bundle).upper;
    if !upper.is_dir() {
        return Err(PodError::Usage(format!(
            "pod {} has no filesystem to commit ({} is missing)",
            pod.name,
            upper.display()
        )));
    }
    let tmp = bundle.join(format!(".commit-{}.tar", crate::util::random_hex(6)));
    let written = (|| -> Result<()> {
        let f = std::fs::File::create(&tmp).map_err(super::io("cannot create", &tmp))?;
        let paused = if pod.status == PodStatus::Running {
            let flags = ctx.flags_of(&pod)?;
            let runsc = ctx.runsc_for(&flags)?;
            runsc.pause(&flags, &pod.id)?;
            Some((runsc, flags))
        } else {
            None
        };
        let res = crate::snapshot::diff::write_diff(&upper, std::io::BufWriter::new(f));
        if let Some((runsc, flags)) = paused {
            runsc.resume(&flags, &pod.id)?;
        }
        res?;
        Ok(())
    })();
    let res = written.and_then(|()| {
        let mut f = std::fs::File::open(&tmp).map_err(super::io("cannot open", &tmp))?;
        Ok(ctx.images.commit_layer(
            &mut ctx.db,
            &base,
            &mut f,
            reference,
            &format!("gvpod commit {}", pod.name),
        )?)
    });
    let _ = std::fs::remove_file(&tmp);
    res
}
