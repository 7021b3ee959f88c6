//! Builds image archives in tests: layer tarballs with arbitrary (also
//! hostile) entry names, and oci-archives around them.

use sha2::{Digest, Sha256};
use std::io::Write;
use tar::{EntryType, Header};

pub const MT_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer tarball whose headers are written raw, so names that
/// `tar::Builder` refuses (`..`, absolute) get through.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> Header {
        assert!(path.len() < 100, "test names must fit the ustar name field");
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    fn raw(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.raw(Self::header(EntryType::Directory, path, 0o755, 0), &[])
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.raw(
            Self::header(EntryType::Regular, path, 0o644, data.len() as u64),
            data,
        )
    }

    fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Self {
        assert!(target.len() < 100);
        let mut h = Self::header(kind, path, 0o777, 0);
        let l = &mut h.as_old_mut().linkname;
        l.fill(0);
        l[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, &[])
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, path, target)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, path, target)
    }

    /// An entry of any type with its mode and owner, `data` as content.
    pub fn owned(
        &mut self,
        kind: EntryType,
        path: &str,
        mode: u32,
        (uid, gid): (u64, u64),
        data: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(kind, path, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, data)
    }

    /// A character or block device `major:minor`, mode 0640.
    pub fn device(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, path, 0o640, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }

    /// Copies every entry of another (well-formed) tarball.
    pub fn extend_from(&mut self, tarball: &[u8]) -> &mut Self {
        let mut a = tar::Archive::new(tarball);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().into_owned();
            let mut h = e.header().clone();
            if let Some(l) = e.link_name().unwrap() {
                h.set_link_name(&l).unwrap();
            }
            self.b.append_data(&mut h, path, &mut e).unwrap();
        }
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

/// Compresses a layer tarball for `media_type`.
pub fn compress(tar: &[u8], media_type: &str) -> Vec<u8> {
    if media_type.ends_with("gzip") {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(tar).unwrap();
        e.finish().unwrap()
    } else if media_type.ends_with("zstd") {
        zstd::encode_all(tar, 3).unwrap()
    } else {
        tar.to_vec()
    }
}

/// One image of an archive: uncompressed layer tars with the media type
/// each is stored as, the image config's "config" object, and its name.
pub struct Image {
    pub layers: Vec<(Vec<u8>, &'static str)>,
    pub config: serde_json::Value,
    pub name: Option<String>,
    /// Replaces the diff ids of the config (to forge mismatches).
    pub diff_ids: Option<Vec<String>>,
}

impl Image {
    pub fn new(layers: Vec<(Vec<u8>, &'static str)>, name: &str) -> Image {
        Image {
            layers,
            config: serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin"]}),
            name: Some(name.to_string()),
            diff_ids: None,
        }
    }

    /// The digests of the layer blobs as stored.
    pub fn blob_digests(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|(t, mt)| sha(&compress(t, mt)))
            .collect()
    }
}

/// An oci-archive (a tar of an OCI image layout) holding `images`.
pub fn oci_archive(images: &[Image]) -> Vec<u8> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifests = Vec::new();
    for img in images {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (tar, mt) in &img.layers {
            let blob = compress(tar, mt);
            diff_ids.push(sha(tar));
            descs.push(
                serde_json::json!({"mediaType": mt, "digest": sha(&blob), "size": blob.len()}),
            );
            blobs.push((sha(&blob), blob));
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": host_arch(), "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": img.config,
            "rootfs": {"type": "layers", "diff_ids": img.diff_ids.clone().unwrap_or(diff_ids)},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(&config), "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        let mut entry = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest), "size": manifest.len(),
        });
        if let Some(n) = &img.name {
            entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": n});
        }
        manifests.push(entry);
        blobs.push((sha(&config), config));
        blobs.push((sha(&manifest), manifest));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    for (d, data) in &blobs {
        add(&format!("blobs/sha256/{}", &d[7..]), data);
    }
    add("index.json", &index);
    b.into_inner().unwrap()
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
