//! Pod lifecycle against the real runsc: output, exit codes, detached pods,
//! logs, exec, stop, rm, options and limits visible inside the pod.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::{stderr, stdout, Root};

#[test]
fn foreground_run_streams_both_streams_and_returns_the_exit_code() {
    require_runsc!();
    let r = Root::new();
    let o = r.gvpod(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    // --rm: the pod is gone when the run returns; its bundle, renamed
    // aside before the answer, is deleted by the monitor right after it.
    assert!(r.ps_all().is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir(r.path().join("bundles"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bundles left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    r.assert_clean();
}

/// A detached `--rm` pod removes itself when it exits; `wait` and `stop`
/// started before that still report its end (docker and podman do too).
#[test]
fn wait_and_stop_outlive_a_detached_rm_pod() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&[
        "--rm",
        "--name",
        "gone",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 5",
    ]);
    assert_eq!(r.ok(&["wait", "gone"]).trim(), "5");
    assert!(r.ps_all().is_empty(), "the --rm pod was not removed");
    let o = r.gvpod(&["wait", "gone"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "gone before wait began: no such pod"
    );
    r.run_detached(&["--rm", "--name", "gone2", "busybox", "sleep", "60"]);
    r.ok(&["stop", "-t", "5", "gone2"]);
    assert!(r.ps_all().is_empty(), "the --rm pod was not removed");
    r.assert_clean();
}

#[test]
fn commands_that_cannot_run_exit_126_and_127_and_leave_nothing() {
    require_runsc!();
    let r = Root::new();
    let o = r.gvpod(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("no-such-command"), "{}", stderr(&o));
    let o = r.gvpod(&["run", "busybox", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(stderr(&o).contains("/etc/passwd"));
    assert!(r.ps_all().is_empty(), "a failed run must not leave a pod");
    assert_eq!(
        std::fs::read_dir(r.path().join("bundles")).unwrap().count(),
        0
    );
    r.assert_clean();
}

#[test]
fn bad_input_is_one_clear_line_with_exit_2_and_no_state() {
    require_runsc!();
    let r = Root::new();
    r.ok(&["create", "--name", "taken", "busybox", "true"]);
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--name=-bad", "busybox", "true"], "\"-bad\""),
        (
            &["run", "--pids-limit", "5", "busybox", "true"],
            "--pids-limit 5",
        ),
        (&["run", "--name", "a b", "busybox", "true"], "\"a b\""),
        (&["run", "--name", "taken", "busybox", "true"], "\"taken\""),
        (&["run", "--memory", "12x", "busybox", "true"], "\"12x\""),
        (&["run", "--cpus", "lots", "busybox", "true"], "\"lots\""),
        (
            &["run", "-v", "/no/such/gvpod/dir:/data", "busybox", "true"],
            "/no/such/gvpod/dir",
        ),
        (&["run", "-e", "=x", "busybox", "true"], "\"=x\""),
        (
            &["run", "-u", "nosuchuser", "busybox", "true"],
            "\"nosuchuser\"",
        ),
        // An id prefix is never pulled (a name would be: see tests/registry.rs).
        (
            &["run", "sha256:0000deadbeef", "true"],
            "sha256:0000deadbeef",
        ),
        (
            &["run", "--platform", "warp", "busybox", "true"],
            "\"warp\"",
        ),
        (&["stop", "ghost"], "\"ghost\""),
        (&["ps", "--format", "yaml"], "\"yaml\""),
        (&["run", "--bogus-flag", "busybox"], "--bogus-flag"),
    ];
    for (args, needle) in cases {
        let o = r.gvpod(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        if !args.contains(&"--bogus-flag") {
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{args:?}: one line expected, got {err}"
            );
        }
    }
    // An image without a command.
    r.ok(&[
        "import",
        common::busybox_tarball().to_str().unwrap(),
        "nocmd",
    ]);
    let o = r.gvpod(&["run", "nocmd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("has no command"), "{}", stderr(&o));
    let pods = r.ps_all();
    assert_eq!(pods.len(), 1, "only the first pod may exist: {pods:?}");
    assert_eq!(
        std::fs::read_dir(r.path().join("bundles")).unwrap().count(),
        1
    );
    r.assert_clean();
}

/// `run` starts the pod's monitor before it makes the pod (its start-up
/// overlaps the create); a run that fails on the way (a name in use, a bad
/// option, an image without a command) must not leave that monitor behind,
/// nor let it start anything.
#[test]
fn a_run_that_fails_leaves_no_early_monitor() {
    require_runsc!();
    let r = Root::new();
    r.ok(&["create", "--name", "taken", "busybox", "true"]);
    for args in [
        &["run", "--name", "taken", "busybox", "true"][..],
        &["run", "--rm", "--memory", "12x", "busybox", "true"][..],
        &["run", "-d", "-u", "nosuchuser", "busybox", "true"][..],
    ] {
        let o = r.gvpod(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !r.monitors().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(r.monitors(), Vec::<String>::new(), "monitors left behind");
    let pods = r.ps_all();
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0]["status"], "created", "{pods:?}");
    // And a good run after them still works through its early monitor.
    let o = r.gvpod(&["run", "--rm", "busybox", "echo", "early"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "early\n");
    r.assert_clean();
}

#[test]
fn detached_pod_logs_exec_stop_and_rm() {
    require_runsc!();
    let r = Root::new();
    let id = r.run_detached(&[
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; echo warn $i >&2; i=$((i+1)); sleep 0.1; done",
    ]);
    assert_eq!(id.len(), 64);
    let v = r.inspect("ticker");
    assert_eq!(v["status"], "running");
    assert!(v["pid"].as_i64().unwrap() > 0);
    // On the default network, with an address from the benchmarking range.
    assert!(
        v["ip"].as_str().is_some_and(|ip| ip.starts_with("198.18.")),
        "{v}"
    );
    assert_eq!(v["network"], "gvpod");
    for k in [
        "id",
        "name",
        "image",
        "status",
        "pid",
        "exit_code",
        "created",
        "started",
        "finished",
        "ip",
        "ports",
        "bundle",
    ] {
        assert!(v.get(k).is_some(), "inspect lacks {k}");
    }
    r.wait_logs("ticker", |l| l.lines().count() >= 2);
    let o = r.gvpod(&["logs", "ticker"]);
    assert!(stdout(&o).starts_with("tick 0\ntick 1\n"), "{}", stdout(&o));
    assert!(stderr(&o).starts_with("warn 0\n"), "{}", stderr(&o));
    let o = r.gvpod(&["logs", "--tail", "2", "ticker"]);
    assert_eq!(
        stdout(&o).lines().count() + stderr(&o).lines().count(),
        2,
        "{o:?}"
    );
    // The log file is JSON lines with t, stream, line.
    let raw = std::fs::read_to_string(v["log_path"].as_str().unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert!(
        first["t"].is_string() && first["stream"].is_string() && first["line"].is_string(),
        "{first}"
    );
    // Exec: output, exit code, env, user, workdir; short id prefix works too.
    let o = r.gvpod(&[
        "exec",
        "-e",
        "X=42",
        "-w",
        "/tmp",
        &id[..8],
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u); exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "42 /tmp 0\n");
    let o = r.gvpod(&["exec", "-u", "65534", "ticker", "id", "-u"]);
    assert_eq!(stdout(&o), "65534\n");
    let o = r.gvpod(&["exec", "ticker", "nope-cmd"]);
    assert_eq!(o.status.code(), Some(127));
    // 128 is also what runsc reports when the sandbox goes away under an
    // exec: a process's own 128 in a running pod is passed on as it is.
    let o = r.gvpod(&["exec", "ticker", "sh", "-c", "exit 128"]);
    assert_eq!(o.status.code(), Some(128), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    // rm without -f refuses a running pod.
    let o = r.gvpod(&["rm", "ticker"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("running"));
    r.ok(&["stop", "-t", "5", "ticker"]);
    // Wholly stopped when stop returns: its monitor has finished too.
    assert_eq!(r.monitors(), Vec::<String>::new());
    let v = r.inspect("ticker");
    assert_eq!(v["status"], "exited");
    assert_eq!(v["exit_code"], 143);
    assert!(v["monitor_pid"].is_null(), "{v}");
    assert!(v["finished"].is_string());
    let o = r.gvpod(&["exec", "ticker", "true"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "exec into a stopped pod is a usage error"
    );
    r.ok(&["rm", "ticker"]);
    assert!(r.ps_all().is_empty());
    assert!(!std::path::Path::new(v["bundle"].as_str().unwrap()).exists());
    r.assert_clean();
}

#[test]
fn stop_escalates_to_sigkill_and_kill_sends_signals() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&[
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; echo trapped; while true; do sleep 0.1; done",
    ]);
    r.wait_logs("stubborn", |l| l.contains("trapped"));
    let t = std::time::Instant::now();
    r.ok(&["stop", "-t", "1", "stubborn"]);
    assert!(
        t.elapsed().as_millis() >= 900,
        "stop must wait the grace time"
    );
    assert_eq!(r.inspect("stubborn")["exit_code"], 137);
    r.run_detached(&["--name", "k", "busybox", "sleep", "100"]);
    r.ok(&["kill", "-s", "TERM", "k"]);
    let code = r.ok(&["wait", "k"]);
    assert_eq!(code.trim(), "143");
    let o = r.gvpod(&["kill", "k"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "killing a stopped pod is a usage error"
    );
    r.assert_clean();
}

#[test]
fn create_start_restart_and_wait() {
    require_runsc!();
    let r = Root::new();
    let id = r.ok(&[
        "create",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 4",
    ]);
    r.track(id.trim());
    assert_eq!(r.inspect("c1")["status"], "created");
    r.ok(&["start", "c1"]);
    assert_eq!(r.ok(&["wait", "c1"]).trim(), "4");
    assert_eq!(r.monitors(), Vec::<String>::new());
    // A second start reuses the same bundle and appends to the log.
    r.ok(&["start", "c1"]);
    assert_eq!(r.ok(&["wait", "c1"]).trim(), "4");
    assert_eq!(r.ok(&["logs", "c1"]), "run\nrun\n");
    // start -a attaches and returns the exit code.
    let o = r.gvpod(&["start", "-a", "c1"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(stdout(&o), "run\n");
    r.assert_clean();
}

/// stop, wait, start and rm act on a wholly stopped pod: the monitor goes
/// on after recording the exit (runsc leftovers, the sandbox's resource
/// record), and a restart must not race it. The window is widened to 1.5 s.
#[test]
fn stop_wait_and_restart_wait_for_the_monitor_to_finish() {
    require_runsc!();
    let r = Root::new();
    let paused = |args: &[&str]| {
        let o = r
            .cmd(args)
            .env("GVPOD_PAUSE_AT", "monitor:recorded")
            .env("GVPOD_PAUSE_MS", "1500")
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let id = paused(&[
        "run", "-d", "--name", "slow", "busybox", "sh", "-c", "exit 3",
    ]);
    r.track(id.trim());
    assert_eq!(r.ok(&["wait", "slow"]).trim(), "3");
    assert_eq!(r.monitors(), Vec::<String>::new(), "wait returned early");
    paused(&["start", "slow"]);
    // Exited, its monitor still finishing: a restart waits for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while r.inspect("slow")["status"] != "exited" {
        assert!(std::time::Instant::now() < deadline, "never exited");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(r.monitors().len(), 1, "the monitor should still be paused");
    let t = std::time::Instant::now();
    r.ok(&["start", "slow"]);
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(300),
        "start did not wait for the last monitor: {:?}",
        t.elapsed()
    );
    assert_eq!(r.ok(&["wait", "slow"]).trim(), "3");
    assert_eq!(r.monitors(), Vec::<String>::new(), "wait returned early");
    let id = paused(&["run", "-d", "--name", "s2", "busybox", "sleep", "60"]);
    r.track(id.trim());
    r.ok(&["stop", "-t", "0", "s2"]);
    assert_eq!(r.monitors(), Vec::<String>::new(), "stop returned early");
    assert!(r.inspect("s2")["monitor_pid"].is_null());
    r.assert_clean();
}

/// A foreground run's output ends when its client exits: the monitor,
/// which writes the pod's output straight to the client's stdout and
/// stderr, closes its copies of them before its own tail (deleting a
/// `--rm` pod's bundle, its chores), widened here to 10 s. Before, a
/// reader such as `$(gvpod run --rm …)` waited for that tail too.
#[test]
fn run_output_ends_when_the_client_exits() {
    require_runsc!();
    let r = Root::new();
    let t = std::time::Instant::now();
    let o = r
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ])
        .env("GVPOD_PAUSE_AT", "monitor:answered")
        .env("GVPOD_PAUSE_MS", "10000")
        .output() // reads stdout and stderr to their end
        .unwrap();
    let took = t.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert!(
        took < Duration::from_secs(8),
        "the output stayed open {took:?}, until the monitor's tail ended"
    );
    // Gone when its client returned; its monitor is still in its tail.
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    assert_eq!(r.monitors().len(), 1, "the monitor should still be paused");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !r.monitors().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the monitor never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    r.assert_clean();
}

#[test]
fn options_reach_the_pod() {
    require_runsc!();
    let r = Root::new();
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        data.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    std::fs::write(data.path().join("in.txt"), "from host").unwrap();
    let envfile = data.path().join("env");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\n").unwrap();
    let vol = format!("{}:/data", data.path().display());
    let out = r.ok(&[
        "run", "--rm", "-e", "A=1", "--env-file", envfile.to_str().unwrap(), "-w", "/tmp", "-u", "65534:65534", "--hostname", "podhost", "-v", &vol,
        "busybox", "sh", "-c", "echo $A $FROM_FILE $(pwd) $(id -u):$(id -g) $(hostname) $(cat /data/in.txt); echo back > /data/out.txt",
    ]);
    assert_eq!(out, "1 yes /tmp 65534:65534 podhost from host\n");
    assert_eq!(
        std::fs::read_to_string(data.path().join("out.txt")).unwrap(),
        "back\n"
    );
    // Read-only volume and read-only rootfs.
    let rovol = format!("{}:/data:ro", data.path().display());
    let o = r.gvpod(&[
        "run",
        "--rm",
        "-v",
        &rovol,
        "busybox",
        "sh",
        "-c",
        "echo x > /data/nope",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!data.path().join("nope").exists());
    let o = r.gvpod(&["run", "--rm", "--read-only", "busybox", "touch", "/newfile"]);
    assert_ne!(o.status.code(), Some(0));
    // Writes land in the pod's own layer, not in the shared image layer.
    r.ok(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "echo mine > /etc/motd",
    ]);
    let o = r.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /etc/motd 2>/dev/null || echo absent",
    ]);
    assert_eq!(o, "absent\n");
    // stdin with -i.
    let mut child = r
        .cmd(&["run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello stdin\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "HELLO STDIN\n");
    r.assert_clean();
}

#[test]
fn limits_are_enforced() {
    require_runsc!();
    let r = Root::new();
    // The memory limit is what the pod sees as its RAM ...
    let out = r.ok(&[
        "run",
        "--rm",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "grep MemTotal /proc/meminfo",
    ]);
    assert!(out.contains("65536 kB"), "{out}");
    // ... and a hog beyond it is killed.
    let o = r.gvpod(&[
        "run",
        "--rm",
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", stdout(&o));
    assert!(!stdout(&o).contains("survived"));
    // CPU and pids limits land in the pod's host cgroup.
    let id = r.run_detached(&[
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "-m",
        "100m",
        "busybox",
        "sleep",
        "100",
    ]);
    let cg = |ctrl: &str, file: &str| -> Option<String> {
        for base in [
            format!("/sys/fs/cgroup/{ctrl}/gvpod/{id}/{file}"),
            format!("/sys/fs/cgroup/gvpod/{id}/{file}"),
        ] {
            if let Ok(s) = std::fs::read_to_string(base) {
                return Some(s.trim().to_string());
            }
        }
        None
    };
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(cg("", "cpu.max").as_deref(), Some("50000 100000"));
        assert_eq!(cg("", "pids.max").as_deref(), Some("100"));
        assert_eq!(cg("", "memory.max").as_deref(), Some("104857600"));
    } else {
        assert_eq!(cg("cpu", "cpu.cfs_quota_us").as_deref(), Some("50000"));
        assert_eq!(cg("pids", "pids.max").as_deref(), Some("100"));
        assert_eq!(
            cg("memory", "memory.limit_in_bytes").as_deref(),
            Some("104857600")
        );
    }
    r.assert_clean();
}

#[test]
fn system_info_reports_runsc() {
    require_runsc!();
    let r = Root::empty();
    let v: serde_json::Value =
        serde_json::from_str(&r.ok(&["system", "info", "--format", "json"])).unwrap();
    assert!(v["runsc_version"]
        .as_str()
        .unwrap()
        .contains("runsc version"));
    assert!(v["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "ptrace"));
    assert!(matches!(v["cgroup_version"].as_u64(), Some(1 | 2)));
    assert_eq!(
        v["data_root"].as_str().unwrap(),
        std::fs::canonicalize(r.path()).unwrap().to_str().unwrap()
    );
    let table = r.ok(&["system", "info"]);
    assert!(table.contains("runsc version:"), "{table}");
}

#[test]
fn missing_runsc_and_non_root_get_one_line_each() {
    require_runsc!();
    let r = Root::new();
    let o = r
        .cmd(&["run", "--rm", "busybox", "true"])
        .env("GVPOD_RUNSC", "/nonexistent/runsc")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("/nonexistent/runsc") && e.contains("apt-get install runsc"),
        "{e}"
    );
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    // Drop to an unprivileged user: setpriv is in util-linux, on every Debian.
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            common::BIN,
            "ps",
        ])
        .env("GVPOD_ROOT", r.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("must run as root"), "{}", stderr(&o));
    r.assert_clean();
}

#[test]
fn kvm_is_used_only_after_a_probe_answers() {
    require_runsc!();
    let r = Root::new();
    let o = r.gvpod(&["run", "--rm", "--platform", "kvm", "busybox", "true"]);
    match o.status.code() {
        Some(0) => {}
        Some(2) => assert!(
            stderr(&o).contains("does not work on this host"),
            "{}",
            stderr(&o)
        ),
        other => panic!("unexpected {other:?}: {}", stderr(&o)),
    }
    if o.status.code() == Some(2) {
        // The refusal is remembered for this boot: the next one is at once.
        let t = std::time::Instant::now();
        let again = r.gvpod(&["run", "--rm", "--platform", "kvm", "busybox", "true"]);
        assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
        assert!(
            stderr(&again).contains("probed earlier this boot"),
            "{}",
            stderr(&again)
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }
    // A hung probe is killed with everything it started.
    let leftovers = std::process::Command::new("pgrep")
        .args(["-f", "platform=kvm"])
        .output()
        .unwrap();
    assert!(
        stdout(&leftovers).trim().is_empty(),
        "probe processes left: {}",
        stdout(&leftovers)
    );
    r.assert_clean();
}

#[test]
fn logs_follow_ends_with_the_pod_and_images_in_use_are_kept() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&[
        "--name",
        "f",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.3; done",
    ]);
    let t = std::time::Instant::now();
    let out = r.ok(&["logs", "-f", "f"]);
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    assert!(t.elapsed().as_secs() < 10);
    assert_eq!(r.ok(&["logs", "--since", "1h", "f"]), out);
    assert_eq!(r.ok(&["logs", "--since", "2099-01-01T00:00:00Z", "f"]), "");
    // Untagging one of an image's names works while a pod uses it (as in
    // docker); deleting the image is refused; -f removes the pod too.
    r.ok(&["tag", "busybox", "alias:1"]);
    assert!(r.ok(&["rmi", "alias:1"]).contains("Untagged"));
    let o = r.gvpod(&["rmi", "busybox"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("f"), "{}", stderr(&o));
    let imgs: Vec<serde_json::Value> =
        serde_json::from_str(&r.ok(&["images", "--format", "json"])).unwrap();
    assert_eq!(imgs.len(), 1);
    r.ok(&["rmi", "-f", "busybox"]);
    assert!(r.ps_all().is_empty());
    let imgs: Vec<serde_json::Value> =
        serde_json::from_str(&r.ok(&["images", "--format", "json"])).unwrap();
    assert!(imgs.is_empty());
    r.assert_clean();
}

/// Runs `gvpod ARGS` on a fresh pseudo-terminal (util-linux `script`).
fn on_a_terminal(r: &Root, args: &str) -> std::process::Output {
    std::process::Command::new("script")
        .args(["-qec", &format!("{} {args}", common::BIN), "/dev/null"])
        .env("GVPOD_ROOT", r.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn tty_for_run_and_exec() {
    require_runsc!();
    let r = Root::new();
    let o = on_a_terminal(
        &r,
        "run --rm -t busybox sh -c 'test -t 0 && test -t 1 && echo RUN-TTY; exit 3'",
    );
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(stdout(&o).contains("RUN-TTY"), "{o:?}");
    r.run_detached(&["--name", "t", "busybox", "sleep", "60"]);
    let o = on_a_terminal(&r, "exec -t t sh -c 'test -t 1 && echo EXEC-TTY'");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("EXEC-TTY"), "{o:?}");
    // Without a terminal, -t is refused with one line.
    let o = r.gvpod(&["exec", "-it", "t", "sh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a TTY"), "{}", stderr(&o));
    r.assert_clean();
}
