//! Bombs and limits (issue 15, item 5): a fork bomb under `--pids-limit`
//! and a memory hog under `-m` end their own pod, with the exit code the
//! README documents, while a second pod on the same root keeps answering
//! `exec` and nothing is left on the host afterwards.

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
