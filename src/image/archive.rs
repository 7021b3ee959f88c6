//! `gvpod load` and `gvpod save`: OCI image layouts and image archives.
//!
//! Accepted by [`ImageStore::load`]:
//!
//! * an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`);
//! * an oci-archive: a tar of such a layout;
//! * a docker-archive (`docker save`): `manifest.json` listing each image's
//!   config file, `RepoTags` and layer files (legacy `<id>/layer.tar`
//!   directories, possibly symlinked to one another, or `blobs/sha256/…`
//!   in Docker ≥ 25, whose archives are also OCI layouts and load as such);
//! * any of those archives gzip- or zstd-compressed, or on stdin (`-`).
//!
//! An archive is read in one pass, so it can be a pipe: every
//! `blobs/sha256/<hex>` entry is streamed into the blob store and verified
//! against its name, other large files (legacy `layer.tar`) are streamed in
//! and hashed, small files (JSON) are kept in memory up to a total budget.
//! A layout directory is read on demand, each path resolved inside it
//! (`openat2(RESOLVE_IN_ROOT)`), and only the blobs an image needs are copied.
//! Then each image manifest (image indexes resolved to the host platform;
//! a docker-archive entry gets an OCI manifest written for it, with layer
//! media types from the blobs' magic bytes) is registered with
//! [`ImageStore::register_manifest`], which verifies and unpacks the layers.
//!
//! All or nothing: if anything fails, the images this load registered are
//! unregistered again (tags it moved are put back), and blobs and layers it
//! created that nothing references are removed.
//!
//! [`ImageStore::save`] writes an oci-archive (default) or a docker-archive
//! to a temp file next to the output, fsyncs it and renames it into place.
//! Blobs are copied as stored; a docker-archive needs uncompressed
//! `layer.tar`s, so compressed layers are decompressed (and their diff id
//! checked) through a temp file.

use crate::sys;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::register::{
    self, check_manifest, Compression, Descriptor, MAX_JSON_BLOB, MT_DOCKER_LIST, MT_OCI_CONFIG,
    MT_OCI_INDEX, MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD, MT_OCI_MANIFEST,
};
use super::unpack;
use super::{
    io_err, sha256_hex, temp_name, Found, ImageError, ImageStore, Reference, Result, TempPath,
    TMP_PREFIX,
};
use crate::state::{Db, ImageRow};

/// Archive formats `gvpod save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// A tar of an OCI image layout.
    #[default]
    OciArchive,
    /// The `docker save` format (manifest.json, `<id>/layer.tar`).
    DockerArchive,
}

/// Annotation naming an image in an OCI index (the full reference when
/// gvpod, podman or skopeo write it; sometimes just a tag).
const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and Docker use for the full image name.
const ANN_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Files below this size that are not `blobs/sha256/*` are kept in memory
/// while an archive is read; larger ones are streamed into the blob store.
const SMALL_FILE: u64 = 1 << 20;
/// Total memory for such small files; past it they go to the blob store too.
const SMALL_BUDGET: u64 = 64 << 20;
/// Image indexes nest at most this deep.
const MAX_INDEX_DEPTH: u32 = 4;
/// Symlink chains inside an archive are followed at most this far.
const MAX_LINKS: u32 = 16;

fn bad_archive(source: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive {
        source_name: source.to_string(),
        reason: reason.into(),
    }
}

/// Records, where the reader can see it during iteration, whether the
/// stream hit EOF (a well-formed archive is parsed up to its end blocks
/// before EOF is ever seen).
struct EofFlag<R> {
    inner: R,
    eof: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for EofFlag<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.set(true);
        }
        Ok(n)
    }
}

/// An OCI image index (or Docker manifest list) with the fields used here.
#[derive(Debug, Deserialize, Serialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct IndexEntry {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

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
struct Staged<'a> {
    store: &'a ImageStore,
    source: String,
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

    fn note(&mut self, ing: super::blob::Ingested) -> String {
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
        let eof = std::rc::Rc::new(std::cell::Cell::new(false));
        let mut guard = EofFlag {
            inner: reader,
            eof: eof.clone(),
        };
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
        if eof.get() {
            return Err(corrupt(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends without an end-of-archive block (truncated?)",
            )));
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
    fn small(&mut self, path: &str) -> Result<Vec<u8>> {
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
    fn blob(&mut self, path: &str, expected: Option<(&str, u64)>) -> Result<String> {
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

    /// The images of a docker-archive `manifest.json`, each given an OCI
    /// manifest of its own.
    fn docker_manifests(&mut self) -> Result<Vec<(String, Vec<String>)>> {
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
fn normalise_tag(s: &str) -> Option<String> {
    let r = Reference::parse(s).ok()?;
    if r.digest.is_some() {
        return None;
    }
    r.tagged()
}

/// The compression of a stored blob, from its magic bytes.
fn sniff(store: &ImageStore, digest: &str) -> Result<Compression> {
    let mut f = store.open_blob(digest, None)?;
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(&store.blob_path(digest).unwrap_or_default())(e)),
        }
    }
    Ok(if head[..n].starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// What a registration changed, to undo it.
struct Undo {
    /// Image rows this load created.
    new_images: Vec<String>,
    /// Tags this load set, with the image they pointed at before.
    tags: Vec<(String, Option<String>)>,
}

#[allow(dead_code)] // called by the CLI
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
        let res = super::import::decompress(reader, source).and_then(|r| staged.read_stream(r));
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
                    let manifests = super::manifests_of(db, id)?;
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

    /// Removes the blobs in `created` that no registered image references.
    fn drop_created(&self, db: &Db, created: &HashSet<String>) {
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
    fn manifest_of(&self, row: &ImageRow) -> Result<(Vec<u8>, register::Checked)> {
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

    fn write_docker(&self, w: &mut ArchiveWriter, found: &[Found]) -> Result<()> {
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
        let tmp = TempPath::new(self.blobs_dir().join(temp_name(TMP_PREFIX)));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp.path)
            .map_err(io_err(&tmp.path))?;
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

fn parse_row_config(row: &ImageRow) -> Result<oci_spec::image::ImageConfiguration> {
    register::parse_config(row.config_json.as_bytes()).map_err(|reason| ImageError::CorruptRecord {
        id: row.id.clone(),
        reason,
    })
}

/// A tar being written: reproducible headers (owner 0, mode 0644/0755, mtime 0).
struct ArchiveWriter {
    tar: tar::Builder<BufWriter<File>>,
    path: PathBuf,
    written: HashSet<String>,
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

    fn dir(&mut self, name: &str) -> Result<()> {
        if !self.written.insert(name.to_string()) {
            return Ok(());
        }
        let mut h = Self::header(tar::EntryType::Directory, 0, 0o755);
        self.tar
            .append_data(&mut h, name, io::empty())
            .map_err(io_err(&self.path))
    }

    fn bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.written.insert(name.to_string());
        let mut h = Self::header(tar::EntryType::Regular, data.len() as u64, 0o644);
        self.tar
            .append_data(&mut h, name, data)
            .map_err(io_err(&self.path))
    }

    /// Appends the file at `src` (a store file) as `name`, once.
    fn file_from(&mut self, name: &str, src: &Path) -> Result<()> {
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
