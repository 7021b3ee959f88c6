//! The docker-archive format (`docker save`), both ways.
//!
//! Loading: `manifest.json` lists each image's config file, `RepoTags` and
//! layer files (legacy `<id>/layer.tar` directories, possibly symlinked to
//! one another). Each entry gets an OCI image manifest written for it, with
//! layer media types from the blobs' magic bytes (a `layer.tar` may be
//! stored compressed whatever its name), and is then registered like any
//! OCI image. A `RepoTags` entry that is not a valid tag rejects the archive.
//!
//! Saving: one `manifest.json` entry per image with every tag asked for;
//! `<diff-id hex>/layer.tar` must be uncompressed, so compressed layers are
//! decompressed through a temp file in the blob dir and their diff id is
//! checked on the way (a stored blob never reaches an archive unverified).
//!
//! Docker ≥ 25 archives are also OCI layouts and load as such ([`super::load`]).

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::load::{bad_archive, normalise_tag, Staged};
use super::save::{parse_row_config, ArchiveWriter};
use crate::image::register::{
    Compression, Descriptor, MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
};
use crate::image::{io_err, sha256_hex, Found, ImageError, ImageStore, Result, TempPath};
use crate::state::ImageRow;

/// One image of a docker-archive `manifest.json`.
#[derive(Debug, Deserialize, Serialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

impl Staged<'_> {
    /// The images of a docker-archive `manifest.json`, each given an OCI
    /// manifest of its own.
    pub(super) fn docker_manifests(&mut self) -> Result<Vec<(String, Vec<String>)>> {
        let data = self.small("manifest.json")?;
        let entries: Vec<DockerEntry> = serde_json::from_slice(&data)
            .map_err(|e| bad_archive(&self.source, format!("manifest.json: {e}")))?;
        if entries.is_empty() {
            return Err(bad_archive(&self.source, "manifest.json lists no image"));
        }
        let mut out = Vec::new();
        for e in entries {
            let config = self.small(&e.config)?;
            let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
            let ing =
                self.store
                    .ingest(&mut &config[..], Some(&config_digest), None, &config_digest)?;
            self.note(ing);
            let mut layers = Vec::new();
            for l in &e.layers {
                let d = self.blob(l, None)?;
                let size = self
                    .store
                    .blob_path(&d)
                    .and_then(|p| p.metadata().ok())
                    .map_or(0, |m| m.len());
                let media_type = match sniff(self.store, &d)? {
                    Compression::None => MT_OCI_LAYER,
                    Compression::Gzip => MT_OCI_LAYER_GZIP,
                    Compression::Zstd => MT_OCI_LAYER_ZSTD,
                };
                layers.push(Descriptor {
                    media_type: media_type.to_string(),
                    digest: d,
                    size,
                    annotations: None,
                });
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "config": {"mediaType": MT_OCI_CONFIG, "digest": config_digest, "size": config.len()},
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&manifest).map_err(|err| ImageError::Encode {
                what: "manifest",
                image: config_digest.clone(),
                reason: err.to_string(),
            })?;
            let md = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            let ing = self.store.ingest(&mut &bytes[..], Some(&md), None, &md)?;
            self.note(ing);
            let mut tags = Vec::new();
            for t in e.repo_tags.unwrap_or_default() {
                tags.push(normalise_tag(&t).ok_or_else(|| {
                    bad_archive(
                        &self.source,
                        format!("RepoTags entry {t:?} is not a valid tag"),
                    )
                })?);
            }
            out.push((md, tags));
        }
        Ok(out)
    }
}

/// The compression of a stored blob, from its magic bytes.
fn sniff(store: &ImageStore, digest: &str) -> Result<Compression> {
    let mut f = store.open_blob(digest, None)?;
    let mut head = [0u8; 4];
    let n = crate::util::read_up_to(&mut f, &mut head)
        .map_err(|e| io_err(&store.blob_path(digest).unwrap_or_default())(e))?;
    Ok(Compression::from_magic(&head[..n]))
}

impl ImageStore {
    pub(super) fn write_docker(&self, w: &mut ArchiveWriter, found: &[Found]) -> Result<()> {
        // One manifest.json entry per image, with every tag asked for.
        let mut order: Vec<&ImageRow> = Vec::new();
        let mut tags: HashMap<String, Vec<String>> = HashMap::new();
        for f in found {
            if !order.iter().any(|r| r.id == f.row.id) {
                order.push(&f.row);
            }
            if let Some(t) = &f.tag {
                let v = tags.entry(f.row.id.clone()).or_default();
                if !v.contains(t) {
                    v.push(t.clone());
                }
            }
        }
        let mut manifest = Vec::new();
        for row in order {
            let (_, checked) = self.manifest_of(row)?;
            let cfg = parse_row_config(row)?;
            let diff_ids = cfg.rootfs().diff_ids();
            let config_hex = sha256_hex(&row.id).unwrap_or_default().to_string();
            let config_name = format!("{config_hex}.json");
            let config_path = self
                .blob_path(&row.id)
                .ok_or_else(|| ImageError::InvalidDigest(row.id.clone()))?;
            w.file_from(&config_name, &config_path)?;
            let mut layers = Vec::new();
            for ((l, compression), diff_id) in checked.layers.iter().zip(diff_ids) {
                let hex = sha256_hex(diff_id)
                    .ok_or_else(|| ImageError::InvalidDigest(diff_id.clone()))?;
                let name = format!("{hex}/layer.tar");
                if !w.written.contains(&name) {
                    w.dir(&format!("{hex}/"))?;
                    if *compression == Compression::None {
                        let p = self
                            .blob_path(&l.digest)
                            .ok_or_else(|| ImageError::InvalidDigest(l.digest.clone()))?;
                        w.file_from(&name, &p)?;
                    } else {
                        let tmp = self.decompressed(&l.digest, *compression, diff_id)?;
                        w.file_from(&name, &tmp.path)?;
                    }
                }
                layers.push(name);
            }
            manifest.push(DockerEntry {
                config: config_name,
                repo_tags: Some(tags.remove(&row.id).unwrap_or_default()),
                layers,
            });
        }
        let json = serde_json::to_vec(&manifest).map_err(|e| ImageError::Encode {
            what: "manifest.json",
            image: "being saved".into(),
            reason: e.to_string(),
        })?;
        w.bytes("manifest.json", &json)
    }

    /// Decompresses a layer blob into a temp file in the blob dir, checking
    /// its diff id.
    fn decompressed(
        &self,
        digest: &str,
        compression: Compression,
        diff_id: &str,
    ) -> Result<TempPath> {
        let blob = self.open_blob(digest, None)?;
        let (tmp, mut out) = self.new_blob_tmp(0o600)?;
        let corrupt = |e: io::Error| ImageError::CorruptArchive {
            what: format!("layer blob {digest}"),
            source: e,
        };
        let mut r = compression
            .reader(BufReader::with_capacity(1 << 20, blob))
            .map_err(corrupt)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(e)),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(&tmp.path))?;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != diff_id {
            return Err(ImageError::BlobMismatch {
                digest: digest.to_string(),
                what: "uncompressed digest (diff id)",
                expected: diff_id.to_string(),
                actual,
            });
        }
        Ok(tmp)
    }
}
