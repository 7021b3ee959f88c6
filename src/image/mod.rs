//! Image store: references, OCI blobs, the unpacked-layer cache.
//!
//! On-disk layout under `<data_root>/images/` (mode 0700):
//!
//! ```text
//! oci-layout                 {"imageLayoutVersion":"1.0.0"}
//! lock                       flock(2) serialising registration and removal
//! blobs/sha256/<hex>         content-addressed blobs: layer tars (as pulled or
//!                            loaded: plain, gzip or zstd; imports store them
//!                            uncompressed), image configs, manifests
//! blobs/sha256/.tmp-<pid>-<rand>   a blob being written (temp file, fsync, rename)
//! layers/<chain-id hex>/     one unpacked, read-only layer per chain id: the
//!                            layer applied on top of its parents, in overlayfs
//!                            upper-dir form (see `unpack`); shared by every
//!                            image and pod using the same layer stack
//! layers/.tmp-<pid>-<rand>/       a layer being unpacked (`upper/` is renamed into
//!                            place when done; the rest is overlay scratch)
//! layers/.rm-<rand>/         a layer being removed
//! ```
//!
//! The chain id of a bottom layer is its diff id, so one-layer images keep
//! `layers/<diff-id hex>`. The state database is the index: an image row
//! (id = `sha256:<config digest>`, manifest digest, diff ids lowest first —
//! from which the chain ids and so the layer dirs follow —, layer blob
//! digests, unpacked size) plus tags (`registry/repository:tag`). There is
//! no `index.json`.
//!
//! Concurrency: unpacking happens outside any lock into a private temp dir;
//! moving a layer into place, writing blobs, registering the image and
//! removing images all happen under the store's exclusive `flock`, so a
//! removal never deletes a layer that an import is about to register.

mod archive;
mod blob;
mod changes;
mod commit;
mod gc;
mod import;
mod info;
mod reference;
mod register;
pub mod registry;
#[cfg(test)]
mod test_tar;
mod unpack;
mod views;

pub use archive::ArchiveFormat;
pub use reference::Reference;
pub use unpack::unpack_layer_unsynced;
pub use views::{ImageSummary, PruneReport};

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::state::{Db, ImageRow, StateError};
use crate::sys;

/// Errors of the image store, each naming the image, reference, layer or path involved.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0:?} not found; import it with `gvpod import` or `gvpod load`")]
    NotFound(String),
    #[error(
        "invalid image reference {value:?}: {reason}; expected [registry[:port]/]name[:tag][@sha256:<64 hex>]"
    )]
    InvalidReference { value: String, reason: String },
    #[error("invalid image id {0:?}: expected sha256: followed by 4 to 64 lower-case hex digits")]
    InvalidId(String),
    #[error("invalid change {change:?}: {reason}")]
    InvalidChange { change: String, reason: String },
    #[error("image id prefix {prefix:?} is ambiguous: it matches {count} images")]
    AmbiguousId { prefix: String, count: usize },
    #[error("image {id} has several tags ({}); remove them one by one", tags.join(", "))]
    MultipleTags { id: String, tags: Vec<String> },
    #[error(
        "layer {layer} of image {image} is missing ({}); remove the image and import it again",
        path.display()
    )]
    LayerMissing {
        image: String,
        layer: String,
        path: PathBuf,
    },
    #[error("{what}: corrupt or truncated archive: {source}")]
    CorruptArchive {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("tarball {source_name}: {format} compression is not supported; use a plain, gzip or zstd tarball")]
    UnsupportedCompression {
        source_name: String,
        format: &'static str,
    },
    #[error("layer {layer}: entry {entry:?} rejected: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}: entry {entry:?}: {action}: {source}")]
    LayerEntry {
        layer: String,
        entry: String,
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image {id} has a corrupt record in the state database: {reason}")]
    CorruptRecord { id: String, reason: String },
    #[error("cannot encode the {what} of image {image}: {reason}")]
    Encode {
        what: &'static str,
        image: String,
        reason: String,
    },
    #[error("invalid digest {0:?}: expected sha256: followed by 64 lower-case hex digits")]
    InvalidDigest(String),
    #[error("blob {digest}: {what} mismatch: expected {expected}, got {actual}")]
    BlobMismatch {
        digest: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("blob {digest}: read failed: {source}")]
    BlobRead {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("blob {0} is not in the image store")]
    BlobMissing(String),
    #[error("manifest or config {digest}: {reason}")]
    InvalidManifest { digest: String, reason: String },
    #[error("{digest}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { digest: String, media_type: String },
    #[error("{0}")]
    Busy(String),
    #[error("{source_name}: not an image archive or layout: {reason}")]
    InvalidArchive { source_name: String, reason: String },
    #[error("invalid {what} {value:?}: {reason}")]
    BadInput {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

impl ImageError {
    /// See [`crate::error::Kind`]: names and inputs the user got wrong, or
    /// an image that does not exist; everything else is the store's failure.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            ImageError::NotFound(_) => Kind::NotFound,
            ImageError::InvalidReference { .. }
            | ImageError::InvalidId(_)
            | ImageError::InvalidChange { .. }
            | ImageError::AmbiguousId { .. }
            | ImageError::InvalidDigest(_)
            | ImageError::InvalidArchive { .. }
            | ImageError::BadInput { .. } => Kind::User,
            ImageError::MultipleTags { .. } => Kind::Conflict,
            ImageError::State(e) => e.kind(),
            _ => Kind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, ImageError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A resolved image, ready to build a pod's rootfs from.
#[derive(Debug, Clone)]
pub struct Image {
    /// "sha256:<hex>" digest of the image config.
    pub id: String,
    /// "sha256:<hex>" digest of its manifest.
    pub digest: String,
    /// The normalised reference it was resolved from, or the id.
    pub reference: String,
    pub config: oci_spec::image::ImageConfiguration,
    /// Unpacked read-only layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// Unpacked size in bytes.
    #[allow(dead_code)] // only the unit tests read it; `gvpod images` shows the row's size
    pub size: u64,
}

/// The image store under `<data_root>/images`.
pub struct ImageStore {
    dir: PathBuf,
    /// Unit tests only: when set, layers are applied without the overlay
    /// mount and each application is recorded here
    /// ([`ImageStore::without_mounts`]).
    #[cfg(test)]
    unmounted: Option<register::AppliedLog>,
}

/// Holds the store's exclusive lock until dropped.
struct StoreLock {
    _file: File,
}

/// A temp file or directory removed on drop unless kept.
struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    fn new(path: PathBuf) -> Self {
        TempPath { path, armed: true }
    }
    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = sys::remove_path(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temporary file");
            }
        }
    }
}

/// The store's temp names: a recognisable prefix plus randomness.
/// `<prefix><pid>-<rand>`: the pid lets gc remove a killed writer's temp
/// files at once ([`crate::util::temp_owner_gone`]).
fn temp_name(prefix: &str) -> String {
    crate::util::owned_temp_name(prefix)
}

const TMP_PREFIX: &str = ".tmp-";
const RM_PREFIX: &str = ".rm-";

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:<64 hex>` → `<64 hex>`.
fn sha256_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && is_hex(h))
}

/// The layer dirs (chain id hexes) and blobs (hexes: manifest, config,
/// layer blobs) an image row references.
fn row_files(row: &ImageRow) -> Result<(Vec<String>, Vec<String>)> {
    let corrupt = |reason: String| ImageError::CorruptRecord {
        id: row.id.clone(),
        reason,
    };
    let diff_ids: Vec<String> =
        serde_json::from_str(&row.layers_json).map_err(|e| corrupt(format!("layer list: {e}")))?;
    let mut layer_blobs: Vec<String> =
        serde_json::from_str(&row.blobs_json).map_err(|e| corrupt(format!("blob list: {e}")))?;
    if layer_blobs.is_empty() {
        // Rows from before migration 2: layer blobs are the uncompressed tars.
        layer_blobs = diff_ids.clone();
    }
    let layers = register::chain_ids(&diff_ids)
        .iter()
        .filter_map(|c| sha256_hex(c).map(str::to_string))
        .collect();
    let blobs = layer_blobs
        .iter()
        .chain([&row.id, &row.manifest_digest])
        .filter_map(|d| sha256_hex(d).map(str::to_string))
        .collect();
    Ok((layers, blobs))
}

/// The blob hexes of one manifest row: the manifest and its layer blobs.
fn manifest_files(digest: &str, blobs_json: &str) -> Vec<String> {
    let layer_blobs: Vec<String> = serde_json::from_str(blobs_json).unwrap_or_default();
    layer_blobs
        .iter()
        .map(String::as_str)
        .chain([digest])
        .filter_map(|d| sha256_hex(d).map(str::to_string))
        .collect()
}

/// The manifests (digest, layer blobs JSON) an image was registered through.
fn manifests_of(db: &Db, image_id: &str) -> Result<Vec<(String, String)>> {
    Ok(db
        .manifests()?
        .into_iter()
        .filter(|(_, id, _)| id == image_id)
        .map(|(d, _, b)| (d, b))
        .collect())
}

/// What a name resolved to.
struct Found {
    row: ImageRow,
    /// The normalised reference, or the id.
    reference: String,
    /// The tag the name matched, if it was a tag.
    tag: Option<String>,
}

impl ImageStore {
    /// Opens the store under `<data_root>/images`, creating its layout if needed.
    pub fn new(data_root: &Path) -> Result<Self> {
        let store = ImageStore {
            dir: data_root.join("images"),
            #[cfg(test)]
            unmounted: None,
        };
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        for d in [store.dir.clone(), store.blobs_dir(), store.layers_dir()] {
            b.create(&d).map_err(io_err(&d))?;
        }
        let layout = store.dir.join("oci-layout");
        if !layout.exists() {
            crate::util::write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(io_err(&layout))?;
        }
        Ok(store)
    }

    /// `<data_root>/images`.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blobs_dir(&self) -> PathBuf {
        self.dir.join("blobs").join("sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.dir.join("layers")
    }

    /// The directory of the unpacked layer with chain id `sha256:<hex>`
    /// (whether or not it exists); `None` for a malformed chain id. For a
    /// bottom layer the chain id is its diff id.
    pub fn layer_dir(&self, chain_id: &str) -> Option<PathBuf> {
        sha256_hex(chain_id).map(|h| self.layers_dir().join(h))
    }

    /// The path of the blob `sha256:<hex>`; `None` for a malformed digest.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        sha256_hex(digest).map(|h| self.blobs_dir().join(h))
    }

    /// Takes the store's exclusive lock (blocks until free).
    fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        sys::flock_exclusive(file.as_fd()).map_err(io_err(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// Writes `data` as a content-addressed blob (temp file, fsync, rename)
    /// unless it is already there. Returns the digest and whether it was created.
    fn put_blob(&self, data: &[u8]) -> Result<(String, bool)> {
        use sha2::Digest;
        let hex = hex::encode(sha2::Sha256::digest(data));
        let path = self.blobs_dir().join(&hex);
        if path.exists() {
            return Ok((format!("sha256:{hex}"), false));
        }
        crate::util::write_atomic(&path, data).map_err(io_err(&path))?;
        self.sync_dir(&self.blobs_dir())?;
        Ok((format!("sha256:{hex}"), true))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let fd = sys::open_dir(dir).map_err(io_err(dir))?;
        sys::fsync(fd.as_fd()).map_err(io_err(dir))
    }

    /// Removes a layer directory: renamed away first (so it vanishes at
    /// once), then deleted without following symlinks.
    fn remove_layer_dir(&self, hex: &str) -> Result<()> {
        let layers = self.layers_dir();
        let fd = sys::open_dir(&layers).map_err(io_err(&layers))?;
        let doomed = temp_name(RM_PREFIX);
        match sys::rename_noreplace(fd.as_fd(), hex.as_ref(), fd.as_fd(), doomed.as_ref()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(io_err(&layers.join(hex))(e)),
        }
        sys::remove_tree_at(fd.as_fd(), doomed.as_ref()).map_err(io_err(&layers.join(&doomed)))
    }

    /// Finds what `name` designates: a reference (tag, or digest), a full
    /// image id, or an id prefix of at least 4 hex digits (with or without
    /// `sha256:`). A name that is both a valid repository and hex is tried as
    /// a tag first, as Docker does.
    fn find(&self, db: &Db, name: &str) -> Result<Found> {
        let name = name.trim();
        if let Some(hex) = name.strip_prefix("sha256:") {
            if !(4..=64).contains(&hex.len()) || !is_hex(hex) {
                return Err(ImageError::InvalidId(name.to_string()));
            }
            return self.by_id(db, name, hex);
        }
        let parsed = Reference::parse(name);
        if let Ok(r) = &parsed {
            if let Some(d) = &r.digest {
                let row = match db.image_by_manifest(d)? {
                    Some(row) => Some(row),
                    None => db.images()?.into_iter().find(|row| &row.id == d),
                };
                if let Some(row) = row {
                    return Ok(Found {
                        row,
                        reference: r.to_string(),
                        tag: None,
                    });
                }
            } else if let Some(key) = r.tagged() {
                if let Some(t) = db.tag(&key)? {
                    let row = db
                        .image(&t.image_id)?
                        .ok_or_else(|| ImageError::CorruptRecord {
                            id: t.image_id.clone(),
                            reason: format!("tag {key} points at a missing image"),
                        })?;
                    return Ok(Found {
                        row,
                        reference: key.clone(),
                        tag: Some(key),
                    });
                }
            }
        }
        if name.len() >= 4 && name.len() <= 64 && is_hex(name) {
            return self.by_id(db, name, name);
        }
        match parsed {
            Err(e) => Err(e),
            Ok(_) => Err(ImageError::NotFound(name.to_string())),
        }
    }

    fn by_id(&self, db: &Db, shown: &str, hex: &str) -> Result<Found> {
        let mut rows = db.images_by_id_prefix(&format!("sha256:{hex}"))?;
        match rows.len() {
            0 => Err(ImageError::NotFound(shown.to_string())),
            1 => {
                let row = rows.remove(0);
                Ok(Found {
                    reference: row.id.clone(),
                    row,
                    tag: None,
                })
            }
            count => Err(ImageError::AmbiguousId {
                prefix: shown.to_string(),
                count,
            }),
        }
    }

    fn image_from_row(&self, row: &ImageRow, reference: String) -> Result<Image> {
        let corrupt = |reason: String| ImageError::CorruptRecord {
            id: row.id.clone(),
            reason,
        };
        let config = register::parse_config(row.config_json.as_bytes())
            .map_err(|e| corrupt(format!("image config: {e}")))?;
        let diff_ids: Vec<String> = serde_json::from_str(&row.layers_json)
            .map_err(|e| corrupt(format!("layer list: {e}")))?;
        if let Some(d) = diff_ids.iter().find(|d| sha256_hex(d).is_none()) {
            return Err(corrupt(format!("malformed diff id {d:?}")));
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for d in register::chain_ids(&diff_ids) {
            let path = self
                .layer_dir(&d)
                .ok_or_else(|| corrupt(format!("malformed chain id {d:?}")))?;
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => layers.push(path),
                _ => {
                    return Err(ImageError::LayerMissing {
                        image: row.id.clone(),
                        layer: d,
                        path,
                    })
                }
            }
        }
        Ok(Image {
            id: row.id.clone(),
            digest: row.manifest_digest.clone(),
            reference,
            config,
            layers,
            size: u64::try_from(row.size).unwrap_or(0),
        })
    }

    /// Resolves `name` (reference, id or id prefix) to a registered image
    /// whose layers are all present.
    pub fn resolve(&self, db: &Db, name: &str) -> Result<Image> {
        let found = self.find(db, name)?;
        self.image_from_row(&found.row, found.reference)
    }

    /// All images, newest first: one summary per tag, one for an untagged image.
    pub fn list(&self, db: &Db) -> Result<Vec<ImageSummary>> {
        let mut tags: HashMap<String, Vec<String>> = HashMap::new();
        for t in db.tags()? {
            tags.entry(t.image_id).or_default().push(t.name);
        }
        let mut out = Vec::new();
        for row in db.images()? {
            let size = u64::try_from(row.size).unwrap_or(0);
            let Some(names) = tags.remove(&row.id) else {
                out.push(ImageSummary {
                    reference: None,
                    repository: None,
                    tag: None,
                    digest: row.manifest_digest,
                    id: row.id,
                    created: row.created,
                    size,
                });
                continue;
            };
            for name in names {
                let (repository, tag) = match Reference::parse(&name) {
                    Ok(r) => (r.name(), r.tag),
                    Err(_) => (name.clone(), None),
                };
                out.push(ImageSummary {
                    reference: Some(name),
                    repository: Some(repository),
                    tag,
                    id: row.id.clone(),
                    digest: row.manifest_digest.clone(),
                    created: row.created.clone(),
                    size,
                });
            }
        }
        Ok(out)
    }

    /// Points the reference `target` at the image `source` designates.
    /// Returns the normalised target.
    pub fn tag(&self, db: &mut Db, source: &str, target: &str) -> Result<String> {
        let key = Reference::parse_tag(target, "a tag cannot carry a digest")?;
        let _lock = self.lock()?;
        let found = self.find(db, source)?;
        db.put_image(&found.row, Some(&key))?;
        Ok(key)
    }

    /// Removes `name`. A tag is untagged; when the image has no tag left (or
    /// was named by id and had at most one tag), the image row, its config
    /// and manifest blobs, and the layers no other image uses are deleted.
    /// An image with several tags cannot be removed by id.
    ///
    /// Returns podman-style lines: `Untagged: <reference>`, `Deleted: <id>`.
    /// The caller checks that no pod uses the image. If deleting files fails
    /// after the row is gone, the error is returned and [`ImageStore::gc`]
    /// removes what is left.
    /// Whether [`ImageStore::remove`] of `name` would delete the image
    /// itself (its last tag, or its id), not just untag one of its names.
    pub fn remove_deletes(&self, db: &Db, name: &str) -> Result<bool> {
        let found = self.find(db, name)?;
        Ok(db.tags_of(&found.row.id)?.len() <= 1)
    }

    pub fn remove(&self, db: &mut Db, name: &str) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let found = self.find(db, name)?;
        let id = found.row.id.clone();
        let untag = match found.tag {
            Some(t) => Some(t),
            None => {
                let mut tags = db.tags_of(&id)?;
                match tags.len() {
                    0 => None,
                    1 => tags.pop(),
                    _ => return Err(ImageError::MultipleTags { id, tags }),
                }
            }
        };
        let manifests = manifests_of(db, &id)?;
        let deleted = db.untag_image(untag.as_deref(), &id)?;
        let mut out = Vec::new();
        if let Some(t) = untag {
            out.push(format!("Untagged: {t}"));
        }
        if deleted {
            self.remove_unused_files(db, &found.row, &manifests)?;
            out.push(format!("Deleted: {id}"));
        }
        Ok(out)
    }

    /// Deletes the blobs and layer dirs of a just-unregistered image that no
    /// remaining image references. Caller holds the lock.
    /// `manifests` are the image's manifests (digest, layer blobs JSON) as
    /// they were before its row went.
    fn remove_unused_files(
        &self,
        db: &Db,
        row: &ImageRow,
        manifests: &[(String, String)],
    ) -> Result<()> {
        let (used_layers, used_blobs) = self.referenced(db)?;
        let (layers, mut blobs) = row_files(row).unwrap_or_default();
        for (digest, blobs_json) in manifests {
            blobs.extend(manifest_files(digest, blobs_json));
        }
        let mut first_err = None;
        let mut note = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot remove image file");
                first_err.get_or_insert(e);
            }
        };
        for hex in &layers {
            if !used_layers.contains(hex) {
                note(self.remove_layer_dir(hex));
            }
        }
        for hex in &blobs {
            if !used_blobs.contains(hex) {
                let p = self.blobs_dir().join(hex);
                note(sys::remove_path(&p).map_err(io_err(&p)));
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
