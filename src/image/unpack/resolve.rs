//! Where an entry goes: names checked, parent directories opened inside
//! the layer root.
//!
//! Invariants:
//!
//! * an archive path (entry name or hardlink target) is never absolute and
//!   has no `..` component ([`Unpacker::checked_name`]);
//! * every multi-component path is opened with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)` (`sys::open_in_root`), so symlinks resolve as
//!   if the root were `/`;
//! * a parent path (of an entry, a whiteout or a hardlink target) that goes
//!   through a symlink is checked lexically whenever resolution actually
//!   followed one or failed: a symlink whose target climbs above the root,
//!   or points at nothing in the image (e.g. at a host path), rejects the
//!   entry; symlinks that stay inside (`var/run -> /run`) are followed. So a
//!   layer cannot use the host's tree through a symlink even where
//!   `RESOLVE_IN_ROOT` would have contained it;
//! * missing parent directories are created 0755 root:root, like tar does.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use super::{normalize, Unpacker};
use crate::image::ImageError;
use crate::sys;

/// Where a symlink in the directory `dir` (relative to the root) with
/// target `target` points, relative to the root, resolved lexically;
/// `None` if it climbs above the root.
pub(super) fn resolve_lexically(dir: &Path, target: &Path) -> Option<PathBuf> {
    let mut out: Vec<&OsStr> = if target.has_root() {
        Vec::new()
    } else {
        dir.iter().collect()
    };
    for c in target.components() {
        match c {
            Component::Prefix(_) => return None,
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out.iter().collect())
}

impl Unpacker<'_> {
    /// Checks an archive path (an entry name or a hardlink target): no
    /// absolute path, no `..` component. Returns it relative to the root.
    pub(super) fn checked_name(
        &self,
        raw: &Path,
        shown: &str,
        what: &str,
    ) -> Result<PathBuf, ImageError> {
        if raw.has_root() {
            return Err(self.reject(shown, format!("{what} {raw:?} is absolute")));
        }
        if raw.components().any(|c| c == Component::ParentDir) {
            return Err(self.reject(shown, format!("{what} {raw:?} contains `..`")));
        }
        normalize(raw).ok_or_else(|| self.reject(shown, format!("{what} {raw:?} is invalid")))
    }

    /// The real location of the directory `dir` relative to the root, after
    /// every symlink on the way to it was followed (inside the root).
    pub(super) fn real_rel(&self, dir: BorrowedFd<'_>, shown: &str) -> Result<PathBuf, ImageError> {
        let p = sys::fd_path(dir).map_err(|e| self.io(shown, "locate parent directory", e))?;
        p.strip_prefix(&self.root_path)
            .map(Path::to_path_buf)
            .map_err(|_| {
                self.io(
                    shown,
                    "locate parent directory",
                    io::Error::other(format!("{} is outside the layer root", p.display())),
                )
            })
    }

    /// Opens the existing directory `rel` inside the root (`flags` plus
    /// `O_DIRECTORY`), or `None` if it does not exist. A symlink on the way
    /// that leaves the root or points at nothing rejects the entry.
    pub(super) fn existing_dir(
        &self,
        rel: &Path,
        shown: &str,
        flags: libc::c_int,
    ) -> Result<Option<OwnedFd>, ImageError> {
        match sys::open_in_root(self.root.as_fd(), rel, flags | libc::O_DIRECTORY) {
            Ok(fd) => {
                if self.real_rel(fd.as_fd(), shown)? != rel {
                    self.check_symlinks(rel, shown)?;
                }
                Ok(Some(fd))
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                self.check_symlinks(rel, shown)?;
                if e.raw_os_error() == Some(libc::ELOOP) {
                    return Err(self.io(shown, "open directory", e));
                }
                Ok(None)
            }
            Err(e) => Err(self.io(shown, "open directory", e)),
        }
    }

    /// Walks `rel` from the root the way the kernel resolves it, lexically,
    /// and rejects the entry if a symlink on the way points outside the
    /// root (`..` above it) or at something that does not exist. Called only
    /// when resolution went through a symlink or failed, so the common case
    /// costs nothing; the actual opening is always `RESOLVE_IN_ROOT`.
    pub(super) fn check_symlinks(&self, rel: &Path, shown: &str) -> Result<(), ImageError> {
        let mut todo: std::collections::VecDeque<std::ffi::OsString> =
            rel.iter().map(OsStr::to_os_string).collect();
        let mut cur = PathBuf::new();
        // The symlink being followed and how many of `todo`'s first
        // components come from its target.
        let mut link: Option<(PathBuf, PathBuf)> = None;
        let mut pending = 0usize;
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            let from_link = pending > 0;
            pending = pending.saturating_sub(1);
            if !from_link {
                link = None;
            }
            let dir = sys::open_in_root(self.root.as_fd(), &cur, libc::O_PATH | libc::O_DIRECTORY)
                .map_err(|e| self.io(shown, "resolve parent directory", e))?;
            match sys::lstatat(dir.as_fd(), &c).map_err(|e| self.io(shown, "stat", e))? {
                None => {
                    if let (true, Some((l, t))) = (from_link, link) {
                        return Err(self.reject(
                            shown,
                            format!(
                                "parent {l:?} is a symlink to {t:?}, which does not exist in the image"
                            ),
                        ));
                    }
                    // Plain missing directories: created like tar does.
                    return Ok(());
                }
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    hops += 1;
                    let l = cur.join(&c);
                    if hops > 40 {
                        return Err(
                            self.reject(shown, format!("too many levels of symlinks at {l:?}"))
                        );
                    }
                    let t = sys::readlinkat(dir.as_fd(), &c)
                        .map_err(|e| self.io(shown, &format!("read symlink {l:?}"), e))?;
                    let target = resolve_lexically(&cur, &t).ok_or_else(|| {
                        self.reject(
                            shown,
                            format!("parent {l:?} is a symlink to {t:?}, outside the image root"),
                        )
                    })?;
                    let n = target.iter().count();
                    for part in target.iter().rev() {
                        todo.push_front(part.to_os_string());
                    }
                    pending += n;
                    cur = PathBuf::new();
                    link = Some((l, t));
                }
                Some(st) if sys::is_dir(&st) => cur.push(&c),
                // Not a directory: the operation fails on its own (ENOTDIR).
                Some(_) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Opens (creating missing directories 0755 root:root, like tar) the
    /// parent directory `rel` inside the layer root, as an `O_PATH` fd. A
    /// symlink on the way that leaves the root or points at nothing rejects
    /// the entry (see [`Unpacker::check_symlinks`]).
    pub(super) fn parent(&self, rel: &Path, shown: &str) -> Result<OwnedFd, ImageError> {
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        if let Some(fd) = self.existing_dir(rel, shown, libc::O_PATH)? {
            return Ok(fd);
        }
        // Missing plain directories (symlinks were checked): create them.
        let mut cur = sys::open_in_root(self.root.as_fd(), Path::new(""), flags)
            .map_err(|e| self.io(shown, "open layer root", e))?;
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            prefix.push(c);
            match sys::open_in_root(self.root.as_fd(), &prefix, flags) {
                Ok(fd) => {
                    cur = fd;
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(self.io(shown, "open parent directory", e)),
            }
            let name = c.as_os_str();
            sys::mkdirat(cur.as_fd(), name, 0o755)
                .map_err(|e| self.io(shown, &format!("create parent directory {prefix:?}"), e))?;
            let fd = sys::openat(cur.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(|e| self.io(shown, "open parent directory", e))?;
            sys::fchmod(fd.as_fd(), 0o755)
                .map_err(|e| self.io(shown, "chmod parent directory", e))?;
            cur = fd;
        }
        Ok(cur)
    }

    /// Opens the directory `rel` (the root when empty) for reading, inside the root.
    pub(super) fn open_dir_rel(&self, rel: &Path, shown: &str) -> Result<OwnedFd, ImageError> {
        sys::open_in_root(
            self.root.as_fd(),
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        )
        .map_err(|e| self.io(shown, "open directory", e))
    }
}
