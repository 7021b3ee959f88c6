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

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

use super::Ctx;

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
