//! `gvpod load` and `gvpod save`: OCI image layouts and image archives.
//!
//! Accepted by [`ImageStore::load`](super::ImageStore::load) (see [`load`]):
//!
//! * an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`);
//! * an oci-archive: a tar of such a layout;
//! * a docker-archive (`docker save`): `manifest.json` listing each image's
//!   config file, `RepoTags` and layer files (legacy `<id>/layer.tar`
//!   directories, possibly symlinked to one another, or `blobs/sha256/…`
//!   in Docker ≥ 25, whose archives are also OCI layouts and load as such);
//! * any of those archives gzip- or zstd-compressed, or on stdin (`-`).
//!
//! Written by [`ImageStore::save`](super::ImageStore::save) (see [`save`]):
//! an oci-archive (default) or a docker-archive.
//!
//! The parts, one job each:
//!
//! * [`load`] reads an archive or layout (one pass over a stream, or on
//!   demand from a directory), collects the image manifests of an OCI
//!   layout and registers them; invariant: all or nothing;
//! * [`save`] writes an archive atomically (temp file, fsync, rename) with
//!   reproducible tar headers; invariant: blobs are copied as stored;
//! * [`docker`] is what is specific to the docker-archive format, both ways:
//!   `manifest.json`, and `layer.tar`s that must be uncompressed;
//! * this module holds what the OCI side of both shares: the image index
//!   types and the annotations that name an image in it.

mod docker;
mod load;
mod save;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
