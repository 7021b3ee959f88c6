//! Many gvpod processes at once on one data root: no "database is locked",
//! distinct ids, every pod really running.

mod common;

use common::{stderr, Root};

#[test]
fn ten_detached_runs_at_once() {
    require_runsc!();
    let r = Root::new();
    let children: Vec<_> = (0..10)
        .map(|i| {
            r.cmd(&[
                "run",
                "-d",
                "--name",
                &format!("p{i}"),
                "busybox",
                "sleep",
                "60",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stderr(&o).contains("locked"));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        r.track(&id);
        ids.insert(id);
    }
    assert_eq!(ids.len(), 10, "ids must be distinct");
    let pods = r.ps_all();
    assert_eq!(pods.len(), 10);
    assert!(pods.iter().all(|p| p["status"] == "running"), "{pods:?}");
    // IPAM under contention: ten leases, ten different addresses.
    let ips: std::collections::BTreeSet<String> = pods
        .iter()
        .map(|p| {
            p["ip"]
                .as_str()
                .expect("every pod has an address")
                .to_string()
        })
        .collect();
    assert_eq!(ips.len(), 10, "addresses must be distinct: {ips:?}");
    // Removing them all at once is just as safe.
    let rms: Vec<_> = pods
        .iter()
        .map(|p| {
            r.cmd(&["rm", "-f", p["name"].as_str().unwrap()])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in rms {
        assert!(c.wait().unwrap().success());
    }
    assert!(r.ps_all().is_empty());
    r.assert_clean();
}

#[test]
fn ten_foreground_runs_at_once_all_get_their_own_output() {
    require_runsc!();
    let r = Root::new();
    let children: Vec<_> = (0..10)
        .map(|i| {
            r.cmd(&[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                &format!("echo pod-{i}; exit {i}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(i as i32), "{}", stderr(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("pod-{i}\n"));
    }
    assert!(r.ps_all().is_empty());
    r.assert_clean();
}
