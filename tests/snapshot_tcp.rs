//! Issue 8 against the real runsc (whichever release `GVPOD_RUNSC` names;
//! scripts/test.sh runs this file under both): a checkpoint never loses a
//! pod, whatever its TCP connections, and snapshots stay with the runsc
//! release that took them.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::pods::{free_port, http_get, http_ok, last_count, status, wait_count, web};
use common::{stderr, Root};

/// The pod still runs, from the same memory (its count goes on, never
/// from 1 again), and still answers on its published port.
fn intact(r: &Root, pod: &str, port: u16, what: &str) {
    assert_eq!(status(r, pod), "running", "{what}: the pod stopped");
    let n = last_count(r, pod);
    assert!(wait_count(r, pod, n + 3) > n, "{what}");
    let ones = common::pods::counts(r, pod)
        .iter()
        .filter(|x| **x == 1)
        .count();
    // A pod's log starts at 1 once (a clone's log starts where it was).
    assert!(ones <= 1, "{what}: the pod started again");
    http_ok(&format!("127.0.0.1:{port}"));
}

#[test]
fn checkpoint_right_after_a_request_is_a_snapshot_or_a_refusal_that_keeps_the_pod() {
    require_runsc!();
    let r = Root::new();
    r.network("tcpnet", false);
    let port = web(&r, "web", "tcpnet");
    http_ok(&format!("127.0.0.1:{port}"));
    for round in 0..3 {
        // A request through the published port, answered and closed by
        // the pod a moment ago: its connection lingers in the sandbox.
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(http_get(addr).unwrap().contains("200 OK"));
        let snap = format!("s{round}");
        let o = r.gvpod(&["checkpoint", "--leave-running", "--name", &snap, "web"]);
        if o.status.success() {
            // This runsc resets what lingers: a snapshot, the pod serving on.
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), snap);
        } else {
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(err.contains("open TCP connection"), "{err}");
            assert!(r.ok(&["snapshot", "ls", "-q"]).lines().all(|l| l != snap));
        }
        intact(&r, "web", port, &format!("round {round}"));
        // Without --leave-running: the pod stops as checkpointed, or stays.
        assert!(http_get(addr).unwrap().contains("200 OK"));
        let snap = format!("t{round}");
        let o = r.gvpod(&["checkpoint", "--name", &snap, "web"]);
        if o.status.success() {
            assert_eq!(r.inspect("web")["checkpointed"], snap.as_str());
            r.ok(&["restore", &snap]);
            http_ok(&format!("127.0.0.1:{port}"));
        } else {
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        }
        intact(
            &r,
            "web",
            port,
            &format!("round {round}, no --leave-running"),
        );
    }
    r.ok(&["rm", "-f", "web"]);
    r.ok(&["network", "rm", "tcpnet"]);
    r.assert_clean();
}

#[test]
fn a_refused_checkpoint_then_a_leave_running_one_then_a_restore() {
    require_runsc!();
    let r = Root::new();
    r.network("tcpnet2", false);
    let port = web(&r, "held", "tcpnet2");
    http_ok(&format!("127.0.0.1:{port}"));
    // A client holds a connection open: a client would notice a reset.
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"GET /hostname HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    r.fails(
        &["checkpoint", "--leave-running", "--name", "x", "held"],
        2,
        "ESTABLISHED",
    );
    intact(&r, "held", port, "after the refusal");
    let caps = common::runsc_info(&r)["features"]["net_disconnect_ok"] == true;
    if caps {
        // This runsc can reset connections: asked to, it does.
        r.ok(&[
            "checkpoint",
            "--leave-running",
            "--tcp-close",
            "--name",
            "snap",
            "held",
        ]);
        let mut buf = [0u8; 64];
        use std::io::Read;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // The held connection was reset (or closed) by the save.
        let r2 = client.read(&mut buf);
        assert!(matches!(r2, Ok(0) | Err(_)), "still open: {r2:?}");
    } else {
        // It cannot: one line says so, and the pod is untouched.
        r.fails(
            &["checkpoint", "--tcp-close", "--name", "snap", "held"],
            2,
            "--net-disconnect-ok",
        );
        intact(&r, "held", port, "after --tcp-close was refused");
        drop(client);
        // Once the connection is gone (and no longer lingers), it saves.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let o = r.gvpod(&["checkpoint", "--leave-running", "--name", "snap", "held"]);
            if o.status.success() {
                break;
            }
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            assert!(Instant::now() < deadline, "never quiet: {}", stderr(&o));
            std::thread::sleep(Duration::from_secs(5));
        }
    }
    intact(&r, "held", port, "after the --leave-running checkpoint");
    // The snapshot as a clone next to it, on its own port, from the same memory.
    let p2 = free_port();
    let id = r
        .ok(&[
            "restore",
            "--name",
            "held2",
            "-p",
            &format!("127.0.0.1:{p2}:80"),
            "snap",
        ])
        .trim()
        .to_string();
    r.track(&id);
    wait_count(&r, "held2", 1);
    let first = common::pods::counts(&r, "held2")[0];
    assert!(first > 3, "the clone started from scratch ({first})");
    intact(&r, "held2", p2, "the clone");
    r.ok(&["rm", "-f", "held", "held2"]);
    r.ok(&["network", "rm", "tcpnet2"]);
    r.assert_clean();
}

#[test]
fn a_snapshot_of_one_runsc_release_is_refused_by_the_other() {
    require_runsc!();
    let Some(other) = common::other_runsc() else {
        assert!(
            !common::skips_forbidden(),
            "set GVPOD_RUNSC_OTHER to a second runsc release (scripts/test.sh does)"
        );
        eprintln!("skipped: needs GVPOD_RUNSC_OTHER");
        return;
    };
    let r = Root::new();
    let id = r
        .ok(&[
            "run",
            "-d",
            "--name",
            "c",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            common::pods::COUNTER,
        ])
        .trim()
        .to_string();
    r.track(&id);
    wait_count(&r, "c", 3);
    r.ok(&["checkpoint", "--leave-running", "--name", "mine", "c"]);
    let mine = common::runsc_info(&r)["runsc_version"]
        .as_str()
        .unwrap()
        .to_string();
    let with_other = |args: &[&str]| r.cmd(args).env("GVPOD_RUNSC", &other).output().unwrap();
    let info: serde_json::Value =
        serde_json::from_slice(&with_other(&["system", "info", "--format", "json"]).stdout)
            .unwrap();
    let other_version = info["runsc_version"].as_str().unwrap().to_string();
    assert_ne!(mine, other_version, "GVPOD_RUNSC_OTHER is the same release");
    assert_eq!(info["runsc_path"], other.as_str());
    // Refused before anything is made: one line naming both releases.
    let o = with_other(&["restore", "--name", "c2", "mine"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&mine) && err.contains(&other_version), "{err}");
    assert!(r.ps_all().iter().all(|p| p["name"] != "c2"));
    // The pod keeps the runsc that made it, whatever GVPOD_RUNSC says now.
    let o = with_other(&["ps", "-a", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(status(&r, "c"), "running");
    let o = with_other(&["rm", "-f", "c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    r.assert_clean();
}

/// A pod restored in place the moment its checkpoint returns gets its
/// published ports (TCP and UDP) and its route port back, while the
/// monitor of the checkpointed launch is still in its tail (held there
/// 3 s, well inside the 5 s `assert_clean` gives it to end): the monitor
/// closes them before it says it is done. Before, it
/// held them until its process ended, and such a restore failed once in
/// a soak with "host port … already in use".
#[test]
fn restore_in_place_at_once_gets_every_port_back() {
    require_runsc!();
    let r = Root::new();
    r.network("portnet", false);
    let (tcp, udp) = (free_port(), free_port());
    let o = r
        .cmd(&[
            "run",
            "-d",
            "--name",
            "ports",
            "--network",
            "portnet",
            "-p",
            &format!("127.0.0.1:{tcp}:80"),
            "-p",
            &format!("127.0.0.1:{udp}:53/udp"),
            "--route",
            "auto",
            "busybox",
            "sh",
            "-c",
            "httpd -p 80 -h /etc; sleep 600",
        ])
        .env("GVPOD_PAUSE_AT", "monitor:answered")
        .env("GVPOD_PAUSE_MS", "3000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    r.track(String::from_utf8_lossy(&o.stdout).trim());
    let route = common::route::route_port(&r, "ports");
    // No request before the checkpoint: nothing lingers for runsc to refuse.
    r.ok(&["checkpoint", "--name", "at-once", "ports"]);
    assert_eq!(
        r.monitors().len(),
        1,
        "the checkpointed launch's monitor should still be in its tail"
    );
    let o = r.gvpod(&["restore", "at-once"]);
    assert!(o.status.success(), "restore at once: {}", stderr(&o));
    http_ok(&format!("127.0.0.1:{tcp}"));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", route)).is_ok(),
        "route port {route} closed after the restore"
    );
    // The restored launch holds the UDP port again.
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", udp)).is_err(),
        "udp port {udp} not held after the restore"
    );
    r.ok(&["rm", "-f", "ports"]);
    r.ok(&["network", "rm", "portnet"]);
    r.assert_clean();
}
