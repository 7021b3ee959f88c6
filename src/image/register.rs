//! Registering an image whose manifest, config and layer blobs are already
//! in the blob store (after a registry pull or an archive load).
//!
//! [`ImageStore::register_manifest`] reads the manifest (OCI image manifest
//! or Docker v2 schema 2), checks every media type, reads and verifies the
//! config, then unpacks each layer that is not yet in the layer cache:
//! decompressed by media type, its uncompressed sha256 checked against the
//! config's `rootfs.diff_ids`. Cached layers are keyed by *chain id*
//! (OCI image-spec `config.md`): `ChainID(L0) = DiffID(L0)`,
//! `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`, because
//! a layer's unpacked form depends on the layers below it (see `unpack`).
//!
//! All or nothing: layers are unpacked into `layers/.tmp-*` outside the
//! store lock; under the lock they are renamed into place and the image row
//! is written in one transaction. Any failure removes the temp dirs and
//! whatever this call put in place, and registers nothing.
//!
//! A layer with parents is applied in an overlay mount of them
//! (`unpack::apply_layer`), which needs root. The unit tests run as any user
//! with a store made [`ImageStore::without_mounts`]: each layer is unpacked
//! on its own and what would have been stacked on what is recorded, so the
//! tests check the store's logic (chain ids, parents, caching, rollback)
//! and `tests/images/unpacked.rs` checks the mount, as root.

use crate::sys;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::import::rename_into_place;
use super::{
    io_err, sha256_hex, temp_name, unpack, Image, ImageError, ImageStore, Reference, Result,
    TempPath, TMP_PREFIX,
};
use crate::state::{Db, ImageRow};

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Largest manifest or config blob accepted (they are read whole).
pub const MAX_JSON_BLOB: u64 = 8 << 20;

/// The first bytes of a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The first bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type implies; `None` for a media type
    /// that is not a supported layer type.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        Some(match mt {
            MT_OCI_LAYER | MT_DOCKER_LAYER => Compression::None,
            MT_OCI_LAYER_GZIP | MT_DOCKER_LAYER_GZIP => Compression::Gzip,
            MT_OCI_LAYER_ZSTD => Compression::Zstd,
            "application/vnd.oci.image.layer.nondistributable.v1.tar" => Compression::None,
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
            _ => return None,
        })
    }

    /// The compression the first bytes of a stream show (gzip and zstd
    /// magic numbers; anything else is taken as uncompressed).
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Wraps `r` in the matching decompressor.
    pub fn reader<'a, R: Read + Send + 'a>(self, r: R) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// A content descriptor as found in manifests.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// The fields of an OCI or Docker schema 2 manifest that gvpod uses.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Option<Vec<Descriptor>>,
    /// Present in indexes and manifest lists, which are not image manifests.
    pub manifests: Option<serde_json::Value>,
}

/// Chain ids of a layer stack, lowest first (OCI image-spec `config.md`).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// A parsed, checked image manifest: config and layer descriptors with
/// their compression.
pub(crate) struct Checked {
    pub config: Descriptor,
    pub layers: Vec<(Descriptor, Compression)>,
}

/// Parses manifest JSON and checks its media types. `digest` names it in errors.
pub(crate) fn check_manifest(digest: &str, data: &[u8]) -> Result<Checked> {
    let bad = |reason: String| ImageError::InvalidManifest {
        digest: digest.to_string(),
        reason,
    };
    let m: Manifest =
        serde_json::from_slice(data).map_err(|e| bad(format!("not a manifest: {e}")))?;
    match m.media_type.as_deref() {
        Some(MT_OCI_MANIFEST | MT_DOCKER_MANIFEST) | None => {}
        Some(mt @ (MT_OCI_INDEX | MT_DOCKER_LIST)) => {
            return Err(bad(format!(
                "{mt} is an index of manifests, not an image manifest; resolve it to one platform first"
            )))
        }
        Some(other) => {
            return Err(ImageError::UnsupportedMediaType {
                digest: digest.to_string(),
                media_type: other.to_string(),
            })
        }
    }
    if m.manifests.is_some() {
        return Err(bad(
            "an index of manifests, not an image manifest; resolve it to one platform first".into(),
        ));
    }
    if m.schema_version != Some(2) {
        return Err(bad(format!(
            "schemaVersion {:?} (only schema 2 is supported)",
            m.schema_version
        )));
    }
    let config = m.config.ok_or_else(|| bad("no config descriptor".into()))?;
    if config.media_type != MT_OCI_CONFIG && config.media_type != MT_DOCKER_CONFIG {
        return Err(ImageError::UnsupportedMediaType {
            digest: config.digest,
            media_type: config.media_type,
        });
    }
    check_digest(&config.digest)?;
    let mut layers = Vec::new();
    for l in m.layers.unwrap_or_default() {
        check_digest(&l.digest)?;
        let c = Compression::from_media_type(&l.media_type).ok_or_else(|| {
            ImageError::UnsupportedMediaType {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            }
        })?;
        layers.push((l, c));
    }
    Ok(Checked { config, layers })
}

/// Parses an image config (OCI or Docker), tolerating what the spec makes
/// optional but `oci-spec` requires (`history`) and JSON nulls in `config`.
pub(crate) fn parse_config(
    data: &[u8],
) -> std::result::Result<oci_spec::image::ImageConfiguration, String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("not an image config: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| "not an image config: not a JSON object".to_string())?;
    if obj.get("history").is_none_or(|h| h.is_null()) {
        obj.insert("history".into(), serde_json::Value::Array(vec![]));
    }
    if let Some(serde_json::Value::Object(c)) = obj.get_mut("config") {
        c.retain(|_, v| !v.is_null());
    }
    if obj.get("config").is_some_and(|c| c.is_null()) {
        obj.remove("config");
    }
    serde_json::from_value(v).map_err(|e| format!("not an image config: {e}"))
}

fn check_digest(d: &str) -> Result<()> {
    sha256_hex(d)
        .map(|_| ())
        .ok_or_else(|| ImageError::InvalidDigest(d.to_string()))
}

/// Reads through to a sha256 and a byte count.
struct HashReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A layer application a store made [`ImageStore::without_mounts`] was
/// asked for (unit tests).
#[cfg(test)]
#[derive(Debug, Clone)]
pub(super) struct Applied {
    /// The layer's name in messages: `<blob> (layer N of image <manifest>)`.
    pub layer: String,
    /// Where it was unpacked (the upper dir of the mount).
    pub dest: PathBuf,
    /// The parent layer dirs it would have been stacked on, lowest first.
    pub parents: Vec<PathBuf>,
}

/// The applications recorded by a store made [`ImageStore::without_mounts`].
#[cfg(test)]
pub(super) type AppliedLog = std::sync::Arc<std::sync::Mutex<Vec<Applied>>>;

/// The layer itself inside a layer temp dir (the rest is overlay scratch space).
const UPPER: &str = "upper";

/// A layer this call unpacked, waiting to be moved into place.
struct Unpacked {
    tmp: TempPath,
    hex: String,
}

impl ImageStore {
    /// Registers an image whose manifest (OCI image manifest or Docker v2
    /// schema 2 manifest JSON), config and layer blobs are all already in
    /// the blob store: verifies media types, decompresses each layer by media
    /// type (tar, tar+gzip, tar+zstd; Docker's
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip` too), checks each
    /// layer's uncompressed sha256 against the config's `rootfs.diff_ids`,
    /// unpacks it securely into the layer cache (skipped when already
    /// cached), and records the image with `tag` (a normalised reference
    /// string, or None). Everything or nothing: on any failure nothing is
    /// registered and partial files are removed.
    pub fn register_manifest(
        &self,
        db: &mut Db,
        manifest_digest: &str,
        tag: Option<&str>,
    ) -> Result<Image> {
        let tag = tag
            .map(|t| Reference::parse_tag(t, "a tag cannot carry a digest"))
            .transpose()?;
        let manifest = self.read_small_blob(manifest_digest, None, MAX_JSON_BLOB)?;
        let checked = check_manifest(manifest_digest, &manifest)?;
        let config_json = self.read_small_blob(
            &checked.config.digest,
            Some(checked.config.size),
            MAX_JSON_BLOB,
        )?;
        let config = parse_config(&config_json).map_err(|reason| ImageError::InvalidManifest {
            digest: checked.config.digest.clone(),
            reason,
        })?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if config.rootfs().typ() != "layers" {
            return Err(ImageError::InvalidManifest {
                digest: checked.config.digest.clone(),
                reason: format!(
                    "rootfs type {:?} (expected \"layers\")",
                    config.rootfs().typ()
                ),
            });
        }
        if diff_ids.len() != checked.layers.len() {
            return Err(ImageError::InvalidManifest {
                digest: manifest_digest.to_string(),
                reason: format!(
                    "{} layers but the config lists {} diff ids",
                    checked.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        for d in &diff_ids {
            check_digest(d)?;
        }
        for (l, _) in &checked.layers {
            if !self.has_blob(&l.digest) {
                return Err(ImageError::BlobMissing(l.digest.clone()));
            }
        }
        let chains = chain_ids(&diff_ids);
        let layers_dir = self.layers_dir();
        let chain_dirs: Vec<PathBuf> = chains
            .iter()
            .map(|c| layers_dir.join(sha256_hex(c).unwrap_or_default()))
            .collect();

        // A cached layer may be removed (rmi, gc) between our check and the
        // lock: then unpack again. Bounded, since each retry follows a removal.
        for _attempt in 0..8 {
            let mut unpacked: Vec<Unpacked> = Vec::new();
            // Cached layers used, with the identity of their dir: layer dirs
            // are immutable and only ever removed after being renamed away,
            // so the same inode at the same path later means untouched.
            let mut cached: Vec<(PathBuf, (u64, u64))> = Vec::new();
            let mut size = 0u64;
            for (i, (desc, compression)) in checked.layers.iter().enumerate() {
                let dir = &chain_dirs[i];
                if let Some(id) = dir_identity(dir)? {
                    size += dir_content_size(dir);
                    cached.push((dir.clone(), id));
                    continue;
                }
                let parents: Vec<PathBuf> = chain_dirs[..i]
                    .iter()
                    .enumerate()
                    .map(|(j, d)| {
                        unpacked
                            .iter()
                            .find(|u| Some(u.hex.as_str()) == sha256_hex(&chains[j]))
                            .map(|u| u.tmp.path.join(UPPER))
                            .unwrap_or_else(|| d.clone())
                    })
                    .collect();
                let name = format!(
                    "{} (layer {} of image {})",
                    desc.digest,
                    i + 1,
                    manifest_digest
                );
                let tmp =
                    self.unpack_layer_blob(desc, *compression, &diff_ids[i], &parents, &name)?;
                size += dir_content_size(&tmp.path.join(UPPER));
                unpacked.push(Unpacked {
                    tmp,
                    hex: sha256_hex(&chains[i]).unwrap_or_default().to_string(),
                });
            }
            let lock = self.lock()?;
            // Every cached layer we used (directly or as a parent of what we
            // unpacked) must still be the same dir.
            let mut cached_ok = true;
            for (dir, id) in &cached {
                cached_ok &= dir_identity(dir)? == Some(*id);
            }
            if !cached_ok {
                drop(lock);
                continue;
            }
            let mut created: Vec<PathBuf> = Vec::new();
            let res = (|| -> Result<ImageRow> {
                for u in &unpacked {
                    let dest = layers_dir.join(&u.hex);
                    // Else another process put the same layer in place first.
                    if rename_into_place(&u.tmp.path.join(UPPER), &dest)? {
                        created.push(dest);
                    }
                }
                if !created.is_empty() {
                    self.sync_dir(&layers_dir)?;
                }
                // Layers in the cache, the image not recorded: a retry reuses them.
                crate::failpoint::hit("register:placed");
                let row = ImageRow {
                    id: checked.config.digest.clone(),
                    manifest_digest: manifest_digest.to_string(),
                    config_json: String::from_utf8(config_json.clone()).map_err(|e| {
                        ImageError::InvalidManifest {
                            digest: checked.config.digest.clone(),
                            reason: format!("not UTF-8: {e}"),
                        }
                    })?,
                    layers_json: serde_json::to_string(&diff_ids).map_err(|e| {
                        ImageError::Encode {
                            what: "layer list",
                            image: checked.config.digest.clone(),
                            reason: e.to_string(),
                        }
                    })?,
                    blobs_json: serde_json::to_string(
                        &checked
                            .layers
                            .iter()
                            .map(|(d, _)| d.digest.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or_else(|_| "[]".into()),
                    size: i64::try_from(size).unwrap_or(i64::MAX),
                    created: config
                        .created()
                        .clone()
                        .filter(|c| chrono::DateTime::parse_from_rfc3339(c).is_ok())
                        .unwrap_or_else(crate::util::now_rfc3339),
                };
                db.put_image(&row, tag.as_deref())?;
                Ok(row)
            })();
            if res.is_err() {
                for p in created.iter().rev() {
                    if let Err(e) = sys::remove_path(p) {
                        tracing::warn!(path = %p.display(), error = %e, "cannot roll back layer");
                    }
                }
            }
            drop(lock);
            let row = res?;
            let image_row = db.image(&row.id)?.unwrap_or(row);
            let mut img =
                self.image_from_row(&image_row, tag.unwrap_or_else(|| image_row.id.clone()))?;
            // The image may have been registered before through another manifest.
            img.digest = manifest_digest.to_string();
            return Ok(img);
        }
        Err(ImageError::Busy(format!(
            "layers of image {manifest_digest} kept being removed while it was registered; try again"
        )))
    }

    /// Unpacks one layer blob on top of `parents` (lowest first) into
    /// `<tmp>/upper` of a fresh `layers/.tmp-*` directory, verifying its diff
    /// id. Returns the temp dir.
    fn unpack_layer_blob(
        &self,
        desc: &Descriptor,
        compression: Compression,
        diff_id: &str,
        parents: &[PathBuf],
        name: &str,
    ) -> Result<TempPath> {
        let blob = self.open_blob(&desc.digest, Some(desc.size))?;
        let tmp = self.new_layer_tmp()?;
        let dest = tmp.path.join(UPPER);
        std::fs::create_dir(&dest).map_err(io_err(&dest))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(&dest))?;
        let corrupt = |source: io::Error| ImageError::CorruptArchive {
            what: format!("layer {name}"),
            source,
        };
        let reader = compression
            .reader(BufReader::with_capacity(1 << 20, blob))
            .map_err(corrupt)?;
        let mut hr = HashReader {
            inner: reader,
            hasher: Sha256::new(),
        };
        self.apply_layer(&mut hr, &dest, parents, &tmp.path, name)?;
        io::copy(&mut hr, &mut io::sink()).map_err(corrupt)?;
        let actual = format!("sha256:{}", hex::encode(hr.hasher.finalize()));
        if actual != diff_id {
            return Err(ImageError::BlobMismatch {
                digest: desc.digest.clone(),
                what: "uncompressed digest (diff id)",
                expected: diff_id.to_string(),
                actual,
            });
        }
        Ok(tmp)
    }

    /// [`unpack::apply_layer`], except in a store made
    /// [`ImageStore::without_mounts`] (unit tests): there the layer is
    /// unpacked on its own and the application recorded.
    fn apply_layer<R: Read + Send>(
        &self,
        reader: R,
        dest: &Path,
        parents: &[PathBuf],
        scratch: &Path,
        name: &str,
    ) -> Result<unpack::UnpackStats> {
        #[cfg(test)]
        if let Some(log) = &self.unmounted {
            log.lock().unwrap().push(Applied {
                layer: name.to_string(),
                dest: dest.to_path_buf(),
                parents: parents.to_vec(),
            });
            return unpack::unpack_layer(reader, dest, name);
        }
        unpack::apply_layer(reader, dest, parents, scratch, name)
    }

    /// This store, with layers applied without the overlay mount (which
    /// needs root) and each application recorded in the returned log: for
    /// unit tests of the store's logic. A layer is then unpacked as if it
    /// had no parents, so its dir is not what the mount would give.
    #[cfg(test)]
    pub(super) fn without_mounts(mut self) -> (ImageStore, AppliedLog) {
        let log = AppliedLog::default();
        self.unmounted = Some(log.clone());
        (self, log)
    }

    /// A fresh, empty `layers/.tmp-*` directory (mode 0755), removed on drop.
    pub(super) fn new_layer_tmp(&self) -> Result<TempPath> {
        use std::os::unix::fs::DirBuilderExt;
        let tmp = TempPath::new(self.layers_dir().join(temp_name(TMP_PREFIX)));
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp.path)
            .map_err(io_err(&tmp.path))?;
        std::fs::set_permissions(&tmp.path, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(&tmp.path))?;
        Ok(tmp)
    }
}

/// Device and inode of the directory at `p`, `None` if absent.
fn dir_identity(p: &Path) -> Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(p)(e)),
    }
}

/// Bytes of regular-file content under `dir`, each inode counted once,
/// no symlink followed; 0 for what cannot be read. This is an image's
/// "size": the sum over its layer dirs.
pub(crate) fn dir_content_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => n += walk(&e.path(), seen),
                Ok(t) if t.is_file() => {
                    if let Ok(m) = e.metadata() {
                        if m.nlink() < 2 || seen.insert((m.dev(), m.ino())) {
                            n += m.len();
                        }
                    }
                }
                _ => {}
            }
        }
        n
    }
    walk(dir, &mut std::collections::HashSet::new())
}
