//! dockerode (the npm client the dev-pod platform drives its pods with),
//! pinned by tests/dockerode/package-lock.json, running the platform's calls
//! unchanged against `gvpod system service` and the real runsc: see
//! tests/dockerode/devpod.js for what it checks.

mod common;

use std::process::Command;

use common::api::Service;
use common::{stderr, stdout, Root};

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_platforms_dockerode_client_drives_a_dev_pod() {
    require_runsc!();
    let Some(dir) = common::dockerode_dir() else {
        eprintln!("skipped: no node or dockerode");
        return;
    };
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let o = Command::new("node")
        .arg(dir.join("devpod.js"))
        .env("GVPOD_SOCKET", &svc.sock)
        .env("GVPOD_PORT", free_port().to_string())
        .output()
        .expect("run node");
    assert!(
        o.status.success(),
        "dockerode client failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let res: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(res["ok"], true);
    assert!(r.ps_all().is_empty(), "the client removed its pod");
    r.assert_clean();
}
