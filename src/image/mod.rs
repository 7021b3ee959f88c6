//! Image store: references, OCI blobs, layer cache. (stub; see issue 2/3)

use std::path::{Path, PathBuf};

use crate::state::Db;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0:?} not found; import it with `gvpod import` or `gvpod load`")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// A resolved image, ready to build a pod's rootfs from.
#[derive(Debug, Clone)]
pub struct Image {
    /// "sha256:<hex>" digest of the image config.
    pub id: String,
    /// The normalised reference it was resolved from, or the id.
    pub reference: String,
    pub config: oci_spec::image::ImageConfiguration,
    /// Unpacked read-only layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    pub size: u64,
}

pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    pub fn new(data_root: &Path) -> Result<Self> {
        Ok(ImageStore { dir: data_root.join("images") })
    }
    pub fn resolve(&self, _db: &Db, name: &str) -> Result<Image> {
        let _ = &self.dir;
        Err(ImageError::NotFound(name.to_string()))
    }
}
