//! Secure application of one layer tarball on top of its parent layers.
//!
//! Entries are read with the `tar` crate but never extracted by it (its
//! `unpack` has had path-escape advisories). Each entry is applied here with
//! directory-fd-relative syscalls (`crate::sys`), one concern per module:
//!
//! * [`resolve`]: where an entry goes. The root is opened once; an entry's
//!   parent directory is opened with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`, so `..` and symlinks (absolute or relative,
//!   from this layer or a lower one) resolve as if the root were `/` and can
//!   never reach the host (a symlink `evil -> /` followed by `evil/etc/x`
//!   writes `<root>/etc/x`); a parent path that goes through a symlink that
//!   climbs above the root or points at nothing in the image rejects the entry;
//! * [`create`]: the final component is created with `mkdirat`,
//!   `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`, `symlinkat`, `linkat`,
//!   `mknodat`; owner, mode and times are set on the file descriptor or with
//!   `AT_SYMLINK_NOFOLLOW`, so nothing is ever chmod-ed or chown-ed through a
//!   symlink (CVE-2021-32760);
//! * [`whiteout`]: OCI whiteouts and opaque directories, against the merged
//!   view of the layer and its parents;
//! * [`overlay`]: a layer with parents is applied in an overlay mount whose
//!   upper dir becomes the layer's cache entry ([`apply_layer`]).
//!
//! Invariants of the whole unpacker:
//!
//! * hostile names are rejected with an error naming the layer and the
//!   entry: absolute names and hardlink targets, any `..` component, an
//!   entry that would replace the root with anything but a directory
//!   (CVE-2021-29136, checked in [`Unpacker::apply`]), a hardlink to
//!   something that does not exist in the image, a character device 0/0
//!   (the overlay whiteout format: ambiguous, and refused by the kernel in
//!   an overlay);
//! * an existing entry of the same name is replaced, except that a directory
//!   over a directory keeps the directory;
//! * PAX `SCHILY.xattr.*` attributes are applied to files and directories,
//!   except `trusted.*` (a layer must not forge overlayfs metadata);
//! * directory modes and times are applied last, so creating children does
//!   not disturb them and read-only directories can still be filled;
//! * the archive must end with an end-of-archive block: a stream that stops
//!   between entries is reported as truncated, never taken as a short layer.
//!
//! This needs root (device nodes, owners, mounts), as does the rest of gvpod.
//! Owners are set only when running as root. The unit tests (`tests/`) run
//! as any user; what needs root is covered by `tests/images/unpacked.rs`.

mod create;
mod overlay;
mod resolve;
mod whiteout;

pub use overlay::apply_layer;

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;

use super::ImageError;
use crate::sys;

/// What an unpack produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// Archive entries applied (extension headers not counted).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Unpacks the (uncompressed) layer tarball read from `reader` into the
/// existing directory `dest`, then syncs its filesystem (a layer is
/// registered in the store only once it is on disk). `layer` names the
/// layer in error messages.
///
/// The archive must end with an end-of-archive block: a stream that stops
/// between entries is reported as truncated. On error `dest` is left
/// half-filled; the caller owns it and removes it.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    layer: &str,
) -> Result<UnpackStats, ImageError> {
    unpack(reader, dest, layer, true)
}

/// [`unpack_layer`] without the final `syncfs`, for a caller that makes the
/// result durable off its critical path (a snapshot's rootfs diff unpacked
/// into a restored pod's upper dir: its monitor syncs the bundle once the
/// pod runs; a whole-filesystem sync took ~7 ms on the restore path).
pub fn unpack_layer_unsynced<R: Read>(
    reader: R,
    dest: &Path,
    layer: &str,
) -> Result<UnpackStats, ImageError> {
    unpack(reader, dest, layer, false)
}

fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    layer: &str,
    sync: bool,
) -> Result<UnpackStats, ImageError> {
    let root = sys::open_dir(dest).map_err(|source| ImageError::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    let root_path = sys::fd_path(root.as_fd()).map_err(|source| ImageError::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut guard = EofGuard::new(reader);
    let mut u = Unpacker {
        root,
        layer,
        dirs: Vec::new(),
        root_path,
        touched: HashSet::new(),
        ancestors: HashSet::new(),
        chown: nix::unistd::geteuid().is_root(),
        sync,
        stats: UnpackStats::default(),
    };
    {
        let mut archive = tar::Archive::new(&mut guard);
        let entries = archive.entries().map_err(|e| u.corrupt(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| u.corrupt(e))?;
            u.apply(&mut entry)?;
        }
    }
    if let Some(e) = guard.truncated() {
        return Err(u.corrupt(e));
    }
    u.finish()?;
    Ok(u.stats)
}

/// Records whether the underlying stream hit EOF. A well-formed archive is
/// fully parsed (up to its end-of-archive block) before EOF is ever seen,
/// so a stream that hit EOF was cut short. The flag is shared, so that it
/// can be read while a `tar::Archive` borrows the guard ([`EofGuard::flag`]).
pub(crate) struct EofGuard<R> {
    inner: R,
    eof: Rc<Cell<bool>>,
}

impl<R> EofGuard<R> {
    pub(crate) fn new(inner: R) -> Self {
        EofGuard {
            inner,
            eof: Rc::new(Cell::new(false)),
        }
    }

    /// A handle on the flag, readable while the guard is lent out.
    pub(crate) fn flag(&self) -> Rc<Cell<bool>> {
        self.eof.clone()
    }

    /// The error for a stream that ended before its end-of-archive block,
    /// if this one did (call once the archive has been read).
    pub(crate) fn truncated(&self) -> Option<io::Error> {
        self.eof.get().then(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends without an end-of-archive block (truncated?)",
            )
        })
    }
}

impl<R: Read> Read for EofGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.set(true);
        }
        Ok(n)
    }
}

/// Lexically normalises an archive member name into a path relative to the
/// layer root (leading `/` and `.` dropped, `..` applied). `None` when `..`
/// climbs above the root.
pub(crate) fn normalize(p: &Path) -> Option<PathBuf> {
    resolve::resolve_lexically(Path::new(""), p)
}

/// Owner, mode, time and xattrs of an entry.
struct Meta {
    /// Content size (regular files).
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// Where an entry goes: its parent directory (resolved inside the root) and name.
struct At<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    /// Path relative to the layer root.
    rel: &'a Path,
    /// The archive name, for messages.
    shown: &'a str,
}

/// Directory metadata applied at the end.
struct DirMeta {
    rel: PathBuf,
    mode: u32,
    mtime: (i64, i64),
}

/// What was at an entry's name before it was applied.
#[derive(PartialEq, Eq)]
enum Previous {
    Nothing,
    KeptDir,
    Replaced,
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    dirs: Vec<DirMeta>,
    /// Where the root is, as `/proc/self/fd` shows it (to find the real
    /// location of an entry after symlinks in its parents were followed).
    root_path: PathBuf,
    /// Real paths (relative to the root) this layer created or changed, and
    /// all their ancestors: what whiteouts of this same layer must keep.
    touched: HashSet<PathBuf>,
    ancestors: HashSet<PathBuf>,
    chown: bool,
    /// syncfs once the layer is applied.
    sync: bool,
    stats: UnpackStats,
}
impl Unpacker<'_> {
    fn corrupt(&self, source: io::Error) -> ImageError {
        ImageError::CorruptArchive {
            what: format!("layer {}", self.layer),
            source,
        }
    }

    fn reject(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn io(&self, entry: &str, action: &str, source: io::Error) -> ImageError {
        ImageError::LayerEntry {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            action: action.to_string(),
            source,
        }
    }

    /// Applies one archive entry.
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            return Ok(());
        }
        let raw = entry.path().map_err(|e| self.corrupt(e))?.into_owned();
        let shown = raw.to_string_lossy().into_owned();
        let rel = self.checked_name(&raw, &shown, "path")?;
        let meta = self.meta(entry, &shown)?;
        self.stats.entries += 1;

        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            // The entry is the layer root itself.
            if kind != EntryType::Directory {
                return Err(self.reject(
                    &shown,
                    format!("a {} would replace the layer root", kind_name(kind)),
                ));
            }
            let fd = self.open_dir_rel(&rel, &shown)?;
            self.dir_attrs(fd.as_fd(), &meta, &shown)?;
            self.defer_dir(rel, &meta);
            return Ok(());
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();

        if let Some(target) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&parent_rel, &name, OsStr::from_bytes(target), &shown);
        }

        let parent = self.parent(&parent_rel, &shown)?;
        let real = self.real_rel(parent.as_fd(), &shown)?.join(&name);
        let at = At {
            dir: parent.as_fd(),
            name: &name,
            rel: &rel,
            shown: &shown,
        };
        match kind {
            EntryType::Directory => self.directory(&at, &meta),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(&at, &meta, entry)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.reject(&shown, "symlink without a target"))?
                    .into_owned();
                self.symlink(&at, &meta, OsStr::from_bytes(&target))
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.corrupt(e))?
                    .ok_or_else(|| self.reject(&shown, "hardlink without a target"))?
                    .into_owned();
                self.hardlink(&at, &target)
            }
            EntryType::Char | EntryType::Block => {
                let h = entry.header();
                let major = h.device_major().map_err(|e| self.corrupt(e))?.unwrap_or(0);
                let minor = h.device_minor().map_err(|e| self.corrupt(e))?.unwrap_or(0);
                let fmt = if kind == EntryType::Char {
                    if major == 0 && minor == 0 {
                        return Err(self.reject(
                            &shown,
                            "character device 0/0 is the overlay whiteout format; use a .wh. entry",
                        ));
                    }
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                self.node(&at, &meta, fmt, libc::makedev(major, minor))
            }
            EntryType::Fifo => self.node(&at, &meta, libc::S_IFIFO, 0),
            other => Err(self.reject(
                &shown,
                format!("unsupported entry type {}", kind_name(other)),
            )),
        }?;
        self.touch(real);
        Ok(())
    }

    /// Reads owner, mode, mtime (PAX `mtime` wins for sub-second precision)
    /// and `SCHILY.xattr.*` attributes of an entry.
    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<Meta, ImageError> {
        let h = entry.header();
        let mode = h.mode().map_err(|e| self.corrupt(e))? & 0o7777;
        let uid = h.uid().map_err(|e| self.corrupt(e))?;
        let gid = h.gid().map_err(|e| self.corrupt(e))?;
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(self.reject(shown, format!("owner {uid}:{gid} out of range")));
        };
        let secs = h.mtime().map_err(|e| self.corrupt(e))?;
        let mut mtime = (i64::try_from(secs).unwrap_or(i64::MAX), 0);
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(|e| self.corrupt(e))? {
            for ext in exts {
                let ext = ext.map_err(|e| self.corrupt(e))?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.starts_with(b"trusted.") || name.is_empty() {
                        continue;
                    }
                    let name = CString::new(name)
                        .map_err(|_| self.reject(shown, "xattr name contains a NUL byte"))?;
                    xattrs.push((name, ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta {
            size: entry.size(),
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// Applies deferred directory modes and times (a later entry may have
    /// replaced a directory with something else: then it is skipped), then
    /// flushes the layer to disk (unless `sync` is off).
    fn finish(&mut self) -> Result<(), ImageError> {
        for d in std::mem::take(&mut self.dirs) {
            let shown = d.rel.to_string_lossy().into_owned();
            let fd = match sys::open_in_root(
                self.root.as_fd(),
                &d.rel,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            ) {
                Ok(fd) => fd,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(self.io(&shown, "open directory", e)),
            };
            sys::fchmod(fd.as_fd(), d.mode).map_err(|e| self.io(&shown, "chmod", e))?;
            sys::futimens(fd.as_fd(), d.mtime.0, d.mtime.1)
                .map_err(|e| self.io(&shown, "set times", e))?;
        }
        if !self.sync {
            return Ok(());
        }
        sys::syncfs(self.root.as_fd()).map_err(|e| self.io(".", "sync layer", e))
    }
}

/// PAX time `SECONDS[.FRACTION]` → (seconds, nanoseconds).
fn parse_pax_time(s: &str) -> Option<(i64, i64)> {
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().ok()?;
    if secs < 0 && nanos > 0 {
        // -1.5 means 1.5 s before the epoch.
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

fn kind_name(k: EntryType) -> String {
    match k {
        EntryType::Regular | EntryType::Continuous => "regular file".into(),
        EntryType::Link => "hardlink".into(),
        EntryType::Symlink => "symlink".into(),
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Directory => "directory".into(),
        EntryType::Fifo => "fifo".into(),
        other => format!("{:?} (type byte {:?})", other, other.as_byte() as char),
    }
}

#[cfg(test)]
mod tests;
