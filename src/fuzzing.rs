//! Entry points for the fuzz targets under `fuzz/` (`scripts/fuzz.sh`).
//!
//! Not an API: hidden from the docs, for the fuzz crate only, and free to
//! change with it. Each function is a thin call into the real parser or
//! reader, exactly as the front ends call it, with no behaviour of its own
//! (the modules stay private, see `lib.rs`). What a target asserts (no
//! panic, nothing written outside the root, round trips) lives in the
//! target itself.

use std::path::{Path, PathBuf};

/// Applies one uncompressed layer tarball to the directory `dest` (the
/// image unpacker, without the final syncfs). Returns the entries applied.
pub fn unpack_layer(tar: &[u8], dest: &Path) -> Result<u64, String> {
    crate::image::unpack_layer_unsynced(tar, dest, "fuzz")
        .map(|s| s.entries)
        .map_err(|e| e.to_string())
}

/// Parses an image reference; `Some(its display form)` when valid.
pub fn reference(s: &str) -> Option<String> {
    crate::image::Reference::parse(s)
        .ok()
        .map(|r| r.to_string())
}

/// Parses, merges and validates pod-spec files (`gvpod up -f A -f B`).
pub fn spec(files: &[&str]) -> Result<(), String> {
    let sources: Vec<crate::spec::Source> = files
        .iter()
        .enumerate()
        .map(|(i, text)| crate::spec::Source {
            name: format!("f{i}.yaml"),
            text: text.to_string(),
            dir: PathBuf::from("/nonexistent-gvpod-fuzz"),
        })
        .collect();
    crate::spec::load(&sources)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The `run` options parsed from single strings: `-p`, `-v`, `--memory`,
/// `--restart`, `--route`, `--log-max-size` and a network's `--subnet`.
/// Returns each parser's result, rendered.
pub fn options(s: &str) -> Vec<Result<String, String>> {
    fn show<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> Result<String, String> {
        r.map(|v| format!("{v:?}")).map_err(|e| e.to_string())
    }
    vec![
        show(crate::net::parse_port(s)),
        show(crate::bundle::parse_volume(s)),
        show(crate::bundle::parse_memory(s)),
        show(crate::bundle::parse_restart(s)),
        show(crate::bundle::parse_log_max_size(s)),
        show(crate::pod::route::parse_spec(s)),
        show(s.parse::<crate::net::Cidr>()),
    ]
}

/// `Cidr`'s display form, when `s` parses (for the round-trip check).
pub fn cidr(s: &str) -> Option<String> {
    s.parse::<crate::net::Cidr>().ok().map(|c| c.to_string())
}

/// A data root holding a snapshot store and a state DB, for
/// [`SnapshotImport::import`] (`gvpod snapshot import`).
pub struct SnapshotImport {
    store: crate::snapshot::SnapshotStore,
    db: crate::state::Db,
}

impl SnapshotImport {
    /// Opens (creating) the store and DB under `root`.
    pub fn new(root: &Path) -> Result<SnapshotImport, String> {
        Ok(SnapshotImport {
            store: crate::snapshot::SnapshotStore::new(root).map_err(|e| e.to_string())?,
            db: crate::state::Db::open(root).map_err(|e| e.to_string())?,
        })
    }

    /// Imports the archive at `path` under `name`; an imported snapshot is
    /// removed again at once, so the store does not grow.
    pub fn import(&mut self, path: &Path, name: &str) -> Result<(), String> {
        let meta = crate::snapshot::archive::import(&self.store, &mut self.db, path, Some(name))
            .map_err(|e| e.to_string())?;
        let row = self
            .store
            .lookup(&self.db, &meta.id)
            .map_err(|e| format!("imported snapshot not registered: {e}"))?;
        self.store
            .remove(&mut self.db, &row)
            .map_err(|e| format!("cannot remove the imported snapshot: {e}"))
    }
}
