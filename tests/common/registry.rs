//! A real registry for tests: Debian's `docker-registry` (distribution 2.x)
//! on 127.0.0.1 at a free port, its storage, config and log in a temp dir.
//! Dropping it kills the process, waits for it and removes the dir.
//! Also builds OCI image layouts by hand (layers with whiteouts and opaque
//! directories, multi-platform indexes) and copies them in with skopeo.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A running registry.
pub struct Registry {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

/// Whether the tools these tests need are installed.
pub fn available() -> bool {
    ["docker-registry", "skopeo"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Skips (returns) when root/runsc or the registry tools are missing.
#[macro_export]
macro_rules! require_registry {
    () => {
        if !common::can_run() || !common::registry::available() {
            assert!(
                !common::skips_forbidden(),
                "this test needs root, runsc, docker-registry and skopeo (scripts/setup.sh --deps-only), and skipping is not allowed here"
            );
            eprintln!("skipped: needs root, runsc, docker-registry and skopeo");
            return;
        }
    };
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// An open registry.
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// A registry that wants HTTP basic auth (htpasswd, bcrypt) for `user:password`.
    pub fn start_with(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("gvpod-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut auth_cfg = String::new();
        if let Some((u, p)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd (apache2-utils) is needed for the auth test");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: gvpod-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: gvpod-test-secret\n{auth_cfg}",
            dir.path().join("storage").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { child, dir, port };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "registry did not listen: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log so far (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Blob requests (`GET …/blobs/…`) in the log since byte offset `from`.
    pub fn blob_gets_since(&self, from: usize) -> Vec<String> {
        let log = self.log();
        log.get(from..)
            .unwrap_or("")
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .map(str::to_string)
            .collect()
    }

    /// Where the registry keeps the bytes of blob `sha256:<hex>`.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Copies the OCI layout `layout:tag` to `repo:tag` here (all platforms),
    /// byte for byte (same digests).
    pub fn push_layout(&self, layout: &Path, tag: &str, repo_tag: &str) {
        self.push_layout_as(layout, tag, repo_tag, None)
    }

    /// Like [`Registry::push_layout`]; with `Some("v2s2")` skopeo converts to
    /// Docker schema 2 manifests and manifest lists (new digests).
    pub fn push_layout_as(&self, layout: &Path, tag: &str, repo_tag: &str, format: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--quiet", "--dest-tls-verify=false"]);
        match format {
            Some(f) => cmd.args(["--format", f]),
            None => cmd.arg("--preserve-digests"),
        };
        let out = cmd
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A raw HTTP GET on the registry (status line and body), for checks.
    pub fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json\r\n\r\n",
            self.addr()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // self.dir (storage, config, log) is removed by TempDir's own Drop.
    }
}

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One entry of a hand-made layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    /// `.wh.NAME` next to NAME: deletes NAME of lower layers.
    Whiteout(&'a str),
    /// `DIR/.wh..wh..opq`: hides everything lower layers have in DIR.
    Opaque(&'a str),
}

/// An uncompressed tar of `entries`.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, data).unwrap();
    };
    for e in entries {
        match e {
            Entry::Dir(p) => add(p, tar::EntryType::Directory, b"", 0o755),
            Entry::File(p, d) => add(p, tar::EntryType::Regular, d, 0o644),
            Entry::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                let wh = if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                };
                add(&wh, tar::EntryType::Regular, b"", 0o644)
            }
            Entry::Opaque(d) => add(
                &format!("{d}/.wh..wh..opq"),
                tar::EntryType::Regular,
                b"",
                0o644,
            ),
        }
    }
    b.into_inner().unwrap()
}

/// How a layer blob is compressed.
#[derive(Clone, Copy)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Writes blobs and an image manifest into an OCI layout; returns the
/// manifest's descriptor (media type, digest, size).
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    fn put(&self, data: &[u8]) -> (String, usize) {
        let d = digest(data);
        std::fs::write(
            self.dir
                .join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap()),
            data,
        )
        .unwrap();
        (d, data.len())
    }

    /// An image manifest for `arch` with these layers (uncompressed tars,
    /// compressed as asked) and `Cmd ["sh"]`; returns its descriptor JSON.
    pub fn image(&self, arch: &str, layers: &[(Vec<u8>, Compression)]) -> serde_json::Value {
        let mut diff_ids = vec![];
        let mut descs = vec![];
        for (tar, c) in layers {
            diff_ids.push(digest(tar));
            let (data, mt) = match c {
                Compression::None => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
                Compression::Gzip => {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(tar).unwrap();
                    (
                        e.finish().unwrap(),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )
                }
                Compression::Zstd => (
                    zstd::encode_all(&tar[..], 3).unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
            };
            let (d, n) = self.put(&data);
            descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": n}));
        }
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (cd, cn) = self.put(&serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": descs,
        });
        let (md, mn) = self.put(&serde_json::to_vec(&manifest).unwrap());
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": mn,
            "platform": {"architecture": arch, "os": "linux"},
        })
    }

    /// Writes `index.json` naming `entry` (a manifest or index descriptor) as `tag`.
    pub fn tag(&self, tag: &str, mut entry: serde_json::Value) {
        entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// An image index blob over `entries`; returns its descriptor.
    pub fn index(&self, entries: &[serde_json::Value]) -> serde_json::Value {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        let (d, n) = self.put(&serde_json::to_vec(&index).unwrap());
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": n})
    }
}
