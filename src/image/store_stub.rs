//! TEMPORARY stand-in for the store branch's `ingest_blob`, `has_blob` and
//! `register_manifest` (same signatures), so the registry client compiles
//! before branch `store` is merged. Deleted by that merge; holds no store logic.

use std::io::Read;

use super::{Image, ImageError, ImageStore, Result};
use crate::state::Db;

#[allow(dead_code)]
impl ImageStore {
    /// Stub: always fails.
    pub fn ingest_blob(
        &self,
        _reader: &mut dyn Read,
        digest: &str,
        _size: Option<u64>,
    ) -> Result<()> {
        Err(ImageError::NotFound(format!(
            "{digest} (store branch not merged)"
        )))
    }

    /// Stub: the blob file exists.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_some_and(|p| p.exists())
    }

    /// Stub: always fails.
    pub fn register_manifest(
        &self,
        _db: &mut Db,
        manifest_digest: &str,
        _tag: Option<&str>,
    ) -> Result<Image> {
        Err(ImageError::NotFound(format!(
            "{manifest_digest} (store branch not merged)"
        )))
    }
}
