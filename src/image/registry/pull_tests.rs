//! Unit tests of `pull` (its planning, progress and error mapping).

use super::*;

fn index(entries: &[(&str, &str, Option<&str>)]) -> OciImageIndex {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .map(|(i, (os, arch, variant))| {
            let mut p = serde_json::json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                p["variant"] = serde_json::json!(v);
            }
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": format!("sha256:{}", format!("{i}").repeat(64)),
                "size": 100,
                "platform": p,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests
    }))
    .unwrap()
}

#[test]
fn platforms_parse() {
    assert_eq!(
        Platform::parse("linux/arm64").unwrap().to_string(),
        "linux/arm64"
    );
    assert_eq!(Platform::parse("linux/x86_64").unwrap().arch, "amd64");
    assert_eq!(
        Platform::parse("linux/arm/v7").unwrap().variant.as_deref(),
        Some("v7")
    );
    for bad in [
        "",
        "linux",
        "linux/",
        "/amd64",
        "linux/amd64/v1/x",
        "Linux/AMD64",
        "linux/a b",
    ] {
        let e = Platform::parse(bad).unwrap_err();
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        assert_eq!(e.kind().exit_code(), 2);
    }
    let h = Platform::host();
    assert_eq!(h.os, "linux");
    assert!(["amd64", "arm64"].contains(&h.arch.as_str()) || !h.arch.is_empty());
}

#[test]
fn index_entries_are_chosen_by_platform() {
    let idx = index(&[
        ("linux", "arm", Some("v7")),
        ("linux", "arm64", Some("v8")),
        ("linux", "amd64", None),
        ("unknown", "unknown", None),
    ]);
    let pick = |p: &str| choose(&idx, &Platform::parse(p).unwrap()).map(|e| e.digest.clone());
    assert!(pick("linux/amd64").unwrap().contains("2222"));
    assert!(pick("linux/arm64").unwrap().contains("1111"));
    assert!(pick("linux/arm64/v8").unwrap().contains("1111"));
    assert!(pick("linux/arm/v7").unwrap().contains("0000"));
    assert!(pick("linux/arm/v6").is_none());
    assert!(pick("linux/riscv64").is_none());
    assert_eq!(
        available(&idx),
        "linux/arm/v7, linux/arm64/v8, linux/amd64, unknown/unknown"
    );
    // Without a variant asked, a plain entry wins over a variant one.
    let idx = index(&[("linux", "arm64", Some("v9")), ("linux", "arm64", None)]);
    assert!(choose(&idx, &Platform::parse("linux/arm64").unwrap())
        .unwrap()
        .digest
        .contains("1111"));
}

#[test]
fn manifests_are_told_apart() {
    let t = Target::new(&Reference::parse("127.0.0.1:5000/a:b").unwrap());
    let img = serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": format!("sha256:{}", "a".repeat(64)), "size": 1},
        "layers": []
    });
    assert!(matches!(
        parse_manifest(&t, img.to_string().as_bytes()).unwrap(),
        Manifest::Image(_)
    ));
    let mut no_type = img.clone();
    no_type.as_object_mut().unwrap().remove("mediaType");
    assert!(matches!(
        parse_manifest(&t, no_type.to_string().as_bytes()).unwrap(),
        Manifest::Image(_)
    ));
    let idx = serde_json::json!({"schemaVersion": 2, "manifests": []});
    assert!(matches!(
        parse_manifest(&t, idx.to_string().as_bytes()).unwrap(),
        Manifest::Index(_)
    ));
    let v1 = serde_json::json!({"schemaVersion": 1, "fsLayers": []});
    let e = parse_manifest(&t, v1.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("schema 1"), "{e}");
    let other = serde_json::json!({"schemaVersion": 2, "mediaType": "text/plain"});
    assert!(parse_manifest(&t, other.to_string().as_bytes()).is_err());
    assert!(parse_manifest(&t, b"{").is_err());
}

#[test]
fn channel_reader_reassembles_and_fails() {
    let (tx, rx) = mpsc::channel(4);
    tx.try_send(Msg::Data(Bytes::from_static(b"hello ")))
        .unwrap();
    tx.try_send(Msg::Data(Bytes::from_static(b"world")))
        .unwrap();
    tx.try_send(Msg::End).unwrap();
    let mut r = ChannelReader {
        rx,
        cur: Bytes::new(),
        ended: false,
    };
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello world");

    let (tx, rx) = mpsc::channel(4);
    tx.try_send(Msg::Data(Bytes::from_static(b"abc"))).unwrap();
    tx.try_send(Msg::Fail).unwrap();
    let mut r = ChannelReader {
        rx,
        cur: Bytes::new(),
        ended: false,
    };
    assert!(r.read_to_end(&mut vec![]).is_err());

    // A sender dropped without End is an error, not a short blob.
    let (tx, rx) = mpsc::channel::<Msg>(4);
    drop(tx);
    let mut r = ChannelReader {
        rx,
        cur: Bytes::new(),
        ended: false,
    };
    assert_eq!(
        r.read(&mut [0; 4]).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
}
