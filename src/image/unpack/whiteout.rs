//! Whiteouts: what a layer deletes from the layers below it.
//!
//! OCI whiteouts only hide content of *lower* layers, and `.wh..wh..opq`
//! applies before the layer's other entries. With the merged view that is:
//!
//! * `DIR/.wh.NAME` deletes `NAME` (resolved in the merged view, never
//!   followed) unless this layer itself already created `NAME`; then only
//!   what lower layers have below it is deleted;
//! * `DIR/.wh..wh..opq` deletes everything the lower layers have in `DIR`,
//!   keeping what this layer already put there;
//! * other `.wh..wh.*` names (aufs metadata) are skipped; a whiteout whose
//!   directory does not exist hides nothing.
//!
//! A character device 0/0 (the overlay whiteout format) in a layer is
//! rejected: it is ambiguous and the kernel refuses it in an overlay.
//!
//! Invariant: a whiteout never creates anything and never follows a
//! symlink at its own name; what this layer wrote (tracked in
//! [`Unpacker::touch`]) is never deleted by its own whiteouts.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Unpacker, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::image::ImageError;
use crate::sys;

impl Unpacker<'_> {
    /// Applies a `.wh.*` entry in the directory `parent_rel` (see module docs).
    pub(super) fn whiteout(
        &mut self,
        parent_rel: &Path,
        name: &OsStr,
        target: &OsStr,
        shown: &str,
    ) -> Result<(), ImageError> {
        let opaque = name == OPAQUE_MARKER;
        if !opaque && target.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // `.wh..wh.*`: aufs bookkeeping, meaningless here.
            return Ok(());
        }
        if !opaque && (target.is_empty() || target == "." || target == "..") {
            return Err(self.reject(shown, "whiteout of an invalid name"));
        }
        // A whiteout never creates anything: a missing directory hides nothing.
        let Some(parent) = self.existing_dir(parent_rel, shown, libc::O_RDONLY)? else {
            return Ok(());
        };
        let real_parent = self.real_rel(parent.as_fd(), shown)?;
        if opaque {
            return self.clear_lower(parent.as_fd(), &real_parent, shown);
        }
        let real = real_parent.join(target);
        let Some(st) =
            sys::lstatat(parent.as_fd(), target).map_err(|e| self.io(shown, "stat", e))?
        else {
            return Ok(());
        };
        if !self.is_touched(&real) {
            return sys::remove_tree_at(parent.as_fd(), target)
                .map_err(|e| self.io(shown, "delete whited-out entry", e));
        }
        if sys::is_dir(&st) {
            // This layer already wrote below it: keep that, drop the rest.
            let fd = sys::openat(
                parent.as_fd(),
                target,
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .map_err(|e| self.io(shown, "open directory", e))?;
            return self.clear_lower(fd.as_fd(), &real, shown);
        }
        // A non-directory of this layer already hides the lower entry.
        Ok(())
    }

    /// Deletes everything below the directory `dir` (real path `real`) that
    /// this layer did not write.
    pub(super) fn clear_lower(
        &mut self,
        dir: BorrowedFd<'_>,
        real: &Path,
        shown: &str,
    ) -> Result<(), ImageError> {
        let names = sys::list_dir(dir).map_err(|e| self.io(shown, "list directory", e))?;
        for n in names {
            let child = real.join(&n);
            if !self.is_touched(&child) {
                sys::remove_tree_at(dir, &n)
                    .map_err(|e| self.io(shown, "delete lower entry", e))?;
                continue;
            }
            let Some(st) = sys::lstatat(dir, &n).map_err(|e| self.io(shown, "stat", e))? else {
                continue;
            };
            if sys::is_dir(&st) {
                let fd = sys::openat(dir, &n, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| self.io(shown, "open directory", e))?;
                self.clear_lower(fd.as_fd(), &child, shown)?;
            }
        }
        Ok(())
    }

    /// Records that this layer wrote `real`.
    pub(super) fn touch(&mut self, real: PathBuf) {
        let mut a = real.parent();
        while let Some(p) = a {
            if !self.ancestors.insert(p.to_path_buf()) {
                break;
            }
            a = p.parent();
        }
        self.touched.insert(real);
    }

    /// Whether this layer wrote `real` or something below it.
    pub(super) fn is_touched(&self, real: &Path) -> bool {
        self.touched.contains(real) || self.ancestors.contains(real)
    }
}
