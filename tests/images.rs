//! Images against the real binary (and runsc where a pod must see the
//! result): load/save round trips in every format, a multi-layer image whose
//! pod sees exactly the merged tree, corrupt archives, tag/inspect/images/
//! prune and exit codes. The corpus of hostile layers, checked on the host
//! side, is in `images/hostile.rs`.
//! What needs root but no runsc (device nodes, owners, the overlay upper
//! dirs of the layer cache, the busybox recipe) is in `images/unpacked.rs`.

mod common;
#[path = "images/hostile.rs"]
mod hostile;
#[path = "images/unpacked.rs"]
mod unpacked;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::oci::{self, Image, Layer};
use common::{busybox_tarball, stderr, stdout, Root};

/// Every file name under the image store's blob and layer dirs.
pub(crate) fn store_files(r: &Root) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in ["images/blobs/sha256", "images/layers"] {
        for e in std::fs::read_dir(r.path().join(d)).unwrap() {
            out.insert(format!("{d}/{}", e.unwrap().file_name().to_string_lossy()));
        }
    }
    out
}

pub(crate) fn images_json(r: &Root) -> Vec<serde_json::Value> {
    serde_json::from_str(&r.ok(&["images", "--format", "json"])).unwrap()
}

pub(crate) fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// The busybox rootfs plus a test tree under /t, and a second layer that
/// changes it with every kind of entry (see the expected tree below).
fn two_layer_image(name: &str) -> Image {
    let bb = std::fs::read(busybox_tarball()).unwrap();
    let mut l0 = Layer::new();
    l0.extend_from(&bb)
        .dir("t/")
        .file("t/keep", b"keep0")
        .file("t/gone", b"gone0")
        .file("t/modified", b"old")
        .dir("t/opq/")
        .file("t/opq/a", b"a0")
        .dir("t/opq/sub/")
        .file("t/opq/sub/b", b"b0")
        .dir("t/dir-to-file/")
        .file("t/dir-to-file/x", b"x0")
        .dir("t/run/")
        .symlink("t/varrun", "/t/run")
        .dir("t/wh-dir/")
        .file("t/wh-dir/y", b"y0")
        .file("t/hl-src", b"hl");
    let mut l1 = Layer::new();
    l1.dir("t/")
        .file("t/.wh.gone", b"")
        .file("t/modified", b"new")
        .dir("t/opq/")
        .file("t/opq/.wh..wh..opq", b"")
        .file("t/opq/c", b"c1")
        .file("t/dir-to-file", b"now a file")
        .file("t/varrun/x", b"x1")
        .file("t/.wh.wh-dir", b"")
        .dir("t/wh-dir/")
        .file("t/wh-dir/z", b"z1")
        .hardlink("t/hl", "t/hl-src")
        .dir("t/new-dir/")
        .file("t/new-dir/n", b"n1");
    Image::new(
        vec![(l0.finish(), oci::MT_GZIP), (l1.finish(), oci::MT_ZSTD)],
        name,
    )
}

const MERGED_TREE: &str = "\
/t
/t/dir-to-file
/t/hl
/t/hl-src
/t/keep
/t/modified
/t/new-dir
/t/new-dir/n
/t/opq
/t/opq/c
/t/run
/t/run/x
/t/varrun
/t/wh-dir
/t/wh-dir/z
---
/t/dir-to-file=now a file
/t/hl=hl
/t/hl-src=hl
/t/keep=keep0
/t/modified=new
/t/new-dir/n=n1
/t/opq/c=c1
/t/run/x=x1
/t/wh-dir/z=z1
---
/t/run
";

const SHOW_TREE: &str = "find /t | sort; echo ---; \
    for f in $(find /t -type f | sort); do echo \"$f=$(cat $f)\"; done; echo ---; readlink /t/varrun";

#[test]
fn two_layer_image_pod_sees_exactly_the_merged_tree() {
    require_runsc!();
    let r = Root::new();
    let tmp = tempfile::tempdir().unwrap();
    let archive = write(
        tmp.path(),
        "two.tar",
        &oci::oci_archive(&[two_layer_image("test/two-layer:1")]),
    );
    let out = r.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: docker.io/test/two-layer:1\n");
    let o = r.gvpod(&["run", "--rm", "test/two-layer:1", "sh", "-c", SHOW_TREE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), MERGED_TREE);
    // Two cached layers, keyed by chain id, lowest first.
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "test/two-layer:1"])).unwrap();
    let layers = inspect["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["chain_id"], layers[0]["diff_id"]);
    assert_ne!(layers[1]["chain_id"], layers[1]["diff_id"]);
    for l in layers {
        assert!(Path::new(l["path"].as_str().unwrap()).is_dir());
    }
    r.assert_clean();
}

#[test]
fn save_rmi_load_run_round_trips_in_every_format() {
    require_runsc!();
    let r = Root::new();
    let tmp = tempfile::tempdir().unwrap();
    let archive = write(
        tmp.path(),
        "two.tar",
        &oci::oci_archive(&[two_layer_image("test/two-layer:1")]),
    );
    r.ok(&["load", "-i", archive.to_str().unwrap()]);
    r.ok(&["tag", "busybox", "localhost/bb:v2"]);
    let before = images_json(&r);
    let id_of = |name: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&r.ok(&["image", "inspect", name])).unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    let (bb_id, two_id) = (id_of("busybox"), id_of("test/two-layer:1"));

    for format in ["oci-archive", "docker-archive", "oci-dir", "gzip", "stdin"] {
        let out = tmp.path().join(format!("{format}.tar"));
        let save_format = if format == "docker-archive" {
            "docker-archive"
        } else {
            "oci-archive"
        };
        r.ok(&[
            "save",
            "-o",
            out.to_str().unwrap(),
            "--format",
            save_format,
            "busybox",
            "localhost/bb:v2",
            "test/two-layer:1",
        ]);
        for name in ["busybox", "localhost/bb:v2", "test/two-layer:1"] {
            r.ok(&["rmi", name]);
        }
        assert!(images_json(&r).is_empty());
        let input = match format {
            "oci-dir" => {
                let dir = tmp.path().join("layout");
                std::fs::create_dir(&dir).unwrap();
                tar::Archive::new(std::fs::File::open(&out).unwrap())
                    .unpack(&dir)
                    .unwrap();
                dir
            }
            "gzip" => {
                let gz = tmp.path().join("archive.tar.gz");
                let data = oci::compress(&std::fs::read(&out).unwrap(), oci::MT_GZIP);
                std::fs::write(&gz, data).unwrap();
                gz
            }
            _ => out.clone(),
        };
        let loaded = if format == "stdin" {
            let o = r
                .cmd(&["load"])
                .stdin(std::fs::File::open(&input).unwrap())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            stdout(&o)
        } else {
            r.ok(&["load", "-i", input.to_str().unwrap()])
        };
        let mut lines: Vec<&str> = loaded.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "Loaded image: docker.io/library/busybox:latest",
                "Loaded image: docker.io/test/two-layer:1",
                "Loaded image: localhost/bb:v2",
            ],
            "{format}"
        );
        // Same images, same ids, and they run.
        assert_eq!(id_of("busybox"), bb_id, "{format}");
        assert_eq!(id_of("localhost/bb:v2"), bb_id, "{format}");
        assert_eq!(id_of("test/two-layer:1"), two_id, "{format}");
        let names = |v: &[serde_json::Value]| -> BTreeSet<String> {
            v.iter()
                .map(|i| format!("{} {}", i["reference"], i["id"]))
                .collect()
        };
        assert_eq!(names(&images_json(&r)), names(&before), "{format}");
        assert_eq!(
            r.ok(&["run", "--rm", "localhost/bb:v2", "echo", "hi"]),
            "hi\n"
        );
        let o = r.gvpod(&["run", "--rm", "test/two-layer:1", "sh", "-c", SHOW_TREE]);
        assert_eq!(stdout(&o), MERGED_TREE, "{format}: {}", stderr(&o));
        if format == "oci-dir" {
            std::fs::remove_dir_all(tmp.path().join("layout")).unwrap();
        }
    }
    // A docker-archive holds uncompressed layer.tar files whose digests are the diff ids.
    let docker = tmp.path().join("docker-archive.tar");
    let mut a = tar::Archive::new(std::fs::File::open(&docker).unwrap());
    let mut layer_tars = 0;
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if let Some(dir) = p.strip_suffix("/layer.tar") {
            let mut data = vec![];
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            assert_eq!(oci::sha(&data), format!("sha256:{dir}"));
            layer_tars += 1;
        }
    }
    assert_eq!(layer_tars, 3);
    r.assert_clean();
}

#[test]
fn truncated_and_corrupt_archives_register_nothing() {
    require_runsc!();
    let r = Root::new();
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.tar");
    r.ok(&["save", "-o", good.to_str().unwrap(), "busybox"]);
    r.ok(&["rmi", "busybox"]);
    assert!(images_json(&r).is_empty());
    let files_before = store_files(&r);
    let data = std::fs::read(&good).unwrap();

    let mut bad: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [100, 512, 700, 1536, data.len() / 2, data.len() - 1024 - 700] {
        bad.push((format!("cut at {cut}"), data[..cut].to_vec()));
    }
    bad.push(("gzip cut".into(), {
        let gz = oci::compress(&data, oci::MT_GZIP);
        gz[..gz.len() * 2 / 3].to_vec()
    }));
    // A flipped byte inside the layer blob: its digest no longer matches.
    let big = find_entry(&data, |name, size| {
        name.starts_with("blobs/sha256/") && size > 100_000
    });
    let mut flipped = data.clone();
    flipped[big + 5000] ^= 0x55;
    bad.push(("flipped layer byte".into(), flipped));
    // A config whose diff id does not match the layer; and a good image
    // next to it that must be rolled back.
    let mut l = Layer::new();
    l.file("a", b"a");
    let mut wrong = Image::new(vec![(l.finish(), oci::MT_GZIP)], "test/wrong:1");
    wrong.diff_ids = Some(vec![oci::sha(b"not this layer")]);
    let mut l = Layer::new();
    l.file("b", b"b");
    let fine = Image::new(vec![(l.finish(), oci::MT_GZIP)], "test/fine:1");
    bad.push(("wrong diff id".into(), oci::oci_archive(&[fine, wrong])));
    bad.push(("not an archive".into(), b"hello world\n".repeat(100)));

    for (what, bytes) in bad {
        let p = write(tmp.path(), "bad.tar", &bytes);
        let o = r.gvpod(&["load", "-i", p.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(
            matches!(o.status.code(), Some(2) | Some(125)),
            "{what}: {:?} {err}",
            o.status
        );
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(images_json(&r).is_empty(), "{what}: registered something");
        assert_eq!(store_files(&r), files_before, "{what}: left files behind");
        match what.as_str() {
            "flipped layer byte" => assert!(err.contains("digest mismatch"), "{err}"),
            "wrong diff id" => assert!(err.contains("diff id"), "{err}"),
            "not an archive" => assert_eq!(o.status.code(), Some(2), "{err}"),
            _ => assert!(
                err.contains("truncated") || err.contains("corrupt") || err.contains("missing"),
                "{what}: {err}"
            ),
        }
    }
    // The good archive still loads afterwards.
    r.ok(&["load", "-i", good.to_str().unwrap()]);
    assert_eq!(r.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
    r.assert_clean();
}

/// Offset of the data of the first tar entry matching `pred(name, size)`.
fn find_entry(tar_bytes: &[u8], pred: impl Fn(&str, u64) -> bool) -> usize {
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if pred(&name, e.size()) {
            return e.raw_file_position() as usize;
        }
    }
    panic!("no such entry");
}

#[test]
fn tag_inspect_images_json_prune_and_exit_codes() {
    require_runsc!();
    let r = Root::new();
    r.ok(&["tag", "busybox", "localhost:5000/team/bb:1.0"]);
    let list = images_json(&r);
    assert_eq!(list.len(), 2);
    for i in &list {
        for k in ["repository", "tag", "id", "digest", "created", "size"] {
            assert!(!i[k].is_null(), "{k} missing in {i}");
        }
        assert!(i["digest"].as_str().unwrap().starts_with("sha256:"));
    }
    assert!(list
        .iter()
        .any(|i| i["repository"] == "localhost:5000/team/bb" && i["tag"] == "1.0"));
    let v: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "localhost:5000/team/bb:1.0"])).unwrap();
    assert_eq!(v["id"], list[0]["id"]);
    assert_eq!(v["digest"], list[0]["digest"]);
    assert_eq!(
        v["references"],
        serde_json::json!([
            "docker.io/library/busybox:latest",
            "localhost:5000/team/bb:1.0"
        ])
    );
    assert_eq!(v["config"]["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["layers"].as_array().unwrap().len(), 1);
    assert!(v["size"].as_u64().unwrap() > 500_000);
    assert!(v["created"].as_str().is_some());

    // Prune: an orphan blob, an orphan layer dir and a stale temp file go;
    // what images use stays and still runs.
    let orphan_blob = r
        .path()
        .join(format!("images/blobs/sha256/{}", "ab".repeat(32)));
    std::fs::write(&orphan_blob, b"orphan").unwrap();
    let orphan_layer = r.path().join(format!("images/layers/{}", "cd".repeat(32)));
    std::fs::create_dir_all(orphan_layer.join("etc")).unwrap();
    std::fs::write(orphan_layer.join("etc/x"), b"xx").unwrap();
    let kept = store_files(&r);
    let out = r.ok(&["image", "prune"]);
    assert!(
        out.contains(&format!("deleted blob sha256:{}", "ab".repeat(32))),
        "{out}"
    );
    assert!(
        out.contains(&format!("deleted layer sha256:{}", "cd".repeat(32))),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space: 8 B"), "{out}");
    assert!(!orphan_blob.exists() && !orphan_layer.exists());
    let mut expected = kept;
    expected.retain(|f| !f.contains(&"ab".repeat(32)) && !f.contains(&"cd".repeat(32)));
    assert_eq!(store_files(&r), expected);
    assert_eq!(r.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
    let json: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "prune", "--format", "json"])).unwrap();
    assert_eq!(json["bytes"], 0);

    // Bad input: exit 2 and one line naming the bad value.
    let tmp = tempfile::tempdir().unwrap();
    let junk = write(tmp.path(), "junk.tar", &[0u8; 4096]);
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "load".into(),
                "-i".into(),
                "/no/such/gvpod-archive.tar".into(),
            ],
            "/no/such/gvpod-archive.tar".into(),
        ),
        (
            vec!["load".into(), "-i".into(), junk.to_str().unwrap().into()],
            junk.to_str().unwrap().into(),
        ),
        (
            vec![
                "save".into(),
                "-o".into(),
                tmp.path().join("x.tar").to_str().unwrap().into(),
                "no-such-image".into(),
            ],
            "no-such-image".into(),
        ),
        (
            vec![
                "save".into(),
                "-o".into(),
                "/no/such/dir/x.tar".into(),
                "busybox".into(),
            ],
            "/no/such/dir/x.tar".into(),
        ),
        (
            vec![
                "save".into(),
                "--format".into(),
                "zip".into(),
                "-o".into(),
                "x".into(),
                "busybox".into(),
            ],
            "zip".into(),
        ),
        (
            vec!["tag".into(), "busybox".into(), "Bad Name".into()],
            "Bad Name".into(),
        ),
        (
            vec!["tag".into(), "nope".into(), "x:1".into()],
            "nope".into(),
        ),
        (
            vec!["image".into(), "inspect".into(), "nope".into()],
            "nope".into(),
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = r.gvpod(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&needle), "{args:?}: {err}");
        if args[0] != "save" || args[2] != "zip" {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }
    assert!(!tmp.path().join("x.tar").exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "save left a temp file behind"
    );
    r.assert_clean();
}
