//! Blob ingestion and manifest registration (as a registry pull or an
//! archive load does it).

use super::*;
use crate::image::register;
use crate::image::test_tar::simple_tar;

/// Builds OCI images directly in the blob store, as a registry pull would.
struct OciBuilder {
    layers: Vec<(Vec<u8>, String)>,
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
        let applied = std::mem::take(&mut *env.applied.lock().unwrap());
        if i == 0 {
            // Each layer is stacked on exactly the ones below it, which this
            // call unpacked first.
            assert_eq!(applied.len(), 3, "{applied:?}");
            for (k, a) in applied.iter().enumerate() {
                let name = format!("(layer {} of image {md})", k + 1);
                assert!(a.layer.contains(&name), "{a:?}");
                let below: Vec<PathBuf> = applied[..k].iter().map(|b| b.dest.clone()).collect();
                assert_eq!(a.parents, below, "{a:?}");
                assert!(a.dest.starts_with(env.store.layers_dir()), "{a:?}");
            }
        } else {
            // The same diff ids make the same chain ids: the cached layers serve.
            assert!(applied.is_empty(), "{applied:?}");
        }
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
        assert!(env.applied.lock().unwrap().is_empty());
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
