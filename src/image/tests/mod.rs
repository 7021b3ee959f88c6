//! Store-level tests: import, resolve, list, tag, remove, gc (`import`);
//! blob ingestion and manifest registration (`register`).
//!
//! They run as any user: the store is made
//! [`ImageStore::without_mounts`], so a layer with parents is not applied in
//! an overlay mount (root only; `tests/images/unpacked.rs` covers it) and the tests
//! check what would have been stacked on what instead.

mod import;
mod register;

use super::register::AppliedLog;
use super::test_tar::TarBuilder;
use super::*;
use crate::state::Db;
use sha2::Digest as _;
use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

struct Env {
    tmp: tempfile::TempDir,
    db: Db,
    store: ImageStore,
    /// The layer applications the store was asked for.
    applied: AppliedLog,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path()).unwrap();
    let (store, applied) = ImageStore::new(tmp.path()).unwrap().without_mounts();
    Env {
        tmp,
        db,
        store,
        applied,
    }
}

impl Env {
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }
    fn import(&mut self, data: &[u8], reference: &str, changes: &[&str]) -> Result<Image> {
        let p = self.write("src.tar", data);
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        self.store
            .import_tarball(&mut self.db, &p, reference, &changes)
    }
    fn entries(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.store.dir().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
    /// Nothing registered, no blob, no layer, no temp file.
    fn assert_empty(&self) {
        assert!(self.db.images().unwrap().is_empty());
        assert!(self.db.tags().unwrap().is_empty());
        assert_eq!(self.entries("layers"), Vec::<String>::new());
        assert_eq!(self.entries("blobs/sha256"), Vec::<String>::new());
    }
}

/// A small rootfs with a whiteout and a read-only directory.
fn rootfs_tar(extra: &str) -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir("./", 0o755)
        .dir("bin/", 0o755)
        .file("bin/sh", 0o755, b"#!fake shell\n")
        .symlink("bin/ls", "sh")
        .dir("etc/", 0o555)
        .file("etc/extra", 0o444, extra.as_bytes())
        .file("etc/.wh.gone", 0o644, b"");
    t.finish()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn sha256_file(p: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn host_arch_for_test() -> oci_spec::image::Arch {
    match std::env::consts::ARCH {
        "x86_64" => oci_spec::image::Arch::Amd64,
        "aarch64" => oci_spec::image::Arch::ARM64,
        other => oci_spec::image::Arch::from(other),
    }
}
