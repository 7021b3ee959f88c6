//! Store-level tests: import, resolve, list, tag, remove, gc.

use super::*;
use crate::state::Db;
use sha2::Digest as _;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use tar::{EntryType, Header};

struct Env {
    tmp: tempfile::TempDir,
    db: Db,
    store: ImageStore,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path()).unwrap();
    let store = ImageStore::new(tmp.path()).unwrap();
    Env { tmp, db, store }
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

fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_path(path).unwrap();
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// A small rootfs with a whiteout and a read-only directory.
fn rootfs_tar(extra: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append(&header(EntryType::Directory, "./", 0o755, 0), &[][..])
        .unwrap();
    b.append(&header(EntryType::Directory, "bin/", 0o755, 0), &[][..])
        .unwrap();
    let sh = b"#!fake shell\n";
    b.append(
        &header(EntryType::Regular, "bin/sh", 0o755, sh.len() as u64),
        &sh[..],
    )
    .unwrap();
    let mut l = header(EntryType::Symlink, "bin/ls", 0o777, 0);
    l.set_link_name("sh").unwrap();
    l.set_cksum();
    b.append(&l, &[][..]).unwrap();
    b.append(&header(EntryType::Directory, "etc/", 0o555, 0), &[][..])
        .unwrap();
    let e = extra.as_bytes();
    b.append(
        &header(EntryType::Regular, "etc/extra", 0o444, e.len() as u64),
        e,
    )
    .unwrap();
    b.append(
        &header(EntryType::Regular, "etc/.wh.gone", 0o644, 0),
        &[][..],
    )
    .unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn sha256_file(p: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn import_plain_gzip_and_zstd_share_one_layer() {
    let mut env = env();
    let tar = rootfs_tar("x");
    let diff_hex = hex::encode(sha2::Sha256::digest(&tar));
    let a = env
        .import(
            &tar,
            "busybox",
            &[
                "CMD [\"/bin/sh\"]",
                "ENV PATH=/bin",
                "WORKDIR /root",
                "USER 1000",
                "LABEL a=b",
                "EXPOSE 80/tcp",
                "STOPSIGNAL SIGINT",
                "ENTRYPOINT /bin/sh -x",
            ],
        )
        .unwrap();
    let b = env.import(&gzip(&tar), "gz:1", &[]).unwrap();
    let c = env
        .import(
            &zstd::encode_all(&tar[..], 3).unwrap(),
            "localhost:5000/z",
            &[],
        )
        .unwrap();

    assert_eq!(a.reference, "docker.io/library/busybox:latest");
    assert_eq!(b.reference, "docker.io/library/gz:1");
    assert_eq!(c.reference, "localhost:5000/z:latest");
    assert!(a.id.starts_with("sha256:") && a.id.len() == 71);
    let layer = env.store.layers_dir().join(&diff_hex);
    for img in [&a, &b, &c] {
        assert_eq!(img.layers, vec![layer.clone()]);
        assert_eq!(img.size, 13 + 1);
        assert_eq!(
            img.config.rootfs().diff_ids(),
            &vec![format!("sha256:{diff_hex}")]
        );
        assert_eq!(img.config.os(), &oci_spec::image::Os::Linux);
        assert_eq!(img.config.architecture(), &host_arch_for_test());
    }
    assert_eq!(env.entries("layers"), vec![diff_hex.clone()]);
    assert_eq!(std::fs::read(layer.join("etc/extra")).unwrap(), b"x");
    // A whiteout in a bottom layer hides nothing and leaves nothing.
    assert!(std::fs::symlink_metadata(layer.join("etc/gone")).is_err());

    let cfg = a.config.config().as_ref().unwrap();
    assert_eq!(cfg.cmd().as_ref().unwrap(), &["/bin/sh"]);
    assert_eq!(
        cfg.entrypoint().as_ref().unwrap(),
        &["/bin/sh", "-c", "/bin/sh -x"]
    );
    assert_eq!(cfg.env().as_ref().unwrap(), &["PATH=/bin"]);
    assert_eq!(cfg.working_dir().as_deref(), Some("/root"));
    assert_eq!(cfg.user().as_deref(), Some("1000"));
    assert_eq!(cfg.exposed_ports().as_ref().unwrap(), &["80/tcp"]);
    assert_eq!(cfg.stop_signal().as_deref(), Some("SIGINT"));

    // Every blob is named by its digest; the manifest points at config and layer.
    for name in env.entries("blobs/sha256") {
        let p = env.store.blobs_dir().join(&name);
        assert_eq!(sha256_file(&p), name);
    }
    let row = env.db.image(&a.id).unwrap().unwrap();
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(row.config_json.as_bytes()))
        ),
        a.id
    );
    assert_eq!(row.layers_json, format!("[\"sha256:{diff_hex}\"]"));
    assert_eq!(row.size, 14);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.store.blob_path(&row.manifest_digest).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["config"]["digest"], a.id.as_str());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["digest"],
        format!("sha256:{diff_hex}")
    );
    assert_eq!(manifest["layers"][0]["size"], tar.len() as u64);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        std::fs::read_to_string(env.store.dir().join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let mode = std::fs::metadata(env.store.dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

fn host_arch_for_test() -> oci_spec::image::Arch {
    match std::env::consts::ARCH {
        "x86_64" => oci_spec::image::Arch::Amd64,
        "aarch64" => oci_spec::image::Arch::ARM64,
        other => oci_spec::image::Arch::from(other),
    }
}

#[test]
fn importing_twice_does_not_unpack_twice() {
    let mut env = env();
    let tar = rootfs_tar("same");
    let a = env.import(&tar, "one", &[]).unwrap();
    let layer = a.layers[0].clone();
    let ino = std::fs::metadata(&layer).unwrap().ino();
    // A marker only the first unpack could have missed: a re-unpack would
    // replace the directory and lose it.
    std::fs::write(layer.join("marker"), b"m").unwrap();
    let b = env.import(&gzip(&tar), "two", &[]).unwrap();
    assert_eq!(b.layers, vec![layer.clone()]);
    assert_eq!(std::fs::metadata(&layer).unwrap().ino(), ino);
    assert!(layer.join("marker").exists());
    assert_ne!(a.id, b.id, "each import is a new image (new created time)");
    assert_eq!(env.entries("layers").len(), 1);
    assert!(!env
        .entries("blobs/sha256")
        .iter()
        .any(|n| n.starts_with('.')));
}

#[test]
fn failed_imports_leave_nothing_behind() {
    let mut env = env();
    let good = rootfs_tar("x");

    // Hostile layer: rejected at unpack, after the blob was written.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_mode(0o644);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let hostile = b.into_inner().unwrap();
    let err = env.import(&hostile, "bad", &[]).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    assert!(!env.tmp.path().join("escape").exists());
    env.assert_empty();

    // Truncated compressed stream.
    let gz = gzip(&good);
    let err = env.import(&gz[..gz.len() / 2], "bad", &[]).unwrap_err();
    assert!(matches!(err, ImageError::CorruptArchive { .. }), "{err}");
    env.assert_empty();

    // Plain tar cut at an entry boundary (no end-of-archive block).
    let err = env.import(&good[..1024], "bad", &[]).unwrap_err();
    assert!(matches!(err, ImageError::CorruptArchive { .. }), "{err}");
    assert!(err.to_string().contains("src.tar"), "{err}");
    env.assert_empty();

    // Not a tarball at all; unsupported compression; empty file.
    for (data, want) in [
        (&b"hello world, this is not a tar"[..], "corrupt"),
        (
            &[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2][..],
            "xz compression is not supported",
        ),
        (&b"BZh91AY&SY"[..], "bzip2"),
        (&b""[..], "truncated"),
    ] {
        let err = env.import(data, "bad", &[]).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
        env.assert_empty();
    }

    // Bad change and bad reference: rejected before reading.
    let err = env.import(&good, "ok", &["FROM scratch"]).unwrap_err();
    assert!(
        err.to_string().contains("unknown instruction FROM"),
        "{err}"
    );
    let d = format!("x@sha256:{}", "0".repeat(64));
    let err = env.import(&good, &d, &[]).unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
    let err = env.import(&good, "Bad Name", &[]).unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
    let err = env
        .store
        .import_tarball(&mut env.db, Path::new("/nonexistent/x.tar"), "x", &[])
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.tar"), "{err}");
    env.assert_empty();
}

#[test]
fn resolve_by_reference_id_and_prefix() {
    let mut env = env();
    let img = env.import(&rootfs_tar("r"), "busybox", &[]).unwrap();
    let hex = img.id.strip_prefix("sha256:").unwrap().to_string();
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox",
        "docker.io/library/busybox:latest",
        img.id.as_str(),
        hex.as_str(),
        &hex[..12],
        format!("sha256:{}", &hex[..4]).as_str(),
    ] {
        let r = env.store.resolve(&env.db, name).unwrap();
        assert_eq!(r.id, img.id, "{name}");
        assert_eq!(r.layers, img.layers);
        assert_eq!(r.size, img.size);
        assert_eq!(r.config, img.config);
    }
    assert_eq!(
        env.store.resolve(&env.db, "busybox").unwrap().reference,
        "docker.io/library/busybox:latest"
    );
    assert_eq!(
        env.store.resolve(&env.db, &hex[..8]).unwrap().reference,
        img.id
    );
    let row = env.db.image(&img.id).unwrap().unwrap();
    let by_digest = format!("busybox@{}", row.manifest_digest);
    assert_eq!(env.store.resolve(&env.db, &by_digest).unwrap().id, img.id);

    for (name, want) in [
        ("nope", "not found"),
        ("busybox:other", "not found"),
        ("abc", "not found"),
        ("sha256:abc", "invalid image id"),
        ("sha256:xyz0", "invalid image id"),
        ("Not A Ref", "invalid image reference"),
    ] {
        let err = env.store.resolve(&env.db, name).unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert!(err.to_string().contains(name.trim()), "{name}: {err}");
    }

    // Ambiguous prefixes.
    for last in ['1', '2'] {
        let mut row = row.clone();
        row.id = format!("sha256:ffff{}{last}", "0".repeat(59));
        env.db.put_image(&row, None).unwrap();
    }
    let err = env.store.resolve(&env.db, "ffff").unwrap_err();
    assert!(
        matches!(err, ImageError::AmbiguousId { count: 2, .. }),
        "{err}"
    );
    assert!(env
        .store
        .resolve(&env.db, &format!("ffff{}1", "0".repeat(59)))
        .is_ok());

    // Missing layer directory.
    sys::remove_path(&img.layers[0]).unwrap();
    let err = env.store.resolve(&env.db, "busybox").unwrap_err();
    assert!(matches!(err, ImageError::LayerMissing { .. }), "{err}");
    assert!(err.to_string().contains("import it again"), "{err}");
}

#[test]
fn list_tag_and_remove() {
    let mut env = env();
    let tar = rootfs_tar("shared");
    let a = env.import(&tar, "a:1", &[]).unwrap();
    let b = env.import(&tar, "b:1", &[]).unwrap();
    let u = env.import(&tar, "", &[]).unwrap();
    assert_eq!(u.reference, u.id);
    let layer = a.layers[0].clone();

    let list = env.store.list(&env.db).unwrap();
    assert_eq!(list.len(), 3);
    let untagged: Vec<_> = list.iter().filter(|s| s.reference.is_none()).collect();
    assert_eq!(untagged.len(), 1);
    assert_eq!(untagged[0].id, u.id);
    let sa = list.iter().find(|s| s.id == a.id).unwrap();
    assert_eq!(sa.repository.as_deref(), Some("docker.io/library/a"));
    assert_eq!(sa.tag.as_deref(), Some("1"));
    assert_eq!(sa.reference.as_deref(), Some("docker.io/library/a:1"));
    assert_eq!(sa.size, a.size);

    // A second tag on b: removing b by id is refused, by tag just untags.
    assert_eq!(
        env.store.tag(&mut env.db, "b:1", "c").unwrap(),
        "docker.io/library/c:latest"
    );
    assert_eq!(env.store.list(&env.db).unwrap().len(), 4);
    let err = env.store.remove(&mut env.db, &b.id).unwrap_err();
    assert!(matches!(err, ImageError::MultipleTags { .. }), "{err}");
    assert_eq!(
        env.store.remove(&mut env.db, "c").unwrap(),
        vec!["Untagged: docker.io/library/c:latest"]
    );
    assert!(env.db.image(&b.id).unwrap().is_some());

    // Removing a: its layer stays (b and u use it), its config blob goes.
    assert_eq!(
        env.store.remove(&mut env.db, "a:1").unwrap(),
        vec![
            "Untagged: docker.io/library/a:1".to_string(),
            format!("Deleted: {}", a.id)
        ]
    );
    assert!(layer.is_dir());
    assert!(!env.store.blob_path(&a.id).unwrap().exists());
    assert!(env.store.blob_path(&b.id).unwrap().exists());
    assert!(matches!(
        env.store.resolve(&env.db, "a:1").unwrap_err(),
        ImageError::NotFound(_)
    ));

    assert_eq!(env.store.remove(&mut env.db, &b.id).unwrap().len(), 2);
    assert!(layer.is_dir());
    // The last user: the layer (read-only dir, whiteout device) and all blobs go.
    assert_eq!(
        env.store.remove(&mut env.db, &u.id[7..19]).unwrap(),
        vec![format!("Deleted: {}", u.id)]
    );
    assert!(!layer.exists());
    env.assert_empty();
    assert!(matches!(
        env.store.remove(&mut env.db, "a:1").unwrap_err(),
        ImageError::NotFound(_)
    ));
}

#[test]
fn gc_removes_orphans_and_stale_temp_files() {
    let mut env = env();
    let img = env.import(&rootfs_tar("gc"), "keep", &[]).unwrap();
    let layers = env.store.layers_dir();
    let blobs = env.store.blobs_dir();
    std::fs::create_dir(layers.join(format!("{:064}", 0))).unwrap();
    std::fs::create_dir_all(layers.join(".tmp-dead/sub")).unwrap();
    std::fs::create_dir(layers.join(".rm-dead")).unwrap();
    std::fs::write(blobs.join(".tmp-dead"), b"x").unwrap();
    std::fs::write(blobs.join(format!("{:064}", 1)), b"x").unwrap();
    let before = env.entries("blobs/sha256").len();

    // Young temp files are left alone (an import may be running).
    let removed = env.store.gc(&env.db, Duration::from_secs(3600)).unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(layers.join(".tmp-dead").exists());
    let removed = env.store.gc(&env.db, Duration::ZERO).unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert_eq!(env.entries("blobs/sha256").len(), before - 2);
    assert_eq!(
        env.entries("layers"),
        vec![img.layers[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()]
    );
    env.store.resolve(&env.db, "keep").unwrap();
}

/// The busybox recipe builds a reproducible rootfs that imports cleanly.
#[test]
fn busybox_recipe() {
    let busybox = Path::new("/bin/busybox");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/busybox/build.sh");
    if !busybox.exists() {
        eprintln!("skipped: /bin/busybox not installed (apt-get install busybox-static)");
        return;
    }
    let mut env = env();
    let out1 = env.tmp.path().join("b1.tar");
    let out2 = env.tmp.path().join("b2.tar");
    for out in [&out1, &out2] {
        let st = std::process::Command::new("bash")
            .arg(&script)
            .arg(out)
            .status()
            .unwrap();
        assert!(st.success());
    }
    assert_eq!(
        sha256_file(&out1),
        sha256_file(&out2),
        "build is not reproducible"
    );
    let img = env
        .store
        .import_tarball(
            &mut env.db,
            &out1,
            "gvpod/busybox",
            &["CMD [\"/bin/sh\"]".into()],
        )
        .unwrap();
    let root = &img.layers[0];
    assert!(root.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"),
        "{passwd}"
    );
    assert!(passwd.contains("\ndev:x:1000:1000:"), "{passwd}");
    assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    let tmp = std::fs::symlink_metadata(root.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    let home = std::fs::symlink_metadata(root.join("home/dev")).unwrap();
    assert_eq!((home.uid(), home.gid()), (1000, 1000));
    let rootdir = std::fs::symlink_metadata(root.join("root")).unwrap();
    assert_eq!(rootdir.permissions().mode() & 0o7777, 0o700);
    for d in ["proc", "sys", "dev"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    // The static binary runs from the layer.
    let out = std::process::Command::new(root.join("bin/busybox"))
        .arg("true")
        .status()
        .unwrap();
    assert!(out.success());
}

/// Parallel imports of one tarball (separate connections, as separate
/// processes would have) end with one layer dir and no temp files.
#[test]
fn concurrent_imports_share_one_layer() {
    let env = env();
    let tar = env.write("c.tar", &rootfs_tar("concurrent"));
    let root = env.tmp.path().to_path_buf();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (root, tar) = (root.clone(), tar.clone());
                s.spawn(move || {
                    let mut db = Db::open(&root).unwrap();
                    let store = ImageStore::new(&root).unwrap();
                    store
                        .import_tarball(&mut db, &tar, &format!("c{i}"), &[])
                        .unwrap()
                        .id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Two imports in the same nanosecond would make the same image: count distinct ids.
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(env.entries("layers").len(), 1);
    assert!(!env
        .entries("blobs/sha256")
        .iter()
        .any(|n| n.starts_with('.')));
    assert_eq!(env.db.images().unwrap().len(), distinct.len());
    assert_eq!(env.db.tags().unwrap().len(), 6);
    // The layer blob plus a config and a manifest per image.
    assert_eq!(env.entries("blobs/sha256").len(), 1 + 2 * distinct.len());
}

// ---- ingest_blob / register_manifest ----

/// Builds OCI images directly in the blob store, as a registry pull would.
struct OciBuilder {
    layers: Vec<(Vec<u8>, String)>,
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

impl OciBuilder {
    fn new() -> Self {
        OciBuilder { layers: vec![] }
    }
    /// Adds a layer (an uncompressed tar) stored with `media_type`.
    fn layer(&mut self, tar: Vec<u8>, media_type: &str) -> &mut Self {
        self.layers.push((tar, media_type.to_string()));
        self
    }
    /// Ingests everything; returns the manifest digest.
    fn store(&self, store: &ImageStore, manifest_mt: &str) -> String {
        let mut diff_ids = vec![];
        let mut descs = vec![];
        for (tar, mt) in &self.layers {
            diff_ids.push(sha(tar));
            let blob = if mt.ends_with("gzip") {
                gzip(tar)
            } else if mt.ends_with("zstd") {
                zstd::encode_all(&tar[..], 3).unwrap()
            } else {
                tar.clone()
            };
            let d = sha(&blob);
            store
                .ingest_blob(&mut &blob[..], &d, Some(blob.len() as u64))
                .unwrap();
            descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": blob.len()}));
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let cd = sha(&config);
        store.ingest_blob(&mut &config[..], &cd, None).unwrap();
        let docker = manifest_mt.contains("docker");
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest_mt,
            "config": {"mediaType": if docker { register::MT_DOCKER_CONFIG } else { register::MT_OCI_CONFIG },
                       "digest": cd, "size": config.len()},
            "layers": descs,
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let md = sha(&manifest);
        store.ingest_blob(&mut &manifest[..], &md, None).unwrap();
        md
    }
}

fn simple_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        if name.ends_with('/') {
            b.append(&header(EntryType::Directory, name, 0o755, 0), &[][..])
                .unwrap();
        } else {
            b.append(
                &header(EntryType::Regular, name, 0o644, data.len() as u64),
                *data,
            )
            .unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn ingest_verifies_digest_and_size_and_leaves_nothing_on_mismatch() {
    let env = env();
    let data = b"hello blob".repeat(1000);
    let d = sha(&data);
    env.store
        .ingest_blob(&mut &data[..], &d, Some(data.len() as u64))
        .unwrap();
    assert!(env.store.has_blob(&d));
    assert_eq!(
        std::fs::read(env.store.blob_path(&d).unwrap()).unwrap(),
        data
    );
    // Present: no-op, the reader is not even read.
    let mut failing = FailingReader;
    env.store.ingest_blob(&mut failing, &d, None).unwrap();

    let other = sha(b"other");
    for (bytes, size, what) in [
        (&b"not other"[..], None, "digest mismatch"),
        (&b"other"[..], Some(4), "size mismatch"),
        (&b"other"[..], Some(6), "size mismatch"),
    ] {
        let err = env
            .store
            .ingest_blob(&mut &bytes[..], &other, size)
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ImageError::BlobMismatch { .. }), "{msg}");
        assert!(msg.contains(&other) && msg.contains(what), "{msg}");
        assert!(!env.store.has_blob(&other));
    }
    let err = env
        .store
        .ingest_blob(&mut FailingReader, &other, None)
        .unwrap_err();
    assert!(err.to_string().contains(&other), "{err}");
    assert!(matches!(
        env.store.ingest_blob(&mut &b""[..], "sha256:xyz", None),
        Err(ImageError::InvalidDigest(_))
    ));
    assert!(!env.store.has_blob("nonsense"));
    assert_eq!(env.entries("blobs/sha256"), vec![d[7..].to_string()]);
}

struct FailingReader;
impl std::io::Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("network down"))
    }
}

#[test]
fn register_manifest_multi_layer_all_compressions() {
    let mut env = env();
    let l0 = simple_tar(&[("etc/", b""), ("etc/a", b"a0"), ("etc/b", b"b0")]);
    let l1 = simple_tar(&[("etc/a", b"a1"), ("etc/.wh.b", b"")]);
    let l2 = simple_tar(&[("usr/", b""), ("usr/c", b"c2")]);
    let mut manifests = vec![];
    for (i, (mmt, lmts)) in [
        (
            register::MT_OCI_MANIFEST,
            [
                register::MT_OCI_LAYER,
                register::MT_OCI_LAYER_GZIP,
                register::MT_OCI_LAYER_ZSTD,
            ],
        ),
        (
            register::MT_DOCKER_MANIFEST,
            [register::MT_DOCKER_LAYER_GZIP; 3],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = OciBuilder::new();
        b.layer(l0.clone(), lmts[0])
            .layer(l1.clone(), lmts[1])
            .layer(l2.clone(), lmts[2]);
        let md = b.store(&env.store, mmt);
        let tag = format!("docker.io/library/multi:{i}");
        let img = env
            .store
            .register_manifest(&mut env.db, &md, Some(&tag))
            .unwrap();
        assert_eq!(img.reference, tag);
        let chains = register::chain_ids(&[sha(&l0), sha(&l1), sha(&l2)]);
        assert_eq!(chains[0], sha(&l0));
        let want: Vec<PathBuf> = chains
            .iter()
            .map(|c| env.store.layer_dir(c).unwrap())
            .collect();
        assert_eq!(img.layers, want);
        let again = env.store.resolve(&env.db, &tag).unwrap();
        assert_eq!(again.layers, want);
        assert_eq!(again.id, img.id);
        assert_eq!(std::fs::read(want[0].join("etc/a")).unwrap(), b"a0");
        assert_eq!(std::fs::read(want[1].join("etc/a")).unwrap(), b"a1");
        assert_eq!(std::fs::read(want[2].join("usr/c")).unwrap(), b"c2");
        // Registering again is idempotent and unpacks nothing.
        let layers_before = env.entries("layers");
        let twice = env
            .store
            .register_manifest(&mut env.db, &md, Some(&tag))
            .unwrap();
        assert_eq!(
            (twice.id.as_str(), &twice.layers),
            (img.id.as_str(), &img.layers)
        );
        assert_eq!(env.entries("layers"), layers_before);
        // By manifest digest too, for both manifests of the same config.
        assert_eq!(img.digest, md);
        let by_digest = env.store.resolve(&env.db, &format!("multi@{md}")).unwrap();
        assert_eq!(by_digest.id, img.id);
        manifests.push(md);
    }
    assert_eq!(
        env.entries("layers").len(),
        3,
        "layers are shared by chain id"
    );
}

#[test]
fn register_manifest_failures_register_nothing() {
    let mut env = env();
    let l0 = simple_tar(&[("a", b"a")]);
    let l1 = simple_tar(&[("b", b"b")]);

    // Diff id mismatch: the config claims another diff id for layer 1.
    let mut b = OciBuilder::new();
    b.layer(l0.clone(), register::MT_OCI_LAYER_GZIP)
        .layer(l1.clone(), register::MT_OCI_LAYER_GZIP);
    let md = b.store(&env.store, register::MT_OCI_MANIFEST);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.store.blob_path(&md).unwrap()).unwrap()).unwrap();
    let cd = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.store.blob_path(&cd).unwrap()).unwrap()).unwrap();
    config["rootfs"]["diff_ids"][1] = serde_json::json!(sha(b"something else"));
    let config = serde_json::to_vec(&config).unwrap();
    let cd2 = sha(&config);
    env.store.ingest_blob(&mut &config[..], &cd2, None).unwrap();
    let mut m2 = manifest.clone();
    m2["config"]["digest"] = serde_json::json!(cd2);
    m2["config"]["size"] = serde_json::json!(config.len());
    let m2 = serde_json::to_vec(&m2).unwrap();
    let md2 = sha(&m2);
    env.store.ingest_blob(&mut &m2[..], &md2, None).unwrap();
    let err = env
        .store
        .register_manifest(&mut env.db, &md2, Some("x"))
        .unwrap_err();
    assert!(matches!(err, ImageError::BlobMismatch { .. }), "{err}");
    assert!(err.to_string().contains("diff id"), "{err}");
    assert!(env.db.images().unwrap().is_empty());
    assert_eq!(env.entries("layers"), Vec::<String>::new());

    // Wrong media types, index, missing blob, malformed JSON.
    let mut bad = manifest.clone();
    bad["layers"][0]["mediaType"] = serde_json::json!("application/x-rar");
    let bad2 = {
        let mut m = manifest.clone();
        m["mediaType"] = serde_json::json!(register::MT_OCI_INDEX);
        m
    };
    let bad3 = {
        let mut m = manifest.clone();
        m["layers"][1]["digest"] = serde_json::json!(sha(b"absent"));
        m
    };
    let bad4 = {
        let mut m = manifest.clone();
        m["layers"][1]["mediaType"] = serde_json::json!(register::MT_OCI_LAYER_ZSTD);
        m
    };
    for (m, needle) in [
        (serde_json::to_vec(&bad).unwrap(), "application/x-rar"),
        (serde_json::to_vec(&bad2).unwrap(), "index"),
        (serde_json::to_vec(&bad3).unwrap(), "not in the image store"),
        (serde_json::to_vec(&bad4).unwrap(), "corrupt"),
        (b"{not json".to_vec(), "not a manifest"),
    ] {
        let d = sha(&m);
        env.store.ingest_blob(&mut &m[..], &d, None).unwrap();
        let err = env
            .store
            .register_manifest(&mut env.db, &d, None)
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
        assert!(env.db.images().unwrap().is_empty());
        assert!(
            env.entries("layers").iter().all(|n| !n.starts_with(".tmp")),
            "{:?}",
            env.entries("layers")
        );
    }
    // The good manifest still registers; then a gc keeps all its blobs.
    let img = env.store.register_manifest(&mut env.db, &md, None).unwrap();
    assert_eq!(img.reference, img.id);
    env.store.gc(&env.db, Duration::ZERO).unwrap();
    for (d, _) in [(&md, 0), (&cd, 0)] {
        assert!(env.store.has_blob(d));
    }
    for l in manifest["layers"].as_array().unwrap() {
        assert!(env.store.has_blob(l["digest"].as_str().unwrap()));
    }
    env.store.resolve(&env.db, &img.id).unwrap();
    // Removing it removes its compressed layer blobs and chain dirs.
    env.store.remove(&mut env.db, &img.id).unwrap();
    env.store.gc(&env.db, Duration::ZERO).unwrap();
    assert_eq!(env.entries("layers"), Vec::<String>::new());
    assert_eq!(env.entries("blobs/sha256"), Vec::<String>::new());
}
