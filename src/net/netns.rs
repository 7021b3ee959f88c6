//! Named network namespaces: `<data root>/netns/<pod id>`, an empty file with
//! the namespace bind-mounted over it (what `ip netns add` does under
//! /run/netns, kept per data root so that roots never see each other's).
//!
//! Other mount namespaces copied from the host (runsc's sandbox and gofer,
//! the private namespace of the fact-3 workaround) hold copies of these bind
//! mounts; unlinking the file after the unmount detaches those copies too
//! (Linux >= 3.18 lazily removes mounts on unlinked files in every
//! namespace), so a removed pod's namespace is not kept alive by them.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{NetError, Result};

crate::util::io_error_fn!(NetError);

/// Makes the namespace directory exist.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))
}

/// Moves the calling thread into a new network namespace and pins it at
/// `path` (created empty first). Only for a thread that is discarded after.
pub fn unshare_and_pin(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("cannot create", path))?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| io("cannot create network namespace", path)(e.into()))?;
    // /proc/thread-self: the namespace of this thread, not of the process.
    mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| io("cannot pin network namespace at", path)(e.into()))
}

/// Whether a live namespace is pinned at `path`.
pub fn exists(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Unpins and removes a namespace file; a missing one is not an error.
pub fn remove(path: &Path) -> Result<()> {
    loop {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue, // stacked pins from an interrupted retry
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
            Err(e) => return Err(io("cannot unmount", path)(e.into())),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot remove", path)(e)),
    }
}
