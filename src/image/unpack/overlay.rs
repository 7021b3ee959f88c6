//! Layers on top of their parents ([`apply_layer`]).
//!
//! A layer's meaning depends on the layers below it: an entry `var/run/x`
//! over a lower symlink `var/run -> /run` is `/run/x`; a hardlink may name a
//! lower file. So a layer with parents is applied, like containerd does when
//! it extracts onto a mounted snapshot, to an overlay mount whose lower dirs
//! are the parents' cached dirs and whose upper dir becomes this layer's
//! cache entry: the kernel turns writes into upper-dir entries, deletions
//! into overlay whiteouts, directories re-created over deleted ones into
//! opaque directories. The mount lives in a private mount namespace of a
//! short-lived thread, so it is never visible on the host and vanishes even
//! if gvpod is killed. A bottom layer is applied straight into its dir.
//!
//! Invariants: the overlay is mounted with no redirect, index or metacopy
//! feature, so the upper dir is a self-contained layer; the mount is never
//! seen outside the unpacking thread's namespace, and is detached before
//! the thread ends (a fork by another thread may still hold descriptors
//! into it).
//!
//! Mounting needs root. The unit tests check the mount options
//! ([`overlay_options`]) and, on a plain merged directory, everything the
//! unpacker decides; `tests/images/unpacked.rs`
//! (`layer_dirs_are_overlay_upper_dirs`) checks the mount and the upper
//! dirs it leaves, as root.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{unpack_layer, UnpackStats};
use crate::image::ImageError;

/// Applies the (uncompressed) layer tarball read from `reader` on top of
/// `parents` (cached layer dirs, lowest first) so that the empty directory
/// `dest` becomes this layer's cache entry (see the module docs). `scratch`
/// is an empty directory on the same filesystem as `dest`, for the
/// overlay's work and mount dirs; the caller removes it, and `dest` on error.
/// With no parents this is [`unpack_layer`].
pub fn apply_layer<R: Read + Send>(
    reader: R,
    dest: &Path,
    parents: &[PathBuf],
    scratch: &Path,
    layer: &str,
) -> Result<UnpackStats, ImageError> {
    if parents.is_empty() {
        return unpack_layer(reader, dest, layer);
    }
    let io_err = |path: &Path, source: io::Error| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let work = scratch.join("work");
    let merged = scratch.join("merged");
    for d in [&work, &merged] {
        std::fs::create_dir(d).map_err(|e| io_err(d, e))?;
    }
    std::thread::scope(|s| {
        let worker = s.spawn(|| -> Result<UnpackStats, ImageError> {
            private_mount_namespace().map_err(|e| io_err(&merged, e))?;
            let _mounted = mount_overlay(parents, dest, &work, &merged)?;
            let stats = unpack_layer(reader, &merged, layer)?;
            // Detached, not a plain umount: a child forked by another thread
            // holds copies of our descriptors into `merged` until its exec
            // closes them (O_CLOEXEC), and a plain umount then fails with
            // EBUSY. Every write has reached the upper dir already.
            nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| io_err(&merged, io::Error::from(e)))?;
            Ok(stats)
        });
        worker.join().unwrap_or_else(|_| {
            Err(io_err(
                dest,
                io::Error::other(format!("layer {layer}: the unpacking thread panicked")),
            ))
        })
    })
}

/// Moves the calling thread into a mount namespace of its own whose mounts
/// do not propagate to the host: a mount made there disappears with the
/// thread, even if the process is killed.
fn private_mount_namespace() -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    Ok(())
}

/// Unmounts lazily on drop (only matters on error paths: the namespace
/// goes away with the thread anyway).
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Mounts an overlay of `parents` (lowest first) with upper dir `upper` at
/// `merged`. Paths are given relative to the common directory of the layer
/// cache (the thread's own working directory after `unshare`), so that more
/// layers fit in the one-page mount options. No redirect, index or metacopy
/// features: the upper dir must be a self-contained layer.
fn mount_overlay<'a>(
    parents: &[PathBuf],
    upper: &Path,
    work: &Path,
    merged: &'a Path,
) -> Result<Mounted<'a>, ImageError> {
    let io_err = |source: io::Error| ImageError::Io {
        path: merged.to_path_buf(),
        source,
    };
    let base = upper
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    std::env::set_current_dir(base).map_err(io_err)?;
    let opts = overlay_options(parents, upper, work, base);
    nix::mount::mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| {
        io_err(io::Error::other(format!(
            "cannot mount the parent layers ({} bytes of options): {e}",
            opts.len()
        )))
    })?;
    Ok(Mounted(merged))
}

/// The overlay mount options for `parents` (lowest first, so listed top
/// first), `upper` and `work`, each path relative to `base` and escaped
/// (`\`, `:` and `,` are separators in the options).
pub(super) fn overlay_options(
    parents: &[PathBuf],
    upper: &Path,
    work: &Path,
    base: &Path,
) -> String {
    let rel = |p: &Path| -> String {
        let r = p.strip_prefix(base).unwrap_or(p);
        r.to_string_lossy()
            .replace('\\', "\\\\")
            .replace(':', "\\:")
            .replace(',', "\\,")
    };
    let lower: Vec<String> = parents.iter().rev().map(|p| rel(p)).collect();
    format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,index=off,metacopy=off",
        lower.join(":"),
        rel(upper),
        rel(work)
    )
}
