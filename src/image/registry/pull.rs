//! `gvpod pull`: resolve a reference to one image manifest (an index or
//! manifest list is resolved to the wanted platform), fetch the config and
//! layer blobs the store lacks, then the manifest, and register the image.
//!
//! Nothing is downloaded twice: the manifest's digest comes from the
//! reference or a `HEAD` request, and every manifest and blob already in the
//! store ([`ImageStore::has_blob`]) is read locally. Missing blobs download
//! [`PARALLEL_BLOBS`] at a time; each streams from the HTTP body through a
//! bounded channel into [`ImageStore::ingest_blob`], which runs on a scoped
//! helper thread and verifies digest and size (oci-client checks the digest
//! too). Manifests are stored only after every blob arrived, and the image is
//! registered last ([`ImageStore::register_manifest`], which unpacks), so a
//! failed pull registers nothing. A pull that fails on a full disk also
//! gives back the blobs it wrote (nothing is worth keeping on a full disk;
//! a retry downloads them again); after any other failure they stay, so a
//! retry resumes where it stopped.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;
use std::thread::Scope;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use tokio::sync::{mpsc, oneshot};

use super::auth::AuthFile;
use super::progress::Progress;
use super::{connect, runtime, sha256_digest, RegistryError, Result, Target, PARALLEL_BLOBS};
use crate::image::{Image, ImageStore, Reference};
use crate::state::Db;

/// What `gvpod pull` was asked, beyond the reference.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `false`: allow HTTPS without certificate checks, then plain HTTP.
    pub tls_verify: bool,
    /// `OS/ARCH[/VARIANT]`; default: the host's.
    pub platform: Option<String>,
    /// No progress output.
    pub quiet: bool,
    /// Progress as events to this sink instead of stderr.
    pub sink: Option<super::progress::ProgressSink>,
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// What gvpod asks the registry for (the `Accept` header of manifest requests).
const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Layer media types the store can unpack (plain, gzip or zstd tar).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// An OS/architecture pair, as image indexes name them (Go's GOOS/GOARCH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Go's name for a Rust/uname architecture name.
fn go_arch(a: &str) -> String {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i386" | "x86" => "386",
        "armv7" | "armv7l" | "arm" => "arm",
        "powerpc64le" => "ppc64le",
        other => other,
    }
    .to_string()
}

impl Platform {
    /// The platform gvpod runs on.
    pub fn host() -> Platform {
        Platform {
            os: std::env::consts::OS.to_string(),
            arch: go_arch(std::env::consts::ARCH),
            variant: None,
        }
    }

    /// Parses `OS/ARCH[/VARIANT]` (`linux/arm64`, `linux/arm/v7`).
    pub fn parse(s: &str) -> Result<Platform> {
        let bad = || RegistryError::InvalidPlatform(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            arch: go_arch(parts[1]),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// Whether an index entry's platform is this one. Without a wanted
    /// variant any variant matches; arm64's `v8` is the same as none.
    fn matches(&self, p: &oci_client::manifest::Platform) -> bool {
        let norm = |arch: &str, v: Option<&str>| match (arch, v) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        p.os.to_string() == self.os
            && p.architecture.to_string() == self.arch
            && (self.variant.is_none()
                || norm(&self.arch, self.variant.as_deref())
                    == norm(&self.arch, p.variant.as_deref()))
    }
}

/// The index entry for `want`: among the matching ones, one without a
/// variant (or arm64/v8) first, as Docker does.
fn choose<'a>(index: &'a OciImageIndex, want: &Platform) -> Option<&'a ImageIndexEntry> {
    let mut matching = index
        .manifests
        .iter()
        .filter(|e| e.platform.as_ref().is_some_and(|p| want.matches(p)));
    let first = matching.next()?;
    let plain = |e: &&ImageIndexEntry| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.variant.is_none() || p.variant.as_deref() == Some("v8"))
    };
    Some(
        std::iter::once(first)
            .chain(matching)
            .find(plain)
            .unwrap_or(first),
    )
}

/// Platforms an index offers, for the error message.
fn available(index: &OciImageIndex) -> String {
    let v: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    if v.is_empty() {
        "no platforms".into()
    } else {
        v.join(", ")
    }
}

#[derive(Debug)]
enum Manifest {
    Index(OciImageIndex),
    Image(Box<OciImageManifest>),
}

/// Tells an index from an image manifest by `mediaType`, or by shape when absent.
fn parse_manifest(target: &Target, data: &[u8]) -> Result<Manifest> {
    let v: serde_json::Value = serde_json::from_slice(data)
        .map_err(|e| target.protocol(format!("manifest is not valid JSON: {e}")))?;
    if v.get("schemaVersion").and_then(|s| s.as_i64()) == Some(1) {
        return Err(RegistryError::Unsupported {
            registry: target.registry.clone(),
            reference: target.reference.clone(),
            what: "manifest schema",
            media_type: "Docker image manifest v2 schema 1".into(),
        });
    }
    let mt = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let is_index = match mt.as_deref() {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        None if v.get("manifests").is_some() => true,
        None if v.get("layers").is_some() => false,
        other => {
            return Err(RegistryError::Unsupported {
                registry: target.registry.clone(),
                reference: target.reference.clone(),
                what: "manifest media type",
                media_type: other.unwrap_or("(none)").to_string(),
            })
        }
    };
    let bad = |e: serde_json::Error| target.protocol(format!("malformed manifest: {e}"));
    if is_index {
        serde_json::from_value(v).map(Manifest::Index).map_err(bad)
    } else {
        serde_json::from_value(v)
            .map(|m| Manifest::Image(Box::new(m)))
            .map_err(bad)
    }
}

/// Pulls `name` into the store and registers it (tagged with its
/// normalised reference unless pulled by digest).
pub fn pull(
    store: &ImageStore,
    db: &mut Db,
    data_root: &Path,
    name: &str,
    opts: &PullOptions,
) -> Result<Image> {
    let r = Reference::parse(name).map_err(RegistryError::BadReference)?;
    let platform = match &opts.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let target = Target::new(&r);
    let auth = AuthFile::new(data_root).lookup(&r.registry)?;
    let progress = match &opts.sink {
        Some(s) => Progress::to_sink(s.clone(), "downloaded"),
        None => Progress::new(opts.quiet, "downloaded"),
    };
    let rt = runtime()?;
    let puller = Puller {
        store,
        target: &target,
        auth: &auth,
        progress: &progress,
        fetched: Default::default(),
    };
    let fetched = std::thread::scope(|scope| {
        rt.block_on(puller.fetch(scope, opts.tls_verify, &platform, r.digest.as_deref()))
    });
    let manifest_digest = fetched.map_err(|e| give_back(store, db, &puller.fetched, e))?;
    drop(rt);
    progress.finish();
    // Every blob is in the store; nothing is registered yet.
    crate::failpoint::hit("pull:fetched");
    let tag = if r.digest.is_none() { r.tagged() } else { None };
    let busy = progress.busy("unpacking layers and registering the image");
    let image = store
        .register_manifest(db, &manifest_digest, tag.as_deref())
        .map_err(|e| give_back(store, db, &puller.fetched, target.store(e)))?;
    drop(busy);
    tracing::debug!(id = %image.id, "step pull:registered");
    progress.line(&format!("Digest: {manifest_digest}"));
    Ok(image)
}

/// After a failed pull: on a full disk, removes the blobs it wrote that
/// no image uses (see the module docs). Returns the error.
fn give_back(
    store: &ImageStore,
    db: &Db,
    fetched: &Mutex<HashSet<String>>,
    e: RegistryError,
) -> RegistryError {
    if crate::error::disk_full(&e) {
        let fetched = std::mem::take(&mut *fetched.lock().unwrap_or_else(|p| p.into_inner()));
        store.drop_created(db, &fetched);
    }
    e
}

/// One pull in progress.
struct Puller<'a> {
    store: &'a ImageStore,
    target: &'a Target,
    auth: &'a RegistryAuth,
    progress: &'a Progress,
    /// Blobs the store lacked when this pull began (written by it).
    fetched: Mutex<HashSet<String>>,
}

impl<'a> Puller<'a> {
    /// Everything but the registration; returns the image manifest's digest.
    async fn fetch<'s>(
        &self,
        scope: &'s Scope<'s, 'a>,
        tls_verify: bool,
        platform: &Platform,
        pinned: Option<&str>,
    ) -> Result<String> {
        let client = connect(self.target, self.auth, tls_verify, RegistryOperation::Pull).await?;
        tracing::debug!(registry = %self.target.registry, "step pull:connected");
        let (top, top_digest) = self.manifest(&client, &self.target.oci, pinned).await?;
        let mut manifests = vec![(top.clone(), top_digest.clone())];
        let (image, digest) = match parse_manifest(self.target, &top)? {
            Manifest::Image(m) => (*m, top_digest),
            Manifest::Index(index) => {
                let entry = choose(&index, platform).ok_or_else(|| RegistryError::NoPlatform {
                    registry: self.target.registry.clone(),
                    reference: self.target.reference.clone(),
                    platform: platform.to_string(),
                    available: available(&index),
                })?;
                let child_ref = self.target.at_digest(&entry.digest);
                let (data, d) = self
                    .manifest(&client, &child_ref, Some(&entry.digest))
                    .await?;
                let Manifest::Image(m) = parse_manifest(self.target, &data)? else {
                    return Err(self.target.protocol(format!(
                        "index entry {} for {platform} is itself an index",
                        entry.digest
                    )));
                };
                manifests.push((data, d.clone()));
                (*m, d)
            }
        };
        for l in &image.layers {
            if !LAYER_TYPES.contains(&l.media_type.as_str()) {
                return Err(RegistryError::Unsupported {
                    registry: self.target.registry.clone(),
                    reference: self.target.reference.clone(),
                    what: "layer media type",
                    media_type: l.media_type.clone(),
                });
            }
        }

        // Config and layers the store lacks, each once.
        let mut seen = std::collections::HashSet::new();
        let mut todo: Vec<&OciDescriptor> = Vec::new();
        for d in std::iter::once(&image.config).chain(image.layers.iter()) {
            if !seen.insert(d.digest.as_str()) {
                continue;
            }
            if self.store.has_blob(&d.digest) {
                self.progress.exists(&d.digest);
            } else {
                self.note_fetched(&d.digest);
                todo.push(d);
            }
        }
        tracing::debug!(manifest = %digest, missing = todo.len(), "step pull:manifest");
        self.progress.add_total(
            todo.iter()
                .map(|d| u64::try_from(d.size).unwrap_or(0))
                .sum(),
        );
        futures_util::stream::iter(todo.into_iter().map(|d| self.blob(scope, &client, d)))
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        tracing::debug!("step pull:blobs");

        // Manifests last (index first), so an interrupted pull leaves no
        // manifest whose blobs are missing.
        for (data, d) in &manifests {
            if !self.store.has_blob(d) {
                self.note_fetched(d);
            }
            self.store
                .ingest_blob(&mut &data[..], d, Some(data.len() as u64))
                .map_err(|e| self.target.store(e))?;
        }
        Ok(digest)
    }

    /// A manifest's bytes and digest: from the store when it has the digest
    /// (known from the reference or a `HEAD`), else from the registry,
    /// verified against its digest.
    async fn manifest(
        &self,
        client: &Client,
        oref: &oci_client::Reference,
        known: Option<&str>,
    ) -> Result<(Bytes, String)> {
        let digest = match known {
            Some(d) => d.to_string(),
            None => client
                .fetch_manifest_digest(oref, self.auth)
                .await
                .map_err(|e| self.target.classify("manifest", e))?,
        };
        if self.store.has_blob(&digest) {
            if let Some(data) = self
                .store
                .blob_path(&digest)
                .and_then(|p| std::fs::read(p).ok())
                .filter(|d| sha256_digest(d) == digest)
            {
                return Ok((Bytes::from(data), digest));
            }
        }
        let (data, got) = client
            .pull_manifest_raw(oref, self.auth, MANIFEST_TYPES)
            .await
            .map_err(|e| self.target.classify("manifest", e))?;
        let actual = sha256_digest(&data);
        if actual != digest || got != digest {
            return Err(RegistryError::Digest {
                registry: self.target.registry.clone(),
                reference: self.target.reference.clone(),
                what: "manifest".into(),
                reason: format!("expected {digest}, got {actual}"),
            });
        }
        Ok((data, digest))
    }

    /// Streams one blob into the store.
    async fn blob<'s>(
        &self,
        scope: &'s Scope<'s, 'a>,
        client: &Client,
        desc: &OciDescriptor,
    ) -> Result<()> {
        let what = format!("blob {}", desc.digest);
        let size = u64::try_from(desc.size).map_err(|_| {
            self.target.protocol(format!(
                "{what}: negative size {} in the manifest",
                desc.size
            ))
        })?;
        let mut stream = client
            .pull_blob_stream(&self.target.oci, desc)
            .await
            .map_err(|e| self.target.classify(&what, e))?;

        let (tx, rx) = mpsc::channel::<Msg>(CHANNEL_CHUNKS);
        let (done_tx, done_rx) = oneshot::channel();
        let store = self.store;
        let digest = desc.digest.clone();
        scope.spawn(move || {
            let mut reader = ChannelReader {
                rx,
                cur: Bytes::new(),
                ended: false,
            };
            let _ = done_tx.send(store.ingest_blob(&mut reader, &digest, Some(size)));
        });

        let mut bar = self.progress.start(&desc.digest, size);
        let mut received = 0u64;
        let mut failure: Option<RegistryError> = None;
        loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    received += chunk.len() as u64;
                    if received > size {
                        failure = Some(self.digest_error(
                            &what,
                            format!(
                            "the registry sent more than the {size} bytes the manifest declares"
                        ),
                        ));
                        break;
                    }
                    bar.inc(chunk.len() as u64);
                    if tx.send(Msg::Data(chunk)).await.is_err() {
                        break; // the store gave up; its error is below
                    }
                }
                Some(Err(e)) => {
                    failure = Some(self.stream_error(&what, e, received, size));
                    break;
                }
                None => {
                    let _ = tx.send(Msg::End).await;
                    break;
                }
            }
        }
        if failure.is_some() {
            let _ = tx.send(Msg::Fail).await;
        }
        drop(tx);
        let stored = done_rx.await;
        match (failure, stored) {
            (Some(e), _) => {
                bar.abandon();
                Err(e)
            }
            (None, Ok(Ok(()))) => {
                bar.finish();
                Ok(())
            }
            (None, Ok(Err(e))) => {
                bar.abandon();
                Err(self.target.store(e))
            }
            (None, Err(_)) => {
                bar.abandon();
                Err(self
                    .target
                    .protocol(format!("{what}: the store thread ended without an answer")))
            }
        }
    }

    fn note_fetched(&self, digest: &str) {
        self.fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string());
    }

    fn digest_error(&self, what: &str, reason: String) -> RegistryError {
        RegistryError::Digest {
            registry: self.target.registry.clone(),
            reference: self.target.reference.clone(),
            what: what.to_string(),
            reason,
        }
    }

    /// An error in the middle of a blob's body: a digest mismatch found by
    /// oci-client at its end, or a broken transfer.
    fn stream_error(&self, what: &str, e: io::Error, received: u64, size: u64) -> RegistryError {
        let digest_mismatch = e.get_ref().is_some_and(|inner| {
            inner
                .downcast_ref::<oci_client::errors::DigestError>()
                .is_some()
        });
        let mut reason = super::one_line(&e);
        if received != size {
            reason.push_str(&format!(" (received {received} of {size} bytes)"));
        }
        if digest_mismatch {
            self.digest_error(what, reason)
        } else {
            self.target
                .protocol(format!("{what}: transfer failed: {reason}"))
        }
    }
}

/// Chunks buffered between the network and the store, per blob.
const CHANNEL_CHUNKS: usize = 16;

/// What the network side tells the store side.
enum Msg {
    Data(Bytes),
    /// The body ended normally.
    End,
    /// The transfer failed; the store must discard what it wrote.
    Fail,
}

/// The store side of a blob's channel, as a blocking `Read`.
struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    cur: Bytes,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.cur.is_empty() {
                let n = buf.len().min(self.cur.len());
                buf[..n].copy_from_slice(&self.cur.split_to(n));
                return Ok(n);
            }
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(b)) => self.cur = b,
                Some(Msg::End) => self.ended = true,
                Some(Msg::Fail) => return Err(io::Error::other("blob transfer failed")),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob transfer aborted",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;
