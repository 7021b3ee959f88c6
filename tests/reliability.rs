//! Reliability (issue 15): the host objects of a data root deleted behind
//! gvpod's back are found and removed by `system gc --orphans`, and a live
//! root's are not; `rm -f` racing `start` and `exec` leaves nothing.
//! Every assertion reads the host (ip, nft, /proc/self/mountinfo, cgroupfs,
//! /proc, /run/gvpod), not gvpod's database.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{stderr, Root, BIN};

/// A data root made outside the harness, so the test can delete it the way
/// a user would. Dropping it removes (through another root's
/// `gc --orphans`) whatever the test left, then the directory.
struct Doomed {
    path: PathBuf,
    sweeper: PathBuf,
}

impl Doomed {
    fn new(sweeper: &Root) -> Doomed {
        let dir = tempfile::Builder::new()
            .prefix("gvpod-test-")
            .tempdir()
            .unwrap()
            .keep();
        let d = Doomed {
            path: std::fs::canonicalize(dir).unwrap(),
            sweeper: sweeper.path().to_owned(),
        };
        d.ok(&[
            "import",
            "-c",
            r#"CMD ["sh"]"#,
            common::busybox_tarball().to_str().unwrap(),
            "busybox",
        ]);
        d
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = Command::new(BIN)
            .env("GVPOD_ROOT", &self.path)
            .env_remove("GVPOD_CRASH_AT")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "gvpod {args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn run_dir(&self) -> PathBuf {
        run_dir_of(&self.path)
    }

    /// Kills the root's monitors and sandboxes as a crash would, then
    /// deletes what `rm -rf` can (mount points stay: EBUSY).
    fn crash_and_delete(&self) {
        let rd = self.run_dir().to_string_lossy().into_owned();
        let root = self.path.to_string_lossy().into_owned();
        for (pid, _) in
            processes(|c| c.contains(&rd) || (c.contains("__monitor") && c.contains(&root)))
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = Command::new("rm").arg("-rf").arg(&self.path).output();
        assert!(!self.path.join("gvpod.db").exists());
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        if self.path.join("gvpod.db").exists() {
            // The test failed before deleting it: make it an orphan.
            self.crash_and_delete();
        }
        let _ = Command::new(BIN)
            .env("GVPOD_ROOT", &self.sweeper)
            .args(["system", "gc", "--orphans"])
            .output();
        let _ = Command::new("rm").arg("-rf").arg(&self.path).output();
    }
}

fn run_dir_of(root: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(root.as_os_str().as_encoded_bytes());
    PathBuf::from("/run/gvpod").join(&hex::encode(h)[..12])
}

/// (pid, command line) of the host's processes whose command line matches.
fn processes(matches: impl Fn(&str) -> bool) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            (pid != me && matches(&c)).then_some((pid, c))
        })
        .collect()
}

/// Every host object that names data root `root`: links by alias, its
/// firewall table, mounts under it, its state directory, processes naming
/// it or its state directory, and the cgroups of `ids`.
/// [`host_objects`] once two reads 200 ms apart agree (10 s at most).
fn settled_host_objects(root: &Path, ids: &[String]) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = host_objects(root, ids);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = host_objects(root, ids);
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn host_objects(root: &Path, ids: &[String]) -> Vec<String> {
    let mut v = vec![];
    let rs = root.to_string_lossy().into_owned();
    let o = Command::new("ip")
        .args(["-d", "-j", "link", "show"])
        .output()
        .unwrap();
    let links: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    for l in links {
        if l["ifalias"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("gvpod root={rs} ")))
        {
            v.push(format!("link {}", l["ifname"]));
        }
    }
    let t = common::table_name(root);
    if Command::new("nft")
        .args(["list", "table", "inet", &t])
        .output()
        .unwrap()
        .status
        .success()
    {
        v.push(format!("table {t}"));
    }
    for l in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        if l.split(' ')
            .nth(4)
            .is_some_and(|m| m.starts_with(&format!("{rs}/")))
        {
            v.push(format!("mount {l}"));
        }
    }
    let rd = run_dir_of(root);
    if rd.exists() {
        v.push(format!("state dir {}", rd.display()));
    }
    let rds = rd.to_string_lossy().into_owned();
    for (pid, c) in processes(|c| c.contains(&rds) || (c.contains("__monitor") && c.contains(&rs)))
    {
        v.push(format!("process {pid} {c}"));
    }
    for id in ids {
        for base in [
            "/sys/fs/cgroup/pids/gvpod",
            "/sys/fs/cgroup/memory/gvpod",
            "/sys/fs/cgroup/gvpod",
        ] {
            let p = Path::new(base).join(id);
            if p.exists() {
                v.push(format!("cgroup {}", p.display()));
            }
        }
    }
    v
}

/// The objects `gc --orphans --format json` listed for data root `root`.
fn listed(report: &serde_json::Value, root: &Path) -> Vec<String> {
    report["roots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["root"] == root.to_string_lossy().as_ref())
        .flat_map(|r| r["objects"].as_array().unwrap().iter())
        .map(|o| o.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn gc_orphans_removes_a_deleted_roots_objects_and_keeps_a_live_ones() {
    require_runsc!();
    let live = Root::new();
    let sweeper = Root::empty();
    let doomed = Doomed::new(&sweeper);
    // A networked pod with a published port on each root, on a network of
    // its own on the doomed one (a second bridge).
    let live_id = live.run_detached(&[
        "--name",
        "keep",
        "-p",
        "127.0.0.1:18471:80",
        "busybox",
        "sleep",
        "600",
    ]);
    doomed.ok(&["network", "create", "doomednet"]);
    let ids: Vec<String> = [
        doomed.ok(&[
            "run",
            "-d",
            "--name",
            "a",
            "-p",
            "127.0.0.1:18472:80",
            "busybox",
            "sleep",
            "600",
        ]),
        doomed.ok(&[
            "run",
            "-d",
            "--name",
            "b",
            "--network",
            "doomednet",
            "busybox",
            "sleep",
            "600",
        ]),
    ]
    .iter()
    .map(|s| s.trim().to_string())
    .collect();
    let before = host_objects(&doomed.path, &ids);
    for kind in [
        "link ",
        "table ",
        "mount ",
        "state dir ",
        "process ",
        "cgroup ",
    ] {
        assert!(
            before.iter().any(|o| o.starts_with(kind)),
            "a running pod has no {kind}object: {before:#?}"
        );
    }
    let live_path = std::fs::canonicalize(live.path()).unwrap();
    let live_before = host_objects(&live_path, std::slice::from_ref(&live_id));

    doomed.crash_and_delete();
    // SIGKILLed processes exit, and the kernel tears down what they held,
    // a moment later: the picture is taken once two reads agree.
    let stale = settled_host_objects(&doomed.path, &ids);
    assert!(
        stale.iter().any(|o| o.starts_with("state dir "))
            && stale.iter().any(|o| o.starts_with("table ")),
        "deleting the root took its host objects along: {stale:#?}"
    );

    // A dry run lists the doomed root's objects and removes nothing.
    let dry: serde_json::Value = serde_json::from_str(&sweeper.ok(&[
        "system",
        "gc",
        "--orphans",
        "--dry-run",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(dry["dry_run"], true);
    let planned = listed(&dry, &doomed.path);
    for want in [
        "runsc container ",
        "mount ",
        "link ",
        "cgroup gvpod/",
        "state dir ",
        "nftables table ",
    ] {
        assert!(
            planned.iter().any(|o| o.starts_with(want)),
            "dry run lacks {want}: {planned:#?}"
        );
    }
    assert!(
        listed(&dry, &live_path).is_empty(),
        "a live root judged: {dry:#}"
    );
    assert_eq!(
        host_objects(&doomed.path, &ids),
        stale,
        "the dry run removed something"
    );

    let rep: serde_json::Value =
        serde_json::from_str(&sweeper.ok(&["system", "gc", "--orphans", "--format", "json"]))
            .unwrap();
    assert_eq!(rep["failed"], serde_json::json!([]), "{rep:#}");
    assert!(!listed(&rep, &doomed.path).is_empty(), "{rep:#}");
    assert!(
        listed(&rep, &live_path).is_empty(),
        "a live root touched: {rep:#}"
    );
    assert!(listed(&rep, &std::fs::canonicalize(sweeper.path()).unwrap()).is_empty());
    // The kernel destroys the veths of removed namespaces in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let left = loop {
        let left = host_objects(&doomed.path, &ids);
        if left.is_empty() || std::time::Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(left.is_empty(), "left on the host: {left:#?}");

    // The live root's pod runs on, with all its objects.
    assert_eq!(live.inspect("keep")["status"], "running");
    let o = live.gvpod(&["exec", "keep", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(host_objects(&live_path, &[live_id]), live_before);
    // A second sweep finds nothing more of these roots.
    let again: serde_json::Value =
        serde_json::from_str(&sweeper.ok(&["system", "gc", "--orphans", "--format", "json"]))
            .unwrap();
    assert!(listed(&again, &doomed.path).is_empty(), "{again:#}");
    live.assert_clean();
}

/// Host leftovers of one pod id in root `r` beyond the harness's leak
/// check: its log file, bundle directory and run directory.
fn pod_files(r: &Root, id: &str) -> Vec<String> {
    [
        r.path().join("logs").join(format!("{id}.json")),
        r.path().join("bundles").join(id),
        r.run_dir().join("pods").join(id),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .map(|p| p.display().to_string())
    .collect()
}

/// `rm -f` issued while `start` is under way (at staggered delays, so
/// both orders and the overlap are hit): `rm -f` succeeds, `start` either
/// started the pod or reports it gone, and nothing of the pod is left. It
/// used to leave `logs/<id>.json` 4 times in 5, or fail on a half-made
/// container.
#[test]
fn rm_f_racing_start_leaves_nothing() {
    require_runsc!();
    let r = Root::new();
    for i in 0..8u64 {
        let name = format!("race{i}");
        let id = r
            .ok(&["create", "--name", &name, "busybox", "sleep", "60"])
            .trim()
            .to_string();
        r.track(&id);
        let start = r
            .cmd(&["start", &name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(i * 15));
        let rm = r.gvpod(&["rm", "-f", &name]);
        let start = start.wait_with_output().unwrap();
        assert!(
            rm.status.success(),
            "try {i}: rm -f failed: {}",
            stderr(&rm)
        );
        assert!(
            start.status.success() || stderr(&start).contains("no such pod"),
            "try {i}: start: {:?} {}",
            start.status,
            stderr(&start)
        );
        let left = pod_files(&r, &id);
        assert!(left.is_empty(), "try {i}: left behind: {left:?}");
        let leaks = r.leaks_settled();
        assert!(leaks.is_empty(), "try {i}: leaked {leaks:#?}");
    }
    assert!(r.ps_all().is_empty());
    r.assert_clean();
}

/// `rm -f` of a pod while an `exec` in it starts: `rm -f` succeeds, the
/// exec either ran, was killed with its pod (137, as docker's), or fails
/// with a gvpod line that names the pod (never a hang or a panic), and
/// nothing of the pod is left.
#[test]
fn rm_f_racing_exec_leaves_nothing() {
    require_runsc!();
    let r = Root::new();
    for i in 0..8u64 {
        let name = format!("ex{i}");
        let id = r.run_detached(&["--name", &name, "busybox", "sleep", "60"]);
        let exec = r
            .cmd(&["exec", &name, "sleep", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(i * 25));
        let rm = r.gvpod(&["rm", "-f", &name]);
        let exec = exec.wait_with_output().unwrap();
        assert!(
            rm.status.success(),
            "try {i}: rm -f failed: {}",
            stderr(&rm)
        );
        let err = stderr(&exec);
        let last = err.trim_end().lines().last().unwrap_or("");
        assert!(
            matches!(exec.status.code(), Some(0 | 137))
                || (exec.status.code() == Some(2)
                    && last.starts_with("gvpod: ")
                    && last.contains(&name)
                    && !err.contains("panicked")),
            "try {i}: exec: {:?} {err}",
            exec.status
        );
        let left = pod_files(&r, &id);
        assert!(left.is_empty(), "try {i}: left behind: {left:?}");
        let leaks = r.leaks_settled();
        assert!(leaks.is_empty(), "try {i}: leaked {leaks:#?}");
    }
    r.assert_clean();
}

/// A pod flooding its log (`--log-max-size 64k --log-max-file 2`): the log
/// files stay under the bound, `logs --tail` shows the newest lines, a full
/// `logs` reads the rotated file then the current one with no gap, a
/// follower started before the flood sees its end, and `rm` takes every
/// file along.
#[test]
fn a_log_flood_stays_bounded_and_logs_shows_the_newest_lines() {
    require_runsc!();
    let r = Root::new();
    let id = r.run_detached(&[
        "--name",
        "flood",
        "--network",
        "none",
        "--log-max-size",
        "64k",
        "--log-max-file",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 20000 ]; do echo \"flood line $i\"; i=$((i+1)); done; echo done",
    ]);
    let follower = r
        .cmd(&["logs", "-f", "flood"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let follow = follower.wait_with_output().unwrap();
    assert!(follow.status.success());
    let followed = String::from_utf8_lossy(&follow.stdout).into_owned();
    assert_eq!(
        followed.lines().last(),
        Some("done"),
        "follower missed the end"
    );
    let nums: Vec<u32> = followed
        .lines()
        .filter_map(|l| l.strip_prefix("flood line ")?.parse().ok())
        .collect();
    assert!(
        nums.windows(2).all(|w| w[0] < w[1]),
        "follower saw lines out of order"
    );
    assert_eq!(r.inspect("flood")["status"], "exited");

    let logs = r.path().join("logs");
    let files: Vec<(String, u64)> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&id))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    // 20000 lines are ~1.5 MB of log: two files of at most 64 KiB (and the
    // line that passed it) are kept.
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.iter().all(|(_, n)| *n <= (64 << 10) + 200),
        "{files:?}"
    );
    assert_eq!(
        r.ok(&["logs", "--tail", "3", "flood"]),
        "flood line 19998\nflood line 19999\ndone\n"
    );
    let all = r.ok(&["logs", "flood"]);
    let nums: Vec<u32> = all
        .lines()
        .filter_map(|l| l.strip_prefix("flood line ")?.parse().ok())
        .collect();
    assert!(
        nums.len() > 500 && nums.len() < 5000,
        "{} lines kept",
        nums.len()
    );
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1) && *nums.last().unwrap() == 19999,
        "the kept lines are not the newest, in order"
    );
    r.ok(&["rm", "flood"]);
    let left: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&id))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "rm left {left:?}");
    r.assert_clean();
}

/// How many pods a concurrency test starts at once: `GVPOD_STRESS_N`, else
/// `default` (sized for 2 CI cores; scripts/stress.sh runs the full figure).
fn stress_n(default: usize) -> usize {
    std::env::var("GVPOD_STRESS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `gvpod ARGS` for every `args` at once; (exit code, stdout, stderr) each.
fn all_at_once(r: &Root, args: Vec<Vec<String>>) -> Vec<(Option<i32>, String, String)> {
    let children: Vec<_> = args
        .iter()
        .map(|a| {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            r.cmd(&a)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            (o.status.code(), common::stdout(&o), stderr(&o))
        })
        .collect()
}

/// N networked `run -d` with a published port at once (N = 50 in
/// scripts/stress.sh): all run, with distinct addresses and host ports,
/// and none says "database is locked"; then N checkpoints at once and N
/// restores at once of different pods, each pod running again; then N
/// `rm -f` at once, leaving nothing.
#[test]
fn many_networked_runs_then_checkpoints_and_restores_at_once() {
    require_runsc!();
    let n = stress_n(20);
    let r = Root::new();
    let t0 = std::time::Instant::now();
    eprintln!("stress N={n}: starting");
    let runs = all_at_once(
        &r,
        (0..n)
            .map(|i| {
                [
                    "run",
                    "-d",
                    "--name",
                    &format!("s{i}"),
                    "-p",
                    "80",
                    "busybox",
                    "sleep",
                    "600",
                ]
                .map(String::from)
                .to_vec()
            })
            .collect(),
    );
    let took_runs = t0.elapsed();
    for (i, (code, out, err)) in runs.iter().enumerate() {
        if *code == Some(0) {
            r.track(out.trim());
        }
        assert!(!err.contains("database is locked"), "s{i}: {err}");
        assert_eq!(*code, Some(0), "s{i}: {err}");
    }
    let pods = r.ps_all();
    assert_eq!(pods.len(), n);
    let mut ips = std::collections::BTreeSet::new();
    let mut ports = std::collections::BTreeSet::new();
    for i in 0..n {
        let v = r.inspect(&format!("s{i}"));
        assert_eq!(v["status"], "running", "s{i}: {v}");
        ips.insert(
            v["ip"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| panic!("s{i} has no ip: {v}")),
        );
        let port = r.ok(&["port", &format!("s{i}")]);
        ports.insert(port.trim().rsplit(':').next().unwrap().to_string());
    }
    assert_eq!(ips.len(), n, "addresses not distinct: {ips:?}");
    assert_eq!(ports.len(), n, "host ports not distinct: {ports:?}");

    let t1 = std::time::Instant::now();
    let cps = all_at_once(
        &r,
        (0..n)
            .map(|i| {
                [
                    "checkpoint",
                    "--name",
                    &format!("snap{i}"),
                    &format!("s{i}"),
                ]
                .map(String::from)
                .to_vec()
            })
            .collect(),
    );
    let took_cps = t1.elapsed();
    for (i, (code, _, err)) in cps.iter().enumerate() {
        assert!(
            !err.contains("database is locked"),
            "checkpoint s{i}: {err}"
        );
        assert_eq!(*code, Some(0), "checkpoint s{i}: {err}");
    }
    let t2 = std::time::Instant::now();
    let restores = all_at_once(
        &r,
        (0..n)
            .map(|i| vec!["restore".into(), format!("snap{i}")])
            .collect(),
    );
    let took_restores = t2.elapsed();
    for (i, (code, _, err)) in restores.iter().enumerate() {
        assert!(!err.contains("database is locked"), "restore s{i}: {err}");
        assert_eq!(*code, Some(0), "restore s{i}: {err}");
    }
    for i in 0..n {
        assert_eq!(
            r.inspect(&format!("s{i}"))["status"],
            "running",
            "s{i} after restore"
        );
    }
    eprintln!(
        "stress N={n}: runs {:.1} s, checkpoints {:.1} s, restores {:.1} s",
        took_runs.as_secs_f64(),
        took_cps.as_secs_f64(),
        took_restores.as_secs_f64()
    );
    let snaps: Vec<String> = (0..n).map(|i| format!("snap{i}")).collect();
    let mut args = vec!["snapshot", "rm"];
    args.extend(snaps.iter().map(String::as_str));
    // And N `rm -f` at once.
    let t3 = std::time::Instant::now();
    let rms = all_at_once(
        &r,
        (0..n)
            .map(|i| vec!["rm".into(), "-f".into(), format!("s{i}")])
            .collect(),
    );
    for (i, (code, _, err)) in rms.iter().enumerate() {
        assert!(!err.contains("database is locked"), "rm s{i}: {err}");
        assert_eq!(*code, Some(0), "rm s{i}: {err}");
    }
    r.assert_clean();
    r.ok(&args);
    eprintln!("stress N={n}: removal {:.1} s", t3.elapsed().as_secs_f64());
}

/// The soak's short form (scripts/soak.sh 30): cycles of a networked pod
/// with a published port, a checkpoint and restore every tenth, then the
/// host checked for leaks against its state before the first cycle.
#[test]
fn soak_short_form_leaves_the_host_as_it_found_it() {
    require_runsc!();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/soak.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg("30")
        .env("GVPOD_BIN", BIN)
        .output()
        .unwrap();
    let out = common::stdout(&o);
    assert!(o.status.success(), "soak failed:\n{out}\n{}", stderr(&o));
    assert!(out.contains("soak: clean after 30 cycles"), "{out}");
}
