//! What the image store shows: the lines of `gvpod images` and the report
//! of `image prune`. Plain serde types, portable (the client build reads
//! them from the API, see lib.rs).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One line of `gvpod images`: one per tag, or one for an untagged image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Full normalised reference `registry/repository:tag`; `None` when untagged.
    pub reference: Option<String>,
    /// `registry/repository`; `None` when untagged.
    pub repository: Option<String>,
    pub tag: Option<String>,
    /// "sha256:<hex>" of the image config.
    pub id: String,
    /// "sha256:<hex>" of the image manifest.
    pub digest: String,
    /// RFC 3339.
    pub created: String,
    /// Unpacked bytes.
    pub size: u64,
}

/// What `gvpod image prune` removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneReport {
    /// Blob digests removed.
    pub blobs: Vec<String>,
    /// Layer-cache entries removed (chain ids).
    pub layers: Vec<String>,
    /// Temp files and dirs of interrupted operations removed.
    pub temp: Vec<PathBuf>,
    /// Bytes freed.
    pub bytes: u64,
}
