//! Snapshots against the real runsc: checkpoint / restore of a pod that
//! counts in memory, clones, `--leave-running`, export → rm → import →
//! restore, commit → run, and every failure case of issue 5 (one clear line,
//! exit 2 for bad input, no partial state, the source pod as it was).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pods::{
    counts, free_port, http_ok, last_count, start_counter, status, wait_count, web,
};
use common::{stderr, stdout, Root};

fn snapshot_names(r: &Root) -> Vec<String> {
    r.ok(&["snapshot", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Nothing in `<root>/snapshots` but registered snapshots.
fn assert_no_partial_snapshots(r: &Root) {
    let ids: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(
        &r.ok(&["snapshot", "ls", "--format", "json"]),
    )
    .unwrap()
    .iter()
    .map(|s| s["id"].as_str().unwrap().to_string())
    .collect();
    let dir = r.path().join("snapshots");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(
            ids.contains(&n),
            "partial snapshot left: {}",
            e.path().display()
        );
    }
}

/// Runs a command that must fail with `code` and print one line containing `needle`.
#[test]
fn counter_continues_after_checkpoint_and_restore() {
    require_runsc!();
    let r = Root::new();
    start_counter(&r, "count");
    let o = r.gvpod(&["checkpoint", "--name", "snap1", "count"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "snap1");
    let at_checkpoint = last_count(&r, "count");
    // Recorded as checkpointed, not as a plain exit.
    let v = r.inspect("count");
    assert_eq!(v["status"], "exited");
    assert_eq!(v["checkpointed"], "snap1");
    assert!(r.ok(&["ps", "-a"]).contains("Checkpointed (snap1)"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        last_count(&r, "count"),
        at_checkpoint,
        "still counting after checkpoint"
    );

    // The pod still exists and is stopped: restored in place, same id.
    let id = r.restore(&["snap1"]);
    assert_eq!(id, r.inspect("count")["id"].as_str().unwrap());
    assert_eq!(status(&r, "count"), "running");
    wait_count(&r, "count", at_checkpoint + 3);
    let c = counts(&r, "count");
    let i = c.iter().position(|n| *n == at_checkpoint).unwrap();
    // It went on from where it was: no restart from 1.
    assert_eq!(c[i + 1], at_checkpoint + 1, "{c:?}");
    assert_eq!(c.iter().filter(|n| **n == 1).count(), 1, "{c:?}");
    // The file written before the checkpoint is there.
    assert_eq!(r.ok(&["exec", "count", "cat", "/written"]), "before\n");

    // Gone pod: the original comes back with its name and id.
    r.ok(&["rm", "-f", "count"]);
    let id2 = r.restore(&["snap1"]);
    assert_eq!(id2, id);
    assert_eq!(status(&r, "count"), "running");
    assert_eq!(r.ok(&["exec", "count", "cat", "/written"]), "before\n");
    assert!(wait_count(&r, "count", at_checkpoint + 2) > at_checkpoint);
    r.assert_clean();
    assert_no_partial_snapshots(&r);
}

#[test]
fn leave_running_and_two_clones_side_by_side() {
    require_runsc!();
    let r = Root::new();
    start_counter(&r, "src");
    r.ok(&["checkpoint", "--leave-running", "--name", "warm", "src"]);
    // The source keeps answering.
    assert_eq!(status(&r, "src"), "running");
    let n = last_count(&r, "src");
    wait_count(&r, "src", n + 2);
    assert_eq!(r.ok(&["exec", "src", "cat", "/written"]), "before\n");

    let a = r.restore(&["--name", "clone-a", "warm"]);
    let b = r.restore(&["--name", "clone-b", "warm"]);
    assert_ne!(a, b);
    // Without --name, a running source gets another clone.
    r.restore(&["warm"]);
    let names: Vec<String> = r
        .ps_all()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("src-")), "{names:?}");
    for pod in ["clone-a", "clone-b", "src"] {
        assert_eq!(status(&r, pod), "running", "{pod}");
        // Each clone is its own pod: own /etc/hosts, the file, the count.
        let hosts = r.ok(&["exec", pod, "cat", "/etc/hosts"]);
        assert!(hosts.contains(pod), "{pod}: {hosts}");
        assert_eq!(r.ok(&["exec", pod, "cat", "/written"]), "before\n");
        // The deletion came along too (a whiteout in the snapshot's diff).
        assert_eq!(
            r.gvpod(&["exec", pod, "test", "-e", "/bin/vi"])
                .status
                .code(),
            Some(1),
            "{pod}"
        );
    }
    // A clone's first number continues the source's count at the snapshot.
    let first = counts(&r, "clone-a")[0];
    assert!(first > 3, "clone restarted counting: {first}");
    wait_count(&r, "clone-b", first + 2);
    // Writes in one clone are not seen by the other.
    r.ok(&["exec", "clone-a", "sh", "-c", "echo a > /written"]);
    assert_eq!(r.ok(&["exec", "clone-b", "cat", "/written"]), "before\n");
    r.assert_clean();
    assert_no_partial_snapshots(&r);
}

#[test]
fn clones_of_a_pod_without_a_network_list_their_own_name() {
    require_runsc!();
    let r = Root::new();
    // Its /etc/hosts is in its rootfs (bundle::etc), read before the
    // checkpoint: the clone's, rewritten with its own name, must restore.
    r.run_detached(&[
        "--name",
        "solo",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts > /seen; sleep 600",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let o = r.gvpod(&["exec", "solo", "cat", "/seen"]);
        if o.status.success() && !stdout(&o).is_empty() {
            break stdout(&o);
        }
        assert!(Instant::now() < deadline, "no /seen: {}", stderr(&o));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen.contains("solo"), "{seen}");
    r.ok(&["checkpoint", "--leave-running", "--name", "s", "solo"]);
    r.restore(&["--name", "solo-copy", "s"]);
    assert_eq!(status(&r, "solo-copy"), "running");
    let hosts = r.ok(&["exec", "solo-copy", "cat", "/etc/hosts"]);
    assert!(hosts.contains("solo-copy"), "{hosts}");
    // The hostname is the snapshot's (it lives in the restored kernel).
    assert_eq!(
        r.ok(&["exec", "solo-copy", "cat", "/etc/hostname"]),
        r.ok(&["exec", "solo", "cat", "/etc/hostname"])
    );
    assert_eq!(r.ok(&["exec", "solo-copy", "cat", "/seen"]), seen);
    r.ok(&["rm", "-f", "solo", "solo-copy"]);
    r.ok(&["snapshot", "rm", "s"]);
    r.assert_clean();
    assert_no_partial_snapshots(&r);
}

#[test]
fn export_rm_import_restore() {
    require_runsc!();
    let r = Root::new();
    start_counter(&r, "trip");
    r.ok(&["checkpoint", "--name", "go", "trip"]);
    let n = last_count(&r, "trip");
    // Straight after the checkpoint (runsc may still be tearing the sandbox
    // down): the pod is stopped, so a plain rm works.
    r.ok(&["rm", "trip"]);
    let archive = r.path().join("go.snap");
    r.ok(&["snapshot", "export", "go", "-o", archive.to_str().unwrap()]);
    r.ok(&["snapshot", "rm", "go"]);
    assert!(snapshot_names(&r).is_empty());
    assert_eq!(
        r.ok(&["snapshot", "import", archive.to_str().unwrap()])
            .trim(),
        "go"
    );
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["snapshot", "inspect", "go"])).unwrap();
    assert_eq!(v["pod"]["name"], "trip");
    // The platform it ran on: the runsc's default (ptrace on 20221219,
    // systrap from 20230621), never assumed.
    assert_eq!(
        v["runsc"]["platform"],
        common::runsc_info(&r)["default_platform"]
    );
    r.ok(&["restore", "go"]);
    assert_eq!(status(&r, "trip"), "running");
    wait_count(&r, "trip", n + 2);
    // A new log (the pod was removed), starting where the count was.
    let c = counts(&r, "trip");
    assert!(c[0] > 1 && c[0] <= n + 1, "restarted: {c:?} (was at {n})");
    assert_eq!(r.ok(&["exec", "trip", "cat", "/written"]), "before\n");
    assert_eq!(
        r.gvpod(&["exec", "trip", "test", "-e", "/bin/vi"])
            .status
            .code(),
        Some(1)
    );
    // Imported twice under another name, restored as a clone next to it.
    r.ok(&[
        "snapshot",
        "import",
        "--name",
        "go2",
        archive.to_str().unwrap(),
    ]);
    r.restore(&["--name", "trip2", "go2"]);
    assert_eq!(status(&r, "trip2"), "running");
    r.ok(&["snapshot", "rm", "go", "go2"]);
    r.assert_clean();
    assert_no_partial_snapshots(&r);
}

#[test]
fn commit_then_run_sees_the_change() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&["--name", "dev", "busybox", "sleep", "60"]);
    r.ok(&[
        "exec",
        "dev",
        "sh",
        "-c",
        "echo hello > /hello; mkdir -p /opt/app; echo 1 > /opt/app/v; rm /bin/vi; ln -s /hello /link",
    ]);
    // gvpod writes the pod's /etc/hostname into its rootfs (no bind mount,
    // bundle::etc); /etc/hosts of a pod on a network stays bound (its
    // peers are listed as they come and go); without a network both are
    // in the rootfs.
    let id = r.inspect("dev")["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.ok(&["exec", "dev", "cat", "/etc/hostname"]),
        format!("{}\n", &id[..12])
    );
    let mounts = r.ok(&["exec", "dev", "cat", "/proc/mounts"]);
    assert!(!mounts.contains(" /etc/hostname "), "{mounts}");
    assert!(mounts.contains(" /etc/hosts "), "{mounts}");
    let o = r.gvpod(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "solo",
        "--add-host",
        "db:198.18.0.9",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hostname; grep -c solo /etc/hosts; grep db /etc/hosts; grep -c ' /etc/host' /proc/mounts",
    ]);
    assert_eq!(stdout(&o), "solo\n1\n198.18.0.9\tdb\n0\n", "{}", stderr(&o));
    // Committed while running (paused for a consistent layer).
    let img = r.ok(&["commit", "dev", "dev-image:v1"]).trim().to_string();
    assert!(img.starts_with("sha256:"), "{img}");
    assert_eq!(status(&r, "dev"), "running");
    let o = r.gvpod(&[
        "run",
        "--rm",
        "dev-image:v1",
        "sh",
        "-c",
        "cat /hello /opt/app/v /link; test ! -e /bin/vi && echo vi-gone",
    ]);
    assert_eq!(stdout(&o), "hello\n1\nhello\nvi-gone\n", "{}", stderr(&o));
    // The new image is the base plus one layer.
    let base = r.ok(&["images", "--format", "json"]);
    assert!(base.contains("dev-image"), "{base}");
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "dev-image:v1"])).unwrap();
    let layers = inspect
        .get("layers")
        .or_else(|| inspect[0].get("layers"))
        .and_then(|l| l.as_array())
        .map(Vec::len);
    assert_eq!(layers, Some(2), "{inspect}");
    // Like any image: saved, loaded into another data root, run there.
    let archive = r.path().join("dev.tar");
    r.ok(&["save", "-o", archive.to_str().unwrap(), "dev-image:v1"]);
    // The committed layer has the pod's files but not the ones gvpod
    // wrote for its runtime (as docker commit leaves out its bound ones).
    let files = layer_files(&archive);
    assert!(files.iter().any(|f| f.ends_with("opt/app/v")), "{files:?}");
    for f in ["etc/hostname", "etc/hosts", "etc/resolv.conf"] {
        assert!(
            !files.iter().any(|g| g.trim_start_matches("./") == f),
            "{f} in {files:?}"
        );
    }
    let other = Root::empty();
    other.ok(&["load", "-i", archive.to_str().unwrap()]);
    let o = other.gvpod(&["run", "--rm", "dev-image:v1", "cat", "/hello"]);
    assert_eq!(stdout(&o), "hello\n", "{}", stderr(&o));
    // Committing an exited pod works too, on top of the committed image.
    r.ok(&["rm", "-f", "dev"]);
    let id = r
        .ok(&[
            "run",
            "--name",
            "dev2",
            "dev-image:v1",
            "sh",
            "-c",
            "rm /hello; echo 2 > /opt/app/v",
        ])
        .trim()
        .to_string();
    let _ = id;
    r.ok(&["commit", "dev2", "dev-image:v2"]);
    let o = r.gvpod(&[
        "run",
        "--rm",
        "dev-image:v2",
        "sh",
        "-c",
        "cat /opt/app/v; test ! -e /hello && echo hello-gone",
    ]);
    assert_eq!(stdout(&o), "2\nhello-gone\n", "{}", stderr(&o));
    r.fails(&["commit", "dev2", "Bad:Ref:"], 2, "Bad:Ref:");
    r.assert_clean();
    // (The leak check looks at every pod this thread tracked, so the
    // other root is checked once the first one is clean.)
    other.assert_clean();
}

#[test]
fn bad_input_is_one_clear_line() {
    require_runsc!();
    let r = Root::new();
    // A pod that is not running.
    r.ok(&["create", "--name", "idle", "busybox", "true"]);
    r.fails(&["checkpoint", "idle"], 2, "idle is created");
    r.fails(&["checkpoint", "nope"], 2, "\"nope\"");
    start_counter(&r, "live");
    r.fails(
        &["checkpoint", "--name", "bad name", "live"],
        2,
        "\"bad name\"",
    );
    r.ok(&["checkpoint", "--leave-running", "--name", "s", "live"]);
    // Name clashes.
    r.fails(
        &["checkpoint", "--name", "s", "live"],
        2,
        "\"s\" already exists",
    );
    r.fails(&["restore", "--name", "idle", "s"], 2, "\"idle\"");
    r.fails(&["restore", "nosuch"], 2, "\"nosuch\"");
    // A terminal cannot be checkpointed.
    r.run_detached(&["-t", "--name", "tty", "busybox", "sleep", "60"]);
    r.fails(&["checkpoint", "tty"], 2, "terminal");
    // Bad ports, unknown networks, another kind of network, a pod that
    // still exists asked for other ports: refused before anything is made.
    r.fails(
        &["restore", "-p", "99999:80", "--name", "x", "s"],
        2,
        "99999",
    );
    r.fails(
        &["restore", "--network", "other", "--name", "x", "s"],
        2,
        "\"other\"",
    );
    r.fails(
        &["restore", "--network", "none", "--name", "x", "s"],
        2,
        "\"none\"",
    );
    assert!(r.ps_all().iter().all(|p| p["name"] != "x"));

    // Archives: truncated, corrupt, not an archive; nothing registered.
    let good = r.path().join("s.snap");
    r.ok(&["snapshot", "export", "s", "-o", good.to_str().unwrap()]);
    let bytes = std::fs::read(&good).unwrap();
    let trunc = r.path().join("trunc.snap");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    r.fails(
        &["snapshot", "import", "--name", "t", trunc.to_str().unwrap()],
        2,
        "truncated",
    );
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 16] {
        *b ^= 0xff;
    }
    let corrupt = r.path().join("corrupt.snap");
    std::fs::write(&corrupt, &bad).unwrap();
    r.fails(
        &[
            "snapshot",
            "import",
            "--name",
            "c",
            corrupt.to_str().unwrap(),
        ],
        2,
        "corrupt.snap",
    );
    let junk = r.path().join("junk.snap");
    std::fs::write(&junk, b"not an archive").unwrap();
    r.fails(
        &["snapshot", "import", junk.to_str().unwrap()],
        2,
        "not a gvpod snapshot archive",
    );
    r.fails(
        &["snapshot", "import", good.to_str().unwrap()],
        2,
        "\"s\" already exists",
    );
    assert_eq!(snapshot_names(&r), ["s"]);
    assert_no_partial_snapshots(&r);

    // Another runsc release, an unusable platform: refused before anything is made.
    let db = rusqlite::Connection::open(r.path().join("gvpod.db")).unwrap();
    for (path, value, needle) in [
        (
            "$.runsc.version",
            "runsc version 0.0~20200101.0",
            "20200101",
        ),
        ("$.runsc.platform", "nosuch", "platform nosuch"),
    ] {
        r.ok(&[
            "snapshot",
            "import",
            "--name",
            "other",
            good.to_str().unwrap(),
        ]);
        db.execute(
            "UPDATE snapshots SET meta_json = json_set(meta_json, ?1, ?2) WHERE name='other'",
            [path, value],
        )
        .unwrap();
        r.fails(&["restore", "--name", "x", "other"], 2, needle);
        r.ok(&["snapshot", "rm", "other"]);
    }
    // The image is gone.
    r.ok(&["rm", "-f", "live", "idle", "tty"]);
    r.ok(&["rmi", "busybox"]);
    r.fails(
        &["restore", "s"],
        2,
        "needs image docker.io/library/busybox:latest",
    );
    assert!(r.ps_all().is_empty());
    r.assert_clean();
    assert_no_partial_snapshots(&r);
}

#[test]
fn failed_checkpoints_leave_the_pod_as_it_was() {
    require_runsc!();
    let r = Root::new();
    start_counter(&r, "keep");
    let check = |what: &str| {
        assert_eq!(status(&r, "keep"), "running", "{what}");
        let n = last_count(&r, "keep");
        wait_count(&r, "keep", n + 2);
        let c = counts(&r, "keep");
        assert_eq!(
            c.iter().filter(|x| **x == 1).count(),
            1,
            "{what}: restarted {c:?}"
        );
        assert_eq!(
            r.ok(&["exec", "keep", "cat", "/written"]),
            "before\n",
            "{what}"
        );
        assert!(
            snapshot_names(&r).is_empty(),
            "{what}: a snapshot was registered"
        );
        r.ok(&["system", "gc"]);
        assert_no_partial_snapshots(&r);
    };
    // runsc fails (it refuses to write its image), and a disk fills up after
    // runsc saved the pod: one line each, the pod goes on.
    for (step, needle) in [
        ("checkpoint:runsc", "checkpoint of pod keep failed"),
        ("checkpoint:disk-full", "No space left on device"),
    ] {
        let o = r
            .cmd(&["checkpoint", "--name", "f", "keep"])
            .env("GVPOD_FAIL_AT", step)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(125), "{step}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{step}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
        check(step);
    }
    // gvpod killed at every step before the snapshot is registered.
    for step in ["checkpoint:begun", "checkpoint:saved", "checkpoint:written"] {
        let o = r
            .cmd(&["checkpoint", "--name", "k", "keep"])
            .env("GVPOD_CRASH_AT", step)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{step}");
        // The monitor brings the pod back from the memory image.
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(&r, "keep") != "running" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        check(step);
    }
    // A disk without room: refused before runsc runs.
    let snaps = r.path().join("snapshots");
    nix::mount::mount(
        Some("tmpfs"),
        &snaps,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k"),
    )
    .unwrap();
    let o = r.gvpod(&["checkpoint", "--name", "full", "keep"]);
    let _ = nix::mount::umount2(&snaps, nix::mount::MntFlags::MNT_DETACH);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not enough space"), "{}", stderr(&o));
    check("disk full");
    r.assert_clean();
}

#[test]
fn a_failed_restore_releases_what_it_made() {
    require_runsc!();
    let r = Root::new();
    start_counter(&r, "src");
    r.ok(&["checkpoint", "--leave-running", "--name", "s", "src"]);
    // gvpod killed once the clone is prepared: `rm -f` + gc undo all of it.
    let o = r
        .cmd(&["restore", "--name", "crashed", "s"])
        .env("GVPOD_CRASH_AT", "restore:prepared")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let p = r.inspect("crashed");
    r.track(p["id"].as_str().unwrap());
    assert_eq!(p["status"], "created");
    r.ok(&["rm", "-f", "crashed"]);
    r.ok(&["system", "gc"]);
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["snapshot", "inspect", "s"])).unwrap();
    let img = Path::new(v["path"].as_str().unwrap()).join("checkpoint.img");
    let len = std::fs::metadata(&img).unwrap().len();
    // A damaged memory image: runsc's restore fails.
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let before: Vec<String> = std::fs::read_dir(r.path().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let o = r.gvpod(&["restore", "--name", "broken", "s"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("restore of snapshot s failed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    assert!(r.ps_all().iter().all(|p| p["name"] != "broken"));
    let after: Vec<String> = std::fs::read_dir(r.path().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(before, after, "the failed clone left its bundle");
    // The source is untouched.
    assert_eq!(status(&r, "src"), "running");
    r.ok(&["rm", "-f", "src"]);
    // The kernel destroys a veth in its background namespace cleanup, after
    // `rm` returns: give it time, but check before gc could hide anything.
    let l = r.leaks_settled();
    assert!(l.is_empty(), "leaked: {l:#?}");
    r.assert_clean();
}

/// `restore --name` starts the clone's monitor before it makes the clone
/// (as `run` does): a clone that is refused on the way must not leave
/// that monitor behind, and one that is made runs under it (its log has
/// the early monitor's go, which a late monitor never logs).
#[test]
fn a_clone_that_fails_leaves_no_early_monitor() {
    require_runsc!();
    let r = Root::new();
    start_counter(&r, "src");
    r.ok(&["checkpoint", "--leave-running", "--name", "s", "src"]);
    r.ok(&["create", "--name", "taken", "busybox", "true"]);
    for args in [
        &["restore", "--name", "taken", "s"][..],
        &["restore", "--name", "bad name", "s"][..],
        &["restore", "-p", "99999:80", "--name", "x", "s"][..],
        &["restore", "--network", "none", "--name", "x", "s"][..],
    ] {
        let o = r.gvpod(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    // Only the source's monitor is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while r.monitors().len() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(r.monitors().len(), 1, "monitors left behind");
    let names: Vec<_> = r.ps_all().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // A good clone: counting on from the snapshot, under its early monitor.
    let o = r
        .cmd(&["restore", "--name", "clone", "s"])
        .env("GVPOD_LOG", "debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    r.track(&id);
    assert_eq!(status(&r, "clone"), "running");
    let log = std::fs::read_to_string(r.path().join("bundles").join(&id).join("monitor.log"))
        .unwrap_or_default();
    assert!(log.contains("step monitor:go"), "no early monitor: {log}");
    let n = last_count(&r, "clone");
    wait_count(&r, "clone", n + 2);
    r.ok(&["rm", "-f", "src", "clone", "taken"]);
    r.assert_clean();
}

/// Checkpoints `pod`, retrying while runsc 20221219 cannot save it because
/// of connections in TIME_WAIT after recent requests (refused, pod intact).
fn checkpoint_when_quiet(r: &Root, pod: &str, snap: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = r.gvpod(&["checkpoint", "--name", snap, pod]);
        if o.status.success() {
            return;
        }
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("open TCP connection"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert_eq!(
            status(r, pod),
            "running",
            "a refused checkpoint stopped the pod"
        );
        assert!(Instant::now() < deadline, "{pod} never became quiet: {err}");
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[test]
fn http_pod_serves_again_after_restore_and_clones_get_their_own_address_and_ports() {
    require_runsc!();
    let r = Root::new();
    r.network("snapnet", false);
    // httpd serves /etc; a counter in the same pod proves memory survives.
    let port = web(&r, "web", "snapnet");
    let ip = r.inspect("web")["ip"].as_str().unwrap().to_string();
    // --leave-running before any request (nothing for runsc to refuse):
    // the pod keeps serving, its address given back to the restored sandbox.
    r.ok(&["checkpoint", "--leave-running", "--name", "early", "web"]);
    assert_eq!(status(&r, "web"), "running");
    http_ok(&format!("127.0.0.1:{port}"));
    http_ok(&format!("{ip}:80"));

    checkpoint_when_quiet(&r, "web", "websnap");
    let n = last_count(&r, "web");
    let v: serde_json::Value =
        serde_json::from_str(&r.ok(&["snapshot", "inspect", "websnap"])).unwrap();
    assert_eq!(v["network"]["mode"], "snapnet");
    assert_eq!(v["network"]["ip"], ip.as_str());
    // Restored in place: same address, same port, serving again (fact 4:
    // the address runsc stripped is re-added before the restore).
    r.ok(&["restore", "websnap"]);
    http_ok(&format!("127.0.0.1:{port}"));
    assert_eq!(r.inspect("web")["ip"], ip.as_str());
    let c = counts(&r, "web");
    assert_eq!(c.iter().filter(|x| **x == 1).count(), 1, "restarted: {c:?}");
    assert!(wait_count(&r, "web", n + 2) > n);

    // Two clones at once next to it: own addresses, own ports.
    let (pa, pb) = (free_port(), free_port());
    for (name, p) in [("web-a", pa), ("web-b", pb)] {
        r.restore(&[
            "--name",
            name,
            "-p",
            &format!("127.0.0.1:{p}:80"),
            "websnap",
        ]);
    }
    let ips: Vec<String> = ["web", "web-a", "web-b"]
        .iter()
        .map(|p| r.inspect(p)["ip"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ips[0] != ips[1] && ips[1] != ips[2] && ips[0] != ips[2],
        "{ips:?}"
    );
    for p in [port, pa, pb] {
        http_ok(&format!("127.0.0.1:{p}"));
    }
    // Straight to each pod's own address too.
    for ip in &ips {
        http_ok(&format!("{ip}:80"));
    }
    // A port already published is refused, and nothing of that clone stays.
    let o = r.gvpod(&[
        "restore",
        "--name",
        "web-c",
        "-p",
        &format!("127.0.0.1:{pa}:80"),
        "websnap",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(r.ps_all().iter().all(|p| p["name"] != "web-c"));

    // The original gone: re-created with its address and port.
    r.ok(&["rm", "-f", "web", "web-a", "web-b"]);
    let id = r.restore(&["websnap"]);
    assert_eq!(id, r.inspect("web")["id"].as_str().unwrap());
    http_ok(&format!("127.0.0.1:{port}"));
    assert_eq!(r.inspect("web")["ip"], ip.as_str());
    r.ok(&["rm", "-f", "web"]);
    r.ok(&["network", "rm", "snapnet"]);
    r.assert_clean();
    assert_no_partial_snapshots(&r);
}

/// Every path in every layer of an image archive (`gvpod save`): the
/// archive's members that are tarballs themselves, gzipped or not.
fn layer_files(archive: &std::path::Path) -> Vec<String> {
    let script = r#"
import io, sys, tarfile
outer = tarfile.open(sys.argv[1])
for m in outer.getmembers():
    if not m.isfile():
        continue
    data = outer.extractfile(m).read()
    try:
        inner = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError:
        continue
    for n in inner.getnames():
        print(n)
"#;
    let o = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(archive)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
