//! The pod's dev user (`--dev-user NAME`) and what `--ssh` needs in the
//! rootfs, made from the host before the pod's first start: the account
//! (uid 1000 unless taken, a group of the same name, home from /etc/skel,
//! the image's login shell, no password), passwordless sudo when the image
//! has sudo, the caller's public keys in `~NAME/.ssh/authorized_keys`, and
//! sshd's privilege-separation directory and host-key mount point.
//!
//! Invariants: every path in the rootfs goes through [`super::rootdir::RootDir`]
//! (fd-relative, `open_in_root`: no symlink in the image can redirect a
//! write to the host); files are replaced atomically; [`ensure`] is
//! idempotent (a restart, a restore or a retried start changes nothing);
//! a user NAME the image already has is kept as it is (only sudo and keys
//! are added); the text edits are pure functions ([`edit`]).

mod access;
mod edit;

use std::path::Path;

use super::rootdir::{Owner, RootDir};
pub use access::DevAccess;
pub use edit::{valid_name, PasswdEntry};

use super::BundleError;

/// Where the pod's ssh host keys are bound (read-only) inside the pod.
pub const HOST_KEYS_DIR: &str = "/etc/ssh/gvpod";
/// sshd's privilege-separation directory (it refuses to start without it).
pub const SSHD_RUN_DIR: &str = "/run/sshd";
/// The sshd binary `--ssh` needs in the image.
pub const SSHD: &str = "/usr/sbin/sshd";

/// The dev user as made (or found) in the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevUser {
    pub entry: PasswdEntry,
    /// Made by this call (false: it was there already).
    pub created: bool,
}

fn io_err(rootfs: &Path, what: &str) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = rootfs.join(what.trim_start_matches('/'));
    move |source| BundleError::Io { path, source }
}

/// Whether the image's layers (lowest first) surely lack [`SSHD`], looked
/// up as overlayfs merges them (the top-most entry of a name wins, a
/// whiteout hides the layers below, symlinks are followed in the merged
/// view), before the pod's rootfs is mounted: `--ssh` on an image without
/// sshd is refused before anything is made. Opaque directories are not
/// looked at (an sshd they hide is "there" here); [`check_ssh_image`] on
/// the mounted rootfs decides then.
pub fn layers_lack_sshd(layers: &[std::path::PathBuf]) -> bool {
    let top_down: Vec<&std::path::PathBuf> = layers.iter().rev().collect();
    merged_lookup(&top_down, SSHD) == Some(false)
}

/// Finds `path` in the merged view of `layers` (top-most first): whether
/// something is there, or `None` when it cannot tell.
fn merged_lookup(layers: &[&std::path::PathBuf], path: &str) -> Option<bool> {
    use std::ffi::OsString;
    use std::os::fd::AsFd;
    let mut todo: Vec<OsString> = comps(Path::new(path));
    todo.reverse();
    let mut cur = std::path::PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let wh = OsString::from(format!(".wh.{}", c.to_string_lossy()));
        let mut found = None;
        for l in layers {
            let root = crate::sys::open_dir(l).ok()?;
            let rel = cur.strip_prefix("/").ok()?;
            let Ok(dir) = crate::sys::open_beneath_nofollow(
                root.as_fd(),
                rel,
                libc::O_RDONLY | libc::O_DIRECTORY,
            ) else {
                continue;
            };
            if crate::sys::lstatat(dir.as_fd(), &wh).ok()?.is_some() {
                return Some(false);
            }
            if let Some(st) = crate::sys::lstatat(dir.as_fd(), &c).ok()? {
                found = Some((dir, st));
                break;
            }
        }
        let Some((dir, st)) = found else {
            return Some(false);
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            links += 1;
            if links > 40 {
                return None;
            }
            let target = crate::sys::readlinkat(dir.as_fd(), &c).ok()?;
            if target.is_absolute() {
                cur = std::path::PathBuf::from("/");
            }
            let mut t = comps(&target);
            t.reverse();
            todo.extend(t);
            continue;
        }
        if todo.is_empty() {
            return Some(true);
        }
        if !crate::sys::is_dir(&st) {
            return Some(false);
        }
        cur.push(&c);
    }
    Some(true)
}

/// The normal and `..` components of a path.
fn comps(p: &Path) -> Vec<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_owned()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Checks what `--ssh` needs of the image (its sshd).
pub fn check_ssh_image(rootfs: &Path, image: &str) -> Result<(), BundleError> {
    let root = RootDir::open(rootfs).map_err(io_err(rootfs, "/"))?;
    if !root.is_executable(SSHD) {
        return Err(BundleError::NoSshd(image.to_string()));
    }
    Ok(())
}

/// Makes the dev user and what `dev` asks for in the rootfs (see the
/// module doc); idempotent.
pub fn ensure(rootfs: &Path, dev: &DevAccess) -> Result<Option<DevUser>, BundleError> {
    let Some(name) = &dev.user else {
        return Ok(None);
    };
    let root = RootDir::open(rootfs).map_err(io_err(rootfs, "/"))?;
    let read = |p: &str| root.read(p).map_err(io_err(rootfs, p));
    let passwd = read("/etc/passwd")?.unwrap_or_default();
    let (entry, created) = match edit::find_user(&passwd, name) {
        Some(e) => (e, false),
        None => (add_user(&root, rootfs, &passwd, name)?, true),
    };
    let (uid, gid) = (entry.uid, entry.gid);
    if created || !root.exists(&entry.home) {
        let made = root
            .mkdir_p(
                &entry.home,
                Owner {
                    uid,
                    gid,
                    mode: 0o750,
                },
            )
            .map_err(io_err(rootfs, &entry.home))?;
        if made {
            root.copy_tree("/etc/skel", &entry.home, uid, gid)
                .map_err(io_err(rootfs, "/etc/skel"))?;
        }
    }
    if root.exists("/usr/bin/sudo") {
        let path = format!("/etc/sudoers.d/gvpod-{name}");
        let want = edit::sudoers(name);
        if read(&path)?.as_deref() != Some(want.as_str()) {
            root.mkdir_p("/etc/sudoers.d", Owner::root(0o755))
                .map_err(io_err(rootfs, "/etc/sudoers.d"))?;
            root.write_as(&path, want.as_bytes(), Owner::root(0o440))
                .map_err(io_err(rootfs, &path))?;
        }
    }
    if !dev.authorized_keys.is_empty() {
        let ssh_dir = format!("{}/.ssh", entry.home.trim_end_matches('/'));
        root.mkdir_p(
            &ssh_dir,
            Owner {
                uid,
                gid,
                mode: 0o700,
            },
        )
        .map_err(io_err(rootfs, &ssh_dir))?;
        let path = format!("{ssh_dir}/authorized_keys");
        let have = read(&path)?.unwrap_or_default();
        if let Some(text) = edit::merge_authorized_keys(&have, &dev.authorized_keys) {
            root.write_as(
                &path,
                text.as_bytes(),
                Owner {
                    uid,
                    gid,
                    mode: 0o600,
                },
            )
            .map_err(io_err(rootfs, &path))?;
        }
    }
    if dev.ssh {
        for d in [SSHD_RUN_DIR, HOST_KEYS_DIR] {
            root.mkdir_p(d, Owner::root(0o755))
                .map_err(io_err(rootfs, d))?;
        }
    }
    Ok(Some(DevUser { entry, created }))
}

/// Adds user `name` (group, gshadow, shadow, then passwd last: a user is
/// there only once all of it is, and a retry after a failure reuses what
/// was written).
fn add_user(
    root: &RootDir,
    rootfs: &Path,
    passwd: &str,
    name: &str,
) -> Result<PasswdEntry, BundleError> {
    let read = |p: &str| root.read(p).map_err(io_err(rootfs, p));
    let group = read("/etc/group")?.unwrap_or_default();
    let (uid, gid) = edit::pick_ids(passwd, &group, name).ok_or_else(|| BundleError::BadValue {
        what: "--dev-user",
        value: name.to_string(),
        hint: "the image has no free uid between 1000 and 59999",
    })?;
    let useradd = read("/etc/default/useradd")?;
    let shell = edit::pick_shell(
        |p| root.is_executable(p),
        useradd.as_deref().and_then(edit::useradd_shell).as_deref(),
    );
    let entry = PasswdEntry {
        name: name.to_string(),
        uid,
        gid,
        home: format!("/home/{name}"),
        shell,
    };
    let write = |p: &str, text: String, new: Owner| {
        root.write(p, text.as_bytes(), new)
            .map_err(io_err(rootfs, p))
    };
    if let Some(t) = edit::add_group(&group, name, gid) {
        write("/etc/group", t, Owner::root(0o644))?;
    }
    if let Some(gs) = read("/etc/gshadow")? {
        if let Some(t) = edit::add_gshadow(&gs, name) {
            write("/etc/gshadow", t, Owner::root(0o640))?;
        }
    }
    let shadow = read("/etc/shadow")?;
    if let Some(s) = &shadow {
        let days = (chrono::Utc::now().timestamp() / 86400) as u64;
        if let Some(t) = edit::add_shadow(s, name, days) {
            write("/etc/shadow", t, Owner::root(0o640))?;
        }
    }
    if let Some(t) = edit::add_passwd(passwd, &entry, shadow.is_some()) {
        write("/etc/passwd", t, Owner::root(0o644))?;
    }
    Ok(entry)
}

/// The dev user `name` of the rootfs (for `gvpod ssh`).
pub fn lookup(rootfs: &Path, name: &str) -> Result<Option<PasswdEntry>, BundleError> {
    let root = RootDir::open(rootfs).map_err(io_err(rootfs, "/"))?;
    let passwd = root
        .read("/etc/passwd")
        .map_err(io_err(rootfs, "/etc/passwd"))?
        .unwrap_or_default();
    Ok(edit::find_user(&passwd, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A Debian-like rootfs (as non-root: files are owned by the caller).
    fn rootfs(sudo: bool) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in ["etc/skel", "bin", "usr/bin", "home"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nsudo:x:27:\n").unwrap();
        std::fs::write(r.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        std::fs::write(r.join("etc/skel/.profile"), "# profile\n").unwrap();
        let exe = |p: &str| {
            std::fs::write(r.join(p), "#!").unwrap();
            std::fs::set_permissions(r.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe("bin/bash");
        if sudo {
            exe("usr/bin/sudo");
        }
        d
    }

    fn dev() -> DevAccess {
        DevAccess {
            user: Some("dev".into()),
            ssh: true,
            authorized_keys: vec!["ssh-ed25519 AAAAC3NzaKEY me@host".into()],
        }
    }

    /// Needs root: files are chowned to the new user.
    #[test]
    fn makes_the_user_once() {
        if !nix::unistd::geteuid().is_root() {
            // The project's rule for root-only tests: a skip is allowed
            // only where skipping is (not CI, not GVPOD_REQUIRE_ROOT_TESTS=1).
            let forbidden = std::env::var("GVPOD_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1")
                || std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!forbidden, "this test needs root (it chowns to uid 1000)");
            eprintln!("skipped: needs root (chown); the pure edits are tested in edit.rs");
            return;
        }
        let d = rootfs(true);
        let r = d.path();
        let u = ensure(r, &dev()).unwrap().unwrap();
        assert!(u.created);
        assert_eq!((u.entry.uid, u.entry.gid), (1000, 1000));
        assert_eq!(u.entry.shell, "/bin/bash");
        let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
        assert!(read("etc/passwd").contains("\ndev:x:1000:1000::/home/dev:/bin/bash\n"));
        assert!(read("etc/shadow").contains("\ndev:*:"));
        assert_eq!(read("etc/sudoers.d/gvpod-dev"), edit::sudoers("dev"));
        assert_eq!(read("home/dev/.profile"), "# profile\n");
        assert_eq!(
            read("home/dev/.ssh/authorized_keys"),
            "ssh-ed25519 AAAAC3NzaKEY me@host\n"
        );
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(r.join("home/dev/.ssh/authorized_keys")).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (1000, 0o600));
        let m = std::fs::metadata(r.join("etc/sudoers.d/gvpod-dev")).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o440));
        assert!(r.join("run/sshd").is_dir() && r.join("etc/ssh/gvpod").is_dir());
        let before: Vec<_> = ["etc/passwd", "etc/group", "etc/shadow"]
            .iter()
            .map(|p| read(p))
            .collect();
        let again = ensure(r, &dev()).unwrap().unwrap();
        assert!(!again.created);
        let after: Vec<_> = ["etc/passwd", "etc/group", "etc/shadow"]
            .iter()
            .map(|p| read(p))
            .collect();
        assert_eq!(before, after);
        assert_eq!(lookup(r, "dev").unwrap(), Some(u.entry));
    }

    #[test]
    fn names_are_checked_and_ssh_defaults_the_user() {
        let bad = DevAccess {
            user: Some("Dev!".into()),
            ..Default::default()
        };
        let e = bad.checked().unwrap_err().to_string();
        assert!(e.starts_with("invalid --dev-user \"Dev!\""), "{e}");
        let ssh = DevAccess {
            ssh: true,
            ..Default::default()
        };
        assert_eq!(ssh.checked().unwrap().user.as_deref(), Some("dev"));
        let keys_only = DevAccess {
            authorized_keys: vec!["ssh-ed25519 A".into()],
            ..Default::default()
        };
        assert!(keys_only.checked().is_err());
    }

    #[test]
    fn layers_are_looked_up_as_overlayfs_merges_them() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let low = d.path().join("low");
        let high = d.path().join("high");
        std::fs::create_dir_all(low.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(high.join("etc")).unwrap();
        let layers = vec![low.clone(), high.clone()];
        assert!(layers_lack_sshd(&layers));
        std::fs::write(low.join("usr/sbin/sshd"), "x").unwrap();
        assert!(!layers_lack_sshd(&layers));
        // A whiteout in a higher layer deletes it.
        std::fs::create_dir_all(high.join("usr/sbin")).unwrap();
        std::fs::write(high.join("usr/sbin/.wh.sshd"), "").unwrap();
        assert!(layers_lack_sshd(&layers));
        std::fs::remove_dir_all(high.join("usr")).unwrap();
        std::fs::remove_file(low.join("usr/sbin/sshd")).unwrap();
        // busybox's usr/sbin -> ../bin, followed in the merged view.
        std::fs::remove_dir_all(low.join("usr/sbin")).unwrap();
        symlink("../bin", low.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(low.join("bin")).unwrap();
        assert!(layers_lack_sshd(&layers));
        std::fs::create_dir_all(high.join("bin")).unwrap();
        symlink("/usr/lib/openssh/sshd", high.join("bin/sshd")).unwrap();
        std::fs::create_dir_all(low.join("usr/lib/openssh")).unwrap();
        assert!(layers_lack_sshd(&layers), "a dangling link is no sshd");
        std::fs::write(low.join("usr/lib/openssh/sshd"), "x").unwrap();
        assert!(!layers_lack_sshd(&layers));
    }

    #[test]
    fn ssh_needs_sshd_in_the_image() {
        let d = rootfs(false);
        let e = check_ssh_image(d.path(), "busybox")
            .unwrap_err()
            .to_string();
        assert!(e.contains("busybox") && e.contains("/usr/sbin/sshd"), "{e}");
    }
}
