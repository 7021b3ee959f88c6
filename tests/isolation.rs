//! What a pod cannot reach or see (issue 15 item 8), checked from inside
//! real sandboxes against the host's real state. tests/network.rs already
//! covers pods of other networks (both directions) and the host's loopback
//! services; this file covers the rest:
//!
//! - the host's other addresses (its bridge gateway, and an address of its
//!   own on an empty bridge made here) are closed to pods, for a service
//!   listening on every address, except on published ports;
//! - neither the state DB nor runsc's state is reachable: not through the
//!   pod's mounts (/proc/mounts inside names no host path), not by path,
//!   not through a volume with `..`;
//! - the pod's /proc is the sandbox's own: host processes (a marker process
//!   started here, this test's own pid) are invisible;
//! - `-v` sources that lead through a symlink (to / or elsewhere) are
//!   refused with one line naming the path; `..` in the text alone is
//!   resolved as written.
//!
//! Addresses: pod networks come from 198.18.0.0/16 (gvpod picks a /24 per
//! network); the host's extra address is 198.19.254.N/32. Traffic goes only
//! to the host's own addresses and the pods' namespaces.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{stderr, stdout, Root};

/// An empty bridge holding one host address (198.19.254.N/32; this kernel
/// may lack the dummy driver, and a local address needs no carrier); removed
/// on drop, even when the test fails.
struct HostAddr {
    link: String,
    ip: Ipv4Addr,
}

impl HostAddr {
    fn new() -> HostAddr {
        let n = std::process::id() % 250 + 1;
        let h = HostAddr {
            link: format!("gviso{n}"),
            ip: Ipv4Addr::new(198, 19, 254, n as u8),
        };
        let _ = Command::new("ip").args(["link", "del", &h.link]).output();
        for args in [
            vec!["link", "add", &h.link, "type", "bridge"],
            vec!["addr", "add", &format!("{}/32", h.ip), "dev", &h.link],
            vec!["link", "set", &h.link, "up"],
        ] {
            let o = Command::new("ip").args(&args).output().unwrap();
            assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
        }
        h
    }
}

impl Drop for HostAddr {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

/// A host process whose command line carries a unique marker; killed on drop.
struct Marker {
    child: Child,
    name: String,
}

impl Marker {
    fn new() -> Marker {
        let name = format!("gvpod-isolation-marker-{}", std::process::id());
        let child = Command::new("sleep")
            .arg0(&name)
            .arg("120")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Marker { child, name }
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP service on every host address that counts the connections it
/// accepts and closes each at once (so a client sees EOF and ends); stopped
/// on drop.
struct HostService {
    port: u16,
    seen: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostService {
    fn new() -> HostService {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        s.fetch_add(1, Ordering::SeqCst);
                        drop(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HostService {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Drop for HostService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `gvpod exec POD sh -c SCRIPT`: (exit code, stdout + stderr).
fn exec_sh(r: &Root, pod: &str, script: &str) -> (Option<i32>, String) {
    let o = r.gvpod(&["exec", pod, "sh", "-c", script]);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

/// A TCP connection from the pod to `ip:port`, 3 s at most: whether it
/// was made (busybox nc; 3 s is far above a local connect's time).
fn pod_connects(r: &Root, pod: &str, ip: Ipv4Addr, port: u16) -> bool {
    let (code, _) = exec_sh(
        r,
        pod,
        &format!("echo x | timeout 3 nc {ip} {port} >/dev/null 2>&1"),
    );
    code == Some(0)
}

#[test]
fn host_addresses_are_closed_to_pods_except_published_ports() {
    require_runsc!();
    let r = Root::new();
    let host = HostAddr::new();
    let net = r.network("iso", false);
    let gw: Ipv4Addr = net["gateway"].as_str().unwrap().parse().unwrap();
    // A host service on every address (as sshd usually is).
    let svc = HostService::new();
    let svc_port = svc.port;
    // A pod publishing its port 80 on every host address.
    r.run_detached(&[
        "--name",
        "web",
        "--network",
        "iso",
        "-p",
        "80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let line = r.ok(&["port", "web"]);
    let published: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    r.run_detached(&[
        "--name",
        "client",
        "--network",
        "iso",
        "busybox",
        "sleep",
        "600",
    ]);

    // The service answers the host itself on both addresses.
    for ip in [gw, host.ip] {
        std::net::TcpStream::connect((ip, svc_port)).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while svc.seen() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the host service is deaf"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let from_host = svc.seen();
    // Published ports answer on every host address, the pod's own gateway
    // and the dummy address included (so the checks below can fail).
    for ip in [gw, host.ip] {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !pod_connects(&r, "client", ip, published) {
            assert!(
                std::time::Instant::now() < deadline,
                "the published port {ip}:{published} is closed to the pod"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The host's own service is not reachable on any of its addresses.
    for ip in [gw, host.ip] {
        assert!(
            !pod_connects(&r, "client", ip, svc_port),
            "the pod reached the host service on {ip}:{svc_port}"
        );
    }
    assert_eq!(
        svc.seen(),
        from_host,
        "the host service saw a pod's connection"
    );
    drop(host);
    r.assert_clean();
}

#[test]
fn pods_see_neither_host_state_nor_host_processes() {
    require_runsc!();
    let r = Root::new();
    let marker = Marker::new();
    // A volume, with a secret beside it (where `..` from the volume leads on the host).
    let outer = tempfile::Builder::new()
        .prefix("gvpod-iso-")
        .tempdir()
        .unwrap();
    let vol = outer.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("inside"), "inside\n").unwrap();
    std::fs::write(outer.path().join("secret"), "host secret\n").unwrap();
    r.run_detached(&[
        "--name",
        "p",
        "-v",
        &format!("{}:/data", vol.display()),
        "busybox",
        "sleep",
        "600",
    ]);
    let root = std::fs::canonicalize(r.path()).unwrap();
    let root_s = root.display().to_string();

    // Mounts: none names a host path; the volume is there and works.
    let (code, mounts) = exec_sh(&r, "p", "cat /proc/mounts");
    assert_eq!(code, Some(0), "{mounts}");
    assert!(mounts.contains(" /data "), "{mounts}");
    for host_path in [root_s.as_str(), "/run/gvpod", "gvpod.db", "/var/lib/gvpod"] {
        assert!(
            !mounts.contains(host_path),
            "{host_path} in the pod's mounts: {mounts}"
        );
    }
    let outer_s = outer.path().display().to_string();
    assert!(!mounts.contains(&outer_s), "{mounts}");
    assert_eq!(exec_sh(&r, "p", "cat /data/inside").1, "inside\n");

    // The state DB, runsc's state and the volume's neighbours: not by path.
    for path in [
        format!("{root_s}/gvpod.db"),
        r.run_dir().display().to_string(),
        "/run/gvpod".to_string(),
        "/data/../secret".to_string(),
        format!("{outer_s}/secret"),
        format!("/proc/1/root{root_s}/gvpod.db"),
    ] {
        let (code, out) = exec_sh(&r, "p", &format!("ls -d '{path}' || cat '{path}'"));
        assert_ne!(code, Some(0), "the pod reached {path}: {out}");
        assert!(!out.contains("host secret"), "{path}: {out}");
    }
    assert!(root.join("gvpod.db").exists() && r.run_dir().exists());

    // /proc is the sandbox's: the marker and this test are not in it.
    let (code, procs) = exec_sh(
        &r,
        "p",
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done",
    );
    assert_eq!(code, Some(0), "{procs}");
    assert!(procs.contains("sleep 600"), "{procs}");
    assert!(
        !procs.contains(&marker.name),
        "host process visible: {procs}"
    );
    let (code, out) = exec_sh(&r, "p", &format!("cat /proc/{}/cmdline", marker.child.id()));
    assert!(code != Some(0) || !out.contains(&marker.name), "{out}");
    let (code, out) = exec_sh(
        &r,
        "p",
        &format!("cat /proc/{}/cmdline", std::process::id()),
    );
    assert!(code != Some(0) || !out.contains("isolation"), "{out}");
    drop(marker);
    r.assert_clean();
}

#[test]
fn volume_sources_through_symlinks_are_refused() {
    require_runsc!();
    let r = Root::new();
    let d = tempfile::Builder::new()
        .prefix("gvpod-iso-")
        .tempdir()
        .unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir(base.join("real")).unwrap();
    std::fs::write(base.join("real/f"), "real\n").unwrap();
    std::os::unix::fs::symlink("/", base.join("to-root")).unwrap();
    std::os::unix::fs::symlink(base.join("real"), base.join("to-real")).unwrap();
    let b = base.display();
    for host in [
        format!("{b}/to-root"),
        format!("{b}/to-root/etc"),
        format!("{b}/to-real"),
        format!("{b}/to-root/.."),
    ] {
        let v = format!("{host}:/data");
        r.fails(&["run", "--rm", "-v", &v, "busybox", "true"], 2, &host);
        r.fails(
            &["create", "--name", "c", "-v", &v, "busybox"],
            2,
            "symlink",
        );
    }
    assert!(r.ps_all().is_empty(), "a refused pod was registered");
    // `..` that the text alone resolves mounts what it names.
    let v = format!("{b}/real/../real:/data:ro");
    assert_eq!(
        r.ok(&["run", "--rm", "-v", &v, "busybox", "cat", "/data/f"]),
        "real\n"
    );
    r.assert_clean();
}
