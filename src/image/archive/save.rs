//! Saving: `gvpod save` writes an oci-archive (default) or a docker-archive.
//!
//! Invariants:
//!
//! * atomic: the archive is written to a temp file next to the output,
//!   fsynced and renamed into place (then the directory is fsynced); a
//!   failed save leaves no partial file (DESIGN: every state file is written
//!   to a temp file, fsynced, then renamed);
//! * blobs are copied as stored, each once, with the length read from the
//!   blob file itself, so the archive's digests are the store's;
//! * reproducible: every tar header has owner 0, mode 0644/0755, mtime 0;
//! * an oci-archive names each tagged image by the `ref.name` and
//!   containerd annotations, with the platform from its config. The
//!   docker-archive side is in [`super::docker`].

use crate::sys;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{ArchiveFormat, Index, IndexEntry, Platform, ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::register::{self, check_manifest, MAX_JSON_BLOB, MT_OCI_INDEX, MT_OCI_MANIFEST};
use crate::image::{io_err, sha256_hex, Found, ImageError, ImageStore, Result, TempPath};
use crate::state::{Db, ImageRow};

impl ImageStore {
    /// Writes `names` (references or ids) to `out` as an archive.
    /// Returns the references saved (the id for an image named by id).
    pub fn save(
        &self,
        db: &Db,
        names: &[String],
        out: &Path,
        format: ArchiveFormat,
    ) -> Result<Vec<String>> {
        if names.is_empty() {
            return Err(ImageError::BadInput {
                what: "image",
                value: String::new(),
                reason: "no image to save".into(),
            });
        }
        let mut found: Vec<Found> = Vec::new();
        for n in names {
            found.push(self.find(db, n)?);
        }
        let out_name = out
            .file_name()
            .ok_or_else(|| ImageError::BadInput {
                what: "output",
                value: out.display().to_string(),
                reason: "not a file name".into(),
            })?
            .to_string_lossy()
            .into_owned();
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(ImageError::BadInput {
                what: "output",
                value: out.display().to_string(),
                reason: format!("directory {} does not exist", dir.display()),
            });
        }
        let tmp =
            TempPath::new(dir.join(format!(".{out_name}.tmp-{}", crate::util::random_hex(6))));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp.path)
            .map_err(io_err(&tmp.path))?;
        let mut w = ArchiveWriter {
            tar: tar::Builder::new(BufWriter::with_capacity(1 << 20, file)),
            path: tmp.path.clone(),
            written: HashSet::new(),
        };
        match format {
            ArchiveFormat::OciArchive => self.write_oci(&mut w, &found)?,
            ArchiveFormat::DockerArchive => self.write_docker(&mut w, &found)?,
        }
        let file = w
            .tar
            .into_inner()
            .map_err(io_err(&tmp.path))?
            .into_inner()
            .map_err(|e| io_err(&tmp.path)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp.path))?;
        std::fs::rename(&tmp.path, out).map_err(io_err(out))?;
        tmp.keep();
        if let Ok(d) = sys::open_dir(&dir) {
            let _ = sys::fsync(d.as_fd());
        }
        Ok(found.into_iter().map(|f| f.reference).collect())
    }

    /// The manifest of a registered image, parsed and checked.
    pub(super) fn manifest_of(&self, row: &ImageRow) -> Result<(Vec<u8>, register::Checked)> {
        let data = self.read_small_blob(&row.manifest_digest, None, MAX_JSON_BLOB)?;
        let checked = check_manifest(&row.manifest_digest, &data)?;
        Ok((data, checked))
    }

    fn write_oci(&self, w: &mut ArchiveWriter, found: &[Found]) -> Result<()> {
        w.dir("blobs/")?;
        w.dir("blobs/sha256/")?;
        let mut entries = Vec::new();
        for f in found {
            let (data, checked) = self.manifest_of(&f.row)?;
            let media_type = serde_json::from_slice::<register::Manifest>(&data)
                .ok()
                .and_then(|m| m.media_type)
                .unwrap_or_else(|| MT_OCI_MANIFEST.to_string());
            for d in [&f.row.manifest_digest, &checked.config.digest]
                .into_iter()
                .chain(checked.layers.iter().map(|(l, _)| &l.digest))
            {
                let hex = sha256_hex(d).unwrap_or_default();
                let path = self
                    .blob_path(d)
                    .ok_or_else(|| ImageError::InvalidDigest(d.clone()))?;
                w.file_from(&format!("blobs/sha256/{hex}"), &path)?;
            }
            let annotations = f.tag.as_ref().map(|t| {
                BTreeMap::from([
                    (ANN_REF_NAME.to_string(), t.clone()),
                    (ANN_CONTAINERD_NAME.to_string(), t.clone()),
                ])
            });
            let cfg = parse_row_config(&f.row)?;
            entries.push(IndexEntry {
                media_type,
                digest: f.row.manifest_digest.clone(),
                size: data.len() as u64,
                platform: Some(Platform {
                    architecture: cfg.architecture().to_string(),
                    os: cfg.os().to_string(),
                    variant: cfg.variant().clone(),
                }),
                annotations,
            });
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(MT_OCI_INDEX.to_string()),
            manifests: entries,
        };
        let json = serde_json::to_vec(&index).map_err(|e| ImageError::Encode {
            what: "index",
            image: "being saved".into(),
            reason: e.to_string(),
        })?;
        w.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        w.bytes("index.json", &json)
    }
}

pub(super) fn parse_row_config(row: &ImageRow) -> Result<oci_spec::image::ImageConfiguration> {
    register::parse_config(row.config_json.as_bytes()).map_err(|reason| ImageError::CorruptRecord {
        id: row.id.clone(),
        reason,
    })
}

/// A tar being written: reproducible headers (owner 0, mode 0644/0755, mtime 0).
pub(super) struct ArchiveWriter {
    tar: tar::Builder<BufWriter<File>>,
    path: PathBuf,
    pub(super) written: HashSet<String>,
}

impl ArchiveWriter {
    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub(super) fn dir(&mut self, name: &str) -> Result<()> {
        if !self.written.insert(name.to_string()) {
            return Ok(());
        }
        let mut h = Self::header(tar::EntryType::Directory, 0, 0o755);
        self.tar
            .append_data(&mut h, name, io::empty())
            .map_err(io_err(&self.path))
    }

    pub(super) fn bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.written.insert(name.to_string());
        let mut h = Self::header(tar::EntryType::Regular, data.len() as u64, 0o644);
        self.tar
            .append_data(&mut h, name, data)
            .map_err(io_err(&self.path))
    }

    /// Appends the file at `src` (a store file) as `name`, once.
    pub(super) fn file_from(&mut self, name: &str, src: &Path) -> Result<()> {
        if !self.written.insert(name.to_string()) {
            return Ok(());
        }
        let f = File::open(src).map_err(io_err(src))?;
        let len = f.metadata().map_err(io_err(src))?.len();
        let mut h = Self::header(tar::EntryType::Regular, len, 0o644);
        // The length in the header must match what follows, even if the file
        // changed: read exactly `len` bytes.
        let mut r = BufReader::with_capacity(1 << 20, f).take(len);
        self.tar
            .append_data(&mut h, name, &mut r)
            .map_err(io_err(&self.path))
    }
}
