//! The snapshot store: one directory per snapshot under `<root>/snapshots/`,
//! indexed by the `snapshots` table. Knows nothing about runsc or pods
//! beyond the data it keeps for them (the orchestration is `pod::checkpoint`
//! and `pod::restore`).
//!
//! ```text
//! snapshots/<id>/snapshot.json    what the snapshot is (SnapshotMeta)
//! snapshots/<id>/config.json      the pod's OCI spec at checkpoint time
//! snapshots/<id>/rootfs-diff.tar  the pod's filesystem changes, an OCI layer
//!                                 (whiteouts for deletions), see `diff`
//! snapshots/<id>/checkpoint.img   runsc's memory image
//! snapshots/<id>/.lock            flock held by whoever is writing the directory
//! snapshots/.tmp-<rand>/          a snapshot being written or imported
//! ```
//!
//! All or nothing: a snapshot is written into a `.tmp-*` directory whose
//! `.lock` its writer holds (flock) for as long as it lives, renamed into
//! place, and only then registered. A writer killed half-way leaves a
//! directory whose lock anyone can take: [`SnapshotStore::sweep`] removes
//! those (and directories never registered), and never one whose writer
//! is still alive.

pub mod archive;
pub mod diff;
mod progress;

pub use progress::Progress;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::PodOptions;
use crate::state::{Db, Pick, SnapshotRow, StateError};

/// Version of the snapshot directory and archive layout.
pub const FORMAT: u32 = 1;

pub const META: &str = "snapshot.json";
pub const SPEC: &str = "config.json";
pub const DIFF: &str = "rootfs-diff.tar";
pub const IMAGE: &str = "checkpoint.img";
const LOCK: &str = ".lock";
const TMP_PREFIX: &str = ".tmp-";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no such snapshot: {0:?} (see `gvpod snapshot ls`)")]
    NotFound(String),
    #[error("{0:?} matches several snapshots ({1}); give more of the id or the name")]
    Ambiguous(String, String),
    #[error("invalid snapshot name {0:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,62}}")]
    BadName(String),
    #[error("snapshot archive {path}: {why}")]
    BadArchive { path: PathBuf, why: String },
    #[error("snapshot {name}: {why}")]
    Unusable { name: String, why: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

impl SnapshotError {
    /// See [`crate::error::Kind`]: unknown, ambiguous or badly named
    /// snapshots, unusable snapshots and damaged archives are the user's.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            SnapshotError::NotFound(_) => Kind::NotFound,
            SnapshotError::Ambiguous(..)
            | SnapshotError::BadName(_)
            | SnapshotError::BadArchive { .. }
            | SnapshotError::Unusable { .. } => Kind::User,
            SnapshotError::State(e) => e.kind(),
            SnapshotError::Io { .. } => Kind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, SnapshotError>;

crate::util::io_error_fn!(pub(crate) SnapshotError);

/// The source pod as it was when checkpointed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodInfo {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub auto_remove: bool,
}

/// The image the pod's rootfs is built on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub id: String,
    pub reference: String,
}

/// What a restore must match (DESIGN.md fact 10: same runsc release, same
/// platform, same sandbox flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunscInfo {
    /// `runsc --version` first line.
    pub version: String,
    pub release: u32,
    pub platform: String,
    pub network: String,
    pub overlay2: Option<String>,
    #[serde(default)]
    pub extra: Vec<(String, String)>,
}

/// Network settings of the source pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// `none`, `host` or the name of the pod's gvpod network.
    pub mode: String,
    /// Published ports (`-p` specs), re-provisioned on restore.
    #[serde(default)]
    pub ports: Vec<String>,
    /// The pod's address on its network when it was checkpointed.
    #[serde(default)]
    pub ip: Option<String>,
}

/// `snapshot.json`: everything needed to bring the pod back on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub format: u32,
    pub id: String,
    pub name: String,
    pub created: String,
    pub pod: PodInfo,
    pub image: ImageInfo,
    pub runsc: RunscInfo,
    pub network: NetworkInfo,
    /// The pod's options (command, env, limits, volumes, …).
    pub options: PodOptions,
    /// The resolved main process (`bundle::ProcessSpec`).
    pub process: serde_json::Value,
    /// Whether the source pod kept running.
    pub leave_running: bool,
    pub memory_image_bytes: u64,
    pub rootfs_diff_bytes: u64,
    /// Time the pod was frozen for `runsc checkpoint`, in milliseconds.
    pub checkpoint_ms: u64,
}

/// A snapshot directory being written: removed on drop unless committed.
/// Its `.lock` is held for the life of the value.
pub struct TempSnapshot {
    pub dir: PathBuf,
    lock: Option<nix::fcntl::Flock<File>>,
    armed: bool,
}

impl TempSnapshot {
    /// Gives up the claim without removing the directory (another process,
    /// e.g. the pod's monitor, takes it over).
    pub fn forget(mut self) {
        self.armed = false;
        self.lock = None;
    }
}

impl Drop for TempSnapshot {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = crate::sys::remove_path(&self.dir) {
                tracing::warn!("cannot remove {}: {e}", self.dir.display());
            }
        }
    }
}

/// The store under `<root>/snapshots`.
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    pub fn new(data_root: &Path) -> Result<SnapshotStore> {
        let dir = data_root.join("snapshots");
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        Ok(SnapshotStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of a registered snapshot.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// A fresh, locked `.tmp-*` directory.
    ///
    /// Another gvpod's [`SnapshotStore::sweep`] may open the new `.lock`
    /// between our open and our flock, find it free, and remove the
    /// directory (seen with 20 checkpoints at once). So a lock that is
    /// busy, or that we got on a file no longer linked, means the sweep
    /// has it: start over under a new name, and leave that directory to it.
    pub fn temp(&self) -> Result<TempSnapshot> {
        for _ in 0..TEMP_TRIES {
            let dir = self
                .dir
                .join(format!("{TMP_PREFIX}{}", crate::util::random_hex(8)));
            std::fs::create_dir(&dir).map_err(io("cannot create", &dir))?;
            let mut t = TempSnapshot {
                dir,
                lock: None,
                armed: false,
            };
            match lock(&t.dir.join(LOCK), true)? {
                Some(l) if still_linked(&l) => {
                    t.lock = Some(l);
                    t.armed = true;
                    return Ok(t);
                }
                _ => tracing::debug!("{} was swept as it was made", t.dir.display()),
            }
        }
        Err(SnapshotError::Io {
            what: "cannot lock a new directory in",
            path: self.dir.clone(),
            source: std::io::Error::from(std::io::ErrorKind::WouldBlock),
        })
    }

    /// Takes over an abandoned temp directory (its writer died): returns it
    /// locked, or `None` while its writer still holds it.
    pub fn claim(&self, dir: &Path) -> Result<Option<TempSnapshot>> {
        if !dir.starts_with(&self.dir) || !dir.join(LOCK).exists() {
            return Ok(None);
        }
        Ok(lock(&dir.join(LOCK), false)?.map(|l| TempSnapshot {
            dir: dir.to_owned(),
            lock: Some(l),
            armed: true,
        }))
    }

    /// Renames a complete temp directory to `snapshots/<id>`; the lock stays
    /// held (it moved with the directory). The caller registers the
    /// snapshot next and drops the value only after that (on failure the
    /// drop removes the directory). Not synced: see `pod::checkpoint`.
    pub fn put_in_place(&self, t: &mut TempSnapshot, id: &str) -> Result<()> {
        let dest = self.path(id);
        std::fs::rename(&t.dir, &dest).map_err(io("cannot move snapshot into place", &dest))?;
        t.dir = dest;
        Ok(())
    }

    /// Registers the snapshot in `t` (already in place) and keeps the directory.
    pub fn register(&self, db: &mut Db, t: TempSnapshot, meta: &SnapshotMeta) -> Result<()> {
        self.register_checkpoint(db, t, meta, false)
    }

    /// [`SnapshotStore::register`]; with `finish_checkpoint`, also marks the
    /// source pod's checkpoint done in the same transaction.
    pub fn register_checkpoint(
        &self,
        db: &mut Db,
        mut t: TempSnapshot,
        meta: &SnapshotMeta,
        finish_checkpoint: bool,
    ) -> Result<()> {
        let size = dir_size(&t.dir);
        let dir = t.dir.to_string_lossy().into_owned();
        let finishing = finish_checkpoint.then_some((meta.pod.id.as_str(), dir.as_str()));
        db.insert_snapshot_finishing(
            &SnapshotRow {
                id: meta.id.clone(),
                name: meta.name.clone(),
                pod_id: meta.pod.id.clone(),
                pod_name: meta.pod.name.clone(),
                image_id: meta.image.id.clone(),
                image_ref: meta.image.reference.clone(),
                runsc_version: meta.runsc.version.clone(),
                platform: meta.runsc.platform.clone(),
                created: meta.created.clone(),
                size: i64::try_from(size).unwrap_or(i64::MAX),
                meta_json: serde_json::to_string(meta).expect("snapshot metadata serialises"),
            },
            finishing,
        )?;
        t.armed = false;
        Ok(())
    }

    /// Finds one snapshot by name, full id or unique id prefix.
    pub fn lookup(&self, db: &Db, key: &str) -> Result<SnapshotRow> {
        match crate::state::pick(db.find_snapshots(key)?, key, |s| (&s.name, &s.id)) {
            Pick::One(s) => Ok(s),
            Pick::Nothing => Err(SnapshotError::NotFound(key.to_string())),
            Pick::Several(names) => {
                Err(SnapshotError::Ambiguous(key.to_string(), names.join(", ")))
            }
        }
    }

    /// The metadata of a registered snapshot.
    pub fn meta(&self, row: &SnapshotRow) -> Result<SnapshotMeta> {
        serde_json::from_str(&row.meta_json).map_err(|e| {
            SnapshotError::State(StateError::Corrupt(format!(
                "metadata of snapshot {}: {e}",
                row.name
            )))
        })
    }

    /// Unregisters and deletes a snapshot. The row goes first: a directory
    /// left by a failed delete is an orphan that `sweep` removes.
    pub fn remove(&self, db: &mut Db, row: &SnapshotRow) -> Result<()> {
        db.delete_snapshot(&row.id)?;
        let p = self.path(&row.id);
        crate::sys::remove_path(&p).map_err(io("cannot remove", &p))
    }

    /// Removes what killed writers left: temp directories and unregistered
    /// snapshot directories whose lock nobody holds. Returns what it removed.
    pub fn sweep(&self, db: &Db) -> Result<Vec<PathBuf>> {
        let known: std::collections::HashSet<String> =
            db.snapshots()?.into_iter().map(|s| s.id).collect();
        let mut removed = vec![];
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Ok(removed);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if known.contains(&name) {
                continue;
            }
            let p = e.path();
            // Held by a live writer: not ours to touch.
            let claimed = match lock(&p.join(LOCK), false) {
                Ok(Some(l)) => Some(l),
                Ok(None) => continue,
                // No lock file: a writer that died before creating it, or
                // one that has just created the directory (spared for a minute).
                Err(_) if young(&p) => continue,
                Err(_) => None,
            };
            if let Err(e) = crate::sys::remove_path(&p) {
                tracing::warn!("cannot remove {}: {e}", p.display());
            } else {
                removed.push(p);
            }
            drop(claimed);
        }
        Ok(removed)
    }
}

/// How many fresh names [`SnapshotStore::temp`] tries.
const TEMP_TRIES: usize = 8;

/// Whether the locked file still has a name (a sweep unlinks what it removes).
fn still_linked(l: &nix::fcntl::Flock<File>) -> bool {
    use std::os::unix::fs::MetadataExt;
    l.metadata().is_ok_and(|m| m.nlink() > 0)
}

fn young(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(60))
}

/// Takes the flock on `path` (creating the file): blocking or not. `None`
/// when another process holds it and `wait` is false.
fn lock(path: &Path, create: bool) -> Result<Option<nix::fcntl::Flock<File>>> {
    use nix::fcntl::{Flock, FlockArg};
    let f = std::fs::OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot open", path))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(SnapshotError::Io {
            what: "cannot lock",
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync", dir))
}

/// Bytes of the regular files directly in `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Snapshot names follow the pod rule ([`crate::util::is_valid_name`]).
pub fn validate_name(name: &str) -> Result<()> {
    if crate::util::is_valid_name(name) {
        Ok(())
    } else {
        Err(SnapshotError::BadName(name.to_string()))
    }
}

/// `<pod>-<UTC time>`, shortened so it stays a valid name.
pub fn default_name(pod_name: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f").to_string();
    let stamp = stamp.replace('.', "-");
    let keep = 62usize.saturating_sub(stamp.len() + 1);
    let base: String = pod_name.chars().take(keep).collect();
    format!("{base}-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("web-1.snap_2").is_ok());
        assert!(validate_name(&default_name(&"x".repeat(63))).is_ok());
        assert!(validate_name(&default_name("web")).is_ok());
        for bad in ["", "-a", "a/b", "a b", &"y".repeat(64)] {
            assert!(validate_name(bad)
                .unwrap_err()
                .to_string()
                .contains(&format!("{bad:?}")));
        }
    }

    #[test]
    fn sweep_removes_abandoned_dirs_only() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(d.path()).unwrap();
        let store = SnapshotStore::new(d.path()).unwrap();
        let live = store.temp().unwrap();
        let dead = store.temp().unwrap();
        let dead_dir = dead.dir.clone();
        std::fs::write(dead_dir.join(IMAGE), b"partial").unwrap();
        dead.forget(); // as if its writer was killed: the lock is released, the dir stays
        std::fs::create_dir(store.dir().join("junk")).unwrap();
        let removed = store.sweep(&db).unwrap();
        // "junk" has no lock file and is younger than a minute: spared.
        assert_eq!(removed, vec![dead_dir.clone()]);
        assert!(live.dir.exists() && !dead_dir.exists());
        let live_dir = live.dir.clone();
        drop(live);
        assert!(
            !live_dir.exists(),
            "an uncommitted temp dir is removed on drop"
        );
    }

    #[test]
    fn temp_dirs_survive_concurrent_sweeps() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_owned();
        Db::open(&root).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sweeper = {
            let (root, done) = (root.clone(), done.clone());
            std::thread::spawn(move || {
                let db = Db::open(&root).unwrap();
                let store = SnapshotStore::new(&root).unwrap();
                let mut swept = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    swept += store.sweep(&db).unwrap().len();
                }
                swept
            })
        };
        let store = SnapshotStore::new(&root).unwrap();
        for _ in 0..300 {
            let t = store.temp().expect("a fresh temp dir despite the sweeps");
            // Ours, locked and still there: a sweep can neither lock nor remove it.
            assert!(t.dir.join(LOCK).exists(), "{}", t.dir.display());
            assert!(store.claim(&t.dir).unwrap().is_none());
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        // Whatever it removed were directories temp() had given up.
        let _ = sweeper.join().unwrap();
    }

    #[test]
    fn claim_waits_for_the_writer() {
        let d = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(d.path()).unwrap();
        let t = store.temp().unwrap();
        assert!(store.claim(&t.dir).unwrap().is_none());
        let dir = t.dir.clone();
        t.forget();
        let c = store
            .claim(&dir)
            .unwrap()
            .expect("abandoned dir can be claimed");
        drop(c);
        assert!(!dir.exists());
    }
}
