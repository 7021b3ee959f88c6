//! Streaming ingestion of content-addressed blobs into `blobs/sha256`.
//!
//! A blob is written to `blobs/sha256/.tmp-<pid>-<rand>` while its sha256 and
//! length are computed, fsynced, checked against the expected digest and
//! size, and only then renamed into place (`RENAME_NOREPLACE`: a concurrent
//! writer of the same blob wins harmlessly). Nothing is held in memory and a
//! mismatch leaves nothing behind.

use crate::sys;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use sha2::{Digest, Sha256};

use super::{io_err, sha256_hex, temp_name, ImageError, ImageStore, Result, TempPath, TMP_PREFIX};

/// A blob now in the store.
#[derive(Debug, Clone)]
pub(super) struct Ingested {
    pub digest: String,
    /// Whether this call wrote it (false: it was already there).
    pub created: bool,
}

/// Read buffer for blob copies.
const BUF: usize = 256 * 1024;

impl ImageStore {
    /// Whether the blob `sha256:<hex>` is in the store (false for a malformed digest).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest)
            .is_some_and(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
    }

    /// Streams a blob into `blobs/sha256` (temp file, fsync, rename),
    /// verifying its sha256 digest and, when given, its size, without holding
    /// it in memory. No-op returning Ok if the blob is already present (the
    /// reader is then not read). On mismatch: [`ImageError::BlobMismatch`]
    /// naming the digest, and nothing left behind. A stream longer than
    /// `size` is cut off as soon as it exceeds it.
    pub fn ingest_blob(
        &self,
        reader: &mut dyn Read,
        digest: &str,
        size: Option<u64>,
    ) -> Result<()> {
        self.ingest(reader, Some(digest), size, digest).map(|_| ())
    }

    /// The ingestion core: `expected` digest (checked, and the blob skipped
    /// when present) or `None` (computed); `size` checked when given.
    pub(super) fn ingest(
        &self,
        reader: &mut dyn Read,
        expected: Option<&str>,
        size: Option<u64>,
        what: &str,
    ) -> Result<Ingested> {
        let want_hex = match expected {
            Some(d) => Some(sha256_hex(d).ok_or_else(|| ImageError::InvalidDigest(d.to_string()))?),
            None => None,
        };
        if let (Some(d), Some(_)) = (expected, want_hex) {
            if self.has_blob(d) {
                return Ok(Ingested {
                    digest: d.to_string(),
                    created: false,
                });
            }
        }
        let blobs = self.blobs_dir();
        let (tmp, mut file) = self.new_blob_tmp(0o644)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; BUF];
        let mut total: u64 = 0;
        // Read at most one byte past the expected size: enough to detect a
        // stream that is too long without reading it all.
        let limit = size.map(|s| s.saturating_add(1));
        loop {
            let want = match limit {
                Some(l) => buf
                    .len()
                    .min(usize::try_from(l - total).unwrap_or(usize::MAX)),
                None => buf.len(),
            };
            if want == 0 {
                break;
            }
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ImageError::BlobRead {
                        digest: what.to_string(),
                        source,
                    })
                }
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(io_err(&tmp.path))?;
            total += n as u64;
        }
        if let Some(expected) = size {
            if total != expected {
                let actual = if total > expected {
                    format!("more than {expected} bytes")
                } else {
                    format!("{total} bytes")
                };
                return Err(ImageError::BlobMismatch {
                    digest: what.to_string(),
                    what: "size",
                    expected: format!("{expected} bytes"),
                    actual,
                });
            }
        }
        let actual = hex::encode(hasher.finalize());
        if let Some(want) = want_hex {
            if actual != want {
                return Err(ImageError::BlobMismatch {
                    digest: what.to_string(),
                    what: "digest",
                    expected: format!("sha256:{want}"),
                    actual: format!("sha256:{actual}"),
                });
            }
        }
        file.sync_all().map_err(io_err(&tmp.path))?;
        drop(file);
        let dir = sys::open_dir(&blobs).map_err(io_err(&blobs))?;
        let tmp_name = tmp.path.file_name().unwrap_or_default().to_os_string();
        let created =
            match sys::rename_noreplace(dir.as_fd(), &tmp_name, dir.as_fd(), actual.as_ref()) {
                Ok(()) => {
                    tmp.keep();
                    true
                }
                // Another writer put the same (verified) content in place first.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
                Err(e) => return Err(io_err(&blobs.join(&actual))(e)),
            };
        sys::fsync(dir.as_fd()).map_err(io_err(&blobs))?;
        Ok(Ingested {
            digest: format!("sha256:{actual}"),
            created,
        })
    }

    /// A new, empty temp file `blobs/sha256/.tmp-<pid>-<rand>` created with
    /// `mode` (removed on drop unless kept, and by `gc` if gvpod dies first).
    pub(super) fn new_blob_tmp(&self, mode: u32) -> Result<(TempPath, std::fs::File)> {
        let tmp = TempPath::new(self.blobs_dir().join(temp_name(TMP_PREFIX)));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp.path)
            .map_err(io_err(&tmp.path))?;
        Ok((tmp, file))
    }

    /// Opens a blob for reading, checking that its size is `size` when given.
    pub(super) fn open_blob(&self, digest: &str, size: Option<u64>) -> Result<std::fs::File> {
        let path = self
            .blob_path(digest)
            .ok_or_else(|| ImageError::InvalidDigest(digest.to_string()))?;
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::BlobMissing(digest.to_string()))
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if let Some(expected) = size {
            let actual = f.metadata().map_err(io_err(&path))?.len();
            if actual != expected {
                return Err(ImageError::BlobMismatch {
                    digest: digest.to_string(),
                    what: "size",
                    expected: format!("{expected} bytes"),
                    actual: format!("{actual} bytes"),
                });
            }
        }
        Ok(f)
    }

    /// Reads a small blob (manifest, config; at most `max` bytes) whole and
    /// verifies its digest and size.
    pub(super) fn read_small_blob(
        &self,
        digest: &str,
        size: Option<u64>,
        max: u64,
    ) -> Result<Vec<u8>> {
        let f = self.open_blob(digest, size)?;
        let path = self.blob_path(digest).unwrap_or_default();
        let mut data = Vec::new();
        f.take(max + 1)
            .read_to_end(&mut data)
            .map_err(io_err(&path))?;
        if data.len() as u64 > max {
            return Err(ImageError::InvalidManifest {
                digest: digest.to_string(),
                reason: format!("larger than {max} bytes"),
            });
        }
        let actual = hex::encode(Sha256::digest(&data));
        if Some(actual.as_str()) != sha256_hex(digest) {
            return Err(ImageError::BlobMismatch {
                digest: digest.to_string(),
                what: "digest",
                expected: digest.to_string(),
                actual: format!("sha256:{actual}"),
            });
        }
        Ok(data)
    }
}
