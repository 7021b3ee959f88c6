//! `gvpod machine` and forwarding to a machine, driven through the real
//! gvpod binary against a FAKE `limactl` (tests/machine/limactl, the test
//! seam: no Lima and no VM exist here). The fake follows Lima's contract
//! (create from stdin, start with progress, list --json as JSON Lines,
//! shell with the exit status passed through) and its "VM" is a real
//! `gvpod system service` on `$LIMA_HOME/NAME/sock/gvpod.sock`, the socket
//! the real template forwards, so a forwarded verb runs a real pod.
//!
//! Every client runs with a data root that does not exist, so nothing can
//! happen locally by mistake; every machine is deleted (its service
//! stopped) when the test ends, passed or not.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{stderr, stdout, Root};

const FAKE_LIMACTL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/machine");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A client side: its own HOME (mounted into machines at the same path),
/// LIMA_HOME, and the fake limactl first on PATH. Dropping it deletes
/// every machine with `limactl delete --force`.
struct Mac {
    dir: tempfile::TempDir,
    /// The data root the machines' services use (a test's [`Root`]).
    vm_root: Option<PathBuf>,
}

impl Mac {
    fn new(vm_root: Option<&Root>) -> Mac {
        let dir = tempfile::Builder::new()
            .prefix("gvpod-test-mac-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Mac {
            dir,
            vm_root: vm_root.map(|r| r.path().to_path_buf()),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn lima_home(&self) -> PathBuf {
        self.dir.path().join("lima")
    }

    fn path_env(&self, with_limactl: bool) -> String {
        let sys = std::env::var("PATH").unwrap_or_default();
        if with_limactl {
            format!("{FAKE_LIMACTL_DIR}:{sys}")
        } else {
            // No limactl anywhere on it.
            "/usr/sbin:/usr/bin:/sbin:/bin".into()
        }
    }

    fn base(&self, program: &str, with_limactl: bool) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", self.home())
            .env("LIMA_HOME", self.lima_home())
            .env("PATH", self.path_env(with_limactl))
            .env("GVPOD_ROOT", "/nonexistent/gvpod-mac-client")
            .env_remove("GVPOD_MACHINE")
            .env_remove("GVPOD_HOST")
            .env_remove("GVPOD_LINUX_BINARY")
            .current_dir(self.home())
            .stdin(Stdio::null());
        match &self.vm_root {
            Some(r) => c.env("FAKE_LIMA_ROOT", r),
            None => c.env_remove("FAKE_LIMA_ROOT"),
        };
        c
    }

    /// gvpod on "the Mac".
    fn gvpod(&self, args: &[&str]) -> Output {
        self.base(common::BIN, true)
            .args(args)
            .output()
            .expect("run gvpod")
    }

    /// gvpod with GVPOD_MACHINE=machine.
    fn on(&self, machine: &str, args: &[&str]) -> Output {
        self.base(common::BIN, true)
            .env("GVPOD_MACHINE", machine)
            .args(args)
            .output()
            .expect("run gvpod")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.gvpod(args);
        assert!(o.status.success(), "gvpod {args:?}: {}", stderr(&o));
        stdout(&o)
    }

    fn ok_on(&self, machine: &str, args: &[&str]) -> String {
        let o = self.on(machine, args);
        assert!(
            o.status.success(),
            "gvpod {args:?} on {machine}: {}",
            stderr(&o)
        );
        stdout(&o)
    }

    fn status_json(&self, machine: &str) -> serde_json::Value {
        json(&self.ok(&["machine", "status", "--format", "json", machine]))
    }
}

impl Drop for Mac {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir(self.lima_home()) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let _ = self
                .base(&format!("{FAKE_LIMACTL_DIR}/limactl"), true)
                .args(["delete", "--force", &name])
                .output();
        }
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Fails with `code` and exactly one line of error containing every needle.
fn fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
}

#[test]
fn limactl_missing_or_a_machine_missing_is_one_line() {
    let mac = Mac::new(None);
    for args in [
        &["machine", "ls"][..],
        &["machine", "init"],
        &["machine", "start"],
        &["machine", "ssh", "--", "true"],
    ] {
        let o = mac
            .base(common::BIN, false)
            .args(args)
            .output()
            .expect("run gvpod");
        fails(&o, 2, &["limactl not found", "brew install lima"]);
    }
    for args in [
        &["machine", "start", "nope"][..],
        &["machine", "stop", "nope"],
        &["machine", "rm", "-f", "nope"],
        &["machine", "status", "nope"],
        &["machine", "ssh", "nope", "--", "true"],
        &["machine", "env", "nope"],
    ] {
        fails(
            &mac.gvpod(args),
            2,
            &["no machine \"nope\"", "gvpod machine init nope"],
        );
    }
    // Forwarding to a machine that does not exist, or a bad name.
    fails(&mac.on("nope", &["ps"]), 2, &["no machine \"nope\""]);
    fails(
        &mac.on("a/b", &["ps"]),
        2,
        &["invalid machine name \"a/b\""],
    );
    fails(
        &mac.gvpod(&["machine", "init", "x/y"]),
        2,
        &["invalid machine name \"x/y\""],
    );
    fails(
        &mac.gvpod(&["machine", "init", "--memory", "lots"]),
        2,
        &["invalid --memory \"lots\"", "4GiB"],
    );
    // Nothing was made by the refusals.
    assert!(!mac.lima_home().exists());
    assert_eq!(mac.ok(&["machine", "ls", "--format", "json"]).trim(), "[]");
}

#[test]
fn a_machine_runs_pods_for_the_client_and_refuses_paths_it_cannot_see() {
    require_runsc!();
    let root = Root::new();
    let mac = Mac::new(Some(&root));
    let home = mac.home();

    // init: the rendered template on limactl's stdin, the binary copied
    // under the (mounted) home directory.
    assert_eq!(
        mac.ok(&["machine", "init", "--cpus", "2", "--memory", "2GiB", "--disk", "10GiB"])
            .trim(),
        "gvpod"
    );
    let yaml = std::fs::read_to_string(mac.lima_home().join("gvpod/lima.yaml")).unwrap();
    let bin = home.join(".local/share/gvpod/machine/gvpod/gvpod");
    assert!(
        yaml.contains(&format!("  gvpodBinary: \"{}\"", bin.display())),
        "{yaml}"
    );
    assert!(yaml.contains("cpus: 2\n") && yaml.contains("memory: \"2GiB\"\n"));
    assert!(bin.is_file());
    fails(&mac.gvpod(&["machine", "init"]), 2, &["exists already"]);

    // Stopped: forwarded verbs and ssh say how to start it.
    assert_eq!(mac.status_json("gvpod")["status"], "Stopped");
    fails(
        &mac.on("gvpod", &["ps"]),
        2,
        &["machine \"gvpod\" is stopped", "gvpod machine start gvpod"],
    );
    fails(
        &mac.gvpod(&["machine", "ssh", "--", "true"]),
        2,
        &["is stopped"],
    );

    // start: limactl's progress on the terminal, then the API checked.
    let o = mac.gvpod(&["machine", "start"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(stdout(&o).trim(), "gvpod");
    assert!(err.contains("Starting the instance \"gvpod\""), "{err}");
    assert!(err.contains("READY"), "{err}");
    assert!(err.contains("machine \"gvpod\" is running"), "{err}");

    let ls = json(&mac.ok(&["machine", "ls", "--format", "json"]));
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls[0]["name"], "gvpod");
    assert_eq!(ls[0]["status"], "Running");
    assert_eq!(ls[0]["cpus"], 2);
    assert_eq!(ls[0]["memory"], 2u64 << 30);
    let table = mac.ok(&["machine", "ls"]);
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table.lines().nth(1).unwrap().starts_with("gvpod   Running"),
        "{table}"
    );
    let st = mac.status_json("gvpod");
    assert_eq!(st["gvpod"], VERSION, "{st}");
    let sock = mac.lima_home().join("gvpod/sock/gvpod.sock");
    assert_eq!(st["socket"], sock.to_str().unwrap());

    // env: exports for Docker clients and for gvpod --url.
    let env = mac.ok(&["machine", "env"]);
    let url = format!("unix://{}", sock.display());
    assert_eq!(
        env,
        format!("export DOCKER_HOST={url}\nexport GVPOD_HOST={url}\n")
    );

    // ssh: a command in the machine, its exit code passed through.
    let o = mac.gvpod(&["machine", "ssh", "--", "sh", "-c", "echo in-vm; exit 7"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(7), "in-vm\n"));
    let v = mac.ok(&["machine", "ssh", "gvpod", "--", "gvpod", "--version"]);
    assert_eq!(v.trim(), format!("gvpod {VERSION}"));

    // A pod's life through GVPOD_MACHINE: it lives in the machine's data
    // root, not on the client.
    let id = mac
        .ok_on(
            "gvpod",
            &[
                "run",
                "-d",
                "--name",
                "web",
                "-e",
                "FROM=mac",
                "busybox",
                "sh",
                "-c",
                "echo hello-$FROM; exec sleep 1000",
            ],
        )
        .trim()
        .to_string();
    root.track(&id);
    assert_eq!(id.len(), 64, "{id}");
    assert!(mac.ok_on("gvpod", &["ps"]).contains(" web"));
    assert!(
        root.ok(&["ps"]).contains(" web"),
        "the pod is not in the machine's root"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !mac.ok_on("gvpod", &["logs", "web"]).contains("hello-mac") {
        assert!(std::time::Instant::now() < deadline, "no log line");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(mac.ok_on("gvpod", &["exec", "web", "echo", "hi"]), "hi\n");
    let o = mac.on("gvpod", &["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // A published port is a real listening socket where the service runs
    // (in a real machine, the VM, whose listening sockets Lima forwards).
    let port = common::pods::free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let site = mac.ok_on(
        "gvpod",
        &[
            "run",
            "-d",
            "--name",
            "site",
            "-p",
            &publish,
            "busybox",
            "sh",
            "-c",
            "httpd -p 80 -h /etc; exec sleep 1000",
        ],
    );
    root.track(site.trim());
    assert!(mac
        .ok_on("gvpod", &["port", "site"])
        .contains(&format!("127.0.0.1:{port}")));
    let page = common::pods::http_ok(&format!("127.0.0.1:{port}"));
    assert!(page.contains("200 OK"), "{page}");
    assert_eq!(mac.ok_on("gvpod", &["rm", "-f", "site"]).trim(), "site");

    // Paths: under the home mount (relative ones from the client's cwd)
    // they work; elsewhere they are refused with one line naming the path
    // and the mounts, before anything is sent.
    let mounts = format!("{} (writable)", home.display());
    std::fs::copy(common::busybox_tarball(), home.join("bb.tar")).unwrap();
    let img = mac.ok_on("gvpod", &["import", "bb.tar", "bb-from-mac"]);
    assert!(img.trim().starts_with("sha256:"), "{img}");
    assert!(root.ok(&["images"]).contains("bb-from-mac"));
    let outside = root.path().join("outside.tar");
    std::fs::copy(common::busybox_tarball(), &outside).unwrap();
    let outside = outside.to_str().unwrap();
    for args in [
        &["import", outside, "nope"][..],
        &["load", "-i", outside],
        &["save", "-o", outside, "busybox"],
        &["snapshot", "import", outside],
        &["snapshot", "export", "s", "-o", outside],
        &["run", "--rm", "-v", "/etc:/x", "busybox", "true"],
    ] {
        let o = mac.on("gvpod", args);
        let path = if args[0] == "run" { "/etc" } else { outside };
        fails(
            &o,
            2,
            &[
                &format!("{path} is not under a directory machine \"gvpod\" mounts"),
                &mounts,
            ],
        );
    }
    std::fs::create_dir(home.join("data")).unwrap();
    std::fs::write(home.join("data/f"), "from the mac\n").unwrap();
    let o = mac.ok_on(
        "gvpod",
        &["run", "--rm", "-v", "data:/x:ro", "busybox", "cat", "/x/f"],
    );
    assert_eq!(o, "from the mac\n");
    mac.ok_on("gvpod", &["save", "-o", "saved.tar", "bb-from-mac"]);
    assert!(home.join("saved.tar").metadata().unwrap().len() > 0);
    // GVPOD_HOST from `machine env` is the same machine: same checks.
    let o = mac
        .base(common::BIN, true)
        .env("GVPOD_HOST", &url)
        .args(["load", "-i", outside])
        .output()
        .unwrap();
    fails(
        &o,
        2,
        &["is not under a directory machine \"gvpod\" mounts"],
    );
    let o = mac
        .base(common::BIN, true)
        .env("GVPOD_HOST", &url)
        .args(["ps", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(json(&stdout(&o))[0]["name"], "web", "{}", stderr(&o));

    // A Docker client pointed by `machine env` sees the same pod.
    if Command::new("docker").arg("--version").output().is_ok() {
        let cfg = tempfile::tempdir().unwrap();
        let o = Command::new("docker")
            .env("DOCKER_HOST", &url)
            .env("DOCKER_CONFIG", cfg.path())
            .env_remove("DOCKER_CONTEXT")
            .args(["ps", "--format", "{{.Names}}"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(stdout(&o), "web\n", "{}", stderr(&o));
    } else {
        assert!(!common::skips_forbidden(), "the docker CLI is missing");
    }

    // dockerode after `eval "$(gvpod machine env)"`, with nothing else
    // saying where the API is: a pod's create, start, inspect, list, remove.
    dockerode_through_machine_env(&mac, &root);

    // exec -it through a terminal, and logs -f that ends when the pod stops.
    let mut c = mac.base("/usr/bin/python3", true);
    c.env("GVPOD_MACHINE", "gvpod").args([
        "-c",
        IN_PTY,
        common::BIN,
        "exec",
        "-it",
        "web",
        "sh",
        "-c",
        "test -t 0 && echo tty-yes; exit 4",
    ]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("tty-yes"), "{}", stdout(&o));
    let mut follow = mac
        .base(common::BIN, true)
        .env("GVPOD_MACHINE", "gvpod")
        .args(["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    mac.ok_on("gvpod", &["stop", "-t", "1", "web"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let st = loop {
        if let Some(st) = follow.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = follow.kill();
            panic!("logs -f did not end when the pod stopped");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(st.success());
    let mut text = String::new();
    std::io::Read::read_to_string(follow.stdout.as_mut().unwrap(), &mut text).unwrap();
    assert!(text.contains("hello-mac"), "{text}");

    assert_eq!(mac.ok_on("gvpod", &["rm", "-f", "web"]).trim(), "web");

    // rm refuses a running machine; stop, then rm.
    fails(
        &mac.gvpod(&["machine", "rm"]),
        2,
        &["is running", "gvpod machine rm -f gvpod"],
    );
    assert_eq!(mac.ok(&["machine", "stop"]).trim(), "gvpod");
    assert_eq!(mac.status_json("gvpod")["status"], "Stopped");
    assert!(!sock.exists());
    fails(&mac.on("gvpod", &["ps"]), 2, &["is stopped"]);
    assert_eq!(mac.ok(&["machine", "rm"]).trim(), "gvpod");
    assert_eq!(mac.ok(&["machine", "ls", "--format", "json"]).trim(), "[]");
    assert!(!bin.exists() && !mac.lima_home().join("gvpod").exists());
    root.assert_clean();
}

/// Runs tests/dockerode/machine-env.js (the pinned dockerode) in a shell
/// that evals `gvpod machine env` first, as a Mac user's shell would.
fn dockerode_through_machine_env(mac: &Mac, root: &Root) {
    let Some(dir) = common::dockerode_dir() else {
        eprintln!("dockerode part skipped: no node or dockerode");
        return;
    };
    let o = mac
        .base("/bin/sh", true)
        .env_remove("DOCKER_HOST")
        .env_remove("GVPOD_SOCKET")
        .args([
            "-c",
            r#"eval "$("$0" machine env)" && exec node "$1""#,
            common::BIN,
        ])
        .arg(dir.join("machine-env.js"))
        .output()
        .expect("run sh");
    assert!(
        o.status.success(),
        "dockerode through machine env failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let out = stdout(&o);
    let res = json(out.lines().last().unwrap_or_default());
    assert_eq!(res["ok"], true, "{out}");
    let id = res["id"].as_str().unwrap();
    assert_eq!(id.len(), 64, "{res}");
    // It ran in the machine (its data root), and dockerode removed it.
    let ids = mac.ok_on("gvpod", &["ps", "-a", "-q"]);
    assert!(!ids.contains(id) && !ids.contains(&id[..12]), "{ids}");
    assert!(root.ps_all().iter().all(|p| p["name"] != "from-dockerode"));
}

const IN_PTY: &str = r#"
import os, select, subprocess, sys, time
m, s = os.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=s, stdout=s, stderr=s, start_new_session=True)
os.close(s)
out = b''
deadline = time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([m], [], [], 1)
    if not r:
        if p.poll() is not None:
            break
        continue
    try:
        b = os.read(m, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
sys.stdout.buffer.write(out)
sys.exit(p.wait(timeout=30))
"#;

/// A stand-in "gvpod" whose API says it is version 0.0.1.
const OLD_GVPOD: &str = r#"#!/bin/sh
[ "$1 $2" = "system service" ] || exit 1
for a; do sock=$a; done
exec /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1][len("unix://"):])
s.listen(8)
while True:
    c, _ = s.accept()
    try:
        if c.recv(65536):
            c.sendall(b"HTTP/1.1 200 OK\r\nServer: gvpod/0.0.1 (linux)\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
    except OSError:
        pass
    c.close()
' "$sock"
"#;

#[test]
fn a_machine_with_another_gvpod_version_is_refused() {
    let mac = Mac::new(None);
    let old = mac.home().join("gvpod-old");
    std::fs::write(&old, OLD_GVPOD).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    mac.ok(&[
        "machine",
        "init",
        "--gvpod-binary",
        old.to_str().unwrap(),
        "old",
    ]);
    let o = mac.gvpod(&["machine", "start", "old"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let last = err.trim_end().lines().last().unwrap();
    assert!(
        last.contains(&format!(
            "machine \"old\" runs gvpod 0.0.1, this client is {VERSION}"
        )) && last.contains("gvpod machine rm -f old"),
        "{err}"
    );
    // Every forwarded verb refuses it too, by the service's answer.
    fails(&mac.on("old", &["ps"]), 2, &["version 0.0.1", VERSION]);
    // A machine verb given no name takes GVPOD_MACHINE's.
    assert_eq!(mac.ok_on("old", &["machine", "rm", "-f"]).trim(), "old");
    assert!(!Path::new(&mac.lima_home().join("old")).exists());
}
