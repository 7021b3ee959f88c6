//! `gvpod import`: a rootfs tarball (plain, gzip or zstd) becomes a one-layer image.
//!
//! The source is read exactly once (it may be a pipe). That single pass
//! decompresses it, checks the tar structure, computes the sha256 of the
//! uncompressed stream (the diff id, which is also the blob digest since the
//! layer blob is stored uncompressed as `application/vnd.oci.image.layer.v1.tar`)
//! and writes the blob to a temp file; nothing is held in memory.
//!
//! Only then is the diff id known, so the layer is unpacked afterwards, from
//! the local temp blob, and only when `layers/<diff id>` is not already
//! present: importing the same tarball twice never unpacks twice. Unpacking
//! happens outside the store lock into `layers/.tmp-*`; under the lock the
//! layer is renamed into place (if another process won meanwhile, ours is
//! discarded), the blobs are written and the image is registered in one
//! `put_image` call. Any failure removes the temp files and whatever this
//! import put in place, and registers nothing.

use crate::sys;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{
    Arch, Config, DescriptorBuilder, Digest as OciDigest, HistoryBuilder, ImageConfiguration,
    ImageManifestBuilder, MediaType, Os, RootFs,
};
use sha2::{Digest, Sha256};

use super::register::Compression;
use super::unpack::{self, EofGuard};
use super::{changes, io_err, Image, ImageError, ImageStore, Reference, Result, TempPath};
use crate::state::{Db, ImageRow};

/// What the single pass over the source found.
struct Scan {
    /// Hex sha256 of the uncompressed stream.
    hex: String,
    /// Bytes of the uncompressed stream (the blob size).
    blob_size: u64,
    /// Bytes of regular-file content (the unpacked size).
    content_bytes: u64,
}

impl ImageStore {
    /// Imports the rootfs tarball at `src` (plain, gzip or zstd, detected by
    /// magic bytes) as a one-layer image tagged `reference` (empty: untagged),
    /// with `changes` (Dockerfile-like instructions, see `changes`) applied to
    /// its config.
    pub fn import_tarball(
        &self,
        db: &mut Db,
        src: &Path,
        reference: &str,
        changes: &[String],
    ) -> Result<Image> {
        let file = File::open(src).map_err(io_err(src))?;
        self.import_reader(db, file, &src.display().to_string(), reference, changes)
    }

    /// Like [`ImageStore::import_tarball`] for any stream (e.g. stdin);
    /// `source` names it in messages and in the image history.
    pub fn import_reader<R: Read>(
        &self,
        db: &mut Db,
        reader: R,
        source: &str,
        reference: &str,
        changes: &[String],
    ) -> Result<Image> {
        // Validate everything cheap before reading a byte.
        let tag = parse_target(reference)?;
        let mut config = Config::default();
        changes::apply(&mut config, changes)?;

        let (tmp_blob, out) = self.new_blob_tmp(0o600)?;
        let scan = scan(reader, source, out, &tmp_blob.path)?;
        crate::failpoint::hit("import:scanned");
        let diff_id = format!("sha256:{}", scan.hex);
        let layer_name = format!("{diff_id} (from {source})");
        let layer_dir = self.layers_dir().join(&scan.hex);

        loop {
            let tmp_layer = if exists(&layer_dir)? {
                None
            } else {
                Some(self.unpack_from_blob(&tmp_blob.path, &layer_name)?)
            };
            let lock = self.lock()?;
            if tmp_layer.is_none() && !exists(&layer_dir)? {
                // Removed by `gvpod rmi` between our check and the lock: unpack after all.
                drop(lock);
                continue;
            }
            let mut created = Vec::new();
            let res = self.register(
                db,
                &scan,
                tmp_layer,
                &tmp_blob,
                tag.as_deref(),
                config,
                source,
                &mut created,
            );
            if res.is_err() {
                // Still under the lock: nobody can have started using these.
                for p in created.iter().rev() {
                    if let Err(e) = sys::remove_path(p) {
                        tracing::warn!(path = %p.display(), error = %e, "cannot roll back import");
                    }
                }
            }
            drop(lock);
            let (row, image_config) = res?;
            return Ok(Image {
                reference: tag.unwrap_or_else(|| row.id.clone()),
                digest: row.manifest_digest,
                id: row.id,
                config: image_config,
                layers: vec![layer_dir],
                size: scan.content_bytes,
            });
        }
    }

    /// Unpacks the temp blob into a fresh `layers/.tmp-*` directory.
    fn unpack_from_blob(&self, blob: &Path, layer_name: &str) -> Result<TempPath> {
        // The layer root is the container's `/`: 0755 whatever the umask
        // (a `./` entry in the archive may set it otherwise).
        let tmp = self.new_layer_tmp()?;
        let f = File::open(blob).map_err(io_err(blob))?;
        unpack::unpack_layer(BufReader::with_capacity(1 << 20, f), &tmp.path, layer_name)?;
        Ok(tmp)
    }

    /// Under the lock: moves the layer and blobs into place, writes config
    /// and manifest, registers the image. Paths this call created are pushed
    /// to `created` so the caller can roll back.
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        db: &mut Db,
        scan: &Scan,
        tmp_layer: Option<TempPath>,
        tmp_blob: &TempPath,
        tag: Option<&str>,
        config: Config,
        source: &str,
        created: &mut Vec<PathBuf>,
    ) -> Result<(ImageRow, ImageConfiguration)> {
        let diff_id = format!("sha256:{}", scan.hex);
        if let Some(tmp) = tmp_layer {
            let layers = self.layers_dir();
            if rename_into_place(&tmp.path, &layers.join(&scan.hex))? {
                tmp.keep();
                created.push(layers.join(&scan.hex));
                self.sync_dir(&layers)?;
            }
            // else: another process unpacked the same layer first; `tmp` is dropped (removed).
        }
        let blob = self.blobs_dir().join(&scan.hex);
        if rename_into_place(&tmp_blob.path, &blob)? {
            created.push(blob);
            self.sync_dir(&self.blobs_dir())?;
        }

        let now = crate::util::now_rfc3339();
        let image_config = image_config(config, &diff_id, &now, source)?;
        let config_json = serde_json::to_vec(&image_config).map_err(|e| encode("config", e))?;
        let (config_digest, new) = self.put_blob(&config_json)?;
        if new {
            created.push(self.blobs_dir().join(&config_digest["sha256:".len()..]));
        }
        let manifest = manifest(&config_digest, config_json.len(), &diff_id, scan.blob_size)?;
        let (manifest_digest, new) = self.put_blob(&manifest)?;
        if new {
            created.push(self.blobs_dir().join(&manifest_digest["sha256:".len()..]));
        }
        crate::failpoint::hit("import:placed");
        let row = ImageRow {
            id: config_digest,
            manifest_digest,
            config_json: String::from_utf8(config_json).map_err(|e| encode("config", e))?,
            layers_json: serde_json::to_string(&[&diff_id]).map_err(|e| encode("layer list", e))?,
            blobs_json: serde_json::to_string(&[&diff_id]).map_err(|e| encode("layer list", e))?,
            size: i64::try_from(scan.content_bytes).unwrap_or(i64::MAX),
            created: now,
        };
        db.put_image(&row, tag)?;
        Ok((row, image_config))
    }
}

fn encode(what: &'static str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Encode {
        what,
        image: "being imported".into(),
        reason: e.to_string(),
    }
}

/// The tag an import registers: `None` for an empty reference.
fn parse_target(reference: &str) -> Result<Option<String>> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Ok(None);
    }
    Reference::parse_tag(
        reference,
        "an imported image gets a tag, not a digest (its digest is computed)",
    )
    .map(Some)
}

pub(super) fn exists(p: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(p) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(p)(e)),
    }
}

/// `rename(from, to)` unless `to` exists. Returns false (and leaves `from`)
/// when it does.
pub(super) fn rename_into_place(from: &Path, to: &Path) -> Result<bool> {
    let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let (fd_from, fd_to) = (
        sys::open_dir(&parent(from)).map_err(io_err(from))?,
        sys::open_dir(&parent(to)).map_err(io_err(to))?,
    );
    let name = |p: &Path| p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    match sys::rename_noreplace(fd_from.as_fd(), &name(from), fd_to.as_fd(), &name(to)) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => Ok(false),
        Err(e) => Err(io_err(to)(e)),
    }
}

/// Wraps the source in the right decompressor, chosen by magic bytes.
pub(super) fn decompress<'a, R: Read + 'a>(mut r: R, source: &str) -> Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 6];
    let n = crate::util::read_up_to(&mut r, &mut head).map_err(io_err(Path::new(source)))?;
    let head = &head[..n];
    let chained = io::Cursor::new(head.to_vec()).chain(r);
    let unsupported = |format| ImageError::UnsupportedCompression {
        source_name: source.to_string(),
        format,
    };
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Err(unsupported("xz"));
    }
    if head.starts_with(b"BZh") {
        return Err(unsupported("bzip2"));
    }
    Ok(match Compression::from_magic(head) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            chained,
        ))),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(chained).map_err(io_err(Path::new(source)))?)
        }
        Compression::None => Box::new(BufReader::with_capacity(1 << 16, chained)),
    })
}

/// Tees the decompressed stream into the hash and the temp blob. Write
/// errors are kept aside so they are not mistaken for a corrupt archive.
struct Tee<R, W> {
    inner: EofGuard<R>,
    hasher: Sha256,
    out: W,
    bytes: u64,
    write_err: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.write_err = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

/// The single pass over the source: decompress, walk the tar headers (so a
/// non-tar or truncated stream fails here), hash and store.
fn scan<R: Read>(reader: R, source: &str, out: File, blob_path: &Path) -> Result<Scan> {
    let corrupt = |source_err: io::Error| ImageError::CorruptArchive {
        what: format!("tarball {source}"),
        source: source_err,
    };
    let mut tee = Tee {
        inner: EofGuard::new(decompress(reader, source)?),
        hasher: Sha256::new(),
        out: BufWriter::with_capacity(1 << 20, out),
        bytes: 0,
        write_err: None,
    };
    let walked = (|| -> io::Result<u64> {
        let mut content = 0u64;
        let mut archive = tar::Archive::new(&mut tee);
        for entry in archive.entries()? {
            let entry = entry?;
            use tar::EntryType::*;
            if matches!(
                entry.header().entry_type(),
                Regular | Continuous | GNUSparse
            ) {
                content += entry.size();
            }
        }
        Ok(content)
    })();
    if let Some(e) = tee.write_err.take() {
        return Err(io_err(blob_path)(e));
    }
    let content_bytes = walked.map_err(corrupt)?;
    if let Some(e) = tee.inner.truncated() {
        return Err(corrupt(e));
    }
    // The rest (end blocks, record padding) is part of the stream and its digest.
    let drained = io::copy(&mut tee, &mut io::sink());
    if let Some(e) = tee.write_err.take() {
        return Err(io_err(blob_path)(e));
    }
    drained.map_err(corrupt)?;
    let Tee {
        hasher, out, bytes, ..
    } = tee;
    let file = out
        .into_inner()
        .map_err(|e| io_err(blob_path)(e.into_error()))?;
    file.sync_all().map_err(io_err(blob_path))?;
    Ok(Scan {
        hex: hex::encode(hasher.finalize()),
        blob_size: bytes,
        content_bytes,
    })
}

/// Go-style architecture name of this host (`amd64`, `arm64`, …).
fn host_arch() -> Arch {
    Arch::default()
}

/// The OCI image config of an imported single-layer image.
fn image_config(
    config: Config,
    diff_id: &str,
    created: &str,
    source: &str,
) -> Result<ImageConfiguration> {
    let mut rootfs = RootFs::default();
    rootfs.set_diff_ids(vec![diff_id.to_string()]);
    let history = HistoryBuilder::default()
        .created(created.to_string())
        .created_by(format!("gvpod import {source}"))
        .comment("imported from a tarball")
        .build()
        .map_err(|e| encode("history", e))?;
    let mut ic = ImageConfiguration::default();
    ic.set_created(Some(created.to_string()));
    ic.set_architecture(host_arch());
    ic.set_os(Os::Linux);
    ic.set_config(Some(config));
    ic.set_rootfs(rootfs);
    ic.set_history(vec![history]);
    Ok(ic)
}

/// The OCI image manifest JSON of an imported single-layer image.
fn manifest(
    config_digest: &str,
    config_size: usize,
    diff_id: &str,
    layer_size: u64,
) -> Result<Vec<u8>> {
    let digest = |d: &str| OciDigest::from_str(d).map_err(|e| encode("manifest", e));
    let config = DescriptorBuilder::default()
        .media_type(MediaType::ImageConfig)
        .digest(digest(config_digest)?)
        .size(config_size as u64)
        .build()
        .map_err(|e| encode("manifest", e))?;
    let layer = DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(digest(diff_id)?)
        .size(layer_size)
        .build()
        .map_err(|e| encode("manifest", e))?;
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(vec![layer])
        .build()
        .map_err(|e| encode("manifest", e))?;
    serde_json::to_vec(&m).map_err(|e| encode("manifest", e))
}
