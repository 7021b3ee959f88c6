//! Observing pods: `gvpod stats` (cpu under load, the `-m` limit, block
//! I/O after a synced write to a bind mount, pids; one sample and a
//! stream), `gvpod top`, and both through the service: `docker stats` /
//! `docker top` with the real docker CLI and `gvpod --url`. Real runsc,
//! a temporary data root, everything removed at the end.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::api::Service;
use common::{stderr, stdout, Root};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The one row of `pod` in a `stats --format json` array.
fn row_of<'a>(rows: &'a serde_json::Value, pod: &str) -> &'a serde_json::Value {
    rows.as_array()
        .unwrap_or_else(|| panic!("not an array: {rows}"))
        .iter()
        .find(|r| r["name"] == pod)
        .unwrap_or_else(|| panic!("no row for {pod}: {rows}"))
}

/// A busy pod limited to 64 MiB with a bind mount at /data; its id.
fn busy_pod(r: &Root, vol: &std::path::Path) -> String {
    std::fs::create_dir_all(vol).unwrap();
    let v = format!("{}:/data", vol.display());
    r.run_detached(&[
        "--name",
        "busy",
        "-m",
        "64m",
        "-v",
        &v,
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ])
}

#[test]
fn stats_show_cpu_memory_limit_block_io_and_pids_under_load() {
    require_runsc!();
    let r = Root::new();
    let vol = r.path().join("vol");
    busy_pod(&r, &vol);
    // 4 MiB written and synced to the bind mount: the gofer (or, with
    // directfs, the sandbox) writes it to the host's disk.
    r.ok(&[
        "exec",
        "busy",
        "dd",
        "if=/dev/zero",
        "of=/data/f",
        "bs=1M",
        "count=4",
        "conv=fsync",
    ]);
    assert_eq!(std::fs::metadata(vol.join("f")).unwrap().len(), 4 << 20);

    let rows = json(&r.ok(&["stats", "--no-stream", "--format", "json", "busy"]));
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let s = row_of(&rows, "busy");
    let cpu = s["cpu_percent"].as_f64().unwrap();
    assert!(cpu > 10.0, "a busy loop uses cpu: {s}");
    let mem = s["memory_usage"].as_u64().unwrap();
    assert!(mem > 0 && mem < 64 << 20, "{s}");
    assert_eq!(s["memory_limit"], 64u64 << 20, "the -m limit: {s}");
    assert!(s["memory_percent"].as_f64().unwrap() > 0.0, "{s}");
    assert!(
        s["block_write_bytes"].as_u64().unwrap() >= 4 << 20,
        "the synced 4 MiB are block I/O: {s}"
    );
    assert!(s["pids"].as_u64().unwrap() >= 1, "{s}");

    // Without names: the running pods, this one among them; the table
    // has docker's BLOCK I/O column.
    let all = json(&r.ok(&["stats", "--no-stream", "--format", "json"]));
    row_of(&all, "busy");
    let table = r.ok(&["stats", "--no-stream"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("BLOCK I/O"), "{table}");
    let busy = lines.find(|l| l.contains("busy")).expect("a row for busy");
    assert!(busy.contains("/ 64MiB"), "{table}");
    let cells: Vec<&str> = busy
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let (_, written) = cells[6]
        .split_once(" / ")
        .unwrap_or_else(|| panic!("{table}"));
    assert!(written.ends_with("MB"), "BLOCK I/O has the 4 MiB: {table}");

    // Streaming into a pipe: one JSON array per line, a second apart.
    let mut child = r
        .cmd(&["stats", "--format", "json", "busy"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut samples = vec![];
    for _ in 0..2 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        samples.push(json(&l));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "a sample a second"
    );
    for s in &samples {
        assert!(row_of(s, "busy")["cpu_percent"].as_f64().unwrap() > 10.0);
    }
    // A table stream into a pipe: no terminal escapes, and `| head` ends it.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("{} stats busy | head -n 5", common::BIN))
        .env("GVPOD_ROOT", r.path())
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(!text.contains('\x1b'), "{text:?}");
    assert_eq!(text.matches("CONTAINER ID").count(), 2, "{text}");
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    r.assert_clean();
}

#[test]
fn top_lists_the_processes_in_the_pod() {
    require_runsc!();
    let r = Root::new();
    let id = r.run_detached(&[
        "--name",
        "tp",
        "busybox",
        "sh",
        "-c",
        "printf '#!/bin/sh\\nwhile :; do sleep 1; done\\n' > /marker-loop; chmod +x /marker-loop; /marker-loop & wait",
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let procs = loop {
        let t = json(&r.ok(&["top", "tp", "--format", "json"]));
        assert_eq!(t["id"], id.as_str());
        let p = t["processes"].as_array().unwrap().clone();
        if p.iter().any(|p| p["cmd"] == "marker-loop") {
            break p;
        }
        assert!(Instant::now() < deadline, "no marker-loop in {t}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let init = procs
        .iter()
        .find(|p| p["pid"] == 1)
        .expect("the pod's pid 1");
    assert_eq!(init["cmd"], "sh");
    let m = procs.iter().find(|p| p["cmd"] == "marker-loop").unwrap();
    assert_eq!(m["ppid"], 1, "started by the pod's sh: {m}");
    assert_eq!(m["uid"], "0");
    let table = r.ok(&["top", "tp"]);
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["UID", "PID", "PPID", "C", "STIME", "TIME", "CMD"]);
    assert!(table.lines().any(|l| l.ends_with("marker-loop")), "{table}");
    // Not running, not there: one line each, exit 2.
    r.ok(&["stop", "-t", "1", "tp"]);
    r.fails(&["top", "tp"], 2, "pod tp is exited; start it first");
    r.fails(&["top", "nope"], 2, "no such pod: \"nope\"");
    r.assert_clean();
}

#[test]
fn docker_top_and_stats_and_the_remote_cli_through_the_service() {
    require_docker!();
    let r = Root::new();
    let vol = r.path().join("vol");
    busy_pod(&r, &vol);
    r.ok(&[
        "exec",
        "busy",
        "dd",
        "if=/dev/zero",
        "of=/data/f",
        "bs=1M",
        "count=2",
        "conv=fsync",
    ]);
    let svc = Service::start(&r, 0);

    let top = svc.ok(&["top", "busy"]);
    let mut lines = top.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(head, ["UID", "PID", "PPID", "C", "STIME", "TIME", "CMD"]);
    assert!(lines.any(|l| l.ends_with(" sh")), "{top}");

    let fmt = "{{.Name}}|{{.MemUsage}}|{{.BlockIO}}|{{.PIDs}}|{{.CPUPerc}}";
    let out = svc.ok(&["stats", "--no-stream", "--format", fmt, "busy"]);
    let f: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(f[0], "busy", "{out}");
    assert!(f[1].ends_with("/ 64MiB"), "{out}");
    let (_, written) = f[2].split_once(" / ").unwrap();
    assert!(
        written.ends_with("MB") && written != "0B",
        "block I/O written: {out}"
    );
    assert!(f[3].parse::<u32>().unwrap() >= 1, "{out}");
    let cpu: f64 = f[4].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 10.0, "{out}");

    // gvpod --url: the same top and stats.
    let remote = |args: &[&str]| {
        let o = Command::new(common::BIN)
            .env("GVPOD_ROOT", "/nonexistent/gvpod-remote-client")
            .env("GVPOD_HOST", format!("unix://{}", svc.sock.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "remote {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let t = json(&remote(&["top", "busy", "--format", "json"]));
    assert!(
        t["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == 1),
        "{t}"
    );
    let rows = json(&remote(&[
        "stats",
        "--no-stream",
        "--format",
        "json",
        "busy",
    ]));
    let s = row_of(&rows, "busy");
    assert_eq!(s["memory_limit"], 64u64 << 20, "{s}");
    assert!(s["block_write_bytes"].as_u64().unwrap() >= 2 << 20, "{s}");
    drop(svc);
    r.assert_clean();
}
