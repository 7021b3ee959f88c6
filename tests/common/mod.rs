//! Test harness: a throw-away gvpod data root with the busybox image
//! imported, commands run through the real binary, and a leak check that
//! looks at the host (mounts, runsc containers, cgroups, processes), not
//! at gvpod's database.

#![allow(dead_code)]

pub mod api;
pub mod host;
pub mod pods;
pub mod registry;
pub mod route;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub mod oci;

pub const BIN: &str = env!("CARGO_BIN_EXE_gvpod");

/// Skips (by returning early) when the host cannot run sandboxes: not root
/// or no runsc. Where a skip would hide a missing test (CI, or
/// `GVPOD_REQUIRE_ROOT_TESTS=1`, which scripts/test.sh sets) it fails instead.
#[macro_export]
macro_rules! require_runsc {
    () => {
        if !common::can_run() {
            assert!(
                !common::skips_forbidden(),
                "this test needs root and runsc (GVPOD_RUNSC or runsc on PATH), and skipping is not allowed here"
            );
            eprintln!("skipped: needs root and runsc");
            return;
        }
    };
}

/// Skips (by returning early) when not root, for tests that need root but
/// not runsc (mounts, device nodes, owners). Where a skip would hide a
/// missing test (CI, or `GVPOD_REQUIRE_ROOT_TESTS=1`) it fails instead.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            assert!(
                !common::skips_forbidden(),
                "this test needs root (mounts, device nodes, owners), and skipping is not allowed here"
            );
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// Whether a skipped test must fail instead (CI, GVPOD_REQUIRE_ROOT_TESTS=1).
pub fn skips_forbidden() -> bool {
    std::env::var("GVPOD_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// tests/dockerode (the pinned dockerode) when node and its node_modules
/// are there; otherwise `None`, which fails the test where skips are
/// forbidden.
pub fn dockerode_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dockerode");
    let have = dir.join("node_modules/dockerode").is_dir()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok();
    assert!(
        have || !skips_forbidden(),
        "node or tests/dockerode/node_modules is missing: run scripts/setup.sh --deps-only"
    );
    have.then_some(dir)
}

/// The runsc the suite runs against: `GVPOD_RUNSC`, else the first on PATH.
pub fn runsc_bin() -> String {
    std::env::var("GVPOD_RUNSC").unwrap_or_else(|_| "runsc".into())
}

/// The other runsc release of a two-release run (scripts/test.sh sets
/// `GVPOD_RUNSC_OTHER`), for the cross-release tests.
pub fn other_runsc() -> Option<String> {
    std::env::var("GVPOD_RUNSC_OTHER")
        .ok()
        .filter(|p| !p.is_empty())
}

/// What the suite's runsc says of itself (`gvpod system info --format json`).
pub fn runsc_info(r: &Root) -> serde_json::Value {
    serde_json::from_str(&r.ok(&["system", "info", "--format", "json"])).unwrap()
}

pub fn can_run() -> bool {
    is_root()
        && Command::new(runsc_bin())
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The busybox rootfs tarball, built once per test binary by the project's recipe.
pub fn busybox_tarball() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("busybox-{}.tar", std::process::id()));
        let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/busybox/build.sh");
        let st = Command::new("bash")
            .arg(&recipe)
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run busybox recipe");
        assert!(st.success(), "images/busybox/build.sh failed");
        out
    })
}

/// The reference `devbox_image()` loads under.
pub const DEVBOX_REF: &str = "docker.io/gvpod/devbox:bookworm";

/// Where built test images are kept between runs (one file per recipe version).
pub const TEST_IMAGE_CACHE: &str = "/var/cache/gvpod/test-images";

/// The recipe files whose content names a cached devbox archive.
const DEVBOX_RECIPE: [&str; 4] = [
    "images/devbox/build.sh",
    "images/devbox/ws-echo.py",
    "images/lib/oci.sh",
    "images/debian/build.sh",
];

/// The dev-access test image (images/devbox: Debian bookworm with
/// openssh-server, sudo, python3-websockets and /usr/local/bin/ws-echo;
/// no ssh host keys; Cmd sleep infinity) as an oci-archive that loads as
/// [`DEVBOX_REF`].
///
/// Built once per machine, not per run: the archive is cached in
/// [`TEST_IMAGE_CACHE`] as `devbox-<16 hex of the recipe's sha256>.tar`, so
/// a changed recipe builds anew and an unchanged one costs nothing. A lock
/// file there makes concurrent test binaries build it once; the build
/// writes a temporary name and renames it, so the cache never holds half an
/// archive. Needs root and a Debian mirror the first time (about a minute
/// with debootstrap's package cache, `/var/cache/gvpod/debootstrap`, warm).
pub fn devbox_image() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| cached_image("devbox", &DEVBOX_RECIPE))
}

/// `images/NAME/build.sh OUT` run once per recipe version, cached (see
/// [`devbox_image`]).
fn cached_image(name: &str, recipe: &[&str]) -> PathBuf {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut h = Sha256::new();
    for f in recipe {
        let body = std::fs::read(repo.join(f)).unwrap_or_else(|e| panic!("read {f}: {e}"));
        h.update(f.as_bytes());
        h.update([0]);
        h.update((body.len() as u64).to_le_bytes());
        h.update(&body);
    }
    let dir = Path::new(TEST_IMAGE_CACHE);
    let out = dir.join(format!("{name}-{}.tar", &hex::encode(h.finalize())[..16]));
    if out.is_file() {
        return out;
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let file = std::fs::File::create(dir.join(format!("{name}.lock")))
        .unwrap_or_else(|e| panic!("create the lock file in {}: {e}", dir.display()));
    // Held until `_lock` drops: one builder at a time, machine-wide.
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("lock the test image cache: {e}"));
    if out.is_file() {
        return out;
    }
    // Under the lock, temporary files are those of builders that died.
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!(".{name}-")) && n.contains(".partial") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let tmp = dir.join(format!(".{name}-{}.partial", std::process::id()));
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join(format!("images/{name}/build.sh")))
        .arg(&tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if std::env::var_os("DEBOOTSTRAP_CACHE").is_none() {
        cmd.env("DEBOOTSTRAP_CACHE", "/var/cache/gvpod/debootstrap");
    }
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().expect("run the image recipe");
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let st = child.wait().expect("wait for the image recipe");
    if !st.success() {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(tmp.with_extension("partial.tmp"));
        panic!("images/{name}/build.sh failed ({st}):\n{err}");
    }
    std::fs::rename(&tmp, &out).expect("move the built image into the cache");
    eprintln!(
        "built {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    out
}

/// A temporary data root; dropping it removes every pod and checks for leaks.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    /// A fresh root with `busybox` imported (Cmd ["sh"]).
    pub fn new() -> Root {
        let r = Root::empty();
        let out = r.gvpod(&[
            "import",
            "-c",
            r#"CMD ["sh"]"#,
            busybox_tarball().to_str().unwrap(),
            "busybox",
        ]);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        r
    }

    /// Loads [`devbox_image()`] into this root unless it is there already;
    /// returns its reference ([`DEVBOX_REF`]).
    pub fn load_devbox(&self) -> &'static str {
        if !self
            .gvpod(&["image", "inspect", DEVBOX_REF])
            .status
            .success()
        {
            self.ok(&["load", "-i", devbox_image().to_str().unwrap()]);
        }
        DEVBOX_REF
    }

    pub fn empty() -> Root {
        let dir = tempfile::Builder::new()
            .prefix("gvpod-test-")
            .tempdir()
            .unwrap();
        Root { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.env("GVPOD_ROOT", self.path())
            .env_remove("GVPOD_CRASH_AT")
            .env_remove("GVPOD_PAUSE_AT")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn gvpod(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run gvpod")
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.gvpod(args);
        assert!(
            o.status.success(),
            "gvpod {args:?} failed ({:?}): {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `gvpod run -d ARGS` (options, image, command): asserts success,
    /// tracks the pod for the leak check and returns its id.
    pub fn run_detached(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        self.started(&all)
    }

    /// `gvpod restore ARGS`: asserts success, tracks the pod (a clone is a
    /// new one) and returns its id.
    pub fn restore(&self, args: &[&str]) -> String {
        let mut all = vec!["restore"];
        all.extend_from_slice(args);
        self.started(&all)
    }

    /// Runs a command that prints the id of the pod it started.
    fn started(&self, args: &[&str]) -> String {
        let id = self.ok(args).trim().to_string();
        self.track(&id);
        id
    }

    /// Waits (20 s at most, for slow CI machines) until the pod's stdout
    /// log satisfies `done`; returns that log.
    pub fn wait_logs(&self, pod: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let out = self.ok(&["logs", pod]);
            if done(&out) {
                return out;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pod {pod} never logged what was awaited; its log: {out:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Pids of this root's pod monitors still alive.
    pub fn monitors(&self) -> Vec<String> {
        let root = std::fs::canonicalize(self.path()).unwrap_or(self.path().to_owned());
        let rs = root.to_string_lossy().into_owned();
        processes(|c| c.contains("__monitor") && c.contains(&rs))
            .into_iter()
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Runs a command that must fail with `code` and one line of error
    /// that contains `needle` (the quality bar for bad input).
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) {
        let o = self.gvpod(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    }

    pub fn inspect(&self, pod: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", pod])).expect("inspect prints JSON")
    }

    pub fn ps_all(&self) -> Vec<serde_json::Value> {
        serde_json::from_str::<Vec<serde_json::Value>>(&self.ok(&["ps", "-a", "--format", "json"]))
            .unwrap()
    }

    /// The runsc state directory of this root (as gvpod derives it).
    pub fn run_dir(&self) -> PathBuf {
        use sha2::{Digest, Sha256};
        let root = std::fs::canonicalize(self.path()).unwrap();
        let h = Sha256::digest(root.as_os_str().as_encoded_bytes());
        PathBuf::from("/run/gvpod").join(&hex::encode(h)[..12])
    }

    /// Everything of this root still on the host: mounts, runsc containers,
    /// sandbox processes, cgroups of its pods. Empty means clean.
    pub fn leaks(&self) -> Vec<String> {
        let mut v = vec![];
        let root = std::fs::canonicalize(self.path()).unwrap_or(self.path().to_owned());
        let rs = root.to_string_lossy().into_owned();
        for l in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
        {
            if l.split(' ').nth(4).is_some_and(|m| m.starts_with(&rs)) {
                v.push(format!("mount: {l}"));
            }
        }
        // Loop devices backed by a file of this root (bounded writable layers).
        if let Ok(rd) = std::fs::read_dir("/sys/block") {
            for e in rd.flatten() {
                let backing = e.path().join("loop/backing_file");
                if let Ok(f) = std::fs::read_to_string(&backing) {
                    if f.starts_with(&rs) {
                        v.push(format!("loop device {:?}: {}", e.file_name(), f.trim()));
                    }
                }
            }
        }
        let runsc_root = self.run_dir().join("runsc");
        if let Ok(rd) = std::fs::read_dir(&runsc_root) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() == 64 {
                    v.push(format!("runsc state: {n}"));
                }
            }
        }
        // Sandbox/gofer processes whose command line names this root's
        // runsc state dir, and this root's pod monitors.
        let needle = runsc_root.to_string_lossy().into_owned();
        v.extend(
            processes(|c| c.contains(&needle) || (c.contains("__monitor") && c.contains(&rs)))
                .into_iter()
                .map(|(pid, c)| format!("process {pid}: {c}")),
        );
        v.extend(self.network_leaks());
        for id in self.known_ids() {
            v.extend(pod_cgroups(&id).map(|p| format!("cgroup: {}", p.display())));
        }
        v
    }

    /// Host network objects of this root: links carrying its alias (bridges,
    /// veths), namespace files, its nftables table, leases in its database.
    ///
    /// Networks may outlive pods: while the root still has network rows,
    /// their bridges and the table are expected, and only pod-level objects
    /// (veths, rules tagged with a pod that is gone) count.
    pub fn network_leaks(&self) -> Vec<String> {
        let mut v = vec![];
        let root = std::fs::canonicalize(self.path()).unwrap_or(self.path().to_owned());
        let (networks, pods, leases) = match rusqlite::Connection::open(root.join("gvpod.db")) {
            Ok(db) => {
                let col = |q: &str| -> Vec<String> {
                    db.prepare(q)
                        .and_then(|mut st| {
                            st.query_map([], |r| r.get::<_, String>(0))?
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .unwrap_or_default()
                };
                (
                    col("SELECT name FROM networks"),
                    col("SELECT id FROM pods"),
                    col("SELECT ip FROM leases"),
                )
            }
            Err(_) => (vec![], vec![], vec![]),
        };
        let mark = format!("gvpod root={} ", root.display());
        if let Ok(o) = Command::new("ip")
            .args(["-d", "-j", "link", "show"])
            .output()
        {
            let links: Vec<serde_json::Value> =
                serde_json::from_slice(&o.stdout).unwrap_or_default();
            for l in links {
                let Some(alias) = l["ifalias"].as_str() else {
                    continue;
                };
                let Some(kv) = alias.strip_prefix(&mark) else {
                    continue;
                };
                let owned = match kv.split_once('=') {
                    Some(("net", n)) => networks.iter().any(|x| x == n),
                    Some(("pod", id)) => pods.iter().any(|x| x == id),
                    _ => false,
                };
                if !owned {
                    v.push(format!("link: {} ({alias})", l["ifname"]));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(root.join("netns")) {
            for e in rd.flatten() {
                if !pods.iter().any(|p| *p == e.file_name().to_string_lossy()) {
                    v.push(format!("netns: {}", e.path().display()));
                }
            }
        }
        let table = table_name(&root);
        if let Ok(o) = Command::new("nft")
            .args(["-j", "list", "table", "inet", &table])
            .output()
        {
            if o.status.success() {
                if networks.is_empty() {
                    v.push(format!("nftables table inet {table}"));
                }
                let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
                for item in doc["nftables"].as_array().into_iter().flatten() {
                    let c = item["rule"]["comment"].as_str().unwrap_or("");
                    if let Some(id) = c.strip_prefix("pod:") {
                        if !pods.iter().any(|p| p == id) {
                            v.push(format!("nftables rule {c}"));
                        }
                    }
                }
            }
        }
        if pods.is_empty() && !leases.is_empty() {
            v.push(format!("leases in the database: {leases:?}"));
        }
        v
    }

    /// Pod ids this root ever created (from bundles and logs still present, plus the db).
    fn known_ids(&self) -> Vec<String> {
        let mut ids = std::collections::BTreeSet::new();
        for d in ["bundles", "logs"] {
            if let Ok(rd) = std::fs::read_dir(self.path().join(d)) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    ids.insert(n.trim_end_matches(".json").to_string());
                }
            }
        }
        IDS.with(|s| ids.extend(s.borrow().iter().cloned()));
        ids.into_iter().filter(|i| i.len() == 64).collect()
    }

    /// Remembers a pod id for the cgroup part of the leak check.
    pub fn track(&self, id: &str) {
        IDS.with(|s| s.borrow_mut().push(id.to_string()));
    }

    /// Removes every pod, runs gc, and asserts that nothing is left on the host.
    pub fn assert_clean(&self) {
        self.teardown();
        let l = self.leaks_settled();
        assert!(l.is_empty(), "leaked: {l:#?}");
    }

    /// `leaks()`, given the kernel up to 5 s to finish destroying removed
    /// network namespaces (their veth pairs go with them, asynchronously).
    pub fn leaks_settled(&self) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let l = self.leaks();
            if l.is_empty() || std::time::Instant::now() > deadline {
                return l;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn teardown(&self) {
        if let Ok(o) = self.cmd(&["ps", "-a", "-q"]).output() {
            let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.gvpod(&args);
            }
        }
        if let Ok(o) = self.cmd(&["network", "ls", "-q"]).output() {
            let nets: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            if !nets.is_empty() {
                let mut args = vec!["network", "rm"];
                args.extend(nets.iter().map(String::as_str));
                let _ = self.gvpod(&args);
            }
        }
        let _ = self.gvpod(&["system", "gc"]);
    }

    /// Creates a network on a free /24 of 198.18.0.0/16 picked by gvpod.
    pub fn network(&self, name: &str, internal: bool) -> serde_json::Value {
        let mut args = vec!["network", "create", name];
        if internal {
            args.push("--internal");
        }
        self.ok(&args);
        serde_json::from_str(&self.ok(&["network", "inspect", name])).unwrap()
    }
}

/// The nftables table gvpod uses for a (non-default) data root.
pub fn table_name(root: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(root.as_os_str().as_encoded_bytes());
    h.update([0]);
    format!("gvpod-{}", &hex::encode(h.finalize())[..10])
}

thread_local! {
    static IDS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(vec![]) };
}

impl Drop for Root {
    fn drop(&mut self) {
        // Best effort even when the test failed; the suite-level check in .ci catches the rest.
        self.teardown();
        let _ = std::fs::remove_dir_all(self.run_dir());
    }
}

/// (pid, command line) of the host's processes whose command line matches.
fn processes(matches: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            matches(&c).then(|| (e.file_name().to_string_lossy().into_owned(), c))
        })
        .collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The cgroups of pod `id` that exist on the host (v1 controllers and v2).
pub fn pod_cgroups(id: &str) -> impl Iterator<Item = std::path::PathBuf> + '_ {
    [
        "/sys/fs/cgroup/memory/gvpod",
        "/sys/fs/cgroup/pids/gvpod",
        "/sys/fs/cgroup/cpu/gvpod",
        "/sys/fs/cgroup/gvpod",
    ]
    .into_iter()
    .map(move |base| Path::new(base).join(id))
    .filter(|p| p.exists())
}
