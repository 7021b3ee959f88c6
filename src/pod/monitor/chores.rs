//! What the monitor does off the start path, on a thread of its own.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

/// How long a just-started pod runs before the monitor's chores start: a
/// pod that exits sooner (`run --rm … true`) gets them after its client
/// has its answer, so they never compete with the pod's start and exit
/// for a CPU.
const CHORES_AFTER: Duration = Duration::from_millis(200);

/// What the monitor does off the start path, on a thread of its own, once
/// the pod has run for [`CHORES_AFTER`] or has exited, whichever is first
/// (so neither the client nor the pod waits for it; dropping the returned
/// sender says the pod exited):
/// * with `durable` (bundle, restored) — not for `--rm` pods, whose bundle
///   goes with them — makes the bundle durable: the client that started the
///   pod left the fsync of config.json to the monitor (`create` for `run`,
///   `restore`), and a restore also left its rootfs diff unsynced, so a
///   restored pod's bundle filesystem gets a syncfs. runsc has long read
///   the file; this bounds what a host crash can lose to what it could
///   lose before;
/// * checkpoints the state database's WAL ([`crate::state::Db::checkpoint`]),
///   which keeps the next gvpod process's `Db::open` short.
pub(super) fn housekeeping(
    root: PathBuf,
    durable: Option<(PathBuf, bool)>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (done, exited) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = exited.recv_timeout(CHORES_AFTER);
        if let Some((bundle, restored)) = durable {
            let config = bundle.join("config.json");
            let res = if restored {
                crate::sys::open_dir(&bundle).and_then(|d| crate::sys::syncfs(d.as_fd()))
            } else {
                File::open(&config).and_then(|f| f.sync_all())
            };
            match res {
                Ok(()) => tracing::debug!("step monitor:durable"),
                Err(e) => tracing::warn!("syncing {}: {e}", config.display()),
            }
        }
        match crate::state::Db::open(&root).and_then(|mut db| db.checkpoint()) {
            Ok((frames, done)) => tracing::debug!("step monitor:checkpointed {done}/{frames}"),
            Err(e) => tracing::debug!("checkpoint of the state database: {e}"),
        }
    });
    (done, t)
}
