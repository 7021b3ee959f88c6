//! `gvpod commit`: register a new image made of an existing image plus one
//! layer (a pod's filesystem changes as an uncompressed OCI layer tarball).
//!
//! Built only on the store's own registration path: the layer, the new
//! config (the base config with the layer's diff id and a history entry
//! appended) and an OCI manifest (the base manifest's layers plus the new
//! one) are ingested as blobs, then [`ImageStore::register_manifest`]
//! verifies and unpacks them like any pulled or loaded image, all or
//! nothing. Blobs ingested before a failure are unreferenced and go with
//! `image prune` / `system gc`.

use std::io::Read;

use super::register::{Descriptor, MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_MANIFEST};
use super::{Image, ImageError, ImageStore, Reference, Result};
use crate::state::Db;

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
        let tag = Reference::parse_tag(reference, "a committed image gets a tag, not a digest")?;
        let mut counted = Counted { inner: layer, n: 0 };
        let layer_blob = self.ingest(&mut counted, None, None, created_by)?;
        let layer_size = counted.n;

        let now = crate::util::now_rfc3339();
        let mut config = serde_json::to_value(&base.config).map_err(encode)?;
        config["created"] = now.clone().into();
        let diff_ids = config["rootfs"]["diff_ids"]
            .as_array_mut()
            .ok_or_else(|| encode("the base config has no rootfs.diff_ids"))?;
        diff_ids.push(layer_blob.digest.clone().into());
        let entry = serde_json::json!({
            "created": now,
            "created_by": created_by,
            "comment": "gvpod commit",
        });
        match config.get_mut("history").and_then(|h| h.as_array_mut()) {
            Some(h) => h.push(entry),
            None => config["history"] = serde_json::json!([entry]),
        }
        let config_json = serde_json::to_vec(&config).map_err(encode)?;
        let config_blob = self.ingest(&mut config_json.as_slice(), None, None, "config")?;

        let base_manifest = self.read_small_blob(&base.digest, None, 8 << 20)?;
        let base_manifest: serde_json::Value =
            serde_json::from_slice(&base_manifest).map_err(encode)?;
        let mut layers: Vec<Descriptor> =
            serde_json::from_value(base_manifest["layers"].clone()).map_err(encode)?;
        layers.push(Descriptor {
            media_type: MT_OCI_LAYER.into(),
            digest: layer_blob.digest,
            size: layer_size,
            annotations: None,
        });
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": Descriptor {
                media_type: MT_OCI_CONFIG.into(),
                digest: config_blob.digest,
                size: config_json.len() as u64,
                annotations: None,
            },
            "layers": layers,
        });
        let manifest_json = serde_json::to_vec(&manifest).map_err(encode)?;
        let manifest_blob = self.ingest(&mut manifest_json.as_slice(), None, None, "manifest")?;
        self.register_manifest(db, &manifest_blob.digest, Some(&tag))
    }
}

/// Counts the bytes read through it.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    n: u64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}
