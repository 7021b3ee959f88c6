//! Creating each kind of entry at its final name, with its metadata.
//!
//! Invariants:
//!
//! * the final component is created with `mkdirat`, `openat(O_CREAT |
//!   O_EXCL)` (`sys::openat` adds `O_NOFOLLOW`), `symlinkat`, `linkat`,
//!   `mknodat`, relative to the parent directory's descriptor;
//! * owner, mode and times are set on the file descriptor or with
//!   `AT_SYMLINK_NOFOLLOW`, so nothing is ever chmod-ed or chown-ed through a
//!   symlink (CVE-2021-32760); the mode is set after the owner, since chown
//!   clears setuid/setgid bits;
//! * an existing entry of the same name is removed first (never followed),
//!   except that a directory over a directory keeps the directory;
//! * a hardlink target is resolved inside the layer and must exist in the
//!   image;
//! * xattrs the filesystem does not support are skipped with a warning;
//!   `trusted.*` never gets here (dropped when the entry is read).

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use super::{At, DirMeta, Meta, Previous, Unpacker};
use crate::image::ImageError;
use crate::sys;
use crate::util::{copy, CopyError};

impl Unpacker<'_> {
    pub(super) fn directory(&mut self, at: &At<'_>, meta: &Meta) -> Result<(), ImageError> {
        let prev = self.make_room(at, true)?;
        if prev != Previous::KeptDir {
            sys::mkdirat(at.dir, at.name, 0o700).map_err(|e| self.io(at.shown, "mkdir", e))?;
        }
        let fd = sys::openat(at.dir, at.name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| self.io(at.shown, "open directory", e))?;
        self.dir_attrs(fd.as_fd(), meta, at.shown)?;
        self.defer_dir(at.rel.to_path_buf(), meta);
        Ok(())
    }

    pub(super) fn regular(
        &mut self,
        at: &At<'_>,
        meta: &Meta,
        content: &mut impl Read,
    ) -> Result<(), ImageError> {
        let shown = at.shown;
        self.make_room(at, false)?;
        let fd = sys::openat(
            at.dir,
            at.name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
        .map_err(|e| self.io(shown, "create file", e))?;
        let mut file = std::fs::File::from(fd);
        let written = copy(content, &mut file, 128 * 1024).map_err(|e| match e {
            CopyError::Read(e) => self.corrupt(e),
            CopyError::Write(e) => self.io(shown, "write file", e),
        })?;
        if written != meta.size {
            return Err(self.corrupt(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry {shown:?} has {written} of {} bytes", meta.size),
            )));
        }
        self.stats.bytes += written;
        let fd = file.as_fd();
        if self.chown {
            sys::fchown(fd, meta.uid, meta.gid).map_err(|e| self.io(shown, "chown", e))?;
        }
        // After chown, which clears setuid/setgid bits.
        sys::fchmod(fd, meta.mode).map_err(|e| self.io(shown, "chmod", e))?;
        self.xattrs(fd, meta, shown)?;
        sys::futimens(fd, meta.mtime.0, meta.mtime.1).map_err(|e| self.io(shown, "set times", e))
    }

    pub(super) fn symlink(
        &mut self,
        at: &At<'_>,
        meta: &Meta,
        target: &OsStr,
    ) -> Result<(), ImageError> {
        self.make_room(at, false)?;
        sys::symlinkat(target, at.dir, at.name).map_err(|e| self.io(at.shown, "symlink", e))?;
        self.owner_and_times(at, meta)
    }

    /// Hardlink to `target`, an archive path resolved inside the layer; a
    /// target that climbs out of the layer or does not exist is rejected.
    pub(super) fn hardlink(&mut self, at: &At<'_>, target_raw: &Path) -> Result<(), ImageError> {
        let shown = at.shown;
        let target = self.checked_name(target_raw, shown, "hardlink target")?;
        let Some(tname) = target.file_name() else {
            return Err(self.reject(shown, "hardlink to the layer root"));
        };
        if target == at.rel {
            return Ok(());
        }
        let missing = || {
            self.reject(
                shown,
                format!("hardlink target {target_raw:?} does not exist in the image"),
            )
        };
        let tparent_rel = target.parent().unwrap_or(Path::new(""));
        let Some(tparent) = self.existing_dir(tparent_rel, shown, libc::O_PATH)? else {
            return Err(missing());
        };
        if sys::lstatat(tparent.as_fd(), tname)
            .map_err(|e| self.io(shown, "stat hardlink target", e))?
            .is_none()
        {
            return Err(missing());
        }
        self.make_room(at, false)?;
        sys::linkat(tparent.as_fd(), tname, at.dir, at.name)
            .map_err(|e| self.io(shown, "hardlink", e))
    }

    /// Device node or fifo (`fmt` is the `S_IF*` type).
    pub(super) fn node(
        &mut self,
        at: &At<'_>,
        meta: &Meta,
        fmt: libc::mode_t,
        dev: libc::dev_t,
    ) -> Result<(), ImageError> {
        self.make_room(at, false)?;
        sys::mknodat(at.dir, at.name, fmt | 0o600, dev)
            .map_err(|e| self.io(at.shown, "mknod", e))?;
        if self.chown {
            sys::lchownat(at.dir, at.name, meta.uid, meta.gid)
                .map_err(|e| self.io(at.shown, "chown", e))?;
        }
        // After chown, which clears setuid/setgid bits.
        sys::chmodat_nofollow(at.dir, at.name, meta.mode)
            .map_err(|e| self.io(at.shown, "chmod", e))?;
        sys::lutimensat(at.dir, at.name, meta.mtime.0, meta.mtime.1)
            .map_err(|e| self.io(at.shown, "set times", e))
    }

    /// Owner and times of a node that cannot be opened (symlink), without following it.
    pub(super) fn owner_and_times(&self, at: &At<'_>, meta: &Meta) -> Result<(), ImageError> {
        if self.chown {
            sys::lchownat(at.dir, at.name, meta.uid, meta.gid)
                .map_err(|e| self.io(at.shown, "chown", e))?;
        }
        sys::lutimensat(at.dir, at.name, meta.mtime.0, meta.mtime.1)
            .map_err(|e| self.io(at.shown, "set times", e))
    }

    /// Removes what is at the entry's name so the entry can take its place.
    /// A directory is kept if the new entry is a directory too.
    pub(super) fn make_room(
        &mut self,
        at: &At<'_>,
        new_is_dir: bool,
    ) -> Result<Previous, ImageError> {
        let st = sys::lstatat(at.dir, at.name).map_err(|e| self.io(at.shown, "stat", e))?;
        let Some(st) = st else {
            return Ok(Previous::Nothing);
        };
        if sys::is_dir(&st) && new_is_dir {
            return Ok(Previous::KeptDir);
        }
        sys::remove_tree_at(at.dir, at.name)
            .map_err(|e| self.io(at.shown, "replace existing entry", e))?;
        Ok(Previous::Replaced)
    }

    /// Owner and xattrs of a directory now; mode and times at the end.
    pub(super) fn dir_attrs(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ImageError> {
        if self.chown {
            sys::fchown(fd, meta.uid, meta.gid).map_err(|e| self.io(shown, "chown", e))?;
        }
        self.xattrs(fd, meta, shown)
    }

    pub(super) fn defer_dir(&mut self, rel: PathBuf, meta: &Meta) {
        self.dirs.push(DirMeta {
            rel,
            mode: meta.mode,
            mtime: meta.mtime,
        });
    }

    pub(super) fn xattrs(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ImageError> {
        for (name, value) in &meta.xattrs {
            if let Err(e) = sys::fsetxattr(fd, name, value) {
                if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                    tracing::warn!(
                        layer = self.layer,
                        entry = shown,
                        xattr = ?name,
                        "filesystem does not support this extended attribute; skipped"
                    );
                    continue;
                }
                return Err(self.io(shown, &format!("set xattr {name:?}"), e));
            }
        }
        Ok(())
    }
}
