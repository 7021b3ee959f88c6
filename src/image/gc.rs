//! Garbage in the store: what no registered image references.
//!
//! Invariants: collection runs under the store's exclusive lock, so it never
//! removes a layer or blob that an import or load is registering; temp
//! entries (`.tmp-<pid>-*`) younger than the given age are kept while
//! their writer lives (they may belong to an import in progress, which
//! holds no lock while it unpacks) and go at once when it is gone, and
//! `.rm-*` leftovers of interrupted removals always go; trees are removed
//! without following symlinks (`sys::remove_path`). `gvpod image prune`
//! ([`ImageStore::prune`]) and a load's rollback use it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{io_err, manifest_files, row_files, ImageStore, Result, RM_PREFIX, TMP_PREFIX};
use crate::state::Db;
use crate::sys;

impl ImageStore {
    /// Layer hexes (chain ids) and blob hexes referenced by registered images.
    pub(super) fn referenced(&self, db: &Db) -> Result<(HashSet<String>, HashSet<String>)> {
        let mut layers = HashSet::new();
        let mut blobs = HashSet::new();
        for row in db.images()? {
            let (l, b) = row_files(&row)?;
            layers.extend(l);
            blobs.extend(b);
        }
        for (digest, _, blobs_json) in db.manifests()? {
            blobs.extend(manifest_files(&digest, &blobs_json));
        }
        Ok((layers, blobs))
    }

    /// Garbage collection: removes layer dirs and blobs no registered image
    /// references, leftovers of interrupted removals, and temp files older
    /// than `min_temp_age` (younger ones may belong to an import in
    /// progress). Returns what was removed. `gvpod image prune` runs the
    /// same collection ([`ImageStore::prune`]); this form is the unit tests'.
    #[cfg(test)]
    pub fn gc(&self, db: &Db, min_temp_age: Duration) -> Result<Vec<PathBuf>> {
        Ok(self
            .collect_garbage(db, min_temp_age)?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// [`ImageStore::gc`], with the bytes each removed path held.
    pub(super) fn collect_garbage(
        &self,
        db: &Db,
        min_temp_age: Duration,
    ) -> Result<Vec<(PathBuf, u64)>> {
        let _lock = self.lock()?;
        let (used_layers, used_blobs) = self.referenced(db)?;
        let mut removed = Vec::new();
        let now = SystemTime::now();
        for (dir, used) in [
            (self.layers_dir(), &used_layers),
            (self.blobs_dir(), &used_blobs),
        ] {
            let rd = std::fs::read_dir(&dir).map_err(io_err(&dir))?;
            for e in rd {
                let e = e.map_err(io_err(&dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                let stale = if name.starts_with(TMP_PREFIX) {
                    let age = std::fs::symlink_metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| now.duration_since(m).ok())
                        .unwrap_or_default();
                    age >= min_temp_age || crate::util::temp_owner_gone(&name, TMP_PREFIX)
                } else {
                    name.starts_with(RM_PREFIX) || !used.contains(&name)
                };
                if stale {
                    let bytes = disk_usage(&path);
                    sys::remove_path(&path).map_err(io_err(&path))?;
                    removed.push((path, bytes));
                }
            }
        }
        Ok(removed)
    }
}

impl ImageStore {
    /// Temp files and directories of writers that were killed (their pid
    /// is gone), removed without the store's lock: no live process can
    /// use them. Registered blobs and layers are not touched (unused
    /// ones are cache, for `image prune`). `system gc` runs this.
    pub fn sweep_dead_temps(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for dir in [self.layers_dir(), self.blobs_dir()] {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if crate::util::temp_owner_gone(&name, TMP_PREFIX)
                    || crate::util::temp_owner_gone(&name, RM_PREFIX)
                {
                    let path = e.path();
                    sys::remove_path(&path).map_err(io_err(&path))?;
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }
}

/// Bytes of the files at or below `path`, symlinks not followed.
fn disk_usage(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}
