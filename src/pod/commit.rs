//! `commit`: a pod's filesystem changes become a new image layer on top of
//! its image (OCI whiteouts for deletions), registered in the image store.
//!
//! The changes are the pod's overlay upper directory (runsc runs with
//! `--overlay2=none`, DESIGN.md fact 8), written as an OCI layer by
//! `snapshot::diff`. A running pod is paused (`runsc pause`) while its
//! upper directory is read, so the layer is one consistent state, and
//! resumed whatever happens.
//!
//! Invariant: the pod is paused only while the committing gvpod holds the
//! pod's `commit.lock` (under its run dir). A gvpod killed in between
//! leaves the lock free: the next command that looks at the pod
//! ([`recover`], from `Ctx::refresh`) resumes it, so `ps` never shows a
//! frozen pod as running. The layer tar is written to
//! `.commit-<pid>-<rand>.tar` in the bundle; a killed commit's is removed
//! by the next commit of the pod (and with the pod).

use std::fs::File;
use std::path::PathBuf;

use super::{failpoint, Ctx, PodError, Result};
use crate::bundle::RootfsPaths;
use crate::image::Image;
use crate::state::{PodRow, PodStatus};

const TAR_PREFIX: &str = ".commit-";

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
    sweep_dead_tars(&bundle);
    let tmp = bundle.join(format!("{}.tar", crate::util::owned_temp_name(TAR_PREFIX)));
    let written = (|| -> Result<()> {
        let f = std::fs::File::create(&tmp).map_err(super::io("cannot create", &tmp))?;
        let paused = if pod.status == PodStatus::Running {
            let owner = try_own(ctx, &pod.id)?.ok_or_else(|| PodError::BadState {
                name: pod.name.clone(),
                status: "being committed",
                hint: "wait for the other commit to finish",
            })?;
            let flags = ctx.flags_of(&pod)?;
            let runsc = ctx.runsc_for(&flags)?;
            runsc.pause(&flags, &pod.id)?;
            failpoint::hit("commit:paused");
            Some((runsc, flags, owner))
        } else {
            None
        };
        let res = crate::snapshot::diff::write_commit_layer(&upper, std::io::BufWriter::new(f))
            .map_err(|e| {
                // The diff names the file it was reading; a full disk is
                // the layer's own file's (in the pod's bundle).
                if crate::error::disk_full(&e) {
                    PodError::Io {
                        what: "no space left on the disk to write the new layer",
                        path: tmp.clone(),
                        source: std::io::Error::from_raw_os_error(libc::ENOSPC),
                    }
                } else {
                    e.into()
                }
            });
        if let Some((runsc, flags, owner)) = paused {
            runsc.resume(&flags, &pod.id)?;
            owner.release();
        }
        res?;
        Ok(())
    })();
    failpoint::hit("commit:written");
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

/// Removes layer tars of killed commits from a pod's bundle.
fn sweep_dead_tars(bundle: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(bundle) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tar") && crate::util::temp_owner_gone(&name, TAR_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Held by the gvpod committing a pod while the pod may be paused.
struct Owner {
    lock: nix::fcntl::Flock<File>,
    path: PathBuf,
}

impl Owner {
    /// The pod is resumed: the lock file goes (while still held, so a
    /// concurrent [`recover`] never sees it free with the pod paused).
    fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.lock);
    }
}

fn lock_path(ctx: &Ctx, pod_id: &str) -> PathBuf {
    ctx.pod_run_dir(pod_id).join("commit.lock")
}

/// Takes the pod's commit lock; `None` while another gvpod holds it.
fn try_own(ctx: &Ctx, pod_id: &str) -> Result<Option<Owner>> {
    Ok(
        super::lock::try_lock_file(ctx, pod_id, "commit.lock")?.map(|lock| Owner {
            lock,
            path: lock_path(ctx, pod_id),
        }),
    )
}

/// A running pod left paused by a gvpod killed while committing it is
/// resumed. Nothing while a commit holds the lock, or when there is no
/// lock file (the usual case: one stat).
pub(crate) fn recover(ctx: &mut Ctx, pod: &PodRow) -> Result<()> {
    if pod.status != PodStatus::Running || !lock_path(ctx, &pod.id).exists() {
        return Ok(());
    }
    let Some(owner) = try_own(ctx, &pod.id)? else {
        return Ok(());
    };
    if let Ok(flags) = ctx.flags_of(pod) {
        let runsc = ctx.runsc_for(&flags)?;
        if runsc.status(&flags, &pod.id).as_deref() == Some("paused") {
            tracing::warn!(
                "pod {} was left paused by a commit that did not finish; resuming it",
                pod.name
            );
            runsc.resume(&flags, &pod.id)?;
        }
    }
    owner.release();
    Ok(())
}
