//! Loading: an archive read in one pass, or a layout directory read on demand.
//!
//! An archive is read in one pass, so it can be a pipe: every
//! `blobs/sha256/<hex>` entry is streamed into the blob store and verified
//! against its name, other large files (legacy `layer.tar`) are streamed in
//! and hashed, small files (JSON) are kept in memory up to a total budget.
//! A layout directory is read on demand, each path resolved inside it
//! (`openat2(RESOLVE_IN_ROOT)`), and only the blobs an image needs are copied.
//! Then each image manifest (image indexes resolved to the host platform;
//! a docker-archive entry gets an OCI manifest written for it, see
//! [`super::docker`]) is registered with
//! [`ImageStore::register_manifest`], which verifies and unpacks the layers.
//!
//! Invariants:
//!
//! * no path inside an archive leaves it: names are normalised lexically
//!   (`..` above the top is dropped with the entry), archive-internal links
//!   are followed at most [`MAX_LINKS`] deep, and a layout directory is only
//!   ever opened with `RESOLVE_IN_ROOT`;
//! * memory is bounded: small files up to [`SMALL_BUDGET`] in total, JSON
//!   blobs up to `MAX_JSON_BLOB` each, image indexes [`MAX_INDEX_DEPTH`] deep;
//! * a stream that stops before its end-of-archive blocks is truncated,
//!   never a shorter archive;
//! * all or nothing: if anything fails, the images this load registered are
//!   unregistered again (tags it moved are put back), and blobs and layers it
//!   created that nothing references are removed.

use crate::sys;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::AsFd;
use std::path::Path;

use super::{Index, IndexEntry, ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::register::{check_manifest, MAX_JSON_BLOB, MT_DOCKER_LIST, MT_OCI_INDEX};
use crate::image::unpack::{self, EofGuard};
use crate::image::{io_err, sha256_hex, ImageError, ImageStore, Reference, Result};
use crate::state::Db;

/// Files below this size that are not `blobs/sha256/*` are kept in memory
/// while an archive is read; larger ones are streamed into the blob store.
const SMALL_FILE: u64 = 1 << 20;
/// Total memory for such small files; past it they go to the blob store too.
const SMALL_BUDGET: u64 = 64 << 20;
/// Image indexes nest at most this deep.
const MAX_INDEX_DEPTH: u32 = 4;
/// Symlink chains inside an archive are followed at most this far.
const MAX_LINKS: u32 = 16;

pub(super) fn bad_archive(source: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive {
        source_name: source.to_string(),
        reason: reason.into(),
    }
}

/// The host's architecture in OCI (Go) terms.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Lexically normalises a path inside an archive (`./a/../b` → `b`);
/// `None` if it climbs out or is empty.
fn norm(p: &str) -> Option<String> {
    let n = unpack::normalize(Path::new(p))?;
    let s = n.to_str()?.to_string();
    (!s.is_empty()).then_some(s)
}

/// Where an archive's files are: read once into the store (a tar stream) or
/// read on demand (a layout directory).
enum Origin {
    Stream,
    Dir(File),
}

/// An archive being loaded: what was found where, and what this load created.
pub(super) struct Staged<'a> {
    pub(super) store: &'a ImageStore,
    pub(super) source: String,
    origin: Origin,
    /// Small files by normalised path (stream only).
    files: HashMap<String, Vec<u8>>,
    small_bytes: u64,
    /// Files streamed into the blob store, by normalised path (stream only).
    blobs: HashMap<String, String>,
    /// Symlinks and hardlinks: normalised path → normalised target.
    links: HashMap<String, String>,
    /// Digests of blobs this load wrote.
    created: HashSet<String>,
}

impl<'a> Staged<'a> {
    fn new(store: &'a ImageStore, source: &str, origin: Origin) -> Self {
        Staged {
            store,
            source: source.to_string(),
            origin,
            files: HashMap::new(),
            small_bytes: 0,
            blobs: HashMap::new(),
            links: HashMap::new(),
            created: HashSet::new(),
        }
    }

    pub(super) fn note(&mut self, ing: crate::image::blob::Ingested) -> String {
        if ing.created {
            self.created.insert(ing.digest.clone());
        }
        ing.digest
    }

    /// Reads the whole tar stream (see the module docs).
    fn read_stream(&mut self, reader: Box<dyn Read + '_>) -> Result<()> {
        let source = self.source.clone();
        let corrupt = |e: io::Error| ImageError::CorruptArchive {
            what: format!("archive {source}"),
            source: e,
        };
        let not_tar = |e: io::Error| {
            bad_archive(
                &source,
                format!("not a tar archive (plain, gzip or zstd): {e}"),
            )
        };
        let mut guard = EofGuard::new(reader);
        let eof = guard.flag();
        {
            let mut archive = tar::Archive::new(&mut guard);
            let mut first = true;
            for entry in archive.entries().map_err(corrupt)? {
                // A stream whose very first header is garbage (and not just
                // cut short) is not an archive at all.
                let mut entry = entry.map_err(|e| {
                    if first && !eof.get() {
                        not_tar(e)
                    } else {
                        corrupt(e)
                    }
                })?;
                first = false;
                let raw = entry
                    .path()
                    .map_err(corrupt)?
                    .to_string_lossy()
                    .into_owned();
                let Some(path) = norm(&raw) else { continue };
                let kind = entry.header().entry_type();
                if kind.is_symlink() || kind.is_hard_link() {
                    let target = entry
                        .link_name()
                        .map_err(corrupt)?
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    // Symlinks are relative to their directory; hardlinks to the archive root.
                    let joined = if kind.is_symlink() && !target.starts_with('/') {
                        let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
                        dir.join(&target).to_string_lossy().into_owned()
                    } else {
                        target
                    };
                    if let Some(t) = norm(&joined) {
                        self.links.insert(path, t);
                    }
                    continue;
                }
                if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
                    continue;
                }
                let size = entry.size();
                // The header declares the size: fewer bytes means the stream was cut;
                // a read error is the archive's (decompression, I/O).
                let cut = |e: ImageError| match e {
                    ImageError::BlobMismatch { what: "size", .. } => corrupt(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{path} is cut short (truncated?)"),
                    )),
                    ImageError::BlobRead { source, .. } => {
                        corrupt(io::Error::new(source.kind(), format!("{path}: {source}")))
                    }
                    e => e,
                };
                if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                    let digest = format!("sha256:{hex}");
                    if sha256_hex(&digest).is_some() {
                        let ing = self
                            .store
                            .ingest(&mut entry, Some(&digest), Some(size), &digest)
                            .map_err(cut)?;
                        let d = self.note(ing);
                        self.blobs.insert(path, d);
                        continue;
                    }
                }
                if size <= SMALL_FILE && self.small_bytes + size <= SMALL_BUDGET {
                    let mut data = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut data).map_err(corrupt)?;
                    if data.len() as u64 != size {
                        return Err(corrupt(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{path}: {} of {size} bytes", data.len()),
                        )));
                    }
                    self.small_bytes += size;
                    self.files.insert(path, data);
                } else {
                    let what = format!("{path} in {}", self.source);
                    let ing = self
                        .store
                        .ingest(&mut entry, None, Some(size), &what)
                        .map_err(cut)?;
                    let d = self.note(ing);
                    self.blobs.insert(path, d);
                }
            }
        }
        if let Some(e) = guard.truncated() {
            return Err(corrupt(e));
        }
        Ok(())
    }

    /// Follows archive-internal links.
    fn resolve(&self, path: &str) -> Result<String> {
        let mut p = norm(path).ok_or_else(|| {
            bad_archive(&self.source, format!("path {path:?} leaves the archive"))
        })?;
        for _ in 0..MAX_LINKS {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => return Ok(p),
            }
        }
        Err(bad_archive(
            &self.source,
            format!("symlink loop at {path:?}"),
        ))
    }

    fn exists(&self, path: &str) -> bool {
        let Ok(p) = self.resolve(path) else {
            return false;
        };
        match &self.origin {
            Origin::Stream => self.files.contains_key(&p) || self.blobs.contains_key(&p),
            Origin::Dir(root) => sys::open_in_root(root.as_fd(), Path::new(&p), libc::O_RDONLY)
                .map(File::from)
                .is_ok_and(|f| f.metadata().is_ok_and(|m| m.is_file())),
        }
    }

    /// A small file's content (JSON), at most `MAX_JSON_BLOB` bytes.
    pub(super) fn small(&mut self, path: &str) -> Result<Vec<u8>> {
        let p = self.resolve(path)?;
        let missing = || bad_archive(&self.source, format!("{path} is missing"));
        match &self.origin {
            Origin::Stream => {
                if let Some(d) = self.files.get(&p) {
                    return Ok(d.clone());
                }
                let digest = self.blobs.get(&p).ok_or_else(missing)?.clone();
                self.store.read_small_blob(&digest, None, MAX_JSON_BLOB)
            }
            Origin::Dir(root) => {
                let f = sys::open_in_root(root.as_fd(), Path::new(&p), libc::O_RDONLY)
                    .map(File::from)
                    .map_err(|_| missing())?;
                let mut data = Vec::new();
                f.take(MAX_JSON_BLOB + 1)
                    .read_to_end(&mut data)
                    .map_err(io_err(Path::new(&self.source).join(&p).as_path()))?;
                if data.len() as u64 > MAX_JSON_BLOB {
                    return Err(bad_archive(&self.source, format!("{path} is too large")));
                }
                Ok(data)
            }
        }
    }

    /// Makes sure the file at `path` is in the blob store (verified against
    /// `expected` digest and size when given) and returns its digest.
    pub(super) fn blob(&mut self, path: &str, expected: Option<(&str, u64)>) -> Result<String> {
        let p = self.resolve(path)?;
        let missing = || bad_archive(&self.source, format!("{path} is missing"));
        let digest = match &self.origin {
            Origin::Stream => {
                if let Some(d) = self.blobs.get(&p) {
                    d.clone()
                } else {
                    let data = self.files.get(&p).ok_or_else(missing)?.clone();
                    let what = format!("{path} in {}", self.source);
                    let ing = match expected {
                        Some((d, s)) => self.store.ingest(&mut &data[..], Some(d), Some(s), d)?,
                        None => self.store.ingest(&mut &data[..], None, None, &what)?,
                    };
                    let d = self.note(ing);
                    self.blobs.insert(p.clone(), d.clone());
                    d
                }
            }
            Origin::Dir(root) => {
                if let Some((d, _)) = expected {
                    if self.store.has_blob(d) {
                        return Ok(d.to_string());
                    }
                }
                let f = sys::open_in_root(root.as_fd(), Path::new(&p), libc::O_RDONLY)
                    .map(File::from)
                    .map_err(|_| missing())?;
                let mut r = BufReader::with_capacity(1 << 20, f);
                let what = format!("{path} in {}", self.source);
                let ing = match expected {
                    Some((d, s)) => self.store.ingest(&mut r, Some(d), Some(s), d)?,
                    None => self.store.ingest(&mut r, None, None, &what)?,
                };
                self.note(ing)
            }
        };
        if let Some((d, s)) = expected {
            if digest != d {
                return Err(ImageError::BlobMismatch {
                    digest: d.to_string(),
                    what: "digest",
                    expected: d.to_string(),
                    actual: digest,
                });
            }
            let actual = self
                .store
                .blob_path(&digest)
                .and_then(|p| p.metadata().ok())
                .map_or(0, |m| m.len());
            if actual != s {
                return Err(ImageError::BlobMismatch {
                    digest: d.to_string(),
                    what: "size",
                    expected: format!("{s} bytes"),
                    actual: format!("{actual} bytes"),
                });
            }
        }
        Ok(digest)
    }

    /// The blob `digest` of an OCI layout, ingested if need be.
    fn layout_blob(&mut self, digest: &str, size: u64) -> Result<String> {
        let hex =
            sha256_hex(digest).ok_or_else(|| ImageError::InvalidDigest(digest.to_string()))?;
        if matches!(self.origin, Origin::Stream) && !self.exists(&format!("blobs/sha256/{hex}")) {
            if self.store.has_blob(digest) {
                return Ok(digest.to_string());
            }
            return Err(bad_archive(
                &self.source,
                format!("blob {digest} is missing from the archive"),
            ));
        }
        self.blob(&format!("blobs/sha256/{hex}"), Some((digest, size)))
    }

    /// The image manifests of an OCI layout with the name each is loaded
    /// under: indexes resolved to the host platform, names from annotations.
    fn oci_manifests(&mut self) -> Result<Vec<(String, Option<String>)>> {
        let data = self.small("index.json")?;
        let index: Index = serde_json::from_slice(&data)
            .map_err(|e| bad_archive(&self.source, format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for e in index.manifests {
            let name = entry_name(&e);
            self.collect(&e, name, 0, &mut out)?;
        }
        if out.is_empty() {
            return Err(bad_archive(
                &self.source,
                format!("no image for linux/{} in index.json", host_arch()),
            ));
        }
        Ok(out)
    }

    fn collect(
        &mut self,
        e: &IndexEntry,
        name: Option<String>,
        depth: u32,
        out: &mut Vec<(String, Option<String>)>,
    ) -> Result<()> {
        if let Some(p) = &e.platform {
            if p.os != "linux" || p.architecture != host_arch() {
                return Ok(());
            }
        }
        let d = self.layout_blob(&e.digest, e.size)?;
        match e.media_type.as_str() {
            MT_OCI_INDEX | MT_DOCKER_LIST => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(bad_archive(&self.source, "image indexes nest too deep"));
                }
                let data = self
                    .store
                    .read_small_blob(&d, Some(e.size), MAX_JSON_BLOB)?;
                let idx: Index =
                    serde_json::from_slice(&data).map_err(|err| ImageError::InvalidManifest {
                        digest: d.clone(),
                        reason: format!("not an image index: {err}"),
                    })?;
                // The first manifest for this platform, as a registry pull would pick.
                let before = out.len();
                for sub in idx.manifests {
                    let sub_name = entry_name(&sub).or_else(|| name.clone());
                    self.collect(&sub, sub_name, depth + 1, out)?;
                    if out.len() > before {
                        break;
                    }
                }
                Ok(())
            }
            _ => {
                // An image manifest (OCI or Docker; `register_manifest` checks it).
                let data = self
                    .store
                    .read_small_blob(&d, Some(e.size), MAX_JSON_BLOB)?;
                let checked = check_manifest(&d, &data)?;
                self.layout_blob(&checked.config.digest, checked.config.size)?;
                for (l, _) in &checked.layers {
                    self.layout_blob(&l.digest, l.size)?;
                }
                out.push((d, name));
                Ok(())
            }
        }
    }
}

/// The name an index entry gives its image, normalised; `None` when it has
/// none or it does not parse.
fn entry_name(e: &IndexEntry) -> Option<String> {
    let a = e.annotations.as_ref()?;
    let n = a.get(ANN_CONTAINERD_NAME).or_else(|| a.get(ANN_REF_NAME))?;
    let t = normalise_tag(n);
    if t.is_none() {
        tracing::warn!(name = %n, "image name in the archive is not a valid reference; loaded untagged");
    }
    t
}

/// `busybox:1` → `docker.io/library/busybox:1`; `None` if not a tag reference.
pub(super) fn normalise_tag(s: &str) -> Option<String> {
    Reference::parse_tag(s, "a digest is no tag").ok()
}

/// What a registration changed, to undo it.
struct Undo {
    /// Image rows this load created.
    new_images: Vec<String>,
    /// Tags this load set, with the image they pointed at before.
    tags: Vec<(String, Option<String>)>,
}

impl ImageStore {
    /// Loads the images of an OCI layout directory, an oci-archive or a
    /// docker-archive (possibly gzip- or zstd-compressed; `-` reads stdin).
    /// Returns the names loaded (the tags, or the id of an untagged image).
    pub fn load(&self, db: &mut Db, input: &Path) -> Result<Vec<String>> {
        let source = input.display().to_string();
        if input == Path::new("-") {
            return self.load_stream(db, Box::new(io::stdin().lock()), "stdin");
        }
        let meta = std::fs::metadata(input).map_err(|e| ImageError::BadInput {
            what: "input",
            value: source.clone(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            let root = sys::open_dir(input)
                .map(File::from)
                .map_err(io_err(input))?;
            let mut staged = Staged::new(self, &source, Origin::Dir(root));
            return self.load_staged(db, &mut staged);
        }
        let f = File::open(input).map_err(io_err(input))?;
        self.load_stream(db, Box::new(f), &source)
    }

    /// Loads an archive from a stream (see [`ImageStore::load`]).
    pub fn load_stream(
        &self,
        db: &mut Db,
        reader: Box<dyn Read + '_>,
        source: &str,
    ) -> Result<Vec<String>> {
        let mut staged = Staged::new(self, source, Origin::Stream);
        let res =
            crate::image::import::decompress(reader, source).and_then(|r| staged.read_stream(r));
        if let Err(e) = res {
            self.drop_created(db, &staged.created);
            return Err(e);
        }
        self.load_staged(db, &mut staged)
    }

    fn load_staged(&self, db: &mut Db, staged: &mut Staged<'_>) -> Result<Vec<String>> {
        let mut undo = Undo {
            new_images: vec![],
            tags: vec![],
        };
        // The archive's blobs are in the store; nothing is registered yet.
        crate::failpoint::hit("load:staged");
        let res = self.register_staged(db, staged, &mut undo);
        if res.is_err() {
            self.undo(db, &undo);
        }
        // Blobs this load wrote that no image uses (other platforms, failures).
        self.drop_created(db, &staged.created);
        res
    }

    fn register_staged(
        &self,
        db: &mut Db,
        staged: &mut Staged<'_>,
        undo: &mut Undo,
    ) -> Result<Vec<String>> {
        let images: Vec<(String, Vec<String>)> = if staged.exists("index.json") {
            staged
                .oci_manifests()?
                .into_iter()
                .map(|(d, n)| (d, n.into_iter().collect()))
                .collect()
        } else if staged.exists("manifest.json") {
            staged.docker_manifests()?
        } else {
            return Err(bad_archive(
                &staged.source,
                "neither an OCI image layout (index.json) nor a docker-archive (manifest.json)",
            ));
        };
        let mut names = Vec::new();
        for (manifest, tags) in images {
            let data = self.read_small_blob(&manifest, None, MAX_JSON_BLOB)?;
            let id = check_manifest(&manifest, &data)?.config.digest;
            if db.image(&id)?.is_none() {
                undo.new_images.push(id.clone());
            }
            let first = tags.first().map(String::as_str);
            for t in &tags {
                undo.tags
                    .push((t.clone(), db.tag(t)?.map(|row| row.image_id)));
            }
            let img = self.register_manifest(db, &manifest, first)?;
            for t in tags.iter().skip(1) {
                self.tag(db, &img.id, t)?;
            }
            if tags.is_empty() {
                names.push(img.id.clone());
            }
            names.extend(tags);
        }
        Ok(names)
    }

    /// Undoes the registrations of a failed load.
    fn undo(&self, db: &mut Db, undo: &Undo) {
        let res = (|| -> Result<()> {
            let _lock = self.lock()?;
            for (tag, before) in undo.tags.iter().rev() {
                match before {
                    Some(id) => {
                        if let Some(row) = db.image(id)? {
                            db.put_image(&row, Some(tag))?;
                        }
                    }
                    None => db.delete_tag(tag)?,
                }
            }
            for id in &undo.new_images {
                if let Some(row) = db.image(id)? {
                    let manifests = crate::image::manifests_of(db, id)?;
                    if db.untag_image(None, id)? {
                        self.remove_unused_files(db, &row, &manifests)?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot undo a failed load completely; `gvpod image prune` removes what is left");
        }
    }

    /// Removes the blobs in `created` that no registered image references
    /// (a failed load's, and a pull's that filled the disk).
    pub(in crate::image) fn drop_created(&self, db: &Db, created: &HashSet<String>) {
        if created.is_empty() {
            return;
        }
        let res = (|| -> Result<()> {
            let _lock = self.lock()?;
            let (_, used) = self.referenced(db)?;
            for d in created {
                if let Some(hex) = sha256_hex(d) {
                    if !used.contains(hex) {
                        let p = self.blobs_dir().join(hex);
                        sys::remove_path(&p).map_err(io_err(&p))?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            tracing::warn!(error = %e, "cannot remove the blobs of a load; `gvpod image prune` removes them");
        }
    }
}
