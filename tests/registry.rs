//! Registry pull and push against a real registry (Debian's docker-registry
//! on 127.0.0.1, storage in a temp dir), images written by hand as OCI
//! layouts and copied in with skopeo.

mod common;

use std::path::{Path, PathBuf};

use common::registry::{layer_tar, Compression, Entry, Layout, Registry};
use common::{stderr, stdout, Root};

/// A temp dir for an OCI layout (removed on drop; the leak check looks for the prefix).
fn layout_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("gvpod-layout-")
        .tempdir()
        .unwrap()
}

fn busybox_layer() -> Vec<u8> {
    std::fs::read(common::busybox_tarball()).unwrap()
}

/// busybox + a layer with /data and /opq + a layer that deletes /data/gone
/// (whiteout), hides the old /opq (opaque) and adds files; gzip, zstd and
/// plain layers.
fn app_layers() -> Vec<(Vec<u8>, Compression)> {
    let l2 = layer_tar(&[
        Entry::Dir("data"),
        Entry::File("data/keep", b"keep\n"),
        Entry::File("data/gone", b"gone\n"),
        Entry::Dir("opq"),
        Entry::File("opq/a", b"a\n"),
        Entry::Dir("opq/sub"),
        Entry::File("opq/sub/deep", b"deep\n"),
    ]);
    let l3 = layer_tar(&[
        Entry::Whiteout("data/gone"),
        Entry::Opaque("opq"),
        Entry::File("opq/c", b"c\n"),
        Entry::File("data/new", b"new\n"),
    ]);
    vec![
        (busybox_layer(), Compression::Gzip),
        (l2, Compression::Zstd),
        (l3, Compression::None),
    ]
}

/// Pushes the app image as `repo:tag`; returns its manifest digest.
fn push_app(reg: &Registry, repo_tag: &str) -> String {
    let dir = layout_dir();
    let l = Layout::new(dir.path());
    let desc = l.image("amd64", &app_layers());
    let digest = desc["digest"].as_str().unwrap().to_string();
    l.tag("t", desc);
    reg.push_layout(dir.path(), "t", repo_tag);
    digest
}

/// Files a pull may leave behind by mistake: temp files in the store.
fn temp_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.join("images")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if name.starts_with(".tmp-") || name.contains(".tmp") {
                out.push(e.path());
            }
            // Do not descend into unpacked layers (their content is the image's).
            if ft.is_dir() && d.file_name().is_none_or(|n| n != "layers") {
                stack.push(e.path());
            }
        }
    }
    out
}

fn image_names(r: &Root) -> Vec<String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&r.ok(&["images", "--format", "json"])).unwrap();
    v.iter()
        .filter_map(|i| i["reference"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn multi_layer_pull_merges_layers_and_a_second_pull_downloads_nothing() {
    require_registry!();
    let reg = Registry::start();
    let r = Root::new();
    let manifest = push_app(&reg, "app:v1");
    let image = format!("{}/app:v1", reg.addr());

    let o = r.gvpod(&["pull", &image]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    // Not a terminal: one plain line per blob (3 layers + config), then the digest.
    assert_eq!(err.matches(": downloaded ").count(), 4, "{err}");
    assert!(err.contains(&format!("Digest: {manifest}")), "{err}");
    let id = stdout(&o).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(image_names(&r).contains(&image), "{:?}", image_names(&r));

    // The pod sees exactly the merged tree: whiteout and opaque dir applied.
    let out = r.ok(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "find /data /opq | sort; cat /data/keep /opq/c",
    ]);
    assert_eq!(out, "/data\n/data/keep\n/data/new\n/opq\n/opq/c\nkeep\nc\n");

    // Again: every blob is already there; the registry serves no blob.
    let mark = reg.log().len();
    let o = r.gvpod(&["pull", &image]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches(": downloaded ").count(), 0, "{err}");
    assert_eq!(err.matches(": already exists").count(), 4, "{err}");
    assert_eq!(stdout(&o).trim(), id);
    let gets = reg.blob_gets_since(mark);
    assert!(gets.is_empty(), "blob requests on re-pull: {gets:#?}");

    // Pushed elsewhere, the stored manifest goes out unchanged (same digest).
    let mirror = format!("{}/mirror/app:v1", reg.addr());
    let o = r.gvpod(&["push", "-q", &image, &mirror]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), manifest);

    // -q: only the id.
    let o = r.gvpod(&["pull", "-q", &image]);
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    assert_eq!(stdout(&o).trim(), id);
    assert!(temp_leftovers(r.path()).is_empty());
    r.assert_clean();
}

/// An image for `arch`: busybox plus a layer whose /platform names it.
fn platform_image(l: &Layout, arch: &str) -> serde_json::Value {
    l.image(
        arch,
        &[
            (busybox_layer(), Compression::Gzip),
            (
                layer_tar(&[Entry::File("platform", format!("{arch}\n").as_bytes())]),
                Compression::Gzip,
            ),
        ],
    )
}

#[test]
fn index_resolves_to_the_host_platform_and_digests_pin() {
    require_registry!();
    let reg = Registry::start();
    let r = Root::new();
    let dir = layout_dir();
    let l = Layout::new(dir.path());
    let mk = |arch: &str| platform_image(&l, arch);
    let (amd, arm) = (mk("amd64"), mk("arm64"));
    let index = l.index(&[arm.clone(), amd.clone()]);
    l.tag("multi", index.clone());
    reg.push_layout(dir.path(), "multi", "multi:1");
    let image = format!("{}/multi:1", reg.addr());

    let host = if cfg!(target_arch = "aarch64") {
        &arm
    } else {
        &amd
    };
    let host_arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let o = r.gvpod(&["pull", &image]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("Digest: {}", host["digest"].as_str().unwrap())),
        "{}",
        stderr(&o)
    );
    let out = r.ok(&["run", "--rm", &image, "cat", "/platform"]);
    assert_eq!(out, format!("{host_arch}\n"));

    // The other platform on request: a different image.
    let other = if host_arch == "amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let o = r.gvpod(&["pull", "-q", "--platform", other, &image]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = r.ok(&["pull", "-q", &image]);
    assert_ne!(stdout(&o), first);

    // A platform the index lacks: exit 2, one line naming it and the reference.
    let o = r.gvpod(&["pull", "--platform", "linux/s390x", &image]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("linux/s390x") && e.contains(&image), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");

    // By digest: the index digest resolves too; the manifest digest pins the image.
    let by_index = format!("{}/multi@{}", reg.addr(), index["digest"].as_str().unwrap());
    let o = r.gvpod(&["pull", "-q", &by_index]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), first);
    let by_manifest = format!("{}/multi@{}", reg.addr(), host["digest"].as_str().unwrap());
    let out = r.ok(&["run", "--rm", &by_manifest, "cat", "/platform"]);
    assert_eq!(out, format!("{host_arch}\n"));
    // An unknown digest: exit 2, one line naming it.
    let unknown = format!("{}/multi@sha256:{}", reg.addr(), "0".repeat(64));
    r.fails(&["pull", &unknown], 2, &"0".repeat(64));
    r.assert_clean();
}

#[test]
fn docker_schema2_manifest_list_is_pulled() {
    require_registry!();
    let reg = Registry::start();
    let r = Root::new();
    let dir = layout_dir();
    let l = Layout::new(dir.path());
    let mk = |arch: &str| platform_image(&l, arch);
    let entries = [mk("amd64"), mk("arm64")];
    let index = l.index(&entries);
    l.tag("d", index);
    reg.push_layout_as(dir.path(), "d", "docker:2", Some("v2s2"));
    // The registry now holds a Docker manifest list over Docker manifests.
    let head = reg.get("/v2/docker/manifests/2");
    assert!(
        head.contains("application/vnd.docker.distribution.manifest.list.v2+json"),
        "{head}"
    );
    let image = format!("{}/docker:2", reg.addr());
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let out = r.ok(&["run", "--rm", &image, "cat", "/platform"]);
    assert_eq!(out, format!("{arch}\n"));
    r.assert_clean();
}

/// Pulls an image whose layer blob was damaged in the registry's storage.
fn pull_damaged(damage: impl FnOnce(&Path)) {
    let reg = Registry::start();
    let r = Root::new();
    let dir = layout_dir();
    let l = Layout::new(dir.path());
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let desc = l.image(
        "amd64",
        &[
            (busybox_layer(), Compression::Gzip),
            (layer_tar(&[Entry::File("big", &big)]), Compression::None),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("blobs/sha256")
                .join(&desc["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    l.tag("t", desc);
    reg.push_layout(dir.path(), "t", "bad:1");
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    damage(&reg.blob_file(&layer));

    let image = format!("{}/bad:1", reg.addr());
    let o = r.gvpod(&["pull", &image]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let e = stderr(&o);
    eprintln!("damaged blob: {}", e.lines().last().unwrap_or(""));
    assert!(e.contains(&reg.addr()) && e.contains(&image), "{e}");
    assert!(e.contains(&layer), "names the blob: {e}");
    assert!(!image_names(&r).contains(&image));
    let left = temp_leftovers(r.path());
    assert!(left.is_empty(), "temp files left: {left:?}");
    assert!(
        !r.path()
            .join("images/blobs/sha256")
            .join(&layer[7..])
            .exists(),
        "the bad blob was stored"
    );
    r.assert_clean();
}

#[test]
fn a_blob_with_the_wrong_digest_fails_and_registers_nothing() {
    require_registry!();
    pull_damaged(|f| {
        let mut data = std::fs::read(f).unwrap();
        let n = data.len();
        data[n / 2] ^= 0xff;
        std::fs::write(f, data).unwrap();
    });
}

#[test]
fn a_truncated_blob_fails_and_registers_nothing() {
    require_registry!();
    pull_damaged(|f| {
        let data = std::fs::read(f).unwrap();
        std::fs::write(f, &data[..data.len() / 2]).unwrap();
    });
}

#[test]
fn push_then_skopeo_sees_it() {
    require_registry!();
    let reg = Registry::start();
    let r = Root::new();
    let dest = format!("{}/pushed/busybox:v1", reg.addr());
    let o = r.gvpod(&["push", "busybox", &dest]);
    assert!(o.status.success(), "{}", stderr(&o));
    let digest = stdout(&o).trim().to_string();
    assert!(stderr(&o).contains(": pushed "), "{}", stderr(&o));
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"].as_str(), Some(digest.as_str()));
    // Pushing again uploads no blob; pulling it back gives the same image id.
    let o = r.gvpod(&["push", "busybox", &dest]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains(": pushed "), "{}", stderr(&o));
    let id = r.ok(&["images", "-q"]);
    let r2 = Root::empty();
    let o = r2.gvpod(&["pull", "-q", &dest]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        id.contains(&stdout(&o).trim()[7..19]),
        "{id} vs {}",
        stdout(&o)
    );
    // A destination that is not a registry reference: one line, exit 2.
    r.fails(&["push", "busybox", "bad ref"], 2, "bad ref");
    r.assert_clean();
}

#[test]
fn run_pulls_a_missing_image() {
    require_registry!();
    let reg = Registry::start();
    let r = Root::new();
    push_app(&reg, "auto:v1");
    let image = format!("{}/auto:v1", reg.addr());
    let o = r.gvpod(&["run", "--rm", &image, "cat", "/data/keep"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "keep\n");
    assert!(stderr(&o).contains(": downloaded "), "{}", stderr(&o));
    assert!(image_names(&r).contains(&image));
    // Unknown tag and unknown repository: exit 2, one line naming the reference.
    for missing in [
        format!("{}/auto:nope", reg.addr()),
        format!("{}/nothing:v1", reg.addr()),
    ] {
        r.fails(&["run", "--rm", &missing, "true"], 2, &missing);
    }
    // An unreachable registry: 125, naming it.
    let dead = format!("127.0.0.1:{}/x:1", free_port_closed());
    let o = r.gvpod(&["pull", &dead]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unreachable") && stderr(&o).contains(&dead),
        "{}",
        stderr(&o)
    );
    r.assert_clean();
}

/// A loopback port with nothing listening.
fn free_port_closed() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn login_logout_and_docker_config() {
    require_registry!();
    if std::process::Command::new("htpasswd")
        .arg("-h")
        .output()
        .is_err()
    {
        assert!(
            !common::skips_forbidden(),
            "this test needs htpasswd: apt-get install apache2-utils"
        );
        eprintln!("skipped: needs htpasswd (apache2-utils)");
        return;
    }
    let reg = Registry::start_with(Some(("tester", "s3cret")));
    let r = Root::new();
    let image = format!("{}/private/busybox:v1", reg.addr());
    let docker_cfg = layout_dir();
    let cmd = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut c = r.cmd(args);
        c.env("DOCKER_CONFIG", docker_cfg.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if stdin.is_some() {
            c.stdin(std::process::Stdio::piped());
        }
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    };

    // Not logged in: push is refused by the registry.
    let o = cmd(&["push", "busybox", &image], None);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("authentication failed"),
        "{}",
        stderr(&o)
    );
    // A wrong password is refused and not stored.
    let o = cmd(
        &["login", "-u", "tester", "--password-stdin", &reg.addr()],
        Some("nope\n"),
    );
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(!r.path().join("auth.json").exists());
    // The right one is stored 0600 and used by push and pull.
    let o = cmd(
        &["login", "-u", "tester", "--password-stdin", &reg.addr()],
        Some("s3cret\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(r.path().join("auth.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let o = cmd(&["push", "busybox", &image], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cmd(&["pull", "-q", &image], None);
    assert!(o.status.success(), "{}", stderr(&o));
    // Logged out: anonymous again, refused; a second logout is a user error.
    assert!(cmd(&["logout", &reg.addr()], None).status.success());
    let o = cmd(&["logout", &reg.addr()], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let r2 = Root::empty();
    let o = r2
        .cmd(&["pull", &image])
        .env("DOCKER_CONFIG", docker_cfg.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    // Docker's config.json is read too.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("tester:s3cret");
    std::fs::write(
        docker_cfg.path().join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#,
            reg.addr()
        ),
    )
    .unwrap();
    let o = r2
        .cmd(&["pull", "-q", &image])
        .env("DOCKER_CONFIG", docker_cfg.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    r.assert_clean();
}
