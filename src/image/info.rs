//! `gvpod image inspect` and `gvpod image prune`.

use super::PruneReport;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::register::{self, MAX_JSON_BLOB};
use super::{sha256_hex, ImageError, ImageStore, Reference, Result};
use crate::state::Db;

/// Everything about one image, as `gvpod image inspect` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInspect {
    /// "sha256:<hex>" of the image config.
    pub id: String,
    /// "sha256:<hex>" of the image manifest.
    pub digest: String,
    /// Tags pointing at it (normalised references), sorted.
    pub references: Vec<String>,
    /// `repository@digest` for each tagged repository and each manifest the
    /// image was registered through.
    pub repo_digests: Vec<String>,
    /// Media type of the manifest.
    pub manifest_media_type: String,
    pub created: String,
    /// Unpacked bytes.
    pub size: u64,
    pub architecture: String,
    pub os: String,
    /// The image config as stored (OCI or Docker JSON).
    pub config: serde_json::Value,
    /// Layers, lowest first.
    pub layers: Vec<LayerInspect>,
}

/// One layer of [`ImageInspect`].
#[derive(Debug, Clone, Serialize)]
pub struct LayerInspect {
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Chain id: names the cached, unpacked layer dir.
    pub chain_id: String,
    /// Digest, media type and size of the blob as stored.
    pub digest: String,
    pub media_type: String,
    pub blob_size: u64,
    /// The unpacked layer dir.
    pub path: PathBuf,
}

/// Temp files younger than this may belong to a load or pull in progress.
const PRUNE_TEMP_AGE: Duration = Duration::from_secs(3600);

impl ImageStore {
    /// Describes the image `name` designates.
    pub fn inspect(&self, db: &Db, name: &str) -> Result<ImageInspect> {
        let found = self.find(db, name)?;
        let row = &found.row;
        let corrupt = |reason: String| ImageError::CorruptRecord {
            id: row.id.clone(),
            reason,
        };
        let config: serde_json::Value = serde_json::from_str(&row.config_json)
            .map_err(|e| corrupt(format!("image config: {e}")))?;
        let parsed = register::parse_config(row.config_json.as_bytes()).map_err(corrupt)?;
        let diff_ids = parsed.rootfs().diff_ids().clone();
        let chains = register::chain_ids(&diff_ids);
        let manifest = self.read_small_blob(&row.manifest_digest, None, MAX_JSON_BLOB)?;
        let checked = register::check_manifest(&row.manifest_digest, &manifest)?;
        let media_type = serde_json::from_slice::<register::Manifest>(&manifest)
            .ok()
            .and_then(|m| m.media_type)
            .unwrap_or_else(|| register::MT_OCI_MANIFEST.to_string());
        let layers = checked
            .layers
            .iter()
            .zip(diff_ids.iter().zip(&chains))
            .map(|((desc, _), (diff_id, chain))| LayerInspect {
                diff_id: diff_id.clone(),
                chain_id: chain.clone(),
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                blob_size: desc.size,
                path: self
                    .layers_dir()
                    .join(sha256_hex(chain).unwrap_or_default()),
            })
            .collect();
        let references = db.tags_of(&row.id)?;
        let digests: Vec<String> = super::manifests_of(db, &row.id)?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let mut repo_digests: Vec<String> = references
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .flat_map(|r| digests.iter().map(move |d| format!("{}@{d}", r.name())))
            .collect();
        repo_digests.sort();
        repo_digests.dedup();
        Ok(ImageInspect {
            id: row.id.clone(),
            digest: row.manifest_digest.clone(),
            references,
            repo_digests,
            manifest_media_type: media_type,
            created: row.created.clone(),
            size: u64::try_from(row.size).unwrap_or(0),
            architecture: parsed.architecture().to_string(),
            os: parsed.os().to_string(),
            config,
            layers,
        })
    }

    /// Removes blobs and layer-cache entries no registered image uses, and
    /// temp files of interrupted operations older than an hour. A pull or
    /// load running at the same time may lose blobs it has not registered
    /// yet; it then fails naming the missing blob and can be retried.
    pub fn prune(&self, db: &Db) -> Result<PruneReport> {
        let mut rep = PruneReport::default();
        for (path, bytes) in self.collect_garbage(db, PRUNE_TEMP_AGE)? {
            rep.bytes += bytes;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if sha256_hex(&format!("sha256:{name}")).is_none() {
                rep.temp.push(path);
            } else if path.parent() == Some(self.layers_dir().as_path()) {
                rep.layers.push(format!("sha256:{name}"));
            } else {
                rep.blobs.push(format!("sha256:{name}"));
            }
        }
        Ok(rep)
    }
}
