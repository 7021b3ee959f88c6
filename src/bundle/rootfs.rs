//! The pod's root filesystem: an overlay of the image's read-only cached
//! layers with a per-pod writable upper directory, so creating a pod copies
//! nothing and costs the same whatever the image's size. Also the lookups a
//! bundle needs inside that rootfs (users, groups, executables), all done
//! through [`crate::sys::open_in_root`] so no symlink in the image can point
//! them at host files.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs::File;
use std::os::fd::AsFd;

use super::BundleError;
use crate::sys::{open_dir, open_in_root};

/// Paths of one pod's rootfs pieces inside its bundle directory.
pub struct RootfsPaths {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    /// A size-bounded writable layer (`--storage-opt size=`): `upper` and
    /// `work` then live on this filesystem instead of the data root's.
    pub bounded: Option<BoundedLayer>,
}

/// A writable layer of at most `size` bytes: an ext4 filesystem in a
/// sparse image file of the bundle, mounted through a loop device at
/// `mount` (see [`mount_bounded`]).
pub struct BoundedLayer {
    pub image: PathBuf,
    pub mount: PathBuf,
    /// The size to make the image with; `None` for a layer that exists.
    pub size: Option<u64>,
}

/// The image file of a bounded writable layer, in the bundle.
const BOUNDED_IMAGE: &str = "writable.img";
/// Its mount point, in the bundle.
const BOUNDED_MOUNT: &str = "writable";

impl RootfsPaths {
    /// The rootfs of an existing bundle (bounded when it has a layer image).
    pub fn new(bundle: &Path) -> Self {
        let image = bundle.join(BOUNDED_IMAGE);
        let bounded = image.exists().then(|| BoundedLayer {
            image,
            mount: bundle.join(BOUNDED_MOUNT),
            size: None,
        });
        Self::with(bundle, bounded)
    }

    /// The rootfs of a new bundle, its writable layer bounded to `size`
    /// bytes when given.
    pub fn create(bundle: &Path, size: Option<u64>) -> Self {
        let bounded = size.map(|s| BoundedLayer {
            image: bundle.join(BOUNDED_IMAGE),
            mount: bundle.join(BOUNDED_MOUNT),
            size: Some(s),
        });
        Self::with(bundle, bounded)
    }

    fn with(bundle: &Path, bounded: Option<BoundedLayer>) -> Self {
        let base = bounded
            .as_ref()
            .map_or_else(|| bundle.to_owned(), |b| b.mount.clone());
        RootfsPaths {
            upper: base.join("upper"),
            work: base.join("work"),
            merged: bundle.join("rootfs"),
            bounded,
        }
    }
}

/// Mounts the bounded writable layer of `paths`, if it has one and it is
/// not mounted yet (after a reboot, or for a new pod: the image is made
/// first, sparse, with `mkfs.ext4`). The loop device frees itself when the
/// filesystem is unmounted ([`crate::sys::loopdev`]).
pub fn mount_bounded(paths: &RootfsPaths) -> Result<(), BundleError> {
    let Some(b) = &paths.bounded else {
        return Ok(());
    };
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BundleError::Io { path, source }
    };
    std::fs::create_dir_all(&b.mount).map_err(io(&b.mount))?;
    if is_mount_point(&b.mount) {
        return Ok(());
    }
    if let Some(size) = b.size.filter(|_| !b.image.exists()) {
        let f = File::create(&b.image).map_err(io(&b.image))?;
        f.set_len(size).map_err(io(&b.image))?;
        drop(f);
        let out = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-E"])
            .arg("lazy_itable_init=1,lazy_journal_init=1,nodiscard")
            .arg(&b.image)
            .output()
            .map_err(|e| BundleError::Mount {
                path: b.image.clone(),
                msg: format!("cannot run mkfs.ext4 ({e}): install e2fsprogs"),
            })?;
        if !out.status.success() {
            return Err(BundleError::Mount {
                path: b.image.clone(),
                msg: format!(
                    "mkfs.ext4 failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&b.image)
        .map_err(io(&b.image))?;
    let (dev, _held) = crate::sys::loopdev::attach(&file).map_err(|e| BundleError::Mount {
        path: b.image.clone(),
        msg: format!("cannot attach a loop device: {e}"),
    })?;
    mount(
        Some(&dev),
        &b.mount,
        Some("ext4"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None::<&str>,
    )
    .map_err(|e| BundleError::Mount {
        path: b.mount.clone(),
        msg: e.desc().to_string(),
    })
}

/// Whether `path` is the root of a mount (its device differs from its
/// parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => false,
    }
}

/// Mounts `layers` (lowest first) under a fresh writable upper directory at
/// `paths.merged`.
///
/// A `disposable` upper (a `--rm` pod's: it is deleted with the pod) is
/// mounted `volatile` (Linux 5.10+): overlayfs then never syncs the upper
/// filesystem, where it otherwise syncs the whole of it when the overlay is
/// unmounted (1-13 ms measured on the pod's exit path, more when other work
/// has dirty data on that filesystem). The cost of volatile: after a host
/// crash the kernel refuses to mount that upper again until its
/// `work/work/incompat/volatile` marker is removed; a disposable upper is
/// remounted after removing it (its contents are the pod's scratch space
/// either way). A kernel without `volatile` gets the plain mount.
pub fn mount_overlay(
    layers: &[PathBuf],
    paths: &RootfsPaths,
    disposable: bool,
) -> Result<(), BundleError> {
    mount_bounded(paths)?;
    for d in [&paths.upper, &paths.work, &paths.merged] {
        std::fs::create_dir_all(d).map_err(|source| BundleError::Io {
            path: d.clone(),
            source,
        })?;
    }
    // overlayfs wants the top-most lower layer first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| escape_overlay_path(&p.to_string_lossy()))
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape_overlay_path(&paths.upper.to_string_lossy()),
        escape_overlay_path(&paths.work.to_string_lossy())
    );
    let mount_with = |opts: &str| {
        mount(
            Some("overlay"),
            &paths.merged,
            Some("overlay"),
            MsFlags::MS_NODEV,
            Some(opts),
        )
    };
    let res = if disposable {
        let marker = paths.work.join("work/incompat/volatile");
        if marker.exists() {
            crate::sys::remove_path(&marker).map_err(|source| BundleError::Io {
                path: marker.clone(),
                source,
            })?;
        }
        match mount_with(&format!("{opts},volatile")) {
            Err(nix::errno::Errno::EINVAL) => mount_with(&opts),
            r => r,
        }
    } else {
        mount_with(&opts)
    };
    res.map_err(|e| BundleError::Mount {
        path: paths.merged.clone(),
        msg: e.desc().to_string(),
    })
}

/// Overlayfs splits options on ',' and lower dirs on ':'; both must be escaped.
fn escape_overlay_path(p: &str) -> String {
    p.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Lazily unmounts a rootfs; not mounted is not an error.
pub fn unmount(path: &Path) -> Result<(), BundleError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(BundleError::Mount {
            path: path.to_owned(),
            msg: e.desc().to_string(),
        }),
    }
}

/// Reads a small file of the rootfs (at most 4 MiB), or None if it is absent.
fn read_in_root(root: &std::fs::File, path: &str) -> Option<String> {
    let f = File::from(
        open_in_root(
            root.as_fd(),
            Path::new(path),
            libc::O_RDONLY | libc::O_NOFOLLOW,
        )
        .ok()?,
    );
    let mut s = String::new();
    f.take(4 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The user a pod process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

/// Resolves `USER[:GROUP]` (names or numbers) against the rootfs' own
/// /etc/passwd and /etc/group, docker style: a numeric uid not in passwd is
/// fine (gid 0), a name that is not there is an error.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<ResolvedUser, BundleError> {
    let root = open_dir(rootfs)
        .map(File::from)
        .map_err(|source| BundleError::Io {
            path: rootfs.to_owned(),
            source,
        })?;
    let passwd = read_in_root(&root, "/etc/passwd").unwrap_or_default();
    let group = read_in_root(&root, "/etc/group").unwrap_or_default();
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let bad = |hint: &'static str| BundleError::BadValue {
        what: "user",
        value: spec.to_string(),
        hint,
    };
    if user.is_empty() {
        return Err(bad("use USER, UID, USER:GROUP or UID:GID"));
    }
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let matches = f[0] == user
            || (user.parse::<u32>().ok().map(|u| u.to_string()) == Some(f[2].to_string()));
        matches.then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
                f[5].to_string(),
            )
        })
    });
    let (uname, uid, mut gid, home) = match (entry, user.parse::<u32>()) {
        (Some((n, Some(u), Some(g), h)), _) => (Some(n), u, g, Some(h)),
        (_, Ok(u)) => (None, u, 0, None),
        _ => return Err(bad("no such user in the image's /etc/passwd; use a user that exists there or a numeric uid")),
    };
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[0] == g).then(|| f[2].parse::<u32>().ok()).flatten()
                })
                .ok_or_else(|| bad("no such group in the image's /etc/group; use a group that exists there or a numeric gid"))?,
        };
    }
    let mut additional_gids = vec![];
    if let Some(n) = &uname {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == n) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Why a command cannot run: maps to exit codes 127 and 126 like a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecProblem {
    NotFound,
    NotExecutable,
}

/// Looks `cmd` up inside the rootfs like execvp would, with the pod's PATH.
pub fn check_executable(
    rootfs: &Path,
    cmd: &str,
    path_env: Option<&str>,
    cwd: &str,
) -> Result<(), ExecProblem> {
    let Ok(root) = open_dir(rootfs).map(File::from) else {
        return Err(ExecProblem::NotFound);
    };
    let candidates: Vec<String> = if cmd.contains('/') {
        if cmd.starts_with('/') {
            vec![cmd.to_string()]
        } else {
            vec![format!("{}/{}", cwd.trim_end_matches('/'), cmd)]
        }
    } else {
        path_env
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/{}", d.trim_end_matches('/'), cmd))
            .collect()
    };
    let mut found_not_exec = false;
    for c in candidates {
        let Ok(f) = open_in_root(root.as_fd(), Path::new(&c), libc::O_PATH).map(File::from) else {
            continue;
        };
        let Ok(meta) = f.metadata() else { continue };
        if meta.is_file() {
            if meta.permissions().mode() & 0o111 != 0 {
                return Ok(());
            }
            found_not_exec = true;
        } else if meta.is_dir() {
            found_not_exec = true;
        }
    }
    Err(if found_not_exec {
        ExecProblem::NotExecutable
    } else {
        ExecProblem::NotFound
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/group"),
            "root:x:0:\ndev:x:1000:\nwheel:x:10:dev\n",
        )
        .unwrap();
        std::fs::write(r.join("bin/busybox"), "#!").unwrap();
        std::fs::set_permissions(
            r.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink("/bin/busybox", r.join("bin/sh")).unwrap();
        std::fs::write(r.join("bin/data"), "x").unwrap();
        d
    }

    #[test]
    fn users_come_from_the_image() {
        let d = rootfs();
        let u = resolve_user(d.path(), "dev").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(u.home.as_deref(), Some("/home/dev"));
        assert_eq!(resolve_user(d.path(), "1000:wheel").unwrap().gid, 10);
        assert_eq!(resolve_user(d.path(), "4242").unwrap().uid, 4242);
        let e = resolve_user(d.path(), "nobody").unwrap_err().to_string();
        assert!(e.contains("\"nobody\""), "{e}");
        assert!(resolve_user(d.path(), "dev:nogroup").is_err());
    }

    #[test]
    fn a_symlinked_passwd_cannot_read_the_host() {
        let d = rootfs();
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        // The host's /etc/passwd has root; the image's link must not reach it.
        assert!(resolve_user(d.path(), "root").is_err());
    }

    #[test]
    fn executables_are_found_like_execvp() {
        let d = rootfs();
        assert_eq!(check_executable(d.path(), "sh", None, "/"), Ok(()));
        assert_eq!(check_executable(d.path(), "/bin/sh", None, "/"), Ok(()));
        assert_eq!(
            check_executable(d.path(), "nope", None, "/"),
            Err(ExecProblem::NotFound)
        );
        assert_eq!(
            check_executable(d.path(), "data", Some("/bin"), "/"),
            Err(ExecProblem::NotExecutable)
        );
        assert_eq!(
            check_executable(d.path(), "/bin", None, "/"),
            Err(ExecProblem::NotExecutable)
        );
    }
}
