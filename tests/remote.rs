//! The remote CLI (`gvpod --url unix:///PATH`, `GVPOD_HOST`): the lifecycle
//! tests' main flows run through a `gvpod system service` on a temporary
//! socket, by a client whose own data root does not exist (so nothing can
//! be done locally by mistake), and checked against what the same verbs
//! print on the host: output, `--format json`, exit codes (the pod's own,
//! 2, 125, 126/127), streams kept apart, `logs -f` ending at stop, and
//! Ctrl-C forwarded to a foreground pod.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::api::Service;
use common::registry::Registry;
use common::{stderr, stdout, Root};

/// A client of `svc` whose own data root does not exist.
fn remote(svc: &Service, args: &[&str]) -> Command {
    let mut c = Command::new(common::BIN);
    c.env("GVPOD_ROOT", "/nonexistent/gvpod-remote-client")
        .env("GVPOD_HOST", format!("unix://{}", svc.sock.display()))
        .args(args)
        .stdin(Stdio::null());
    c
}

fn run(svc: &Service, args: &[&str]) -> Output {
    remote(svc, args).output().expect("run the remote gvpod")
}

fn ok(svc: &Service, args: &[&str]) -> String {
    let o = run(svc, args);
    assert!(
        o.status.success(),
        "remote gvpod {args:?} ({:?}): {}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Fails with `code` and exactly one line of error containing `needle`.
fn fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

#[test]
fn the_lifecycle_runs_through_the_service_as_it_does_on_the_host() {
    require_runsc!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let id = ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-e",
            "FROM_CLIENT",
            "busybox",
            "sh",
            "-c",
            "echo ready $FROM_CLIENT; exec sleep 1000",
        ],
    );
    let id = id.trim();
    r.track(id);
    assert_eq!(id.len(), 64, "{id}");
    // Same views, same bytes: ps and inspect through the service are what
    // the host prints.
    assert_eq!(
        json(&ok(&svc, &["ps", "--format", "json"])),
        json(&r.ok(&["ps", "--format", "json"]))
    );
    assert_eq!(json(&ok(&svc, &["inspect", "web"])), r.inspect("web"));
    let table = ok(&svc, &["ps"]);
    assert!(table.starts_with("POD ID "), "{table}");
    assert!(table.lines().nth(1).unwrap().ends_with("web"), "{table}");
    assert_eq!(
        ok(&svc, &["images", "--format", "json"]),
        r.ok(&["images", "--format", "json"])
    );
    // The client's environment, not the service's, fills a bare -e KEY:
    // unset on the client, so it is dropped, as docker does.
    let log = r.wait_logs("web", |l| l.contains("ready"));
    assert_eq!(log.trim(), "ready");
    assert_eq!(ok(&svc, &["logs", "web"]).trim(), "ready");
    assert_eq!(ok(&svc, &["stop", "-t", "1", "web"]).trim(), "web");
    let code = ok(&svc, &["wait", "web"]);
    assert_eq!(code.trim(), r.ok(&["wait", "web"]).trim());
    assert_eq!(code.trim(), "143");
    assert_eq!(ok(&svc, &["start", "web"]).trim(), "web");
    assert_eq!(r.inspect("web")["status"], "running");
    assert_eq!(ok(&svc, &["rm", "-f", "web"]).trim(), "web");
    assert!(r.ps_all().is_empty());
    // Unknown pods: exit 2 and one line, as on the host.
    fails(&run(&svc, &["inspect", "nosuch"]), 2, "nosuch");
    fails(&run(&svc, &["stop", "nosuch"]), 2, "nosuch");
    r.assert_clean();
}

#[test]
fn foreground_runs_keep_streams_apart_and_pass_exit_codes_on() {
    require_runsc!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    for i in 0..5 {
        let o = run(
            &svc,
            &[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                &format!("echo out{i}; echo err{i} >&2; exit {}", 3 + i),
            ],
        );
        assert_eq!(o.status.code(), Some(3 + i), "{}", stderr(&o));
        assert_eq!(stdout(&o), format!("out{i}\n"));
        assert_eq!(stderr(&o), format!("err{i}\n"));
    }
    // A command that cannot run: the host's exit code and line.
    let here = r.gvpod(&["run", "--rm", "busybox", "nosuchcmd"]);
    let there = run(&svc, &["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(here.status.code(), Some(127), "{}", stderr(&here));
    fails(&there, 127, "nosuchcmd");
    assert_eq!(stderr(&here), stderr(&there));
    // A bad value: 2, the same line.
    let here = r.gvpod(&["run", "--rm", "-m", "lots", "busybox", "true"]);
    let there = run(&svc, &["run", "--rm", "-m", "lots", "busybox", "true"]);
    fails(&there, 2, "lots");
    assert_eq!(stderr(&here), stderr(&there));
    // Without --rm the pod stays, exited with its code.
    let o = run(
        &svc,
        &["run", "--name", "once", "busybox", "sh", "-c", "exit 4"],
    );
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(r.inspect("once")["exit_code"], 4);
    assert_eq!(r.ps_all().len(), 1, "only the pod without --rm is left");
    r.assert_clean();
}

#[test]
fn logs_follow_ends_when_the_pod_stops_and_ctrl_c_reaches_the_pod() {
    require_runsc!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let id = ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done",
        ],
    );
    r.track(id.trim());
    let mut follow = remote(&svc, &["logs", "-f", "--timestamps", "ticker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let (t, rest) = first.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{first}");
    assert_eq!(rest, "tick0");
    for i in 1..3 {
        let l = lines.next().unwrap().unwrap();
        assert!(l.ends_with(&format!(" tick{i}")), "{l}");
    }
    ok(&svc, &["stop", "-t", "1", "ticker"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = follow.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "logs -f did not end at stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success());

    // Ctrl-C on a foreground client is the pod's: its trap decides.
    let mut fg = remote(
        &svc,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo caught; exit 9' INT; echo up; while true; do sleep 0.1; done",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = BufReader::new(fg.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "up");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = fg.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the pod did not end on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(st.code(), Some(9));
    assert_eq!(out.next().unwrap().unwrap(), "caught");
    r.assert_clean();
}

#[test]
fn a_missing_service_a_bad_url_and_a_local_only_verb_are_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("unix://{}/none.sock", dir.path().display());
    let o = Command::new(common::BIN)
        .args(["--url", &gone, "ps"])
        .output()
        .unwrap();
    fails(&o, 125, &gone);
    let o = Command::new(common::BIN)
        .args(["--url", "tcp://127.0.0.1:2375", "ps"])
        .output()
        .unwrap();
    fails(&o, 2, "tcp://127.0.0.1:2375");
    require_runsc!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    fails(&run(&svc, &["push", "busybox"]), 2, "gvpod push");
}

#[test]
fn snapshots_and_images_go_through_the_service_with_client_relative_paths() {
    require_runsc!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let cwd = tempfile::tempdir().unwrap();
    let at = |args: &[&str]| {
        let o = remote(&svc, args).current_dir(cwd.path()).output().unwrap();
        assert!(o.status.success(), "remote {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let id = at(&[
        "run",
        "-d",
        "--name",
        "s1",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    r.track(id.trim());
    assert_eq!(at(&["checkpoint", "--name", "snap1", "s1"]).trim(), "snap1");
    assert_eq!(
        json(&at(&["snapshot", "ls", "--format", "json"])),
        json(&r.ok(&["snapshot", "ls", "--format", "json"]))
    );
    assert_eq!(
        json(&at(&["snapshot", "inspect", "snap1"])),
        json(&r.ok(&["snapshot", "inspect", "snap1"]))
    );
    let clone = at(&["restore", "--name", "s2", "snap1"]);
    r.track(clone.trim());
    assert_eq!(r.inspect("s2")["status"], "running");
    // Relative paths are the client's: resolved against its working directory.
    assert_eq!(
        at(&["snapshot", "export", "snap1", "-o", "snap.tar"]).trim(),
        "snap.tar"
    );
    assert!(cwd.path().join("snap.tar").metadata().unwrap().len() > 0);
    assert_eq!(at(&["snapshot", "rm", "snap1"]).trim(), "snap1");
    assert_eq!(
        at(&["snapshot", "import", "snap.tar", "--name", "snap2"]).trim(),
        "snap2"
    );
    assert_eq!(r.ok(&["snapshot", "ls", "-q"]).trim(), "snap2");
    let img = at(&["commit", "s2", "committed:1"]);
    assert!(img.trim().starts_with("sha256:"), "{img}");
    at(&["save", "-o", "img.tar", "busybox"]);
    assert!(cwd.path().join("img.tar").is_file());
    at(&["tag", "busybox", "copy:x"]);
    assert_eq!(
        json(&at(&["image", "inspect", "copy:x"]))["id"],
        json(&r.ok(&["image", "inspect", "busybox"]))["id"]
    );
    assert!(at(&["rmi", "copy:x"]).contains("Untagged"));
    at(&["rmi", "committed:1"]);
    let o = remote(&svc, &["rmi", "nosuch:tag"]).output().unwrap();
    fails(&o, 2, "nosuch");
    assert!(at(&["load", "-i", "img.tar"]).contains("Loaded image"));
    let o = remote(&svc, &["load", "-i", "-"]).output().unwrap();
    fails(&o, 2, "give a file path");
    let gc = json(&at(&["system", "gc", "--format", "json"]));
    assert!(gc["pods_removed"].as_array().unwrap().is_empty(), "{gc}");
    at(&["rm", "-f", "s1", "s2"]);
    at(&["snapshot", "rm", "snap2"]);
    r.assert_clean();
}

#[test]
fn networks_stats_and_pull_go_through_the_service() {
    require_runsc!();
    require_registry!();
    let reg = Registry::start();
    let src = Root::new();
    let image = format!("{}/bb:v1", reg.addr());
    src.ok(&["push", "-q", "busybox", &image]);
    let r = Root::empty();
    let svc = Service::start(&r, 0);
    // pull: progress on stderr, the id on stdout, as on the host.
    let o = run(&svc, &["pull", &image]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Pull complete"), "{}", stderr(&o));
    let id = stdout(&o);
    assert_eq!(id.trim(), json(&r.ok(&["image", "inspect", &image]))["id"]);
    assert_eq!(ok(&svc, &["pull", "-q", &image]), id);
    let o = run(&svc, &["pull", "--tls-verify=false", &image]);
    fails(&o, 2, "--tls-verify=false");
    let o = run(&svc, &["pull", &format!("{}/nosuch:v1", reg.addr())]);
    assert_ne!(o.status.code(), Some(0));
    // network: create, ls, inspect, rm, the host's output.
    assert_eq!(
        ok(
            &svc,
            &["network", "create", "--subnet", "198.18.93.0/24", "rn"]
        )
        .trim(),
        "rn"
    );
    assert_eq!(
        json(&ok(&svc, &["network", "ls", "--format", "json"])),
        json(&r.ok(&["network", "ls", "--format", "json"]))
    );
    assert_eq!(
        json(&ok(&svc, &["network", "inspect", "rn"])),
        json(&r.ok(&["network", "inspect", "rn"]))
    );
    // stats: one sample set, the pod's -m limit.
    let pid = ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "st",
            "--network",
            "rn",
            "-m",
            "128m",
            &image,
            "sleep",
            "1000",
        ],
    );
    r.track(pid.trim());
    let rows = json(&ok(
        &svc,
        &["stats", "--no-stream", "--format", "json", "st"],
    ));
    assert_eq!(rows[0]["name"], "st", "{rows}");
    assert_eq!(rows[0]["memory_limit"], 128 << 20, "{rows}");
    assert!(rows[0]["memory_usage"].as_u64().unwrap() > 0, "{rows}");
    let table = ok(&svc, &["stats", "--no-stream"]);
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    assert!(table.contains("128MiB"), "{table}");
    fails(&run(&svc, &["network", "rm", "nosuch"]), 2, "nosuch");
    ok(&svc, &["rm", "-f", "st"]);
    assert_eq!(ok(&svc, &["network", "rm", "rn"]).trim(), "rn");
    r.assert_clean();
}

/// Runs a remote `gvpod ARGS` on a fresh pseudo-terminal (util-linux
/// `script`), with `input` typed into it.
fn on_a_terminal(svc: &Service, args: &str, input: &str) -> Output {
    use std::io::Write;
    let mut c = Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 91 rows 37; {} {args}", common::BIN),
            "/dev/null",
        ])
        .env("GVPOD_ROOT", "/nonexistent/gvpod-remote-client")
        .env("GVPOD_HOST", format!("unix://{}", svc.sock.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    // Keep the terminal open until the command is done with it.
    let out = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        drop(stdin);
    });
    let o = c.wait_with_output().unwrap();
    drop(out);
    o
}

#[test]
fn exec_and_terminals_go_through_the_service() {
    require_runsc!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let id = ok(
        &svc,
        &["run", "-d", "--name", "box", "busybox", "sleep", "1000"],
    );
    r.track(id.trim());
    // exec: streams apart, the command's exit code, 127 for a missing one.
    let o = run(
        &svc,
        &["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 5"],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("out\n", "err\n")
    );
    let o = run(&svc, &["exec", "box", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    // exec -i: our stdin reaches the command, whose output comes back.
    let mut c = remote(&svc, &["exec", "-i", "box", "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = c.stdin.take().unwrap();
        i.write_all(b"hello remote\n").unwrap();
    }
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "HELLO REMOTE\n");
    // exec -it and run -it on a terminal: a tty inside, our size, our input.
    let o = on_a_terminal(
        &svc,
        "exec -it box sh -c 'test -t 0 && test -t 1 && echo TTY-IN-OUT; stty size'",
        "",
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("TTY-IN-OUT"), "{out}");
    assert!(out.contains("37 91"), "{out}");
    let o = on_a_terminal(
        &svc,
        "run -it --rm busybox sh -c 'read x; sleep 0.3; stty size; echo got-$x; exit 4'",
        "typed\n",
    );
    assert_eq!(o.status.code(), Some(4), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("got-typed"), "{}", stdout(&o));
    // The client's size, sent after the start (docker's container resize).
    assert!(stdout(&o).contains("37 91"), "{}", stdout(&o));
    // -t without a terminal: one line, as on the host.
    fails(&run(&svc, &["exec", "-t", "box", "true"]), 2, "not a TTY");
    ok(&svc, &["rm", "-f", "box"]);
    r.assert_clean();
}
