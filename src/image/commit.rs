//! `gvpod commit`: register a new image made of an existing image plus one
//! layer (a pod's filesystem changes as an OCI layer tarball).
//!
//! Like `import`: the layer is stored uncompressed as a blob (its digest is
//! its diff id), unpacked once into the layer cache with the secure
//! unpacker (OCI whiteouts become overlay whiteouts), and the config and
//! manifest are the base image's with the layer appended. Blobs and layer
//! are moved into place and the image registered under the store lock; a
//! failure removes what this call created and registers nothing.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::image::{
    DescriptorBuilder, Digest as OciDigest, HistoryBuilder, ImageManifest, ImageManifestBuilder,
    MediaType,
};
use sha2::{Digest, Sha256};

use super::{
    io_err, sys, temp_name, unpack, Image, ImageError, ImageStore, Reference, Result, TempPath,
    TMP_PREFIX,
};
use crate::state::{Db, ImageRow};

fn encode(e: impl std::fmt::Display) -> ImageError {
    ImageError::Encode {
        what: "committed image",
        image: "being committed".into(),
        reason: e.to_string(),
    }
}

impl ImageStore {
    /// Registers `base` plus the uncompressed layer tarball read from
    /// `layer` as a new image tagged `reference`; `created_by` goes into
    /// its history.
    pub fn commit_layer(
        &self,
        db: &mut Db,
        base: &Image,
        layer: &mut dyn Read,
        reference: &str,
        created_by: &str,
    ) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let tag = r.tagged().filter(|_| r.digest.is_none()).ok_or_else(|| {
            ImageError::InvalidReference {
                value: reference.to_string(),
                reason: "a committed image gets a tag, not a digest".into(),
            }
        })?;
        let base_row = db
            .image(&base.id)?
            .ok_or_else(|| ImageError::NotFound(base.id.clone()))?;

        // The layer blob, hashed while written.
        let tmp_blob = TempPath::new(self.blobs_dir().join(temp_name(TMP_PREFIX)));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_blob.path)
            .map_err(io_err(&tmp_blob.path))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = layer.read(&mut buf).map_err(io_err(&tmp_blob.path))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            w.write_all(&buf[..n]).map_err(io_err(&tmp_blob.path))?;
            size += n as u64;
        }
        let f = w
            .into_inner()
            .map_err(|e| io_err(&tmp_blob.path)(e.into_error()))?;
        f.sync_all().map_err(io_err(&tmp_blob.path))?;
        let hex = hex::encode(hash.finalize());
        let diff_id = format!("sha256:{hex}");

        // The unpacked layer, outside the lock.
        let layer_dir = self.layers_dir().join(&hex);
        let tmp_layer = TempPath::new(self.layers_dir().join(temp_name(TMP_PREFIX)));
        let stats = {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(&tmp_layer.path)
                .map_err(io_err(&tmp_layer.path))?;
            std::fs::set_permissions(&tmp_layer.path, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err(&tmp_layer.path))?;
            let f = std::fs::File::open(&tmp_blob.path).map_err(io_err(&tmp_blob.path))?;
            unpack::unpack_layer(
                BufReader::with_capacity(1 << 20, f),
                &tmp_layer.path,
                &format!("{diff_id} ({created_by})"),
            )?
        };

        let _lock = self.lock()?;
        let mut created: Vec<PathBuf> = vec![];
        let res = (|| -> Result<ImageRow> {
            if !layer_dir.exists() {
                std::fs::rename(&tmp_layer.path, &layer_dir).map_err(io_err(&layer_dir))?;
                created.push(layer_dir.clone());
            }
            let blob = self.blobs_dir().join(&hex);
            if !blob.exists() {
                std::fs::rename(&tmp_blob.path, &blob).map_err(io_err(&blob))?;
                created.push(blob);
            }
            self.sync_dir(&self.layers_dir())?;
            self.sync_dir(&self.blobs_dir())?;

            let now = crate::util::now_rfc3339();
            let mut config = base.config.clone();
            let mut rootfs = config.rootfs().clone();
            let mut diff_ids = rootfs.diff_ids().clone();
            diff_ids.push(diff_id.clone());
            rootfs.set_diff_ids(diff_ids.clone());
            config.set_rootfs(rootfs);
            let mut history = config.history().clone();
            history.push(
                HistoryBuilder::default()
                    .created(now.clone())
                    .created_by(created_by.to_string())
                    .comment("gvpod commit")
                    .build()
                    .map_err(encode)?,
            );
            config.set_history(history);
            config.set_created(Some(now.clone()));
            let config_json = serde_json::to_vec(&config).map_err(encode)?;
            let (config_digest, new) = self.put_blob(&config_json)?;
            if new {
                created.push(self.blobs_dir().join(&config_digest["sha256:".len()..]));
            }

            let layer_desc = DescriptorBuilder::default()
                .media_type(MediaType::ImageLayer)
                .digest(OciDigest::from_str(&diff_id).map_err(encode)?)
                .size(size)
                .build()
                .map_err(encode)?;
            let config_desc = DescriptorBuilder::default()
                .media_type(MediaType::ImageConfig)
                .digest(OciDigest::from_str(&config_digest).map_err(encode)?)
                .size(config_json.len() as u64)
                .build()
                .map_err(encode)?;
            let mut layers = self
                .blob_path(&base_row.manifest_digest)
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|m| serde_json::from_slice::<ImageManifest>(&m).ok())
                .map(|m| m.layers().clone())
                .ok_or_else(|| ImageError::CorruptRecord {
                    id: base.id.clone(),
                    reason: "its manifest blob is missing or unreadable".into(),
                })?;
            layers.push(layer_desc);
            let manifest = ImageManifestBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageManifest)
                .config(config_desc)
                .layers(layers)
                .build()
                .map_err(encode)?;
            let manifest_json = serde_json::to_vec(&manifest).map_err(encode)?;
            let (manifest_digest, new) = self.put_blob(&manifest_json)?;
            if new {
                created.push(self.blobs_dir().join(&manifest_digest["sha256:".len()..]));
            }
            let row = ImageRow {
                id: config_digest,
                manifest_digest,
                config_json: String::from_utf8(config_json).map_err(encode)?,
                layers_json: serde_json::to_string(&diff_ids).map_err(encode)?,
                size: base_row.size.saturating_add(stats.bytes as i64),
                created: now,
            };
            db.put_image(&row, Some(&tag))?;
            Ok(row)
        })();
        let row = match res {
            Ok(r) => r,
            Err(e) => {
                for p in created.iter().rev() {
                    if let Err(e2) = sys::remove_path(p) {
                        tracing::warn!(path = %p.display(), error = %e2, "cannot roll back commit");
                    }
                }
                return Err(e);
            }
        };
        drop(_lock);
        self.image_from_row(&row, tag)
    }
}
