//! `gvpod bench` with the real runsc (GVPOD_RUNSC, so both releases) and
//! runc when installed: the JSON report's shape and plausible numbers for
//! startup, exec, syscall, fileio, network, density and checkpoint (runsc
//! only: runc's is "n/a"), the facts any host
//! shows (runc starts faster than runsc, runsc's syscalls cost more, its
//! netstack serves fewer requests/s than the host's, directly, pod to pod
//! and through a published port), a chart an XML parser reads with a bar
//! per figure and runtime (and `bench chart` redrawing it from the report),
//! one-line refusals of bad runtime specs, and that nothing is left behind
//! after a run or an interrupted run, nor after `system gc` once a bench was
//! killed.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{stderr, stdout, Root};

fn runc_installed() -> bool {
    Command::new("runc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Everything a bench could leave on the host: its work directory under
/// the data root, its cgroups (a runc or runsc process still alive keeps
/// one; `cgroups` only where no other bench runs), runsc processes naming
/// its state roots, mounts under the root, its nftables table.
fn bench_leaks(r: &Root, cgroups: bool) -> Vec<String> {
    let mut v = r.leaks();
    let bench = r.path().join("bench");
    if bench.exists() {
        v.push(format!(
            "bench dir: {:?}",
            std::fs::read_dir(&bench)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        ));
    }
    let mut bases = vec![Path::new("/sys/fs/cgroup").to_owned()];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        bases.extend(rd.flatten().map(|e| e.path()));
    }
    for b in bases.into_iter().filter(|_| cgroups) {
        if let Ok(rd) = std::fs::read_dir(&b) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("gvpod-bench-") {
                    v.push(format!("cgroup: {}", e.path().display()));
                }
            }
        }
    }
    // The network workload's host veths (gvbn<tag><n>; their netns files
    // sit in the bench dir).
    for e in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("gvbn") {
            v.push(format!("link: {n}"));
        }
    }
    // The published port's table (inet gvbench-<tag>).
    if let Ok(o) = Command::new("nft")
        .args(["list", "tables", "inet"])
        .output()
    {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if let Some(t) = l.strip_prefix("table inet gvbench-") {
                v.push(format!("nftables table inet gvbench-{t}"));
            }
        }
    }
    let needle = bench.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(&needle) {
                v.push(format!("process: {c}"));
            }
        }
    }
    v
}

/// Asserts that the run left nothing; what was on the host before it (a
/// bench of another data root running at the same time) does not count.
fn assert_no_bench_leaks(r: &Root, cgroups: bool, before: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut l = bench_leaks(r, cgroups);
        l.retain(|x| !before.contains(x));
        if l.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "bench leaked: {l:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number in {v}"))
}

/// The median of `figure` on `runtime`.
fn median(rep: &serde_json::Value, figure: &str, runtime: &str) -> f64 {
    let r = rep["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["figure"] == figure && r["runtime"] == runtime)
        .unwrap_or_else(|| panic!("no {figure} for {runtime} in the report"));
    f(r, "median")
}

/// One test, so that no other bench runs while the leak checks look at
/// the host: a full quick run, then an interrupted one.
#[test]
fn bench_reports_and_cleans_up() {
    require_runsc!();
    let r = Root::new();
    let before = bench_leaks(&r, true);
    let runc = runc_installed();
    assert!(
        runc || !common::skips_forbidden(),
        "runc is needed for the bench tests (apt-get install runc)"
    );
    let out = r.path().join("results.json");
    let chart = r.path().join("chart.svg");
    let mut args = vec![
        "bench",
        "startup",
        "exec",
        "syscall",
        "fileio",
        // After density: a network server's teardown frees memory that
        // would hide the next MemAvailable drop.
        "density",
        "network",
        "checkpoint",
        "--quick",
        "--runs",
        "2",
        "--format",
        "json",
        "--runtime",
        "runsc",
        "-o",
        out.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
    ];
    if runc {
        args.extend(["--runtime", "runc"]);
    }
    let o = r.gvpod(&args);
    assert!(o.status.success(), "bench failed: {}", stderr(&o));
    assert!(
        stderr(&o).contains("startup: round 2/2"),
        "no progress: {}",
        stderr(&o)
    );
    let rep: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(rep, file, "-o writes the same report");
    assert_eq!(rep["schema"], 1);
    assert_eq!(rep["runs"], 2);
    let labels: Vec<&str> = rep["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    let baseline = if runc { "runc" } else { "runsc" };
    assert_eq!(rep["baseline"], baseline);
    assert_eq!(
        labels,
        if runc {
            vec!["runsc", "runc"]
        } else {
            vec!["runsc"]
        }
    );
    let runsc = &rep["runtimes"][0];
    assert!(
        runsc["version"].as_str().unwrap().contains("runsc"),
        "{runsc}"
    );
    assert!(!runsc["platform"].as_str().unwrap().is_empty());
    let env = &rep["environment"];
    assert!(f(env, "cpus") >= 1.0 && !env["kernel"].as_str().unwrap().is_empty());
    assert!(env["cgroup_version"] == 1 || env["cgroup_version"] == 2);

    let results = rep["results"].as_array().unwrap();
    // startup 2 figures, exec 1, syscall 4, fileio 12, network 6, density 1
    // or 2 (a MemAvailable drop that other work hid is left out); per
    // runtime; checkpoint 4 and fileio's rootfs under both overlay settings
    // 8 more, on runsc only.
    let n = results.len() - 4 - 8;
    assert!(
        n >= 26 * labels.len() && n <= 27 * labels.len(),
        "{results:#?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r["workload"] != "checkpoint" || r["runtime"] == "runsc"),
        "runc has no checkpoint figures: {results:#?}"
    );
    for ov in ["overlay-memory", "overlay-none"] {
        for op in ["seq-write", "seq-read", "rand-read", "rand-write"] {
            let fig = format!("rootfs-{ov}-{op}");
            let on: Vec<&str> = results
                .iter()
                .filter(|r| r["figure"] == fig.as_str())
                .map(|r| r["runtime"].as_str().unwrap())
                .collect();
            assert_eq!(on, ["runsc"], "{fig} only on runsc (probed values)");
        }
    }
    if runc {
        let warnings = rep["warnings"].as_array().unwrap();
        assert!(
            warnings.iter().any(|w| w
                .as_str()
                .unwrap()
                .starts_with("checkpoint: n/a for runc: runc checkpoints through CRIU")),
            "{warnings:?}"
        );
    }
    // The memory image holds the 16 MiB memfill touched (incompressible),
    // and a restored server answers.
    let image = median(&rep, "image-16mib", "runsc");
    assert!((16.0..64.0).contains(&image), "image of {image} MiB");
    for fig in [
        "checkpoint-16mib",
        "restore-16mib",
        "first-http-after-restore",
    ] {
        assert!(median(&rep, fig, "runsc") > 1.0, "{fig}");
    }
    for res in results {
        let samples: Vec<f64> = res["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        let want = if res["workload"] == "exec" { 2 * 3 } else { 2 };
        if res["workload"] == "density" {
            assert!(!samples.is_empty() && samples.len() <= 2, "{res}");
        } else {
            assert_eq!(samples.len(), want, "{res}");
        }
        assert!(samples.iter().all(|s| *s > 0.0), "{res}");
        let (min, med, p95, max) = (
            f(res, "min"),
            f(res, "median"),
            f(res, "p95"),
            f(res, "max"),
        );
        assert!(min > 0.0 && min <= med && med <= p95 && p95 <= max, "{res}");
        assert!(f(res, "cv") >= 0.0, "{res}");
        // Plausible magnitudes: a start-up under a minute, a syscall under 10 ms.
        match res["unit"].as_str().unwrap() {
            "ms" => assert!(max < 60_000.0, "{res}"),
            "ns" => assert!(max < 10_000_000.0, "{res}"),
            "MiB" => assert!(max < 10_000.0, "{res}"),
            "MiB/s" | "req/s" => {
                assert!(max < 1_000_000.0, "{res}");
                assert_eq!(res["higher_is_better"], true, "{res}");
            }
            u => panic!("unit {u}"),
        }
        if res["runtime"] == baseline {
            assert_eq!(f(res, "ratio"), 1.0, "{res}");
        } else {
            let fig = res["figure"].as_str().unwrap();
            let has_base = rep["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["figure"] == fig && r["runtime"] == baseline);
            if has_base {
                let base = median(&rep, fig, baseline);
                assert!((f(res, "ratio") - med / base).abs() < 1e-9, "{res}");
            } else {
                // Only density's MemAvailable drop (see above) and the
                // runsc-only figures may be missing.
                assert!(
                    fig == "memavailable-drop-per-pod"
                        || res["workload"] == "checkpoint"
                        || fig.starts_with("rootfs-overlay-"),
                    "{res}"
                );
                assert!(res["ratio"].is_null(), "{res}");
            }
        }
    }
    if runc {
        // Facts on any host: runc starts faster than runsc, and a trapped
        // getpid costs runsc far more than a native one.
        assert!(
            median(&rep, "run-true", "runc") < median(&rep, "run-true", "runsc"),
            "runc should start faster"
        );
        assert!(
            median(&rep, "first-http", "runc") < median(&rep, "first-http", "runsc"),
            "runc's httpd should answer sooner"
        );
        assert!(
            median(&rep, "getpid", "runsc") > 2.0 * median(&rep, "getpid", "runc"),
            "runsc's getpid should cost more"
        );
        // Every connection crosses gVisor's netstack (and busybox httpd
        // forks per request, which the sentry makes dear).
        // Whoever the client is: the host, another namespace (pod-to-pod) or
        // the host through a published port.
        for fig in [
            "http-small-requests",
            "pod-to-pod-http-small-requests",
            "published-port-http-small-requests",
        ] {
            assert!(
                median(&rep, fig, "runsc") < median(&rep, fig, "runc"),
                "runsc should serve fewer requests/s than runc ({fig})"
            );
        }
        // The sentry and gofer cost more than runc's bare sleep.
        assert!(
            median(&rep, "pss-per-pod", "runsc") > 2.0 * median(&rep, "pss-per-pod", "runc"),
            "runsc's idle pod should take more memory"
        );
    }
    // Through a published port (127.0.0.1, DNATed to the server): both
    // runtimes, the same page and file as the direct figures.
    for rt in &labels {
        for fig in [
            "published-port-http-small-requests",
            "published-port-http-4mib-throughput",
        ] {
            assert!(median(&rep, fig, rt) > 0.0, "{fig} on {rt}");
        }
    }
    assert_no_bench_leaks(&r, true, &before);

    // The chart is SVG an XML parser reads, with a titled bar for every
    // figure and runtime that has a ratio, a label for every such figure
    // and the runtimes in its legend.
    let svg = std::fs::read_to_string(&chart).unwrap();
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, json, xml.etree.ElementTree as E\n\
             ns = '{http://www.w3.org/2000/svg}'\n\
             t = E.parse(sys.argv[1]).getroot()\n\
             print(json.dumps({'titles': [e.text for e in t.iter(ns + 'title')],\n\
                               'texts': [(e.text or '').strip() for e in t.iter(ns + 'text')],\n\
                               'rects': len(list(t.iter(ns + 'rect')))}))",
        ])
        .arg(&chart)
        .output()
        .unwrap();
    assert!(o.status.success(), "unparseable SVG: {}\n{svg}", stderr(&o));
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let strings = |key: &str| -> Vec<&str> {
        parsed[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect()
    };
    let titles = strings("titles");
    let texts = strings("texts");
    // (A figure its baseline lacks, see density above, has no bar.)
    let with_base: Vec<&serde_json::Value> =
        results.iter().filter(|r| !r["ratio"].is_null()).collect();
    assert_eq!(titles.len(), with_base.len(), "{titles:#?}");
    for res in &with_base {
        let (w, fig, rt, unit) = (
            res["workload"].as_str().unwrap(),
            res["figure"].as_str().unwrap(),
            res["runtime"].as_str().unwrap(),
            res["unit"].as_str().unwrap(),
        );
        let head = format!("{w} {fig} on {rt}: median ");
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with(&head) && t.contains(&format!(" {unit} ("))),
            "no bar titled {head}…: {titles:#?}"
        );
        let label = format!("{w} {fig} ({unit})");
        assert!(
            texts.contains(&label.as_str()),
            "no label {label}: {texts:#?}"
        );
    }
    for rt in &labels {
        assert!(texts.contains(rt), "legend lacks {rt}: {texts:#?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with(&format!("median / {baseline} median"))),
        "no y axis description: {texts:#?}"
    );
    assert!(parsed["rects"].as_u64().unwrap() as usize >= with_base.len() + labels.len());
    // `bench chart` redraws the same chart from the report, on this host
    // even under --url (it only reads the file).
    let again = r.path().join("again.svg");
    r.ok(&[
        "bench",
        "chart",
        out.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), svg);
    let o = r.gvpod(&[
        "--url",
        "unix:///nonexistent.sock",
        "bench",
        "chart",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), svg);
    r.fails(&["bench", "chart"], 2, "takes one report file");
    r.fails(
        &["bench", "chart", "/etc/hostname"],
        2,
        "is not a bench report",
    );

    // A report compared with itself: every figure, no change anywhere.
    let o = r.gvpod(&[
        "bench",
        "compare",
        out.to_str().unwrap(),
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let changes: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let changes = changes.as_array().unwrap();
    assert_eq!(changes.len(), results.len());
    assert!(
        changes
            .iter()
            .all(|c| c["ratio"] == 1.0 && c["verdict"] == "within noise"),
        "{changes:?}"
    );
    r.fails(
        &["bench", "compare", out.to_str().unwrap()],
        2,
        "takes two report files",
    );
    r.fails(
        &["bench", "compare", out.to_str().unwrap(), "/etc/hostname"],
        2,
        "is not a bench report",
    );

    // Interrupted mid-run (SIGTERM, as Ctrl-C's SIGINT is handled alike),
    // with the network workload's netns, veth and server up: it stops,
    // says so on one line, and removes everything.
    let mut child = r
        .cmd(&[
            "bench",
            "network",
            "--quick",
            "--runs",
            "500",
            "--runtime",
            "runsc",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "bench ended before its rounds: {seen}"
        );
        seen.push_str(&line);
        if line.contains("network: round 1/") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(125), "{rest}");
    assert!(rest.contains("bench interrupted"), "{rest}");
    assert_no_bench_leaks(&r, true, &before);

    // Killed (SIGKILL: no cleanup of its own) with its namespaces, veths,
    // server and mounts up: `system gc` removes all of it.
    let mut child = r
        .cmd(&[
            "bench",
            "network",
            "--quick",
            "--runs",
            "500",
            "--runtime",
            if runc { "runc" } else { "runsc" },
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "bench ended before its rounds: {seen}"
        );
        seen.push_str(&line);
        if line.contains("network: round 1/") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut left = bench_leaks(&r, true);
    left.retain(|x| !before.contains(x));
    assert!(
        left.iter().any(|l| l.starts_with("link: gvbn"))
            && left
                .iter()
                .any(|l| l.starts_with("nftables table inet gvbench-")),
        "a killed bench leaves its veths and table until gc: {left:#?}"
    );
    let gc = r.ok(&["system", "gc", "--format", "json"]);
    assert!(gc.contains("link gvbn"), "{gc}");
    assert!(gc.contains("nftables table inet gvbench-"), "{gc}");
    assert_no_bench_leaks(&r, true, &before);
    r.assert_clean();
}

#[test]
fn bad_runtimes_and_options_are_one_line() {
    require_runsc!();
    let r = Root::new();
    let before = bench_leaks(&r, false);
    r.fails(
        &["bench", "startup", "--runtime", "docker"],
        2,
        "bad runtime spec \"docker\"",
    );
    r.fails(
        &["bench", "startup", "--runtime", "runsc:xen"],
        2,
        "unknown option \"xen\"",
    );
    r.fails(
        &["bench", "startup", "--runtime", "runc:ptrace"],
        2,
        "runc takes no options",
    );
    r.fails(
        &["bench", "startup", "--runtime", "runsc@/nonexistent/runsc"],
        2,
        "runtime runsc@/nonexistent/runsc cannot be used",
    );
    r.fails(
        &["bench", "startup", "--runtime", "runc@/nonexistent/runc"],
        2,
        "cannot be used",
    );
    r.fails(
        &["bench", "nosuch", "--runtime", "runsc"],
        2,
        "unknown workload \"nosuch\"",
    );
    r.fails(
        &[
            "bench",
            "startup",
            "--runtime",
            "runsc",
            "--baseline",
            "runc",
        ],
        2,
        "baseline \"runc\" is not one of the runtimes",
    );
    r.fails(
        &["bench", "--runs", "0", "--runtime", "runsc"],
        2,
        "invalid --runs 0",
    );
    r.fails(&["bench", "--format", "xml"], 2, "invalid --format");
    r.fails(
        &[
            "bench",
            "startup",
            "--runtime",
            "runsc",
            "--image",
            "nosuch:latest",
        ],
        2,
        "nosuch",
    );
    r.fails(
        &["--url", "unix:///nonexistent.sock", "bench", "startup"],
        2,
        "does not work through --url",
    );
    assert_no_bench_leaks(&r, false, &before);
}
