//! The Docker Engine API (`gvpod system service`) driven by the real docker
//! CLI over a temporary socket, with the real runsc: what `docker` users do
//! first (version, images, run -d, ps with filters, logs with timestamps,
//! inspect, stop, wait, rm, a name clash, a missing container), and the
//! service's own promises: `docker ps` and `gvpod ps` agree, and the service
//! exits when idle while its pods run on.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::api::{zombies_of, Service};
use common::{stderr, stdout, Root};

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[test]
fn the_docker_cli_drives_a_pod_through_its_life() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let v = svc.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), "1.47 linux");
    let images = svc.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "busybox:latest");

    let id = svc.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "none",
        "-e",
        "GREETING=hello",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING; echo oops >&2; sleep 60",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    // docker ps and gvpod ps agree.
    let ps = svc.ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), format!("{} web running", &id[..12]));
    let gv = r.ps_all();
    assert_eq!((gv.len(), gv[0]["id"].as_str()), (1, Some(id)));
    let filtered = svc.ok(&["ps", "-a", "--filter", "name=nosuch", "-q"]);
    assert_eq!(filtered.trim(), "");
    let filtered = svc.ok(&["ps", "-a", "--filter", "status=running", "-q"]);
    assert_eq!(filtered.trim(), &id[..12]);

    // Logs: both streams, kept apart, with timestamps on request.
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let o = svc.docker(&["logs", "web"]);
        if stderr(&o).contains("oops") || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (stdout(&logs).as_str(), stderr(&logs).as_str()),
        ("hello\n", "oops\n")
    );
    let ts = svc.ok(&["logs", "-t", "web"]);
    let (t, rest) = ts.trim().split_once(' ').unwrap();
    assert!(t.ends_with('Z') && t.contains('T'), "{ts}");
    assert_eq!(rest, "hello");

    let state = svc.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Running}} {{.Name}} {{.HostConfig.Runtime}}",
        "web",
    ]);
    assert_eq!(state.trim(), "running true /web runsc");

    // A name clash is a conflict, said by the service.
    let o = svc.docker(&["create", "--name", "web", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists") || stderr(&o).contains("web"),
        "{}",
        stderr(&o)
    );

    svc.ok(&["stop", "-t", "1", "web"]);
    // wait and inspect say what gvpod recorded for the stopped pod.
    let code = svc.ok(&["wait", "web"]);
    let recorded = r.inspect("web");
    assert_eq!(recorded["status"], "exited");
    let want = recorded["exit_code"].as_i64().unwrap_or(0).to_string();
    assert_eq!(code.trim(), want);
    let state = svc.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "web",
    ]);
    assert_eq!(state.trim(), format!("exited {want}"));
    svc.ok(&["rm", "web"]);
    assert!(r.ps_all().is_empty());

    // What is not there: exit 1, docker's words.
    let o = svc.docker(&["inspect", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such object: nosuch"),
        "{}",
        stderr(&o)
    );
    let o = svc.docker(&["stop", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
    drop(svc);
    r.assert_clean();
}

#[test]
fn rm_force_removes_a_running_pod_and_a_created_one_starts_later() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let id = svc.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(r.inspect("later")["status"], "created");
    let ps = svc.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert_eq!(ps.trim(), "Created");
    svc.ok(&["start", "later"]);
    assert_eq!(r.inspect(id.trim())["status"], "running");
    // Refused while running without -f: a conflict.
    let o = svc.docker(&["rm", "later"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert_eq!(r.inspect("later")["status"], "running");
    svc.ok(&["rm", "-f", "later"]);
    assert!(r.ps_all().is_empty());
    // The pod's monitor was the service's child: it was reaped when it ended.
    let pid = svc.pid().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !zombies_of(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(zombies_of(pid), Vec::<String>::new());
    drop(svc);
    r.assert_clean();
}

#[test]
fn the_service_exits_when_idle_and_its_pods_run_on() {
    require_docker!();
    let r = Root::new();
    let mut svc = Service::start(&r, 1);
    svc.ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let status = svc.exited_within(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(!exists(&svc.sock), "the socket outlived the service");
    // The pod does not depend on the service.
    assert_eq!(r.inspect("keep")["status"], "running");
    r.ok(&["rm", "-f", "keep"]);
    r.assert_clean();
}

/// The service started by systemd's socket activation (`LISTEN_FDS`, as
/// contrib/systemd/gvpod.socket does it; here systemd-socket-activate, the
/// same protocol): it serves on the socket it was handed, exits when idle
/// and leaves the socket, which is systemd's, where it was.
#[test]
fn a_socket_activated_service_serves_and_leaves_the_socket_to_systemd() {
    require_docker!();
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        assert!(
            !common::skips_forbidden(),
            "systemd-socket-activate is missing (Debian's systemd package)"
        );
        return;
    }
    let r = Root::new();
    let sock = r.path().join("activated.sock");
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(format!("--setenv=GVPOD_ROOT={}", r.path().display()))
        .args([common::BIN, "system", "service", "--time", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !exists(&sock) {
        assert!(std::time::Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let docker = |args: &[&str]| {
        Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env("DOCKER_CONFIG", r.path())
            .args(args)
            .output()
            .unwrap()
    };
    let o = docker(&[
        "run",
        "-d",
        "--name",
        "act",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = docker(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(stdout(&o).trim(), "act");
    // Idle for a second: the service ends; the socket file is systemd's.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the activated service did not exit when idle");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(exists(&sock), "the service removed systemd's socket");
    assert_eq!(r.inspect("act")["status"], "running");
    r.ok(&["rm", "-f", "act"]);
    r.assert_clean();
}

#[test]
fn bad_requests_get_one_clear_line() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    // A restart policy docker does not know either, and another runtime: refused.
    let o = svc.docker(&["create", "--restart", "sometimes", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("restart policy \"sometimes\""),
        "{}",
        stderr(&o)
    );
    let o = svc.docker(&["create", "--runtime", "runc", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown runtime \"runc\""),
        "{}",
        stderr(&o)
    );
    assert!(r.ps_all().is_empty(), "a refused create left a pod");
    // A second service on the same socket is refused, the first one unharmed.
    let o = r.gvpod(&[
        "system",
        "service",
        &format!("unix://{}", svc.sock.display()),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    svc.ok(&["version"]);
    let o = r.gvpod(&["system", "service", "tcp://0.0.0.0:2375"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid address \"tcp://0.0.0.0:2375\""),
        "{}",
        stderr(&o)
    );
    drop(svc);
    r.assert_clean();
}

#[test]
fn docker_run_streams_the_output_and_returns_the_exit_code() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    // Attached runs, over and over: each one's output, streams kept apart,
    // and its own exit code; --rm leaves nothing.
    for i in 0..20 {
        let script = format!("echo out{i}; echo err{i} >&2; exit {}", i % 4);
        let o = svc.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &script,
        ]);
        assert_eq!(o.status.code(), Some(i % 4), "run {i}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("out{i}\n"), "run {i}");
        assert_eq!(stderr(&o), format!("err{i}\n"), "run {i}");
    }
    assert!(r.ps_all().is_empty(), "--rm left pods: {:?}", r.ps_all());
    // Without --rm the pod stays, exited, with its logs.
    let o = svc.docker(&[
        "run",
        "--name",
        "kept",
        "--network",
        "none",
        "busybox",
        "echo",
        "kept",
    ]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "kept\n"));
    assert_eq!(r.inspect("kept")["status"], "exited");
    assert_eq!(svc.ok(&["logs", "kept"]), "kept\n");
    svc.ok(&["rm", "kept"]);
    drop(svc);
    r.assert_clean();
}

#[test]
fn labels_and_exposed_ports_are_kept_shown_and_filtered() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let id = svc.ok(&[
        "run",
        "-d",
        "--name",
        "lab",
        "--network",
        "none",
        "--label",
        "team=dev",
        "--label",
        "flag",
        "--expose",
        "8080",
        "busybox",
        "sleep",
        "100",
    ]);
    r.track(id.trim());
    r.run_detached(&[
        "--name",
        "other",
        "--network",
        "none",
        "-l",
        "team=ops",
        "busybox",
        "sleep",
        "100",
    ]);
    let names = |filter: &str| {
        svc.ok(&["ps", "--filter", filter, "--format", "{{.Names}}"])
            .trim()
            .to_string()
    };
    assert_eq!(names("label=team=dev"), "lab");
    assert_eq!(names("label=team=ops"), "other");
    assert_eq!(names("label=flag"), "lab");
    assert_eq!(names("label=team=nobody"), "");
    let shown = svc.ok(&[
        "inspect",
        "-f",
        "{{.Config.Labels.team}} {{json .Config.ExposedPorts}}",
        "lab",
    ]);
    assert_eq!(shown.trim(), r#"dev {"8080/tcp":{}}"#);
    assert_eq!(r.inspect("other")["config"]["labels"]["team"], "ops");
    r.fails(
        &["run", "-d", "--label", "=x", "busybox", "true"],
        2,
        "--label",
    );
    r.fails(
        &["run", "-d", "--expose", "80/sctp", "busybox", "true"],
        2,
        "80/sctp",
    );
    r.ok(&["rm", "-f", "lab", "other"]);
    r.assert_clean();
}
