//! Pod networking against the real kernel and runsc: published ports,
//! pod-to-pod by name, isolation between networks, egress through NAT to an
//! "outside" host, --internal, port conflicts, subnet exhaustion, fixed
//! addresses, restarts (runsc strips addresses, DESIGN.md fact 4) and
//! cleanup checked on the host.
//!
//! Addresses: pods live on networks gvpod picks from 198.18.0.0/16 (one /24
//! per network, so tests running in parallel never share a bridge or a
//! subnet); "outside" hosts are network namespaces made here at
//! 198.19.N.0/24. Traffic goes only to loopback and to these namespaces.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{stderr, stdout, Root};

/// An "outside" host: its own network namespace joined to the host by a
/// veth pair, host side 198.19.N.1/24, outside side 198.19.N.2/24. Removed
/// on drop, even when the test fails.
struct Outside {
    ns: String,
    veth: String,
    host_ip: Ipv4Addr,
    ip: Ipv4Addr,
}

fn sh(cmd: &[&str]) -> bool {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Outside {
    fn new() -> Outside {
        static N: AtomicU32 = AtomicU32::new(0);
        for _ in 0..50 {
            let n = (std::process::id() + N.fetch_add(1, Ordering::SeqCst) * 7) % 250 + 1;
            let (ns, veth) = (format!("gvt-out-{n}"), format!("gvto{n}"));
            if !sh(&["ip", "netns", "add", &ns]) {
                continue;
            }
            let o = Outside {
                ns,
                veth,
                host_ip: Ipv4Addr::new(198, 19, n as u8, 1),
                ip: Ipv4Addr::new(198, 19, n as u8, 2),
            };
            let peer = format!("{}p", o.veth);
            let ok = sh(&[
                "ip", "link", "add", &o.veth, "type", "veth", "peer", "name", &peer, "netns", &o.ns,
            ]) && sh(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", o.host_ip),
                "dev",
                &o.veth,
            ]) && sh(&["ip", "link", "set", &o.veth, "up"])
                && sh(&[
                    "ip",
                    "-n",
                    &o.ns,
                    "addr",
                    "add",
                    &format!("{}/24", o.ip),
                    "dev",
                    &peer,
                ])
                && sh(&["ip", "-n", &o.ns, "link", "set", &peer, "up"])
                && sh(&["ip", "-n", &o.ns, "link", "set", "lo", "up"])
                && sh(&[
                    "ip",
                    "-n",
                    &o.ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &o.host_ip.to_string(),
                ]);
            if ok {
                return o;
            }
        }
        panic!("could not build an outside namespace");
    }

    /// Runs `f` on a thread inside the outside namespace.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.veth]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// A one-shot HTTP exchange: GET / and the whole answer.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /hostname HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Retries `http_get` while the pod's server starts.
fn http_get_retry(addr: SocketAddr) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(addr) {
            Ok(s) if s.contains("200 OK") => return s,
            r => {
                assert!(std::time::Instant::now() < deadline, "GET {addr}: {r:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A pod serving /etc over HTTP on port 80 (busybox httpd).
fn httpd(r: &Root, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    r.run_detached(&args)
}

/// `wget` from a throw-away pod; returns (exit code, output). (busybox
/// wget's own -T crashes under gVisor 20221219, hence `timeout`.)
fn wget_from_pod(r: &Root, network: &str, url: &str) -> (Option<i32>, String) {
    let o = r.gvpod(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "timeout",
        "5",
        "wget",
        "-q",
        "-O",
        "-",
        url,
    ]);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

/// Retries a check that must succeed while a just-started server comes up.
fn eventually(what: &str, mut f: impl FnMut() -> (Option<i32>, String)) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (code, out) = f();
        if code == Some(0) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {code:?} {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host port of a `gvpod port` line (`80/tcp -> 0.0.0.0:PORT`).
fn host_port_of(port_line: &str) -> u16 {
    port_line
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("gvpod port: {port_line:?}"))
}

fn ip_of(r: &Root, pod: &str) -> Ipv4Addr {
    r.inspect(pod)["ip"].as_str().unwrap().parse().unwrap()
}

#[test]
fn published_port_from_loopback_other_namespaces_and_other_pods() {
    require_runsc!();
    let r = Root::new();
    let net = r.network("pub", false);
    let gw: Ipv4Addr = net["gateway"].as_str().unwrap().parse().unwrap();
    httpd(
        &r,
        "web",
        &["--network", "pub", "-p", "80", "--hostname", "webhost"],
    );
    let port_line = r.ok(&["port", "web"]);
    let host_port = host_port_of(&port_line);
    assert!(port_line.starts_with("80/tcp -> 0.0.0.0:"), "{port_line}");
    assert_eq!(r.inspect("web")["ports"][0], port_line.trim());

    let id = r.inspect("web")["id"].as_str().unwrap().to_string();
    let aliases = link_aliases();
    assert!(
        aliases.iter().any(|a| a.ends_with(&format!("pod={id}"))),
        "{aliases:?}"
    );
    assert!(
        aliases.iter().any(|a| a.ends_with(" net=pub")),
        "{aliases:?}"
    );

    // The host port is a real listening socket: nobody else can take it.
    assert!(TcpListener::bind(("0.0.0.0", host_port)).is_err());

    // From 127.0.0.1.
    let body = http_get_retry(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)));
    assert!(body.contains("webhost"), "{body}");

    // From another network namespace, through the host's address there.
    let out = Outside::new();
    let target = SocketAddr::from((out.host_ip, host_port));
    let body = out.run(move || http_get(target)).join().unwrap().unwrap();
    assert!(body.contains("webhost"), "{body}");

    // From another pod on the same network (hairpin through the gateway)
    // and from a pod on another network, both through the host.
    let body = eventually("hairpin", || {
        wget_from_pod(&r, "pub", &format!("http://{gw}:{host_port}/hostname"))
    });
    assert!(body.contains("webhost"), "{body}");
    r.network("other", false);
    eventually("from another network", || {
        wget_from_pod(&r, "other", &format!("http://{gw}:{host_port}/hostname"))
    });

    drop(out);
    r.assert_clean();
}

/// A pod made while its network is still being made waits for the whole
/// network. Its set-up skips the network when the bridge exists and puts
/// its published port straight into the firewall's maps, so the bridge is
/// made last (`net::ensure_network`). `network create` is held between the
/// firewall and the bridge for 1.5 s; a `run -p` on that network meanwhile
/// succeeds and serves on its port. (With the bridge made first, 20
/// concurrent `run -p` on a new root failed now and then: "nft rejected
/// the ruleset: … No such file or directory".)
#[test]
fn a_pod_made_while_its_network_is_made_gets_its_published_port() {
    require_runsc!();
    let r = Root::new();
    let create = r
        .cmd(&["network", "create", "half"])
        .env("GVPOD_PAUSE_AT", "network-create:firewalled")
        .env("GVPOD_PAUSE_MS", "1500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The row is recorded first: once it is listed, the creator is at work.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !r.ok(&["network", "ls", "-q"]).lines().any(|l| l == "half") {
        assert!(std::time::Instant::now() < deadline, "network never listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    httpd(
        &r,
        "web",
        &["--network", "half", "-p", "80", "--hostname", "halfweb"],
    );
    let o = create.wait_with_output().unwrap();
    assert!(o.status.success(), "network create: {}", stderr(&o));
    let host_port = host_port_of(&r.ok(&["port", "web"]));
    let body = http_get_retry(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)));
    assert!(body.contains("halfweb"), "{body}");
    r.assert_clean();
}

#[test]
fn pods_reach_each_other_by_name_and_networks_are_isolated() {
    require_runsc!();
    let r = Root::new();
    r.network("neta", false);
    r.network("netb", false);
    httpd(&r, "a1", &["--network", "neta"]);
    httpd(&r, "b1", &["--network", "netb"]);
    let (a1, b1) = (ip_of(&r, "a1"), ip_of(&r, "b1"));
    // Same network: by name and by address.
    eventually("a1 by name", || {
        wget_from_pod(&r, "neta", "http://a1/hostname")
    });
    eventually("a1 by address", || {
        wget_from_pod(&r, "neta", &format!("http://{a1}/hostname"))
    });
    eventually("b1 from its own network", || {
        wget_from_pod(&r, "netb", &format!("http://{b1}/hostname"))
    });
    // A pod created earlier learns the names of later ones.
    httpd(&r, "a2", &["--network", "neta"]);
    eventually("a2 by name from a1", || {
        let o = r.gvpod(&[
            "exec",
            "a1",
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            "http://a2/hostname",
        ]);
        (o.status.code(), stderr(&o))
    });
    // Across networks: nothing, in both directions.
    let (code, body) = wget_from_pod(&r, "neta", &format!("http://{b1}/hostname"));
    assert_ne!(code, Some(0), "neta reached netb: {body}");
    let (code, body) = wget_from_pod(&r, "netb", &format!("http://{a1}/hostname"));
    assert_ne!(code, Some(0), "netb reached neta: {body}");
    let o = r.gvpod(&[
        "exec",
        "b1",
        "timeout",
        "5",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{a1}/"),
    ]);
    assert_ne!(o.status.code(), Some(0));
    // A network in use cannot be removed.
    r.fails(&["network", "rm", "neta"], 2, "a1");
    r.assert_clean();
}

#[test]
fn egress_is_masqueraded_and_internal_networks_have_none() {
    require_runsc!();
    let r = Root::new();
    let out = Outside::new();
    let listen = SocketAddr::from((out.ip, 8080));
    // The outside host answers with the address it saw.
    let server = out.run(move || {
        let l = TcpListener::bind(listen).unwrap();
        l.set_nonblocking(false).unwrap();
        let (mut c, peer) = l.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = c.read(&mut buf);
        let body = format!("{}", peer.ip());
        let _ = c.write_all(
            format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        peer.ip()
    });
    r.network("egress", false);
    let body = eventually("egress", || {
        wget_from_pod(&r, "egress", &format!("http://{listen}/"))
    });
    let seen = server.join().unwrap();
    assert_eq!(
        seen.to_string(),
        out.host_ip.to_string(),
        "the outside host sees the host, not the pod"
    );
    assert_eq!(body.trim(), out.host_ip.to_string());

    // --internal: no way out.
    r.network("sealed", true);
    let (code, body) = wget_from_pod(&r, "sealed", &format!("http://{}:8080/", out.ip));
    assert_ne!(code, Some(0), "internal network reached outside: {body}");
    drop(out);
    r.assert_clean();
}

#[test]
fn no_pod_reaches_host_loopback_services() {
    require_runsc!();
    let r = Root::new();
    let net = r.network("lo", false);
    let gw = net["gateway"].as_str().unwrap().to_string();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    for url in [
        format!("http://{gw}:{port}/"),
        format!("http://127.0.0.1:{port}/"),
    ] {
        let (code, body) = wget_from_pod(&r, "lo", &url);
        assert_ne!(code, Some(0), "{url}: {body}");
    }
    assert!(l.accept().is_err(), "the loopback service saw a connection");
    r.assert_clean();
}

#[test]
fn port_conflicts_are_refused_before_the_pod_starts() {
    require_runsc!();
    let r = Root::new();
    r.network("ports", false);
    // Taken by another program on the host.
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = l.local_addr().unwrap().port();
    let o = r.gvpod(&[
        "run",
        "-d",
        "--network",
        "ports",
        "--name",
        "x",
        "-p",
        &format!("{taken}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{taken}/tcp")),
        "{}",
        stderr(&o)
    );
    assert!(r.ps_all().is_empty(), "no pod was left behind");
    drop(l);
    // Taken by another pod (created, not even started).
    let free = TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    r.ok(&[
        "create",
        "--network",
        "ports",
        "--name",
        "first",
        "-p",
        &format!("127.0.0.1:{free}:80"),
        "busybox",
        "true",
    ]);
    let o = r.gvpod(&[
        "run",
        "-d",
        "--network",
        "ports",
        "--name",
        "second",
        "-p",
        &format!("{free}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("first"), "{}", stderr(&o));
    // UDP on the same number is another port.
    r.ok(&[
        "create",
        "--network",
        "ports",
        "--name",
        "udp",
        "-p",
        &format!("{free}:53/udp"),
        "busybox",
        "true",
    ]);
    // Twice in one command; bad specs.
    let o = r.gvpod(&[
        "create",
        "--network",
        "ports",
        "-p",
        "7000:80",
        "-p",
        "7000:81",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let create = |args: &[&str], needle: &str| {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "true"]);
        r.fails(&a, 2, needle);
    };
    create(&["--network", "ports", "-p", "99999:80"], "\"99999:80\"");
    create(&["--network", "none", "-p", "8080:80"], "none");
    r.assert_clean();
}

#[test]
fn subnet_exhaustion_fixed_addresses_and_bad_networks() {
    require_runsc!();
    let r = Root::new();
    // A /30 has one address besides the gateway; retry where another test's /24 sits.
    let mut subnet = String::new();
    for n in 0..40u32 {
        let third = 250 - (std::process::id() + n * 3) % 120;
        subnet = format!("198.18.{third}.0/30");
        let o = r.gvpod(&["network", "create", "--subnet", &subnet, "tiny"]);
        if o.status.success() {
            break;
        }
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        subnet.clear();
    }
    assert!(!subnet.is_empty(), "no free /30 found");
    let base = subnet.trim_end_matches(".0/30");
    r.ok(&[
        "create",
        "--network",
        "tiny",
        "--name",
        "t1",
        "busybox",
        "true",
    ]);
    assert_eq!(r.inspect("t1")["ip"], format!("{base}.2"));
    let create = |args: &[&str], needle: &str| {
        let mut a = vec!["create", "--network", "tiny"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "true"]);
        r.fails(&a, 2, needle);
    };
    create(&["--name", "t2"], "network tiny is full");
    r.ok(&["rm", "t1"]);
    // --ip: a fixed address, refused when taken or outside.
    r.ok(&[
        "create",
        "--network",
        "tiny",
        "--ip",
        &format!("{base}.2"),
        "--name",
        "t3",
        "busybox",
        "true",
    ]);
    create(&["--ip", &format!("{base}.2")], "taken by pod t3");
    create(&["--ip", "198.19.0.5"], "198.19.0.5");
    // Networks: overlap, bad subnet, unknown.
    r.fails(
        &["network", "create", "--subnet", &subnet, "again"],
        2,
        &subnet,
    );
    r.fails(
        &["network", "create", "--subnet", "198.18.0.1/24", "hostbits"],
        2,
        "198.18.0.0/24",
    );
    r.fails(
        &["run", "--rm", "--network", "nosuch", "busybox", "true"],
        2,
        "nosuch",
    );
    let ls: Vec<serde_json::Value> =
        serde_json::from_str(&r.ok(&["network", "ls", "--format", "json"])).unwrap();
    assert!(
        ls.iter()
            .any(|n| n["name"] == "tiny" && n["pods"][0]["name"] == "t3"),
        "{ls:?}"
    );
    r.assert_clean();
}

#[test]
fn restart_readdresses_the_pod_and_files_are_set() {
    require_runsc!();
    let r = Root::new();
    r.network("rs", false);
    httpd(
        &r,
        "srv",
        &[
            "--network",
            "rs",
            "--dns",
            "198.18.255.53",
            "--add-host",
            "db.example:198.18.255.7",
        ],
    );
    let ip = ip_of(&r, "srv");
    eventually("before restart", || {
        wget_from_pod(&r, "rs", &format!("http://{ip}/hostname"))
    });
    r.ok(&["stop", "-t", "1", "srv"]);
    r.ok(&["start", "srv"]);
    assert_eq!(ip_of(&r, "srv"), ip, "the lease is kept across restarts");
    eventually("after restart", || {
        wget_from_pod(&r, "rs", &format!("http://{ip}/hostname"))
    });
    let o = r.gvpod(&["exec", "srv", "cat", "/etc/resolv.conf", "/etc/hosts"]);
    let files = stdout(&o);
    assert!(files.contains("nameserver 198.18.255.53"), "{files}");
    assert!(files.contains("198.18.255.7\tdb.example"), "{files}");
    assert!(files.contains(&format!("{ip}\t")), "{files}");
    // --network none still means loopback only.
    let o = r.gvpod(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net 2>/dev/null; ip addr",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("eth0"), "{}", stdout(&o));
    r.assert_clean();
}

#[test]
fn sigkill_during_network_setup_is_recoverable() {
    require_runsc!();
    let r = Root::new();
    r.network("crash", false);
    for step in ["net:recorded", "net:attached"] {
        let o = r
            .cmd(&[
                "run",
                "-d",
                "--network",
                "crash",
                "-p",
                "80",
                "--name",
                "c",
                "busybox",
                "true",
            ])
            .env("GVPOD_CRASH_AT", step)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{step}");
        r.track(r.inspect("c")["id"].as_str().unwrap());
        r.ok(&["rm", "-f", "c"]);
        r.ok(&["system", "gc"]);
        let leaks = r.leaks_settled();
        assert!(leaks.is_empty(), "{step}: {leaks:#?}");
    }
    // Orphans whose pod row vanished are found on the host by gc.
    let _ = r
        .cmd(&[
            "run",
            "-d",
            "--network",
            "crash",
            "--name",
            "lost",
            "busybox",
            "true",
        ])
        .env("GVPOD_CRASH_AT", "net:attached")
        .output()
        .unwrap();
    let id = r.inspect("lost")["id"].as_str().unwrap().to_string();
    r.track(&id);
    let db = rusqlite::Connection::open(r.path().join("gvpod.db")).unwrap();
    db.execute("DELETE FROM pod_resources WHERE pod_id=?1", [&id])
        .unwrap();
    db.execute("DELETE FROM pods WHERE id=?1", [&id]).unwrap();
    let rep: serde_json::Value =
        serde_json::from_str(&r.ok(&["system", "gc", "--format", "json"])).unwrap();
    assert!(!rep["network"].as_array().unwrap().is_empty(), "{rep}");
    // A network whose row vanished: its bridge is found by its alias, its
    // rules by their comment.
    r.network("ghost", false);
    db.execute("DELETE FROM networks WHERE name='ghost'", [])
        .unwrap();
    let rep: serde_json::Value =
        serde_json::from_str(&r.ok(&["system", "gc", "--format", "json"])).unwrap();
    let found = rep["network"].to_string();
    assert!(
        found.contains("link gvbr-") && found.contains("net:ghost"),
        "{rep}"
    );
    r.assert_clean();
}

/// The host links of a pod carry gvpod's mark (what gc and the leak check
/// look for), so a clean leak check is not vacuous.
fn link_aliases() -> Vec<String> {
    let o = Command::new("ip")
        .args(["-d", "-j", "link", "show"])
        .output()
        .unwrap();
    let links: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    links
        .iter()
        .filter_map(|l| l["ifalias"].as_str().map(str::to_string))
        .collect()
}
