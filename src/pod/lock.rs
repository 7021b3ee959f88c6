//! One pod's start and removal happen one at a time: `start` holds an
//! exclusive flock on the pod's bundle directory from before it spawns the
//! monitor until the monitor reports the start (or its failure), and
//! `rm` holds it for the whole removal. Without it `rm -f` racing `start`
//! removed the pod while the monitor it could not yet see was creating
//! `logs/<id>.json` and the runsc container (issue 15: the log was left
//! behind 4 times in 5, or `rm -f` failed on a half-made container).
//!
//! The directory is the lock (no lock file to leak); a pod whose bundle
//! directory is gone is being removed or was, so whoever took the lock
//! reads the pod's row again before acting on it.
//!
//! [`try_lock_file`] is the other kind: a named lock file in the pod's run
//! directory that a verb which pauses the pod (`checkpoint`, `commit`)
//! holds while it works. The flock goes with a killed holder's process; the
//! file stays behind as the mark that its work was cut short, which the
//! next command that looks at the pod acts on.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

use super::{Ctx, PodError, Result};

/// Held for as long as it lives.
pub(crate) struct PodLock(#[allow(dead_code)] Option<Flock<File>>);

/// Waits for and takes pod `id`'s lock; a pod with no bundle directory
/// (removed meanwhile) gives a guard that holds nothing.
pub(crate) fn lock(ctx: &Ctx, id: &str) -> PodLock {
    let dir = ctx.bundle_dir(id);
    let Ok(f) = File::open(&dir) else {
        return PodLock(None);
    };
    PodLock(Flock::lock(f, FlockArg::LockExclusive).ok())
}

/// Takes the exclusive flock of pod `id`'s lock file `name` in its run
/// directory (made if missing) without waiting; `None` while another gvpod
/// holds it.
pub(crate) fn try_lock_file(ctx: &Ctx, id: &str, name: &str) -> Result<Option<Flock<File>>> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = ctx.pod_run_dir(id);
    std::fs::create_dir_all(&dir).map_err(super::io("cannot create", &dir))?;
    let path = dir.join(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(super::io("cannot open", &path))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(PodError::Io {
            what: "cannot lock",
            path,
            source: e.into(),
        }),
    }
}
