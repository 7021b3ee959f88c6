//! Kill at every step (issue 15 item 3): gvpod is SIGKILLed
//! (`GVPOD_CRASH_AT`) at each step of `pull`, `load`, `import`, `commit`,
//! `network create` / `network rm`, `snapshot export` / `import`,
//! `checkpoint` and `restore`, and a pod's monitor is killed from outside.
//! Afterwards the host is read (links, nftables, mounts, runsc state,
//! processes, cgroups, files under the data root), not the database:
//! `ps -a` and `inspect` agree with runsc, no half image or snapshot is
//! listed, a retried command succeeds, and `rm -f` + `system gc` (+
//! `image prune` for the layer cache) bring the host back to the picture
//! taken before. tests/crash.rs covers the steps of `run`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::registry::{layer_tar, Compression, Entry, Layout, Registry};
use common::{host, stderr, Root};

/// Runs `gvpod ARGS` with `GVPOD_CRASH_AT=step`: it must die of SIGKILL there.
fn crash(r: &Root, step: &str, args: &[&str]) -> Output {
    let o = r.cmd(args).env("GVPOD_CRASH_AT", step).output().unwrap();
    assert_eq!(
        o.status.signal(),
        Some(9),
        "{step}: gvpod {args:?} was not killed at the step: {o:?}"
    );
    o
}

/// The references `gvpod images` lists.
fn image_refs(r: &Root) -> Vec<String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&r.ok(&["images", "--format", "json"])).unwrap();
    v.iter()
        .map(|i| i["reference"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Temp and removal leftovers in the image store.
fn store_temps(r: &Root) -> Vec<String> {
    ["images/blobs/sha256", "images/layers"]
        .iter()
        .flat_map(|d| std::fs::read_dir(r.path().join(d)).into_iter().flatten())
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-") || n.starts_with(".rm-"))
        .collect()
}

/// After a killed image verb: nothing named `reference` is listed, and
/// `system gc` removes the killed writer's temp files.
fn assert_nothing_registered(r: &Root, step: &str, reference: &str) {
    let refs = image_refs(r);
    assert!(
        refs.iter().all(|x| !x.contains(reference)),
        "{step}: half image listed: {refs:?}"
    );
    r.ok(&["system", "gc"]);
    assert_eq!(
        store_temps(r),
        Vec::<String>::new(),
        "{step}: temp files left"
    );
}

/// A small image as an OCI layout: busybox plus a layer of its own.
fn layout(dir: &Path, tag: &str) {
    let own = layer_tar(&[
        Entry::Dir("faults"),
        Entry::File("faults/step", b"every step\n"),
    ]);
    let l = Layout::new(dir);
    let busybox = std::fs::read(common::busybox_tarball()).unwrap();
    let desc = l.image(
        "amd64",
        &[(busybox, Compression::Gzip), (own, Compression::Zstd)],
    );
    l.tag(tag, desc);
}

/// The status runsc itself reports for container `id` of this root.
fn runsc_status(r: &Root, id: &str) -> Option<String> {
    let o = std::process::Command::new(common::runsc_bin())
        .arg("--root")
        .arg(r.run_dir().join("runsc"))
        .args(["state", id])
        .output()
        .unwrap();
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["status"].as_str().map(str::to_string)
}

/// Whether `ps -a`'s `status` of pod `id` is what runsc says.
fn agrees(status: &str, runsc: Option<&str>) -> bool {
    match status {
        "running" => runsc == Some("running"),
        "created" | "exited" => !matches!(runsc, Some("running" | "paused")),
        _ => false,
    }
}

/// `ps -a` and runsc agree on pod `name` (within 20 s: a monitor may be
/// bringing a pod back from its memory image); a running one answers
/// exec. Returns its status.
fn truthful_status(r: &Root, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, runsc) = loop {
        let p = r
            .ps_all()
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("pod {name} missing from ps -a"));
        let id = p["id"].as_str().unwrap().to_string();
        r.track(&id);
        let status = p["status"].as_str().unwrap().to_string();
        let runsc = runsc_status(r, &id);
        if agrees(&status, runsc.as_deref()) || Instant::now() > deadline {
            break (status, runsc);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        agrees(&status, runsc.as_deref()),
        "pod {name}: ps says {status}, runsc says {runsc:?}"
    );
    if status == "running" {
        let o = r.gvpod(&["exec", name, "true"]);
        assert_eq!(o.status.code(), Some(0), "pod {name}: {}", stderr(&o));
    }
    status
}

/// Removes every network (they outlive pods by design) and runs gc, so
/// the host can be compared with a picture taken before any pod ran.
fn without_networks(r: &Root) -> std::collections::BTreeSet<String> {
    for n in r.ok(&["network", "ls", "-q"]).lines() {
        r.ok(&["network", "rm", n]);
    }
    r.ok(&["system", "gc"]);
    host::objects(r)
}

#[test]
fn load_import_and_commit_killed_at_every_step_register_nothing() {
    require_runsc!();
    let r = Root::new();
    let before_host = host::objects(&r);
    let before_files = host::files(&r.path().join("images"));
    let dir = tempfile::tempdir().unwrap();

    // load -i: blobs staged, layers placed.
    let lay = dir.path().join("layout");
    layout(&lay, "faults-load:v1");
    let lays = lay.to_str().unwrap();
    for step in ["load:staged", "register:placed"] {
        crash(&r, step, &["load", "-i", lays]);
        assert_nothing_registered(&r, step, "faults-load");
    }
    r.ok(&["load", "-i", lays]);
    assert!(image_refs(&r).iter().any(|x| x.contains("faults-load")));
    r.ok(&["rmi", "faults-load:v1"]);

    // import: blob scanned, layer and blob placed.
    let tar = dir.path().join("rootfs.tar");
    std::fs::write(
        &tar,
        layer_tar(&[Entry::Dir("imp"), Entry::File("imp/x", b"imported\n")]),
    )
    .unwrap();
    let tars = tar.to_str().unwrap();
    for step in ["import:scanned", "import:placed"] {
        crash(&r, step, &["import", tars, "faults-imp"]);
        assert_nothing_registered(&r, step, "faults-imp");
    }
    r.ok(&["import", tars, "faults-imp"]);
    r.ok(&["rmi", "faults-imp"]);

    // commit of a running pod: paused, layer written, layers placed.
    r.run_detached(&["--name", "c", "busybox", "sleep", "600"]);
    r.ok(&["exec", "c", "sh", "-c", "echo committed > /committed"]);
    for step in ["commit:paused", "commit:written", "register:placed"] {
        crash(&r, step, &["commit", "c", "faults-commit"]);
        // Never left frozen while ps says running.
        assert_eq!(truthful_status(&r, "c"), "running", "{step}");
        assert_nothing_registered(&r, step, "faults-commit");
    }
    r.ok(&["commit", "c", "faults-commit"]);
    let id = r.inspect("c")["id"].as_str().unwrap().to_string();
    let leftovers: Vec<String> = std::fs::read_dir(r.path().join("bundles").join(&id))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".commit-"))
        .collect();
    assert!(leftovers.is_empty(), "killed commits' tars: {leftovers:?}");
    r.run_detached(&["--name", "from-commit", "faults-commit", "sleep", "600"]);
    assert_eq!(
        r.ok(&["exec", "from-commit", "cat", "/committed"]),
        "committed\n"
    );
    r.ok(&["rm", "-f", "c", "from-commit"]);
    r.ok(&["rmi", "faults-commit"]);

    r.ok(&["image", "prune"]);
    assert_eq!(host::files(&r.path().join("images")), before_files);
    assert_eq!(without_networks(&r), before_host);
    r.assert_clean();
}

#[test]
fn pull_killed_at_every_step_registers_nothing() {
    require_registry!();
    let reg = Registry::start();
    let r = Root::new();
    let before_files = host::files(&r.path().join("images"));
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), "t");
    reg.push_layout(dir.path(), "t", "faults-pull:v1");
    let image = format!("{}/faults-pull:v1", reg.addr());
    for step in ["pull:fetched", "register:placed"] {
        crash(&r, step, &["pull", "-q", &image]);
        assert_nothing_registered(&r, step, "faults-pull");
    }
    r.ok(&["pull", "-q", &image]);
    assert!(image_refs(&r).iter().any(|x| x.contains("faults-pull")));
    r.ok(&["rmi", &image]);
    r.ok(&["image", "prune"]);
    assert_eq!(host::files(&r.path().join("images")), before_files);
    r.assert_clean();
}

/// The bridge of network `name` on the host (by the name gvpod recorded).
fn bridge_exists(bridge: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", bridge])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn network_create_and_rm_killed_at_every_step_leave_nothing() {
    require_runsc!();
    let r = Root::new();
    let before = host::objects(&r);
    for step in [
        "network-create:recorded",
        "network-create:firewalled",
        "network-create:bridged",
    ] {
        crash(&r, step, &["network", "create", "fnet"]);
        // Recorded first: the row is there and names its bridge, which is
        // made last (after the rules).
        let v: serde_json::Value =
            serde_json::from_str(&r.ok(&["network", "inspect", "fnet"])).unwrap();
        let bridge = v["bridge"].as_str().unwrap().to_string();
        let bridged = step == "network-create:bridged";
        assert_eq!(bridge_exists(&bridge), bridged, "{step}");
        if !bridged {
            // A pod on it makes the missing bridge.
            r.run_detached(&[
                "--name",
                "on-fnet",
                "--network",
                "fnet",
                "busybox",
                "sleep",
                "60",
            ]);
            assert!(bridge_exists(&bridge), "{step}");
            assert_eq!(truthful_status(&r, "on-fnet"), "running");
            r.ok(&["rm", "-f", "on-fnet"]);
        }
        r.ok(&["network", "rm", "fnet"]);
        assert!(!bridge_exists(&bridge), "{step}");
        r.ok(&["system", "gc"]);
        assert_eq!(host::objects(&r), before, "{step}");
    }
    for step in [
        "network-rm:unfirewalled",
        "network-rm:unbridged",
        "network-rm:deleted",
    ] {
        let v = r.network("fnet", false);
        let bridge = v["bridge"].as_str().unwrap().to_string();
        crash(&r, step, &["network", "rm", "fnet"]);
        let listed = r.ok(&["network", "ls", "-q"]).lines().any(|l| l == "fnet");
        assert_eq!(listed, step != "network-rm:deleted", "{step}");
        if listed {
            // The retry finishes the removal.
            r.ok(&["network", "rm", "fnet"]);
        }
        assert!(!bridge_exists(&bridge), "{step}");
        r.ok(&["system", "gc"]);
        assert_eq!(host::objects(&r), before, "{step}");
    }
    r.assert_clean();
}

fn snapshot_names(r: &Root) -> Vec<String> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&r.ok(&["snapshot", "ls", "--format", "json"])).unwrap();
    v.iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// Waits (20 s at most) until pod `name` is listed with `status`.
fn wait_status(r: &Root, name: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::pods::status(r, name) != status {
        assert!(Instant::now() < deadline, "pod {name} never {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn snapshot_verbs_killed_at_every_step_leave_the_source_running() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&["--name", "src", "busybox", "sleep", "600"]);
    r.ok(&["checkpoint", "--leave-running", "--name", "s", "src"]);
    let dir = tempfile::tempdir().unwrap();

    // checkpoint killed once its snapshot is registered: complete, and the
    // source goes on (--leave-running) or is cleanly checkpointed.
    crash(
        &r,
        "checkpoint:registered",
        &["checkpoint", "--leave-running", "--name", "k1", "src"],
    );
    assert_eq!(truthful_status(&r, "src"), "running");
    assert!(snapshot_names(&r).contains(&"k1".to_string()));
    r.ok(&["snapshot", "rm", "k1"]);

    // export killed mid-archive: no archive, and the retry sweeps the temp.
    let out = dir.path().join("s.tar.zst");
    let outs = out.to_str().unwrap();
    crash(
        &r,
        "snapshot-export:member",
        &["snapshot", "export", "s", "-o", outs],
    );
    assert!(!out.exists());
    let temps = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .count()
    };
    assert_eq!(temps(), 1, "the killed export's temp file");
    r.ok(&["snapshot", "export", "s", "-o", outs]);
    assert_eq!(temps(), 0, "swept by the retry");

    // import killed mid-archive and once in place, before it is registered.
    for step in ["snapshot-import:member", "snapshot-import:placed"] {
        crash(&r, step, &["snapshot", "import", "--name", "imp", outs]);
        assert!(!snapshot_names(&r).contains(&"imp".to_string()), "{step}");
        r.ok(&["system", "gc"]);
        let dirs = host::files(&r.path().join("snapshots"));
        let ids: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(
            &r.ok(&["snapshot", "ls", "--format", "json"]),
        )
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
        for d in dirs.iter().filter(|d| !d.contains('/')) {
            assert!(ids.contains(d), "{step}: snapshot dir {d} is no snapshot's");
        }
    }
    r.ok(&["snapshot", "import", "--name", "imp", outs]);
    r.ok(&["snapshot", "rm", "imp"]);

    // restore as a clone: killed after its rootfs, after its bundle. (The
    // picture is taken now: on releases whose checkpoint ends the sandbox,
    // each checkpoint above brought src back as new processes.)
    let before = host::objects(&r);
    for step in ["restore:rootfs", "restore:bundle"] {
        crash(&r, step, &["restore", "--name", "cl", "s"]);
        assert_eq!(truthful_status(&r, "cl"), "created", "{step}");
        r.ok(&["rm", "-f", "cl"]);
        r.ok(&["system", "gc"]);
        assert_eq!(host::objects(&r), before, "{step}");
    }
    r.restore(&["--name", "cl", "s"]);
    assert_eq!(truthful_status(&r, "cl"), "running");
    r.ok(&["rm", "-f", "cl"]);

    // checkpoint without --leave-running killed once registered: the pod
    // is stopped as asked, never left paused, and restores from it.
    crash(
        &r,
        "checkpoint:registered",
        &["checkpoint", "--name", "k2", "src"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while truthful_status(&r, "src") == "running" {
        assert!(Instant::now() < deadline, "src never stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(snapshot_names(&r).contains(&"k2".to_string()));
    r.ok(&["restore", "k2"]);
    wait_status(&r, "src", "running");
    assert_eq!(truthful_status(&r, "src"), "running");
    r.assert_clean();
}

#[test]
fn a_monitor_killed_from_outside_leaves_ps_truthful() {
    require_runsc!();
    let r = Root::new();
    let before = host::objects(&r);
    r.run_detached(&["--name", "m", "busybox", "sleep", "3"]);
    let mon = r.inspect("m")["monitor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The sandbox goes on without its monitor: ps says so, exec works.
    assert_eq!(truthful_status(&r, "m"), "running");
    // Then it ends by itself: ps must not go on saying running.
    wait_status(&r, "m", "exited");
    assert_eq!(truthful_status(&r, "m"), "exited");
    r.ok(&["rm", "-f", "m"]);
    assert_eq!(without_networks(&r), before);
    r.assert_clean();
}
