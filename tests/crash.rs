//! Crash safety: gvpod or its monitor killed with SIGKILL at every step of
//! `run`, then `ps -a` must tell the truth and `rm -f` + `system gc` must
//! leave nothing of the pod on the host.

mod common;

use std::time::Duration;

use common::{stderr, Root};

/// Steps where `GVPOD_CRASH_AT` makes gvpod (or the monitor) SIGKILL itself,
/// with the status `ps -a` must report afterwards.
const STEPS: &[(&str, &[&str])] = &[
    ("create:inserted", &["created"]),
    ("create:mounted", &["created"]),
    ("net:recorded", &["created"]),
    ("net:attached", &["created"]),
    ("create:configured", &["created"]),
    ("start:spawned", &["running"]),
    ("monitor:before-runsc", &["created", "exited"]),
    ("monitor:started", &["running"]),
];

#[test]
fn sigkill_at_every_step_of_run_is_recoverable() {
    require_runsc!();
    let r = Root::new();
    for (step, statuses) in STEPS {
        let name = format!("crash-{}", step.replace(':', "-"));
        let o = r
            .cmd(&["run", "-d", "--name", &name, "busybox", "sleep", "60"])
            .env("GVPOD_CRASH_AT", step)
            .output()
            .unwrap();
        // Either the client itself was killed, or it reports that the monitor died.
        assert!(
            !o.status.success() || *step == "start:spawned" || *step == "monitor:started",
            "{step}: {o:?}"
        );
        // The pod is listed with a status that matches the host (a monitor
        // that outlived its client may still be starting the sandbox).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            let pods = r.ps_all();
            let p = pods
                .iter()
                .find(|p| p["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{step}: pod missing from ps -a: {pods:?}"));
            r.track(p["id"].as_str().unwrap());
            let status = p["status"].as_str().unwrap().to_string();
            if statuses.contains(&status.as_str()) || std::time::Instant::now() > deadline {
                break status;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            statuses.contains(&status.as_str()),
            "{step}: status {status}, expected one of {statuses:?}"
        );
        if status == "running" {
            // Really running: exec works.
            let o = r.gvpod(&["exec", &name, "true"]);
            assert_eq!(o.status.code(), Some(0), "{step}: {}", stderr(&o));
        }
        let o = r.gvpod(&["rm", "-f", &name]);
        assert!(o.status.success(), "{step}: rm -f: {}", stderr(&o));
        r.ok(&["system", "gc"]);
        let leaks = r.leaks_settled();
        assert!(leaks.is_empty(), "{step}: leaked {leaks:#?}");
    }
    // The monitor killed after the pod exited but before it recorded the exit.
    let o = r
        .cmd(&["run", "-d", "--name", "late", "busybox", "true"])
        .env("GVPOD_CRASH_AT", "monitor:exited")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    r.track(&id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = r.inspect("late");
        if v["status"] == "exited" {
            assert!(
                v["exit_code"].is_null(),
                "the exit code is unknown, not invented: {v}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pod never seen as exited: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    r.ok(&["rm", "late"]);
    r.assert_clean();
}

#[test]
fn killing_the_monitor_of_a_running_pod_leaves_it_removable() {
    require_runsc!();
    let r = Root::new();
    let id = r.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "60"]);
    r.track(id.trim());
    let mon = r.inspect("orphan")["monitor_pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The sandbox still runs: that is what ps must say.
    assert_eq!(r.inspect("orphan")["status"], "running");
    r.ok(&["rm", "-f", "orphan"]);
    assert!(r.ps_all().is_empty());
    r.assert_clean();
}

#[test]
fn gc_is_idempotent_and_spares_running_pods() {
    require_runsc!();
    let r = Root::new();
    let id = r.ok(&["run", "-d", "--name", "keep", "busybox", "sleep", "60"]);
    r.track(id.trim());
    // Leave an orphan behind: a crashed create with its row deleted by hand is
    // what gc exists for; simulate it with a crash after the mount.
    let _ = r
        .cmd(&["run", "-d", "--name", "junk", "busybox", "true"])
        .env("GVPOD_CRASH_AT", "create:mounted")
        .output()
        .unwrap();
    let junk = r.inspect("junk")["id"].as_str().unwrap().to_string();
    r.track(&junk);
    let db = rusqlite::Connection::open(r.path().join("gvpod.db")).unwrap();
    db.execute("DELETE FROM pods WHERE id=?1", [&junk]).unwrap();
    let rep: serde_json::Value =
        serde_json::from_str(&r.ok(&["system", "gc", "--format", "json"])).unwrap();
    assert!(rep["resources_released"].as_u64().unwrap() >= 2, "{rep}");
    assert!(!r.path().join("bundles").join(&junk).exists());
    let rep2: serde_json::Value =
        serde_json::from_str(&r.ok(&["system", "gc", "--format", "json"])).unwrap();
    assert_eq!(
        rep2["resources_released"], 0,
        "second gc finds nothing: {rep2}"
    );
    assert_eq!(rep2["mounts"].as_array().unwrap().len(), 0);
    // The running pod was not touched.
    assert_eq!(r.inspect("keep")["status"], "running");
    assert_eq!(r.gvpod(&["exec", "keep", "true"]).status.code(), Some(0));
    r.assert_clean();
}
