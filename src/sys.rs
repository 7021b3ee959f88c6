//! Thin wrappers over the Linux `*at` syscalls the layer code needs.
//!
//! Everything here works relative to a directory file descriptor and never
//! follows a symlink in the last path component, so callers can operate on an
//! untrusted tree (an unpacked layer) without being redirected outside it.
//! Multi-component paths are only ever resolved through `openat2(2)` with
//! `RESOLVE_IN_ROOT` (symlinks are resolved as if the tree were `/`) or
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (no symlink is followed at all).

pub mod loopdev;
mod served;
mod signal;
mod spawn;
pub use served::{serve, serve_forever, Served};
pub use signal::default_sigpipe;
pub use spawn::{spawn_session, Spawned};

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// `fchmodat2(2)` (Linux 6.6); the number is the same on every architecture.
const SYS_FCHMODAT2: libc::c_long = 452;

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn name_c(name: &OsStr) -> io::Result<CString> {
    cstring(name.as_bytes())
}

fn cvt(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Retries `f` while it fails with EINTR.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `openat2(2)` of `path` below `dir` with the given `RESOLVE_*` flags.
/// An empty path opens `dir` itself. `O_CLOEXEC` is always added. EAGAIN
/// (a concurrent rename seen during `..` resolution) is retried a few times.
fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let p = if path.as_os_str().is_empty() {
        cstring(b".")?
    } else {
        cstring(path.as_os_str().as_bytes())?
    };
    // SAFETY: open_how is plain old data; the kernel requires unused fields zeroed.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    let mut again = 0;
    loop {
        // SAFETY: valid fd, NUL-terminated path, correctly sized open_how.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                p.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a fresh descriptor that we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) if again < 16 => again += 1,
            Some(libc::ENOSYS) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the kernel lacks openat2 (Linux 5.6 or newer is required)",
                ))
            }
            _ => return Err(e),
        }
    }
}

/// Opens `path` treating `root` as `/`: `..` and symlinks (absolute or
/// relative) can never leave `root`; magic links (`/proc/*/fd`) are refused.
/// Used for every path inside an image or pod rootfs (CVE-2024-9676: a
/// symlinked /etc/passwd must not read the host's).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat2(
        root,
        path,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// Opens `path` below `dir` without following any symlink or crossing a mount.
pub fn open_beneath_nofollow(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    openat2(
        dir,
        path,
        flags | libc::O_NOFOLLOW,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV,
    )
}

/// Opens a directory by ordinary path (for trusted store paths).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let p = cstring(path.as_os_str().as_bytes())?;
    retry(|| {
        // SAFETY: NUL-terminated path.
        let fd = unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: fresh descriptor.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        }
    })
}

/// `openat(2)` of a single name in `dir`; `O_CLOEXEC | O_NOFOLLOW` are added.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let n = name_c(name)?;
    retry(|| {
        // SAFETY: valid fd and NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                n.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: fresh descriptor.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        }
    })
}

/// `fstatat(2)` without following a final symlink; `None` if the name does not exist.
pub fn lstatat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let n = name_c(name)?;
    // SAFETY: stat is plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, NUL-terminated name, valid out pointer.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            n.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(st))
}

/// `fstat(2)` of an open descriptor.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// The target of the symlink `name` in `dir`.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<PathBuf> {
    let t = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name)?;
    Ok(PathBuf::from(t))
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let n = name_c(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), n.as_ptr(), mode) })
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let n = name_c(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), n.as_ptr(), flags) })
}

pub fn symlinkat(target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let t = name_c(target)?;
    let n = name_c(name)?;
    // SAFETY: valid fd and NUL-terminated strings.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) })
}

/// `linkat(2)` without following a symlink as the link target (tar semantics).
pub fn linkat(
    old_dir: BorrowedFd<'_>,
    old_name: &OsStr,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
) -> io::Result<()> {
    let o = name_c(old_name)?;
    let n = name_c(new_name)?;
    // SAFETY: valid fds and NUL-terminated names.
    cvt(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })
}

pub fn mknodat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> io::Result<()> {
    let n = name_c(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), n.as_ptr(), mode, dev) })
}

/// `fchownat(2)` with `AT_SYMLINK_NOFOLLOW` (changes a symlink itself, never its target).
pub fn lchownat(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let n = name_c(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            n.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// chmod of `name` in `dir` that can never act through a symlink
/// (CVE-2021-32760): `fchmodat2(AT_SYMLINK_NOFOLLOW)` on Linux ≥ 6.6, else
/// the C library's `fchmodat(AT_SYMLINK_NOFOLLOW)`, which opens the node with
/// `O_PATH | O_NOFOLLOW`, refuses symlinks and changes the node it opened.
pub fn chmodat_nofollow(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let n = name_c(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    let r = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            dir.as_raw_fd(),
            n.as_ptr(),
            mode as libc::c_uint,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), n.as_ptr(), mode, libc::AT_SYMLINK_NOFOLLOW) })
}

fn timespec(secs: i64, nanos: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    }
}

/// Sets atime and mtime of `name` (a symlink itself, never its target).
pub fn lutimensat(dir: BorrowedFd<'_>, name: &OsStr, secs: i64, nanos: i64) -> io::Result<()> {
    let n = name_c(name)?;
    let ts = [timespec(secs, nanos), timespec(secs, nanos)];
    // SAFETY: valid fd, NUL-terminated name, two timespecs.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            n.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub fn futimens(fd: BorrowedFd<'_>, secs: i64, nanos: i64) -> io::Result<()> {
    let ts = [timespec(secs, nanos), timespec(secs, nanos)];
    // SAFETY: valid fd and two timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })
}

pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid fd, NUL-terminated name, value pointer and length match.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Reads an extended attribute; `None` when absent.
#[cfg(test)]
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid fd, NUL-terminated name, buffer pointer and length match.
    let r = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODATA) {
            return Ok(None);
        }
        return Err(e);
    }
    buf.truncate(r as usize);
    Ok(Some(buf))
}

/// Extended attributes of `path` itself (not following a symlink), by
/// name; none where the filesystem has no xattrs.
pub fn lxattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: the buffer is valid for its length; the kernel writes at most that.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(vec![]),
            _ => return Err(e),
        }
    };
    let mut out = vec![];
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = std::ffi::CString::new(name)?;
        let mut val = vec![0u8; 256];
        let len = loop {
            // SAFETY: as above.
            let len = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    val.as_mut_ptr().cast(),
                    val.len(),
                )
            };
            if len >= 0 {
                break len as usize;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => val.resize(val.len() * 4, 0),
                Some(libc::ENODATA) => break usize::MAX,
                _ => return Err(e),
            }
        };
        if len == usize::MAX {
            continue;
        }
        val.truncate(len);
        out.push((String::from_utf8_lossy(name).into_owned(), val));
    }
    Ok(out)
}

/// `renameat2(RENAME_NOREPLACE)`: fails with EEXIST if the target exists.
pub fn rename_noreplace(
    old_dir: BorrowedFd<'_>,
    old_name: &OsStr,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
) -> io::Result<()> {
    renameat2(old_dir, old_name, new_dir, new_name, libc::RENAME_NOREPLACE)
}

/// `renameat(2)`: replaces `new_name` in `new_dir` atomically (names, not paths).
pub fn renameat(
    old_dir: BorrowedFd<'_>,
    old_name: &OsStr,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
) -> io::Result<()> {
    renameat2(old_dir, old_name, new_dir, new_name, 0)
}

/// `renameat2(2)` with `flags` (0: plain `renameat`).
fn renameat2(
    old_dir: BorrowedFd<'_>,
    old_name: &OsStr,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
    flags: libc::c_uint,
) -> io::Result<()> {
    let o = name_c(old_name)?;
    let n = name_c(new_name)?;
    // SAFETY: valid fds and NUL-terminated names; renameat2 reads nothing else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            flags,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Flushes the whole filesystem holding `fd` (one call per unpacked layer
/// instead of one fsync per file).
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::syncfs(fd.as_raw_fd()) })
}

/// Takes an exclusive `flock(2)` on `fd`, waiting for it; released when the
/// descriptor is closed.
pub fn flock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    retry(|| cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) }))
}

/// `pidfd_open(2)` (Linux 5.3): a descriptor of process `pid` that turns
/// readable (`poll`) when the process exits, and that names this process
/// only, never one that later reuses its pid.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments and no pointers; it
    // returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened for this process and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::fsync(fd.as_raw_fd()) })
}

/// Names in the directory `dir` (without `.` and `..`), read through a fresh
/// open file description so `dir`'s own offset is untouched.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let fd = openat(dir, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut d = nix::dir::Dir::from_fd(fd.into_raw_fd())?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    }
    Ok(names)
}

/// Removes `name` in `dir` and, if it is a directory, everything below it.
///
/// Never follows a symlink (symlinks are unlinked, not entered), copes with
/// device nodes (overlay whiteouts) and makes read-only directories
/// readable and writable before emptying them; a directory is opened only
/// after that (`chmodat_nofollow` from its parent), so its owner can remove
/// a mode-0 directory without root. At most two descriptors are open at any
/// depth: each level is reopened from the top with `RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS`. A missing `name` is not an error.
pub fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstatat(dir, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return unlinkat(dir, name, false);
    }
    make_dir_usable(dir, name, &st)?;
    let top = openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    remove_contents(top.as_fd(), Path::new(""))?;
    drop(top);
    unlinkat(dir, name, true)
}

/// Gives the owner rwx on the directory `name` in `dir` (whose `lstat` is
/// `st`) if it lacks any, without following a symlink.
fn make_dir_usable(dir: BorrowedFd<'_>, name: &OsStr, st: &libc::stat) -> io::Result<()> {
    if st.st_mode & 0o700 == 0o700 {
        return Ok(());
    }
    chmodat_nofollow(dir, name, (st.st_mode & 0o7777) | 0o700)
}

fn remove_contents(top: BorrowedFd<'_>, rel: &Path) -> io::Result<()> {
    let fd = open_beneath_nofollow(top, rel, libc::O_RDONLY | libc::O_DIRECTORY)?;
    let mut subdirs = Vec::new();
    for n in list_dir(fd.as_fd())? {
        match lstatat(fd.as_fd(), &n)? {
            None => {}
            Some(s) if is_dir(&s) => {
                make_dir_usable(fd.as_fd(), &n, &s)?;
                subdirs.push(n);
            }
            Some(_) => unlinkat(fd.as_fd(), &n, false)?,
        }
    }
    if subdirs.is_empty() {
        return Ok(());
    }
    drop(fd);
    for n in &subdirs {
        let mut sub = PathBuf::from(rel);
        sub.push(n);
        remove_contents(top, &sub)?;
    }
    let fd = open_beneath_nofollow(top, rel, libc::O_RDONLY | libc::O_DIRECTORY)?;
    for n in &subdirs {
        unlinkat(fd.as_fd(), n, true)?;
    }
    Ok(())
}

/// Removes the file or directory tree at a trusted store path without
/// following symlinks inside it. A missing path is not an error.
pub fn remove_path(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to remove a path without a parent",
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    match open_dir(parent) {
        Ok(fd) => remove_tree_at(fd.as_fd(), name),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where the open file `fd` is, as the kernel names it (`/proc/thread-self/fd`).
pub fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/thread-self/fd/{}", fd.as_raw_fd()))
}

/// A new pseudo-terminal: `(master, slave)`, both close-on-exec (so no
/// other child started meanwhile inherits a slave and keeps the master from
/// seeing EIO when the terminal's users are gone) and neither the caller's
/// controlling terminal. The slave is opened from the master
/// (`TIOCGPTPEER`, Linux 4.13), never by a path another process could race.
pub fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: a plain call with integer flags; it returns a new fd or -1.
    let m = unsafe { libc::posix_openpt(flags) };
    if m < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `m` was just opened for this process and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    // SAFETY: `master` is a valid pty master for the duration of the calls.
    cvt(unsafe { libc::grantpt(master.as_raw_fd()) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    // SAFETY: TIOCGPTPEER takes open(2) flags by value and returns a new fd or -1.
    let s = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `s` was just opened for this process and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    Ok((master, slave))
}

/// Sets the window size of the terminal `fd` (`TIOCSWINSZ`).
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `winsize` through the pointer, which
    // points at a live local for the duration of the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window size of the terminal `fd` (`TIOCGWINSZ`): `(rows, cols)`.
    pub fn winsize(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
        // SAFETY: winsize is plain data; all-zero is a valid value.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes a `winsize` through the pointer, which
        // points at a live local for the duration of the call.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
        Ok((ws.ws_row, ws.ws_col))
    }

    #[test]
    fn a_pty_carries_bytes_and_its_size() {
        let (master, slave) = openpty().unwrap();
        set_winsize(master.as_fd(), 30, 100).unwrap();
        assert_eq!(winsize(slave.as_fd()).unwrap(), (30, 100));
        let flags = |fd: &OwnedFd| {
            // SAFETY: F_GETFD on a live descriptor.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) }
        };
        assert_eq!(flags(&master) & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_eq!(flags(&slave) & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let mut s = std::fs::File::from(slave);
        std::io::Write::write_all(&mut s, b"hi\n").unwrap();
        drop(s);
        let mut m = std::fs::File::from(master);
        let mut got = vec![];
        // The line discipline turns \n into \r\n; EIO once the slave is gone.
        let mut buf = [0u8; 64];
        while let Ok(n) = std::io::Read::read(&mut m, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"hi\r\n");
    }
}
