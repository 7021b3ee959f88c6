//! Restart policies with the real runsc: the pod's monitor restarts a pod
//! whose sandbox was killed from outside, `on-failure:N` gives up after N
//! restarts, a stop or kill by the user (also during the back-off) is never
//! undone, `rm -f` during the back-off leaves nothing, `system boot` after a
//! simulated reboot starts what the policies say, and the docker CLI sets
//! and reads a policy through the API.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::api::Service;
use common::{stderr, Root};

/// Waits (30 s at most) until `inspect POD` satisfies `done`; returns it.
fn wait_for(
    r: &Root,
    pod: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = r.inspect(pod);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "pod {pod} never {what}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Pids of the host's processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&c).contains(needle).then_some(pid)
        })
        .filter(|p| *p != std::process::id() as i32)
        .collect()
}

fn pid_of(v: &serde_json::Value) -> i32 {
    v["pid"].as_i64().expect("a running pod has a pid") as i32
}

#[test]
fn a_sandbox_killed_from_outside_is_restarted_and_a_user_stop_is_not_undone() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&[
        "--name",
        "web",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ]);
    let v = r.inspect("web");
    assert_eq!(
        (v["restart_count"].as_u64(), v["status"].as_str()),
        (Some(0), Some("running"))
    );
    assert_eq!(v["config"]["restart"]["name"], "always", "{v}");
    let first = pid_of(&v);
    sigkill(first);
    let v = wait_for(&r, "web", "restarted", |v| {
        v["status"] == "running" && v["pid"].as_i64().is_some_and(|p| p as i32 != first)
    });
    assert_eq!(v["restart_count"], 1, "{v}");
    // Really running again, its network given back (DESIGN.md fact 4).
    let o = r.gvpod(&["exec", "web", "sh", "-c", "ip addr | grep 'inet 198.18.'"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        common::stdout(&o),
        stderr(&o)
    );

    // A stop by the user stays a stop.
    r.ok(&["stop", "-t", "1", "web"]);
    std::thread::sleep(Duration::from_millis(1500));
    let v = r.inspect("web");
    assert_eq!(
        (v["status"].as_str(), v["restart_count"].as_u64()),
        (Some("exited"), Some(1)),
        "{v}"
    );
    // A start by the user forgets the count; a kill by the user stays too.
    r.ok(&["start", "web"]);
    let v = wait_for(&r, "web", "started", |v| {
        v["status"] == "running" && v["pid"].is_i64()
    });
    assert_eq!(v["restart_count"], 0, "{v}");
    r.ok(&["kill", "web"]);
    let o = r.ok(&["wait", "web"]);
    assert_eq!(o.trim(), "137");
    std::thread::sleep(Duration::from_millis(1500));
    let v = r.inspect("web");
    assert_eq!(
        (v["status"].as_str(), v["restart_count"].as_u64()),
        (Some("exited"), Some(0)),
        "{v}"
    );
    r.ok(&["rm", "web"]);
    r.assert_clean();
}

#[test]
fn on_failure_gives_up_after_n_restarts_and_bad_policies_are_refused() {
    require_runsc!();
    let r = Root::new();
    r.fails(
        &["run", "--restart", "sometimes", "busybox", "true"],
        2,
        "\"sometimes\"",
    );
    r.fails(
        &["create", "--restart", "always:3", "busybox", "true"],
        2,
        "on-failure:N",
    );
    r.fails(
        &["run", "--rm", "--restart", "always", "busybox", "true"],
        2,
        "--rm",
    );
    assert!(r.ps_all().is_empty(), "a refused pod is not made");

    r.run_detached(&[
        "--name",
        "flaky",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; sleep 0.5; exit 3",
    ]);
    // `logs -f` follows the pod through its restarts and ends when it
    // stops for good.
    let t = Instant::now();
    assert_eq!(r.ok(&["logs", "-f", "flaky"]), "run\nrun\nrun\n");
    assert!(
        t.elapsed() > Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    // `wait` waits through the restarts for the pod to stop for good.
    let code = r.ok(&["wait", "flaky"]);
    assert_eq!(code.trim(), "3");
    let v = r.inspect("flaky");
    assert_eq!(
        (
            v["status"].as_str(),
            v["exit_code"].as_i64(),
            v["restart_count"].as_u64()
        ),
        (Some("exited"), Some(3), Some(2)),
        "{v}"
    );
    assert_eq!(
        r.ok(&["logs", "flaky"]),
        "run\nrun\nrun\n",
        "one launch and exactly 2 restarts"
    );
    // A clean exit is no failure.
    r.run_detached(&[
        "--name",
        "fine",
        "--network",
        "none",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    assert_eq!(r.ok(&["wait", "fine"]).trim(), "0");
    assert_eq!(r.inspect("fine")["restart_count"], 0);
    // Attached, the run ends with the first exit (as docker run's does),
    // and the pod's restarts go on without it.
    let o = r.gvpod(&[
        "run",
        "--name",
        "fg",
        "--network",
        "none",
        "--restart",
        "on-failure:1",
        "busybox",
        "sh",
        "-c",
        "echo fg; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(common::stdout(&o), "fg\n");
    r.track(r.inspect("fg")["id"].as_str().unwrap());
    assert_eq!(r.ok(&["wait", "fg"]).trim(), "5");
    assert_eq!(r.inspect("fg")["restart_count"], 1);
    r.assert_clean();
}

#[test]
fn stop_and_rm_f_during_the_back_off() {
    require_runsc!();
    let r = Root::new();
    for name in ["stopped", "removed"] {
        r.run_detached(&[
            "--name",
            name,
            "--network",
            "none",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ]);
    }
    // Five restarts in, the back-off is 1.6 s: each pod is caught in it.
    let in_back_off = |name: &str| {
        wait_for(&r, name, "in a long back-off", |v| {
            v["restarting"] == true && v["restart_count"].as_u64() >= Some(5)
        })
    };
    let v = in_back_off("stopped");
    assert_eq!(
        v["status"], "running",
        "a restarting pod counts as running: {v}"
    );
    let ps = r.ok(&["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.contains("Restarting (1) ") && l.ends_with(" stopped")),
        "{ps}"
    );
    // No exec between two launches (docker's "is restarting").
    r.fails(&["exec", "stopped", "true"], 2, "is restarting");
    let t = Instant::now();
    r.ok(&["stop", "stopped"]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    in_back_off("removed");
    let t = Instant::now();
    r.ok(&["rm", "-f", "removed"]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "rm -f took {:?}",
        t.elapsed()
    );
    let count = r.inspect("stopped")["restart_count"].clone();
    std::thread::sleep(Duration::from_millis(2000));
    let v = r.inspect("stopped");
    assert_eq!(
        (&v["status"], &v["restart_count"], &v["exit_code"]),
        (&"exited".into(), &count, &1.into()),
        "{v}"
    );
    assert_eq!(r.ps_all().len(), 1, "removed is gone");
    // Nothing of the removed pod is left; its monitor is gone too.
    let id = v["id"].as_str().unwrap().to_string();
    assert!(r.monitors().is_empty(), "{:?}", r.monitors());
    r.ok(&["rm", &id]);
    r.assert_clean();
}

/// What a host reboot takes: every process of the data root (monitors
/// first, so none restarts its pod; then sandboxes, gofers, runsc), runsc's
/// state under /run, the mounts (rootfs overlays, network namespaces, and
/// with them the pods' veths), the bridges and the firewall table.
fn simulate_reboot(r: &Root) {
    let root = std::fs::canonicalize(r.path()).unwrap();
    for pid in r.monitors() {
        sigkill(pid.parse().unwrap());
    }
    let runsc_root = r.run_dir().join("runsc");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = pids_with(&runsc_root.to_string_lossy());
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes survive SIGKILL: {left:?}"
        );
        left.into_iter().for_each(sigkill);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(r.run_dir()).unwrap();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&*root.to_string_lossy()))
        .collect();
    mounts.reverse();
    for m in &mounts {
        // A mount under one detached before it may be gone already.
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    let left = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !left.contains(&*root.to_string_lossy()),
        "mounts survive the reboot: {left}"
    );
    let nets: Vec<serde_json::Value> =
        serde_json::from_str(&r.ok(&["network", "ls", "--format", "json"])).unwrap();
    for n in nets {
        let bridge = n["bridge"].as_str().unwrap();
        let o = Command::new("ip")
            .args(["link", "del", bridge])
            .output()
            .unwrap();
        assert!(o.status.success(), "ip link del {bridge}: {}", stderr(&o));
    }
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", &common::table_name(&root)])
        .output();
}

#[test]
fn system_boot_starts_what_the_policies_say_after_a_reboot() {
    require_runsc!();
    let r = Root::new();
    let broken = r.run_detached(&[
        "--name",
        "broken",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ]);
    r.run_detached(&[
        "--name",
        "up",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ]);
    r.run_detached(&["--name", "plain", "busybox", "sleep", "600"]);
    r.run_detached(&[
        "--name",
        "held",
        "--network",
        "none",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "600",
    ]);
    r.ok(&["stop", "-t", "0", "held"]);
    simulate_reboot(&r);
    // One pod cannot start (its runsc configuration is lost): boot says
    // so and fails, and still starts the others.
    let config = r.path().join("bundles").join(&broken).join("config.json");
    std::fs::rename(&config, config.with_extension("away")).unwrap();
    let o = r.gvpod(&["system", "boot", "--format", "json"]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let line = |n: &str| {
        lines
            .iter()
            .find(|l| l["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {lines:?}"))
            .clone()
    };
    assert_eq!(
        (
            line("up")["action"].as_str(),
            line("up")["restart"].as_str()
        ),
        (Some("started"), Some("always"))
    );
    assert_eq!(line("plain")["action"], "left");
    assert_eq!(line("held")["action"], "left");
    assert_eq!(line("held")["reason"], "stopped by the user");
    assert_eq!(line("broken")["action"], "failed", "{lines:?}");
    assert!(
        line("broken")["reason"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 4, "one line per pod: {lines:?}");
    std::fs::rename(config.with_extension("away"), &config).unwrap();
    let v = r.inspect("up");
    assert_eq!(v["status"], "running", "{v}");
    let o = r.gvpod(&["exec", "up", "sh", "-c", "ip addr | grep 'inet 198.18.'"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the network is back: {}",
        stderr(&o)
    );
    let v = r.inspect("plain");
    assert_eq!(
        (v["status"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), None),
        "{v}"
    );
    assert_eq!(r.inspect("held")["status"], "exited");
    // The table form: a header and one line per pod; a second boot leaves
    // the running pod alone.
    let table = r.ok(&["system", "boot"]);
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("broken ") && l.ends_with("started")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("up ") && l.ends_with("left: already running")),
        "{table}"
    );
    r.assert_clean();
}

#[test]
fn the_docker_cli_sets_and_reads_a_restart_policy() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let id = svc.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "none",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "600",
    ]);
    r.track(id.trim());
    let fmt = "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.RestartCount}}";
    assert_eq!(
        svc.ok(&["inspect", "-f", fmt, "web"]).trim(),
        "unless-stopped 0 0"
    );
    let first = pid_of(&r.inspect("web"));
    sigkill(first);
    wait_for(&r, "web", "restarted", |v| {
        v["status"] == "running" && v["pid"].as_i64().is_some_and(|p| p as i32 != first)
    });
    assert_eq!(
        svc.ok(&["inspect", "-f", fmt, "web"]).trim(),
        "unless-stopped 0 1"
    );
    // docker stop stays a stop.
    svc.ok(&["stop", "-t", "1", "web"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        svc.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            "web"
        ])
        .trim(),
        "exited 1"
    );
    let o = svc.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "--name",
        "f",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    r.track(common::stdout(&o).trim());
    assert_eq!(svc.ok(&["wait", "f"]).trim(), "3");
    assert_eq!(
        svc.ok(&["inspect", "-f", fmt, "f"]).trim(),
        "on-failure 2 2"
    );
    // Attached, docker run ends with the first exit (its code, its output
    // once), and the pod's restarts go on.
    let o = svc.docker(&[
        "run",
        "--name",
        "att",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo once; exit 6",
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(common::stdout(&o), "once\n");
    let id = r.inspect("att")["id"].as_str().unwrap().to_string();
    r.track(&id);
    wait_for(&r, "att", "restarted", |v| {
        v["restart_count"].as_u64() >= Some(2)
    });
    svc.ok(&["rm", "-f", "att"]);
    // Refused as docker refuses them, before anything is made.
    let o = svc.docker(&[
        "run",
        "-d",
        "--rm",
        "--restart",
        "always",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    svc.ok(&["rm", "-f", "web", "f"]);
    drop(svc);
    r.assert_clean();
}

#[test]
fn a_checkpoint_is_no_exit_to_restart() {
    require_runsc!();
    let r = Root::new();
    r.run_detached(&[
        "--name",
        "saved",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ]);
    // Left running: the sandbox is stopped and restored in place on some
    // releases; either way no restart is counted.
    r.ok(&["checkpoint", "--leave-running", "--name", "live", "saved"]);
    let v = wait_for(&r, "saved", "running after its checkpoint", |v| {
        v["status"] == "running" && v["pid"].is_i64()
    });
    assert_eq!(v["restart_count"], 0, "{v}");
    assert_eq!(r.gvpod(&["exec", "saved", "true"]).status.code(), Some(0));
    // Checkpointed: stopped, and it stays so.
    r.ok(&["checkpoint", "--name", "snap", "saved"]);
    std::thread::sleep(Duration::from_millis(1500));
    let v = r.inspect("saved");
    assert_eq!(
        (
            v["status"].as_str(),
            v["checkpointed"].as_str(),
            v["restart_count"].as_u64()
        ),
        (Some("exited"), Some("snap"), Some(0)),
        "{v}"
    );
    // Restored, it keeps its policy: killed from outside, it runs again.
    r.ok(&["restore", "snap"]);
    let v = wait_for(&r, "saved", "restored", |v| {
        v["status"] == "running" && v["pid"].is_i64()
    });
    assert_eq!(v["config"]["restart"]["name"], "always", "{v}");
    let first = pid_of(&v);
    sigkill(first);
    let v = wait_for(&r, "saved", "restarted", |v| {
        v["status"] == "running" && v["pid"].as_i64().is_some_and(|p| p as i32 != first)
    });
    assert_eq!(v["restart_count"], 1, "{v}");
    r.ok(&["rm", "-f", "saved"]);
    r.assert_clean();
}
