//! The seam between the orchestrator and the host it changes: the undo of
//! every recorded host resource (one idempotent method per
//! [`ResourceKind`](crate::state::ResourceKind)) and the process checks
//! that tell whether a recorded monitor or sandbox still lives. Production
//! uses [`System`], which calls `bundle`, `net`, `sys` and /proc; unit tests
//! use `FakeHost` (in `pod::tests`), which records each call in order and
//! fails the ones a test picks, so rollback order and partial failure are
//! tested without root.
//!
//! Invariant: every method is idempotent (undoing what is already gone
//! succeeds), as `cleanup` and `system gc` rely on.

use std::path::Path;

use super::{PodError, Result};
use crate::net::nft::PortRule;

pub trait Host: Send + Sync + std::fmt::Debug {
    /// Lazily unmounts `path` (the pod's overlay rootfs).
    fn unmount(&self, path: &Path) -> Result<()>;
    /// Removes a file or a directory tree gvpod created.
    fn remove_path(&self, path: &Path) -> Result<()>;
    /// Removes a cgroup (relative path) in every hierarchy.
    fn remove_cgroup(&self, rel: &str) -> Result<()>;
    /// Unpins and removes a network namespace file.
    fn remove_netns(&self, path: &Path) -> Result<()>;
    /// Whether a pinned network namespace is still there.
    fn netns_exists(&self, path: &Path) -> bool;
    /// Deletes a network link by name (absent: nothing to do).
    fn delete_link(&self, name: &str) -> Result<()>;
    /// Removes a pod's published-port rules from nftables table `table`.
    fn remove_ports(&self, table: &str, pod_id: &str, rules: &[PortRule]) -> Result<()>;
    /// Whether process `pid` lives and its command line holds every one of
    /// `args` (guards against pid reuse: a monitor is `gvpod … __monitor ID`).
    fn runs(&self, pid: i32, args: &[&str]) -> bool;
}

/// The real host.
#[derive(Debug, Default)]
pub struct System;

impl Host for System {
    fn unmount(&self, path: &Path) -> Result<()> {
        Ok(crate::bundle::unmount(path)?)
    }

    fn remove_path(&self, path: &Path) -> Result<()> {
        // A `runsc exec` racing `rm -f` writes the runsc log into the bundle
        // while it is removed (ENOTEMPTY): the tree is removed again; once
        // the directory is gone nothing recreates it.
        let mut tries = 0;
        loop {
            match crate::sys::remove_path(path) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => return r.map_err(super::io("cannot remove", path)),
            }
        }
    }

    fn remove_cgroup(&self, rel: &str) -> Result<()> {
        let base = Path::new("/sys/fs/cgroup");
        let mut dirs = vec![base.join(rel)];
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                dirs.push(e.path().join(rel));
            }
        }
        // `runsc delete` returns while a killed sandbox's tasks may still be
        // leaving its cgroups (rmdir: EBUSY): wait a little for them, and
        // try every controller whatever one of them says, so one busy
        // hierarchy does not leave the others behind.
        let mut first_err = None;
        for d in dirs {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            loop {
                match std::fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => {
                        first_err.get_or_insert(PodError::Io {
                            what: "cannot remove cgroup",
                            path: d,
                            source: e,
                        });
                        break;
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn remove_netns(&self, path: &Path) -> Result<()> {
        Ok(crate::net::netns::remove(path)?)
    }

    fn netns_exists(&self, path: &Path) -> bool {
        crate::net::netns::exists(path)
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        crate::net::delete_link(name)?;
        Ok(())
    }

    fn remove_ports(&self, table: &str, pod_id: &str, rules: &[PortRule]) -> Result<()> {
        Ok(crate::net::Firewall::new(table.to_string()).remove_ports(pod_id, rules)?)
    }

    fn runs(&self, pid: i32, args: &[&str]) -> bool {
        match std::fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(c) => {
                let have: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.iter().all(|a| have.contains(&a.as_bytes()))
            }
            Err(_) => false,
        }
    }
}
