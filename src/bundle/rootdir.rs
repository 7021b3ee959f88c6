//! File operations inside a pod's rootfs from the host, every path resolved
//! with [`crate::sys::open_in_root`] (the rootfs is `/`: no symlink or `..`
//! in the image can lead a read or a write out of it) and every final
//! component handled without following a symlink. Files are replaced
//! atomically (a temp file in the same directory, fsync, rename), so a
//! symlink planted at the destination is replaced, never written through;
//! files derived from the database (`bundle::etc`) skip the fsync.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use crate::sys;

/// The most a file read from the rootfs may hold (account files are small).
const MAX_READ: u64 = 4 << 20;

/// An open rootfs.
pub struct RootDir {
    fd: OwnedFd,
    /// Owner of the parent directories [`RootDir::mkdir_p`] makes (root, 0755).
    parents: Owner,
}

/// Owner and mode of a file or directory made in the rootfs.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: libc::mode_t,
}

impl Owner {
    pub const fn root(mode: libc::mode_t) -> Owner {
        Owner {
            uid: 0,
            gid: 0,
            mode,
        }
    }
}

fn split(path: &str) -> io::Result<(&Path, &OsStr)> {
    let p = Path::new(path);
    match (p.parent(), p.file_name()) {
        (Some(d), Some(n)) => Ok((d, n)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path}: not a file path"),
        )),
    }
}

impl RootDir {
    pub fn open(rootfs: &Path) -> io::Result<RootDir> {
        Ok(RootDir {
            fd: sys::open_dir(rootfs)?,
            parents: Owner::root(0o755),
        })
    }

    /// Parent directories owned by `o` instead (tests that run as non-root).
    #[cfg(test)]
    fn with_parents(mut self, o: Owner) -> RootDir {
        self.parents = o;
        self
    }

    /// The directory `path` of the rootfs.
    fn dir(&self, path: &Path) -> io::Result<OwnedFd> {
        sys::open_in_root(self.fd.as_fd(), path, libc::O_RDONLY | libc::O_DIRECTORY)
    }

    /// A file's text; `None` when it does not exist. A symlink as the file
    /// itself is an error (ELOOP): the image's account files are read as
    /// what they are, never through a link.
    pub fn read(&self, path: &str) -> io::Result<Option<String>> {
        let f = match sys::open_in_root(
            self.fd.as_fd(),
            Path::new(path),
            libc::O_RDONLY | libc::O_NOFOLLOW,
        ) {
            Ok(f) => std::fs::File::from(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut s = String::new();
        f.take(MAX_READ).read_to_string(&mut s)?;
        Ok(Some(s))
    }

    /// Whether `path` exists (symlinks followed inside the rootfs).
    pub fn exists(&self, path: &str) -> bool {
        sys::open_in_root(self.fd.as_fd(), Path::new(path), libc::O_PATH).is_ok()
    }

    /// Whether `path` is an executable regular file (symlinks followed
    /// inside the rootfs).
    pub fn is_executable(&self, path: &str) -> bool {
        sys::open_in_root(self.fd.as_fd(), Path::new(path), libc::O_PATH)
            .and_then(|f| sys::fstat(f.as_fd()))
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0)
    }

    /// Owner and mode of an existing file (not followed if a symlink).
    fn owner_of(&self, path: &str) -> io::Result<Option<Owner>> {
        let (dir, name) = split(path)?;
        let d = match self.dir(dir) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(sys::lstatat(d.as_fd(), name)?
            .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
            .map(|st| Owner {
                uid: st.st_uid,
                gid: st.st_gid,
                mode: st.st_mode & 0o7777,
            }))
    }

    /// Replaces (or creates) `path` with `data` atomically. An existing
    /// regular file keeps its owner and mode; a new one gets `new`.
    pub fn write(&self, path: &str, data: &[u8], new: Owner) -> io::Result<()> {
        let owner = self.owner_of(path)?.unwrap_or(new);
        self.write_as(path, data, owner)
    }

    /// Replaces (or creates) `path` with `data` atomically, with `owner`.
    pub fn write_as(&self, path: &str, data: &[u8], owner: Owner) -> io::Result<()> {
        self.replace(path, data, owner, true)
    }

    /// [`RootDir::write`] without the fsync: for files rebuilt from the
    /// database when lost (`bundle::etc`), on the pod start path.
    pub fn write_unsynced(&self, path: &str, data: &[u8], new: Owner) -> io::Result<()> {
        let owner = self.owner_of(path)?.unwrap_or(new);
        self.replace(path, data, owner, false)
    }

    fn replace(&self, path: &str, data: &[u8], owner: Owner, sync: bool) -> io::Result<()> {
        let (dir, name) = split(path)?;
        let d = self.dir(dir)?;
        let tmp = format!(
            ".{}.gvpod-{}",
            name.to_string_lossy(),
            crate::util::random_hex(6)
        );
        let tmp = OsStr::new(&tmp);
        let res = (|| {
            let f = sys::openat(
                d.as_fd(),
                tmp,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )?;
            sys::fchown(f.as_fd(), owner.uid, owner.gid)?;
            sys::fchmod(f.as_fd(), owner.mode)?;
            let mut file = std::fs::File::from(f);
            file.write_all(data)?;
            if sync {
                file.sync_all()?;
            }
            sys::renameat(d.as_fd(), tmp, d.as_fd(), name)
        })();
        if res.is_err() {
            let _ = sys::unlinkat(d.as_fd(), tmp, false);
        }
        res
    }

    /// Makes directory `path` and its missing parents (parents root, 0755);
    /// the last one, when it is made here, gets `owner`. Returns whether it
    /// was made (an existing directory is left as it is).
    pub fn mkdir_p(&self, path: &str, owner: Owner) -> io::Result<bool> {
        let mut cur = std::path::PathBuf::from("/");
        let comps: Vec<_> = Path::new(path)
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                _ => None,
            })
            .collect();
        let mut made = false;
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let parent = self.dir(&cur)?;
            cur.push(c);
            made = match sys::lstatat(parent.as_fd(), c)? {
                Some(_) => false,
                None => {
                    let o = if last { owner } else { self.parents };
                    match sys::mkdirat(parent.as_fd(), c, 0o700) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(e),
                    }
                    let d = sys::openat(parent.as_fd(), c, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                    sys::fchown(d.as_fd(), o.uid, o.gid)?;
                    sys::fchmod(d.as_fd(), o.mode)?;
                    true
                }
            };
        }
        Ok(made)
    }

    /// Copies the tree `from` (e.g. /etc/skel) into the existing directory
    /// `to`, regular files and directories only (no symlinks, devices),
    /// each owned by `uid:gid` with its own mode; at most 8 levels deep.
    pub fn copy_tree(&self, from: &str, to: &str, uid: u32, gid: u32) -> io::Result<()> {
        let src = match self.dir(Path::new(from)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let dst = self.dir(Path::new(to))?;
        copy_dir(src.as_fd(), dst.as_fd(), uid, gid, 8)
    }
}

fn copy_dir(
    src: std::os::fd::BorrowedFd<'_>,
    dst: std::os::fd::BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    depth: u32,
) -> io::Result<()> {
    if depth == 0 {
        return Ok(());
    }
    for name in sys::list_dir(src)? {
        let Some(st) = sys::lstatat(src, &name)? else {
            continue;
        };
        if sys::lstatat(dst, &name)?.is_some() {
            continue;
        }
        let mode = st.st_mode & 0o777;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {
                let to = sys::openat(
                    dst,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )?;
                sys::fchown(to.as_fd(), uid, gid)?;
                sys::fchmod(to.as_fd(), mode)?;
                let mut to = std::fs::File::from(to);
                let from = std::fs::File::from(sys::openat(src, &name, libc::O_RDONLY, 0)?);
                io::copy(&mut from.take(MAX_READ), &mut to)?;
            }
            libc::S_IFDIR => {
                sys::mkdirat(dst, &name, 0o700)?;
                let d = sys::openat(dst, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                sys::fchown(d.as_fd(), uid, gid)?;
                sys::fchmod(d.as_fd(), mode)?;
                let s = sys::openat(src, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                copy_dir(s.as_fd(), d.as_fd(), uid, gid, depth - 1)?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    /// The caller as owner: these tests run as non-root too.
    fn me(mode: libc::mode_t) -> Owner {
        Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            mode,
        }
    }

    #[test]
    fn writes_never_leave_the_rootfs() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("victim");
        std::fs::write(&victim, "host file\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("etc")).unwrap();
        // A symlinked file and a symlinked directory pointing at the host.
        symlink(&victim, r.join("etc/passwd")).unwrap();
        symlink(host.path(), r.join("home")).unwrap();
        let rd = RootDir::open(r).unwrap().with_parents(me(0o755));
        // Reading through the link is refused, not followed.
        assert!(rd.read("/etc/passwd").is_err());
        rd.write("/etc/passwd", b"dev\n", me(0o644)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file\n");
        assert_eq!(
            std::fs::read_to_string(r.join("etc/passwd")).unwrap(),
            "dev\n"
        );
        // /home -> host dir resolves inside the rootfs: /<hostpath> there.
        let _ = rd.mkdir_p("/home/dev", me(0o750));
        assert!(!host.path().join("dev").exists());
    }

    #[test]
    fn existing_files_keep_owner_and_mode_and_dirs_are_made_once() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/shadow"), "root:*:1:0:99999:7:::\n").unwrap();
        std::fs::set_permissions(r.join("etc/shadow"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        let rd = RootDir::open(r).unwrap().with_parents(me(0o755));
        rd.write("/etc/shadow", b"x\n", me(0o600)).unwrap();
        let m = std::fs::metadata(r.join("etc/shadow")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o640);
        let o = me(0o750);
        assert!(rd.mkdir_p("/home/dev/.ssh", o).unwrap());
        assert!(!rd.mkdir_p("/home/dev/.ssh", o).unwrap());
        let m = std::fs::metadata(r.join("home/dev/.ssh")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o750);
        assert_eq!(
            std::fs::metadata(r.join("home")).unwrap().mode() & 0o777,
            0o755
        );
        // Skeleton: files and dirs copied, symlinks not.
        std::fs::create_dir_all(r.join("etc/skel/.config")).unwrap();
        std::fs::write(r.join("etc/skel/.bashrc"), "# rc\n").unwrap();
        std::fs::write(r.join("etc/skel/.config/x"), "x").unwrap();
        symlink("/etc/shadow", r.join("etc/skel/link")).unwrap();
        rd.copy_tree("/etc/skel", "/home/dev", o.uid, o.gid)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("home/dev/.bashrc")).unwrap(),
            "# rc\n"
        );
        assert!(r.join("home/dev/.config/x").exists());
        assert!(std::fs::symlink_metadata(r.join("home/dev/link")).is_err());
    }
}
