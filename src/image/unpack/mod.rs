//! Secure application of one layer tarball on top of its parent layers.
//!
//! Entries are read with the `tar` crate but never extracted by it (its
//! `unpack` has had path-escape advisories). Each entry is applied here with
//! directory-fd-relative syscalls:
//!
//! * the root is opened once; an entry's parent directory is opened with
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..` and symlinks
//!   (absolute or relative, from this layer or a lower one) resolve as if the
//!   root were `/` and can never reach the host (a symlink `evil -> /`
//!   followed by `evil/etc/x` writes `<root>/etc/x`);
//! * the final component is created with `mkdirat`, `openat(O_CREAT | O_EXCL |
//!   O_NOFOLLOW)`, `symlinkat`, `linkat`, `mknodat`; owner, mode and times are
//!   set on the file descriptor or with `AT_SYMLINK_NOFOLLOW`, so nothing is
//!   ever chmod-ed or chown-ed through a symlink (CVE-2021-32760);
//! * hostile names are rejected with an error naming the layer and the
//!   entry: absolute names and hardlink targets, any `..` component, an
//!   entry that would replace the root with anything but a directory
//!   (CVE-2021-29136), a hardlink to something that does not exist in the
//!   image;
//! * a parent path (of an entry, a whiteout or a hardlink target) that goes
//!   through a symlink is checked lexically whenever resolution actually
//!   followed one or failed: a symlink whose target climbs above the root,
//!   or points at nothing in the image (e.g. at a host path), rejects the
//!   entry; symlinks that stay inside (`var/run -> /run`) are followed;
//! * an existing entry of the same name is replaced, except that a directory
//!   over a directory keeps the directory;
//! * PAX `SCHILY.xattr.*` attributes are applied to files and directories,
//!   except `trusted.*` (a layer must not forge overlayfs metadata);
//! * directory modes and times are applied last, so creating children does
//!   not disturb them and read-only directories can still be filled.
//!
//! # Layers on top of parents ([`apply_layer`])
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
//! # Whiteouts
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
//! This needs root (device nodes, mounts), as does the rest of gvpod.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
    let rel = |p: &Path| -> String {
        let r = p.strip_prefix(base).unwrap_or(p);
        r.to_string_lossy()
            .replace('\\', "\\\\")
            .replace(':', "\\:")
            .replace(',', "\\,")
    };
    let lower: Vec<String> = parents.iter().rev().map(|p| rel(p)).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,index=off,metacopy=off",
        lower.join(":"),
        rel(upper),
        rel(work)
    );
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
    if guard.eof {
        return Err(u.corrupt(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "archive ends without an end-of-archive block (truncated?)",
        )));
    }
    u.finish()?;
    Ok(u.stats)
}

/// Records whether the underlying stream hit EOF. A well-formed archive is
/// fully parsed (up to its zero block) before EOF is ever seen.
pub(crate) struct EofGuard<R> {
    inner: R,
    pub(crate) eof: bool,
}

impl<R> EofGuard<R> {
    pub(crate) fn new(inner: R) -> Self {
        EofGuard { inner, eof: false }
    }
}

impl<R: Read> Read for EofGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// Lexically normalises an archive member name into a path relative to the
/// layer root (leading `/` and `.` dropped, `..` applied). `None` when `..`
/// climbs above the root.
pub(crate) fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in p.components() {
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

/// Where a symlink in the directory `dir` (relative to the root) with
/// target `target` points, relative to the root, resolved lexically;
/// `None` if it climbs above the root.
fn resolve_lexically(dir: &Path, target: &Path) -> Option<PathBuf> {
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

    /// The real location of the directory `dir` relative to the root, after
    /// every symlink on the way to it was followed (inside the root).
    fn real_rel(&self, dir: BorrowedFd<'_>, shown: &str) -> Result<PathBuf, ImageError> {
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

    /// Records that this layer wrote `real`.
    fn touch(&mut self, real: PathBuf) {
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
    fn is_touched(&self, real: &Path) -> bool {
        self.touched.contains(real) || self.ancestors.contains(real)
    }

    fn directory(&mut self, at: &At<'_>, meta: &Meta) -> Result<(), ImageError> {
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

    fn regular(
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
        let written = copy(content, &mut file).map_err(|e| match e {
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

    fn symlink(&mut self, at: &At<'_>, meta: &Meta, target: &OsStr) -> Result<(), ImageError> {
        self.make_room(at, false)?;
        sys::symlinkat(target, at.dir, at.name).map_err(|e| self.io(at.shown, "symlink", e))?;
        self.owner_and_times(at, meta)
    }

    /// Hardlink to `target`, an archive path resolved inside the layer; a
    /// target that climbs out of the layer or does not exist is rejected.
    fn hardlink(&mut self, at: &At<'_>, target_raw: &Path) -> Result<(), ImageError> {
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
    fn node(
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
    fn owner_and_times(&self, at: &At<'_>, meta: &Meta) -> Result<(), ImageError> {
        if self.chown {
            sys::lchownat(at.dir, at.name, meta.uid, meta.gid)
                .map_err(|e| self.io(at.shown, "chown", e))?;
        }
        sys::lutimensat(at.dir, at.name, meta.mtime.0, meta.mtime.1)
            .map_err(|e| self.io(at.shown, "set times", e))
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

    /// Checks an archive path (an entry name or a hardlink target): no
    /// absolute path, no `..` component. Returns it relative to the root.
    fn checked_name(&self, raw: &Path, shown: &str, what: &str) -> Result<PathBuf, ImageError> {
        if raw.has_root() {
            return Err(self.reject(shown, format!("{what} {raw:?} is absolute")));
        }
        if raw.components().any(|c| c == Component::ParentDir) {
            return Err(self.reject(shown, format!("{what} {raw:?} contains `..`")));
        }
        normalize(raw).ok_or_else(|| self.reject(shown, format!("{what} {raw:?} is invalid")))
    }

    /// Opens the existing directory `rel` inside the root (`flags` plus
    /// `O_DIRECTORY`), or `None` if it does not exist. A symlink on the way
    /// that leaves the root or points at nothing rejects the entry.
    fn existing_dir(
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
    fn check_symlinks(&self, rel: &Path, shown: &str) -> Result<(), ImageError> {
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
    fn parent(&self, rel: &Path, shown: &str) -> Result<OwnedFd, ImageError> {
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
    fn open_dir_rel(&self, rel: &Path, shown: &str) -> Result<OwnedFd, ImageError> {
        sys::open_in_root(
            self.root.as_fd(),
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        )
        .map_err(|e| self.io(shown, "open directory", e))
    }

    /// Removes what is at the entry's name so the entry can take its place.
    /// A directory is kept if the new entry is a directory too.
    fn make_room(&mut self, at: &At<'_>, new_is_dir: bool) -> Result<Previous, ImageError> {
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

    /// Applies a `.wh.*` entry in the directory `parent_rel` (see module docs).
    fn whiteout(
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
    fn clear_lower(
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

    /// Owner and xattrs of a directory now; mode and times at the end.
    fn dir_attrs(&self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<(), ImageError> {
        if self.chown {
            sys::fchown(fd, meta.uid, meta.gid).map_err(|e| self.io(shown, "chown", e))?;
        }
        self.xattrs(fd, meta, shown)
    }

    fn defer_dir(&mut self, rel: PathBuf, meta: &Meta) {
        self.dirs.push(DirMeta {
            rel,
            mode: meta.mode,
            mtime: meta.mtime,
        });
    }

    fn xattrs(&self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<(), ImageError> {
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

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies an entry's content, telling read (archive) errors from write (disk) errors.
fn copy(r: &mut impl Read, w: &mut impl Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
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

/// Names of the entries directly in a directory (for tests and the store).
#[cfg(test)]
fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    let fd = sys::open_dir(dir).unwrap();
    let mut v = sys::list_dir(fd.as_fd()).unwrap();
    v.sort();
    v
}

#[cfg(test)]
mod tests;
