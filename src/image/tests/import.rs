//! Import, resolve, list, tag, remove, gc.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

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
    let hostile = TarBuilder::new().file("../escape", 0o644, b"").finish();
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
fn a_killed_writers_temp_files_go_at_once_a_live_ones_stay() {
    let mut env = env();
    let img = env.import(&rootfs_tar("dead"), "keep", &[]).unwrap();
    let layers = env.store.layers_dir();
    let blobs = env.store.blobs_dir();
    // pid_max is at most 2^22: no process has this pid.
    std::fs::create_dir_all(layers.join(".tmp-99999999-ab/upper")).unwrap();
    std::fs::write(blobs.join(".tmp-99999999-cd"), b"x").unwrap();
    let live = format!(".tmp-{}-ef", std::process::id());
    std::fs::write(blobs.join(&live), b"x").unwrap();
    let removed = env.store.sweep_dead_temps().unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(blobs.join(&live).exists(), "a live writer's temp is kept");
    // Registered content is untouched, and so is the young live temp in gc.
    assert!(img.layers[0].exists());
    env.store.gc(&env.db, Duration::from_secs(3600)).unwrap();
    assert!(blobs.join(&live).exists());
    assert!(env.store.sweep_dead_temps().unwrap().is_empty());
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
