//! `gvpod push`: upload an image's config and layer blobs (skipping those
//! the registry already has, asked with `HEAD`), then its manifest, exactly
//! as stored (so its digest is unchanged). Blobs stream from the store's
//! files through a reader thread, [`PARALLEL_BLOBS`] at a time, each in one
//! monolithic `PUT`; nothing is held whole in memory.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::{Client, RegistryOperation};
use tokio::sync::mpsc;

use super::auth::AuthFile;
use super::progress::{BlobProgress, Progress};
use super::{connect, runtime, RegistryError, Result, Target, PARALLEL_BLOBS};
use crate::image::{ImageError, ImageStore, Reference};
use crate::state::Db;

/// What `gvpod push` was asked, beyond the image and destination.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub tls_verify: bool,
    pub quiet: bool,
}

/// Bytes per read of a blob file.
const CHUNK: usize = 1 << 20;

/// Pushes the image `name` to `dest` (default: `name` itself, which must
/// then be a registry reference). Returns the manifest digest.
pub fn push(
    store: &ImageStore,
    db: &Db,
    data_root: &Path,
    name: &str,
    dest: Option<&str>,
    opts: &PushOptions,
) -> Result<String> {
    let store_err = |source: ImageError| RegistryError::Store {
        reference: name.to_string(),
        source,
    };
    let image = store.resolve(db, name).map_err(store_err)?;
    let row = db
        .image(&image.id)
        .map_err(|e| store_err(e.into()))?
        .ok_or_else(|| store_err(ImageError::NotFound(name.to_string())))?;
    let dest_name = dest.unwrap_or(name);
    let dest_ref = Reference::parse(dest_name).map_err(RegistryError::BadReference)?;
    if dest_ref.digest.is_some() {
        return Err(RegistryError::Usage(format!(
            "push destination {dest_name:?} carries a digest; give a tag"
        )));
    }
    let target = Target::new(&dest_ref);

    let manifest_path = store.blob_path(&row.manifest_digest).ok_or_else(|| {
        target.protocol(format!(
            "malformed manifest digest {:?}",
            row.manifest_digest
        ))
    })?;
    let manifest_data = std::fs::read(&manifest_path).map_err(|e| {
        target.store(ImageError::Io {
            path: manifest_path.clone(),
            source: e,
        })
    })?;
    let manifest: OciImageManifest = serde_json::from_slice(&manifest_data).map_err(|e| {
        target.protocol(format!(
            "stored manifest {} of {name} is malformed: {e}",
            row.manifest_digest
        ))
    })?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());

    // Every blob must be in the store before anything is sent.
    let mut blobs: Vec<(OciDescriptor, PathBuf)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let path = store
            .blob_path(&d.digest)
            .filter(|p| p.exists())
            .ok_or_else(|| {
                target.protocol(format!(
                    "blob {} of {name} is missing from the store; pull or load the image again",
                    d.digest
                ))
            })?;
        blobs.push((d.clone(), path));
    }

    let auth = AuthFile::new(data_root).lookup(&dest_ref.registry)?;
    let progress = Progress::new(opts.quiet, "pushed");
    let rt = runtime()?;
    rt.block_on(async {
        let client = connect(&target, &auth, opts.tls_verify, RegistryOperation::Push).await?;
        let mut todo = Vec::new();
        for (d, p) in &blobs {
            let exists = client
                .blob_exists(&target.oci, &d.digest)
                .await
                .map_err(|e| target.classify(&format!("blob {}", d.digest), e))?;
            if exists {
                progress.exists(&d.digest);
            } else {
                todo.push((d, p));
            }
        }
        progress.add_total(
            todo.iter()
                .map(|(d, _)| u64::try_from(d.size).unwrap_or(0))
                .sum(),
        );
        futures_util::stream::iter(
            todo.into_iter()
                .map(|(d, p)| push_blob(&client, &target, d, p, &progress)),
        )
        .buffer_unordered(PARALLEL_BLOBS)
        .try_collect::<Vec<()>>()
        .await?;
        let ct = reqwest::header::HeaderValue::from_str(&media_type)
            .map_err(|_| target.protocol(format!("bad manifest media type {media_type:?}")))?;
        client
            .push_manifest_raw(&target.oci, manifest_data, ct)
            .await
            .map_err(|e| target.classify("manifest upload", e))?;
        Ok::<(), RegistryError>(())
    })?;
    progress.finish();
    progress.line(&format!("Digest: {}", row.manifest_digest));
    Ok(row.manifest_digest)
}

/// Uploads one blob from its file in the store.
async fn push_blob(
    client: &Client,
    target: &Target,
    desc: &OciDescriptor,
    path: &Path,
    progress: &Progress,
) -> Result<()> {
    let what = format!("blob {}", desc.digest);
    let size = u64::try_from(desc.size).unwrap_or(0);
    let file = std::fs::File::open(path).map_err(|e| {
        target.store(ImageError::Io {
            path: path.to_path_buf(),
            source: e,
        })
    })?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let bar = progress.start(&desc.digest, size);
    let reader = std::thread::spawn(move || read_into(file, tx, bar));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map_err(OciDistributionError::from), rx))
    });
    let res = client
        .push_blob_stream(&target.oci, stream.boxed(), &desc.digest, Some(size))
        .await;
    // The reader ends on its own: at end of file, or when the stream is dropped.
    let bar = reader.join().ok();
    match res {
        Ok(_) => {
            if let Some(b) = bar {
                b.finish();
            }
            Ok(())
        }
        Err(e) => {
            if let Some(b) = bar {
                b.abandon();
            }
            Err(target.classify(&what, e))
        }
    }
}

/// Reads `file` in chunks into the upload stream (on its own thread).
fn read_into(
    mut file: std::fs::File,
    tx: mpsc::Sender<io::Result<Bytes>>,
    mut bar: BlobProgress,
) -> BlobProgress {
    loop {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                bar.inc(n as u64);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    }
    bar
}
