//! Bombs and limits (issue 15, item 5): a fork bomb under `--pids-limit`
//! and a memory hog under `-m` end their own pod, with the exit code the
//! README documents, while a second pod on the same root keeps answering
//! `exec` and nothing is left on the host afterwards; a pod filling its
//! writable layer under `--storage-opt size=` gets ENOSPC at the bound,
//! which holds across a restart and a clone, and costs the host's disk no
//! more than the bound.

mod common;

use std::time::{Duration, Instant};

use common::{stderr, Root};

/// Runs a foreground pod that must end by itself within `limit`; returns
/// its exit code and how long it took.
fn run_until_it_ends(r: &Root, args: &[&str], limit: Duration) -> (Option<i32>, Duration) {
    let mut all = vec!["run", "--network", "none"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let mut child = r
        .cmd(&all)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn still_answers(r: &Root, pod: &str, after: &str) {
    let o = r.gvpod(&["exec", pod, "echo", "alive"]);
    assert_eq!(o.status.code(), Some(0), "after {after}: {}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "alive\n",
        "after {after}"
    );
}

#[test]
fn a_fork_bomb_and_a_memory_hog_end_only_their_own_pod() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&[
        "--name",
        "bystander",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ]);

    // A fork bomb: the sandbox goes past its host task limit and ends with
    // exit code 2 (both releases).
    let (code, took) = run_until_it_ends(
        &r,
        &[
            "--name",
            "forkbomb",
            "--pids-limit",
            "128",
            "busybox",
            "sh",
            "-c",
            "b() { b | b & }; b; sleep 60",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        code,
        Some(2),
        "fork bomb ended with {code:?} after {took:?}"
    );
    still_answers(&r, "bystander", "the fork bomb");

    // A memory hog doubling a string until it cannot: runsc 20221219's
    // sandbox is killed by the host's cgroup OOM killer (137); 20240729's
    // sentry refuses the allocation and the shell exits 1.
    let (code, took) = run_until_it_ends(
        &r,
        &[
            "--name",
            "memhog",
            "-m",
            "64m",
            "busybox",
            "sh",
            "-c",
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        ],
        Duration::from_secs(60),
    );
    assert!(
        matches!(code, Some(137 | 1)),
        "memory hog ended with {code:?} after {took:?}"
    );
    still_answers(&r, "bystander", "the memory hog");
    let pods = r.ps_all();
    for (name, want) in [
        ("forkbomb", "exited"),
        ("memhog", "exited"),
        ("bystander", "running"),
    ] {
        let p = pods.iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(p["status"], want, "{name}: {p}");
    }
    r.assert_clean();
}

/// Bytes the files under `dir` take on its own filesystem (not through the
/// mounts below it; sparse files count what they hold).
fn disk_usage(dir: &std::path::Path) -> u64 {
    let o = std::process::Command::new("du")
        .args(["-s", "-x", "--block-size=1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[test]
fn a_pod_filling_its_bounded_writable_layer_gets_enospc_and_nothing_else_is_hurt() {
    require_runsc!();
    let r = Root::new();
    // Bad sizes: one line, exit 2 (bad input), nothing made.
    for (bad, says) in [("size=1m", "32m"), ("inodes=9", "size=SIZE")] {
        let o = r.gvpod(&["run", "-d", "--storage-opt", bad, "busybox", "true"]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let e = stderr(&o);
        assert!(
            e.contains(bad) && e.contains(says) && e.lines().count() == 1,
            "{e}"
        );
    }
    assert!(r.ps_all().is_empty());

    r.run_detached(&[
        "--name",
        "bounded",
        "--network",
        "none",
        "--storage-opt",
        "size=48m",
        "busybox",
        "sleep",
        "600",
    ]);
    r.run_detached(&[
        "--name",
        "free",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ]);
    let before = disk_usage(r.path());
    let fill = r.gvpod(&[
        "exec",
        "bounded",
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=1M count=200 2>&1; echo rc=$?",
    ]);
    let out = String::from_utf8_lossy(&fill.stdout);
    assert!(
        out.contains("No space left on device") && out.contains("rc=1"),
        "{out}"
    );
    // The host paid at most the bound (plus ext4's few MiB of metadata).
    let grew = disk_usage(r.path()).saturating_sub(before);
    assert!(
        grew <= 52 << 20,
        "the data root grew {grew} bytes for a 48m layer"
    );
    // Another pod writes on; the full one keeps answering and writes again
    // once it frees space.
    let o = r.gvpod(&[
        "exec",
        "free",
        "sh",
        "-c",
        "dd if=/dev/zero of=/ok bs=1M count=60 2>/dev/null && echo wrote",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "wrote\n",
        "{}",
        stderr(&o)
    );
    still_answers(&r, "bounded", "filling its layer");
    let o = r.gvpod(&[
        "exec",
        "bounded",
        "sh",
        "-c",
        "rm /fill && echo again > /again && cat /again",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "again\n",
        "{}",
        stderr(&o)
    );

    // The bound and the files hold across a restart and in a clone.
    let _ = r.gvpod(&[
        "exec",
        "bounded",
        "sh",
        "-c",
        "dd if=/dev/zero of=/keep bs=1M count=8 2>/dev/null",
    ]);
    for verb in ["stop", "start"] {
        let o = r.gvpod(&[verb, "bounded"]);
        assert!(o.status.success(), "{verb}: {}", stderr(&o));
    }
    let o = r.gvpod(&["checkpoint", "bounded"]);
    assert!(o.status.success(), "checkpoint: {}", stderr(&o));
    let snap = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = r.gvpod(&["restore", "--name", "clone", &snap]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    for pod in ["bounded", "clone"] {
        if pod == "bounded" {
            let o = r.gvpod(&["start", pod]);
            assert!(o.status.success(), "start after checkpoint: {}", stderr(&o));
        }
        let o = r.gvpod(&[
            "exec",
            pod,
            "sh",
            "-c",
            "ls /keep && dd if=/dev/zero of=/more bs=1M count=200 2>&1; echo rc=$?",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("/keep") && out.contains("No space left on device"),
            "{pod}: {out}"
        );
    }
    r.assert_clean();
}
