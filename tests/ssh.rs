//! Dev user and SSH (`--dev-user`, `--ssh`, `gvpod ssh`, `ssh-config`,
//! `ssh-proxy`) with real clients: OpenSSH's ssh, scp and ssh-keygen on
//! the host, the devbox image (openssh-server, sudo) in the pod.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{stderr, stdout, Root};

/// The devbox image loaded into `r`; its reference.
fn devbox(r: &Root) -> String {
    r.load_devbox().to_string()
}

/// Whether the host has the OpenSSH client tools the tests drive; a
/// missing one fails where skipping is not allowed.
fn require_ssh_client() -> bool {
    let have = ["ssh", "scp", "ssh-keygen"].iter().all(|t| {
        Command::new(t)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !have {
        assert!(
            !common::skips_forbidden(),
            "these tests need openssh-client (ssh, scp, ssh-keygen) on the host"
        );
        eprintln!("skipped: needs openssh-client");
    }
    have
}

/// A client key pair `dir/id`, `dir/id.pub`.
fn keygen(dir: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "gvpod-test", "-f"])
        .arg(dir.join("id"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Runs an OpenSSH client (`ssh`, `scp`) with the config gvpod printed and
/// the test's key; never waits for a prompt; bounded in time.
fn client(tool: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(tool)
        .arg("-F")
        .arg(dir.join("cfg"))
        .arg("-i")
        .arg(dir.join("id"))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ssh_ok(dir: &Path, host: &str, cmd: &str) -> String {
    let o = client("ssh", dir, &[host, cmd]);
    assert!(
        o.status.success(),
        "ssh {host} {cmd:?} failed ({:?}): {}{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Writes `gvpod ssh-config` to `dir/cfg`.
fn write_config(r: &Root, dir: &Path) -> String {
    // (Under sudo the proxy would be run with `sudo -n`: not here, as root.)
    let o = r
        .cmd(&["ssh-config"])
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = stdout(&o);
    assert!(cfg.contains("ssh-proxy %h"), "{cfg}");
    std::fs::write(dir.join("cfg"), &cfg).unwrap();
    cfg
}

/// The known_hosts line gvpod keeps for `name`.
fn known_key(r: &Root, name: &str) -> String {
    let kh = std::fs::read_to_string(r.path().join("ssh/known_hosts")).unwrap();
    kh.lines()
        .find(|l| l.starts_with(&format!("{name}.gvpod ")))
        .unwrap_or_else(|| panic!("no known_hosts line for {name}: {kh}"))
        .to_string()
}

fn run_ssh_pod(r: &Root, name: &str, image: &str, key: &Path) -> String {
    r.run_detached(&[
        "--name",
        name,
        "--network",
        "sshnet",
        "--dev-user",
        "dev",
        "--ssh",
        "--ssh-key",
        key.to_str().unwrap(),
        image,
        "sleep",
        "infinity",
    ])
}

/// The dev user's sudo: the policy is passwordless (asked of root's sudo,
/// which needs no setuid); run as the dev user over ssh, `sudo -n true`
/// succeeds, or fails only because the sandbox ignores setuid bits (gVisor
/// releases up to at least 20240729: google/gvisor#5299), never because
/// a password is asked for.
fn sudo_is_passwordless(r: &Root, dir: &Path, pod: &str) {
    let l = r.ok(&["exec", pod, "sudo", "-n", "-l", "-U", "dev"]);
    assert!(l.contains("(ALL) NOPASSWD: ALL"), "{l}");
    r.ok(&[
        "exec",
        pod,
        "visudo",
        "-c",
        "-f",
        "/etc/sudoers.d/gvpod-dev",
    ]);
    let o = client(
        "ssh",
        dir,
        &[&format!("{pod}.gvpod"), "sudo -n true && echo sudo-ok"],
    );
    if o.status.success() {
        assert_eq!(stdout(&o), "sudo-ok\n");
    } else {
        let err = stderr(&o);
        assert!(
            err.contains("\"no new privileges\" flag is set")
                || err.contains("effective uid is not 0"),
            "sudo failed for another reason than the sandbox's missing setuid: {err}"
        );
        assert!(!err.contains("password"), "{err}");
    }
}

#[test]
fn ssh_scp_sudo_and_host_keys_that_stay() {
    require_runsc!();
    if !require_ssh_client() {
        return;
    }
    let r = Root::empty();
    let image = devbox(&r);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keygen(dir);
    let key = dir.join("id.pub");
    r.network("sshnet", false);
    run_ssh_pod(&r, "web", &image, &key);
    let k1 = known_key(&r, "web");
    assert!(k1.starts_with("web.gvpod ssh-ed25519 "), "{k1}");

    // The dev user, made before the first start.
    let v = r.inspect("web");
    assert_eq!(v["config"]["dev"]["user"], "dev");
    assert_eq!(v["config"]["dev"]["ssh"], true);
    assert_eq!(r.ok(&["ssh", "web", "id", "-un"]).trim(), "dev");
    assert_eq!(
        r.ok(&["ssh", "web", "echo $HOME $USER $SHELL; pwd; id -u"]),
        "/home/dev dev /bin/bash\n/home/dev\n1000\n"
    );
    let o = r.gvpod(&["ssh", "web", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let shadow = r.ok(&["exec", "web", "grep", "^dev:", "/etc/shadow"]);
    assert!(
        shadow.starts_with("dev:*:"),
        "no password, not locked: {shadow}"
    );
    assert_eq!(
        // (find, not stat: runsc 20221219 has no statx)
        r.ok(&[
            "exec",
            "web",
            "find",
            "/etc/sudoers.d/gvpod-dev",
            "/home/dev/.ssh/authorized_keys",
            "-printf",
            "%m %u\n"
        ]),
        "440 root\n600 dev\n"
    );

    // A checkpoint before any TCP connection (runsc before 20251208 will
    // not save a pod with one open or in TIME_WAIT), restored in place:
    // sshd comes back from memory, with the same host key.
    r.ok(&["checkpoint", "--name", "websnap", "web"]);
    r.ok(&["restore", "websnap"]);
    write_config(&r, dir);
    assert_eq!(known_key(&r, "web"), k1);
    // StrictHostKeyChecking yes against gvpod's known_hosts: a changed key fails here.
    assert_eq!(ssh_ok(dir, "dev@web.gvpod", "id -un"), "dev\n");
    sudo_is_passwordless(&r, dir, "web");
    // The config names each pod's user: no user@ needed.
    assert_eq!(ssh_ok(dir, "web.gvpod", "id -un"), "dev\n");

    // scp in and back.
    let payload: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.join("up.txt"), &payload).unwrap();
    let up = dir.join("up.txt");
    let o = client("scp", dir, &[up.to_str().unwrap(), "web.gvpod:up.txt"]);
    assert!(o.status.success(), "scp in: {}", stderr(&o));
    let back = dir.join("back.txt");
    let o = client("scp", dir, &["web.gvpod:up.txt", back.to_str().unwrap()]);
    assert!(o.status.success(), "scp back: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), payload);
    assert_eq!(
        r.ok(&["ssh", "web", "find ~/up.txt -printf %u"]).trim(),
        "dev",
        "scp wrote as the dev user"
    );

    // Keys only: a password login is refused.
    let o = client(
        "ssh",
        dir,
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "PubkeyAuthentication=no",
            "dev@web.gvpod",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));

    // Stop and start (sshd started again by the monitor): same key.
    r.ok(&["stop", "-t", "1", "web"]);
    r.ok(&["start", "web"]);
    assert_eq!(known_key(&r, "web"), k1);
    assert_eq!(ssh_ok(dir, "web.gvpod", "id -un"), "dev\n");

    // rm -f and run again under the same name: same key (that is the point).
    r.ok(&["rm", "-f", "web"]);
    run_ssh_pod(&r, "web", &image, &key);
    assert_eq!(known_key(&r, "web"), k1);
    write_config(&r, dir);
    assert_eq!(ssh_ok(dir, "web.gvpod", "id -un"), "dev\n");

    // Another name: its own key, and both pods reachable.
    run_ssh_pod(&r, "api", &image, &key);
    let k2 = known_key(&r, "api");
    let blob = |l: &str| l.split_whitespace().nth(2).unwrap().to_string();
    assert_ne!(blob(&k1), blob(&k2));
    let cfg = write_config(&r, dir);
    assert!(cfg.contains("Host api.gvpod\n    User dev\n"), "{cfg}");
    assert_eq!(ssh_ok(dir, "api.gvpod", "id -un"), "dev\n");

    // ssh-proxy of a stopped pod: one line, exit 255.
    r.ok(&["stop", "-t", "1", "api"]);
    let o = r.gvpod(&["ssh-proxy", "api.gvpod"]);
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("api"), "{}", stderr(&o));

    r.ok(&["rm", "-f", "web", "api"]);
    r.assert_clean();
    // No sshd or proxy left behind.
    let left = Command::new("pgrep")
        .args(["-f", &format!("ssh-proxy|{}", r.path().display())])
        .output()
        .unwrap();
    assert!(stdout(&left).trim().is_empty(), "{}", stdout(&left));
}

#[test]
fn a_clone_gets_its_own_host_key_and_a_restart_its_sshd() {
    require_runsc!();
    if !require_ssh_client() {
        return;
    }
    let r = Root::empty();
    let image = devbox(&r);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keygen(dir);
    r.network("sshnet", false);
    run_ssh_pod(&r, "src", &image, &dir.join("id.pub"));
    let k_src = known_key(&r, "src");
    r.ok(&["checkpoint", "--leave-running", "--name", "warm", "src"]);
    r.restore(&["--name", "copy", "warm"]);
    let k_copy = known_key(&r, "copy");
    assert_ne!(
        k_src.split_whitespace().nth(2),
        k_copy.split_whitespace().nth(2)
    );
    write_config(&r, dir);
    // The restored sshd (from memory) serves the clone's own key.
    assert_eq!(ssh_ok(dir, "copy.gvpod", "id -un"), "dev\n");
    assert_eq!(ssh_ok(dir, "src.gvpod", "id -un"), "dev\n");

    // A restart by the pod's restart policy gets its sshd too: the first
    // launch exits at once, the second one stays.
    r.run_detached(&[
        "--name",
        "flaky",
        "--network",
        "sshnet",
        "--ssh",
        "--ssh-key",
        dir.join("id.pub").to_str().unwrap(),
        "--restart",
        "on-failure",
        &image,
        "sh",
        "-c",
        "test -e /once || { touch /once; exit 3; }; exec sleep infinity",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = r.inspect("flaky");
        if v["restart_count"] == 1 && v["status"] == "running" && v["restarting"] == false {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never restarted: {v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    write_config(&r, dir);
    assert_eq!(ssh_ok(dir, "flaky.gvpod", "id -un"), "dev\n");
    r.ok(&["rm", "-f", "src", "copy", "flaky"]);
    r.assert_clean();
}

#[test]
fn dev_user_without_sshd_and_bad_input() {
    require_runsc!();
    let r = Root::new();
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("id.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMdAiR5pDV4W0s1XjwKmcXGDBe9jOuV7O1N3jlJrl3ZI t\n",
    )
    .unwrap();
    let k = key.to_str().unwrap();

    // Bad names and --ssh on an image without sshd: one line, exit 2, nothing made.
    r.fails(
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--dev-user",
            "Bad!",
            "busybox",
        ],
        2,
        "invalid --dev-user \"Bad!\"",
    );
    r.fails(
        &[
            "create",
            "--network",
            "none",
            "--dev-user",
            "1abc",
            "busybox",
        ],
        2,
        "invalid --dev-user",
    );
    r.fails(
        &[
            "run",
            "-d",
            "--name",
            "nosshd",
            "--ssh",
            "--ssh-key",
            k,
            "busybox",
        ],
        2,
        "image docker.io/library/busybox:latest has no /usr/sbin/sshd",
    );
    r.fails(
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--ssh",
            "--ssh-key",
            k,
            "busybox",
        ],
        2,
        "--ssh needs a pod network",
    );
    r.fails(
        &[
            "run",
            "-d",
            "--dev-user",
            "dev",
            "--ssh-key",
            "/nonexistent.pub",
            "busybox",
        ],
        2,
        "--ssh-key /nonexistent.pub",
    );
    r.fails(
        &["run", "-d", "--ssh-key", k, "busybox"],
        2,
        "--ssh-key needs --dev-user NAME or --ssh",
    );
    assert!(r.ps_all().is_empty(), "a refused run made a pod");
    assert_eq!(
        r.ok(&["network", "ls", "-q"]),
        "",
        "a refused run made a network"
    );
    assert!(
        !r.path().join("ssh/nosshd").exists(),
        "host keys made for a refused pod"
    );

    // busybox has a user `dev` (uid 1000): alice gets the next free uid.
    r.run_detached(&[
        "--name",
        "box",
        "--network",
        "none",
        "--dev-user",
        "alice",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        r.ok(&["ssh", "box", "id"]).trim(),
        "uid=1001(alice) gid=1001(alice)"
    );
    assert_eq!(
        r.ok(&["ssh", "box", "echo $HOME $USER $LOGNAME $SHELL; pwd"]),
        "/home/alice alice alice /bin/sh\n/home/alice\n"
    );
    let passwd = r.ok(&[
        "exec",
        "box",
        "cat",
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
    ]);
    let o = r.gvpod(&["ssh", "box", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    // Arguments keep their words through the login shell.
    assert_eq!(
        r.ok(&["ssh", "box", "printf", "[%s]", "a b", "it's", "$HOME"]),
        "[a b][it's][$HOME]"
    );
    // Piped stdin reaches the command.
    let mut c = r.cmd(&["ssh", "box", "cat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "piped\n");
    // Through a service (`--url`): the same user, home, words and exit code.
    {
        let svc = common::api::Service::start(&r, 0);
        let remote = |args: &[&str]| {
            Command::new(common::BIN)
                .env("GVPOD_ROOT", "/nonexistent/gvpod-remote-client")
                .env("GVPOD_HOST", format!("unix://{}", svc.sock.display()))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let o = remote(&["ssh", "box", "id -un; pwd; echo $SHELL"]);
        assert_eq!(
            stdout(&o),
            "alice\n/home/alice\n/bin/sh\n",
            "{}",
            stderr(&o)
        );
        let o = remote(&["ssh", "box", "printf", "[%s]", "a b", "it's"]);
        assert_eq!(stdout(&o), "[a b][it's]", "{}", stderr(&o));
        let o = remote(&["ssh", "box", "sh", "-c", "exit 7"]);
        assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
        // --dev-user through the service too.
        let o = remote(&[
            "run",
            "-d",
            "--name",
            "rbox",
            "--network",
            "none",
            "--dev-user",
            "carol",
            "busybox",
            "sleep",
            "1000",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        r.track(stdout(&o).trim());
        let o = remote(&["ssh", "rbox", "id -un"]);
        assert_eq!(stdout(&o), "carol\n", "{}", stderr(&o));
        let o = remote(&["run", "-d", "--dev-user", "Carol", "busybox"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("invalid --dev-user \"Carol\""),
            "{}",
            stderr(&o)
        );
    }
    // Idempotent across a restart: the account files are unchanged.
    r.ok(&["stop", "-t", "0", "box"]);
    r.ok(&["start", "box"]);
    assert_eq!(
        r.ok(&[
            "exec",
            "box",
            "cat",
            "/etc/passwd",
            "/etc/group",
            "/etc/shadow"
        ]),
        passwd
    );

    // A pod with no dev user, an unknown pod: one line each.
    r.run_detached(&[
        "--name",
        "plain",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    r.fails(&["ssh", "plain", "id"], 2, "pod plain has no dev user");
    // A user the image has already is kept as it is.
    r.run_detached(&[
        "--name",
        "keep",
        "--network",
        "none",
        "--dev-user",
        "dev",
        "busybox",
        "sleep",
        "1000",
    ]);
    let image_passwd = r.ok(&["exec", "plain", "cat", "/etc/passwd", "/etc/group"]);
    assert!(
        image_passwd.contains("\ndev:"),
        "busybox has a user dev: {image_passwd}"
    );
    assert_eq!(
        r.ok(&["exec", "keep", "cat", "/etc/passwd", "/etc/group"]),
        image_passwd
    );
    assert_eq!(r.ok(&["ssh", "keep", "id -un"]), "dev\n");
    {
        let svc = common::api::Service::start(&r, 0);
        let o = Command::new(common::BIN)
            .env("GVPOD_ROOT", "/nonexistent/gvpod-remote-client")
            .env("GVPOD_HOST", format!("unix://{}", svc.sock.display()))
            .args(["ssh", "plain", "id"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("pod plain has no dev user"),
            "{}",
            stderr(&o)
        );
    }
    r.fails(&["ssh", "nope", "id"], 2, "no such pod");
    let o = r.gvpod(&["ssh-proxy", "nope.gvpod"]);
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(stderr(&o).trim_end().lines().count(), 1);
    let o = r.gvpod(&["ssh-proxy", "plain.gvpod"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("no address"), "{}", stderr(&o));
    r.assert_clean();
}
