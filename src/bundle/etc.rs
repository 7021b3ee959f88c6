//! A pod's /etc/hostname and /etc/hosts: written into its rootfs, or bound
//! over it from the bundle.
//!
//! Why: every bind mount in a pod's spec is one more gofer mount runsc
//! sets up before the sandbox runs. Measured on the 2-core test VM,
//! `runsc run` of `true` with gvpod's spec against the same spec without
//! the two /etc binds, interleaved, 80 runs each: 4.4 ms less (2.8 %) on
//! 20221219 ptrace, about 2 ms on 20240729 systrap (README, Performance). So a file gvpod never
//! changes while the pod runs goes into the pod's rootfs, i.e. its overlay
//! upper directory, before the first start:
//! * /etc/hostname always: the hostname is fixed for the pod's life (a
//!   restored clone keeps its snapshot's, which lives in the restored
//!   kernel's memory);
//! * /etc/hosts when the pod has no bridge network: no peers are listed in
//!   it, so nothing rewrites it.
//!
//! The hosts file of a pod on a bridge network (rewritten in place as
//! peers come and go, `pod::network::refresh_peer_hosts`) and
//! /etc/resolv.conf stay bind mounts of files in the bundle, as docker's.
//!
//! Invariants: every write goes through [`RootDir`] (fd-relative,
//! `open_in_root`, the file replaced by a rename: a symlink the image has
//! at /etc/hosts is replaced, never written through, CVE-2024-9676); no
//! fsync (derived files, rebuilt from the database); an existing regular
//! file keeps its owner and mode, a new one is root's, 0644; a file that
//! cannot be written there (say the image has a directory at /etc/hosts)
//! is an error the caller answers with the bind mount. `gvpod commit`
//! leaves these paths out of its layer as docker commit leaves out its
//! bound ones (`snapshot::diff::RUNTIME_FILES`); a snapshot's diff keeps
//! them, since its spec does not bind them.

use std::path::Path;

use super::rootdir::{Owner, RootDir};

/// The pod's hostname file.
pub const HOSTNAME: &str = "/etc/hostname";
/// The pod's hosts file.
pub const HOSTS: &str = "/etc/hosts";
/// The pod's resolver configuration (always bound: see the module doc).
pub const RESOLV: &str = "/etc/resolv.conf";

/// Writes `data` as `dest` (an absolute path) in the rootfs mounted at
/// `rootfs`, making its missing parent directories (root's, 0755).
pub fn write_in_rootfs(rootfs: &Path, dest: &str, data: &[u8]) -> std::io::Result<()> {
    let root = RootDir::open(rootfs)?;
    if let Some(dir) = Path::new(dest).parent().and_then(Path::to_str) {
        if dir != "/" {
            root.mkdir_p(dir, Owner::root(0o755))?;
        }
    }
    root.write_unsynced(dest, data, Owner::root(0o644))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    #[test]
    fn makes_etc_and_writes_the_file() {
        let d = tempfile::tempdir().unwrap();
        write_in_rootfs(d.path(), HOSTNAME, b"web\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/hostname")).unwrap(),
            "web\n"
        );
        let m = std::fs::metadata(d.path().join("etc/hostname")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o644);
        let e = std::fs::metadata(d.path().join("etc")).unwrap();
        assert_eq!(e.permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn an_existing_file_is_replaced_and_keeps_its_mode() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        let p = d.path().join("etc/hosts");
        std::fs::write(&p, "image's own\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        write_in_rootfs(d.path(), HOSTS, b"127.0.0.1\tlocalhost\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "127.0.0.1\tlocalhost\n"
        );
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // Replaced by a rename, not rewritten in place.
        assert_ne!(m.ino(), ino);
    }

    #[test]
    fn a_symlink_in_the_image_never_leads_the_write_out() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "host file\n").unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        // /etc/hosts -> an absolute host path; /etc/hostname -> ../../..
        symlink(&victim, d.path().join("etc/hosts")).unwrap();
        symlink("../../../../victim", d.path().join("etc/hostname")).unwrap();
        write_in_rootfs(d.path(), HOSTS, b"pod\n").unwrap();
        write_in_rootfs(d.path(), HOSTNAME, b"pod\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file\n");
        for f in ["etc/hosts", "etc/hostname"] {
            let m = std::fs::symlink_metadata(d.path().join(f)).unwrap();
            assert!(m.file_type().is_file(), "{f} is a plain file now");
        }
        // A symlinked /etc is followed inside the rootfs only.
        let d2 = tempfile::tempdir().unwrap();
        std::fs::create_dir(d2.path().join("real")).unwrap();
        symlink(outside.path(), d2.path().join("etc")).unwrap();
        let _ = write_in_rootfs(d2.path(), HOSTS, b"pod\n");
        assert!(!outside.path().join("hosts").exists());
    }

    #[test]
    fn a_directory_in_the_way_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/hosts/x")).unwrap();
        assert!(write_in_rootfs(d.path(), HOSTS, b"pod\n").is_err());
    }
}
