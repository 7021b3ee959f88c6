//! Dev access routes (issue 11) with real clients: curl through a pod's own
//! route port and through `gvpod router`, to services that listen on the
//! pod's address and to services bound only to the pod's loopback (reached
//! through gvpod's relay under `runsc exec`), the pages for what is
//! missing, and the one-line refusals.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::route::{route_port, Router};
use common::{stderr, Root};

/// curl ARGS…: (status code, body).
fn curl(args: &[&str]) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-sS", "-m", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn via(port: u16, host: &str, path: &str) -> (u16, String) {
    curl(&[
        "-H",
        &format!("Host: {host}"),
        &format!("http://127.0.0.1:{port}{path}"),
    ])
}

/// A script for busybox: "address" on port 80 of every address, "loopback"
/// on 127.0.0.1:8000, and a CGI that prints the request's HTTP_ headers.
const SERVICES: &str = "mkdir -p /a /l/cgi-bin && echo address > /a/index.html && echo loopback > /l/index.html \
    && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nenv | grep ^HTTP_ | sort\\n' > /l/cgi-bin/h \
    && chmod +x /l/cgi-bin/h && (httpd -f -p 127.0.0.1:8000 -h /l &) ; exec httpd -f -p 80 -h /a";

/// Waits until `probe` answers 200 (services start a moment after the pod).
fn until_ok(what: &str, probe: impl Fn() -> (u16, String)) -> String {
    let t = Instant::now();
    loop {
        let (code, body) = probe();
        if code == 200 {
            return body;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{what}: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn routes_reach_address_and_loopback_services_through_both_entries() {
    require_runsc!();
    let r = Root::new();
    r.network("rt", false);
    r.run_detached(&[
        "--name",
        "web",
        "--network",
        "rt",
        "--route",
        "auto",
        "busybox",
        "sh",
        "-c",
        SERVICES,
    ]);
    // No network at all: only the pod's loopback path can reach it.
    r.run_detached(&[
        "--name",
        "solo",
        "--network",
        "none",
        "--route",
        "auto",
        "--route-default",
        "8000",
        "busybox",
        "sh",
        "-c",
        SERVICES,
    ]);
    let web = route_port(&r, "web");
    let solo = route_port(&r, "solo");
    assert!(
        (30000..=40000).contains(&web) && web != solo,
        "{web} {solo}"
    );
    assert!(r.ok(&["port", "solo"]).contains("(default port 8000)"));

    // The pod's own route port: any host is the default port (80), a
    // localhost-N host port N, also when it is bound to the pod's loopback.
    assert_eq!(
        until_ok("web default", || via(web, "x.test", "/")),
        "address\n"
    );
    assert_eq!(
        until_ok("web 8000", || via(
            web,
            "localhost-8000.pod-web.localhost",
            "/"
        )),
        "loopback\n"
    );
    assert_eq!(
        until_ok("solo default", || via(solo, "localhost", "/")),
        "loopback\n"
    );
    assert_eq!(
        via(solo, "localhost-80.anything", "/"),
        (200, "address\n".into())
    );
    // As a browser does it: the name resolves to loopback by itself.
    let host = format!("localhost-8000.pod-web.localhost:{web}");
    let (code, body) = curl(&[
        "--resolve",
        &format!("{host}:127.0.0.1"),
        &format!("http://{host}/"),
    ]);
    assert_eq!((code, body.as_str()), (200, "loopback\n"));

    // What the service sees: Host rewritten, the original forwarded.
    let (code, headers) = curl(&[
        "-H",
        &format!("Host: {host}"),
        "-H",
        "X-Forwarded-For: 198.18.200.1",
        &format!("http://127.0.0.1:{web}/cgi-bin/h"),
    ]);
    assert_eq!(code, 200, "{headers}");
    for want in [
        "HTTP_HOST=localhost:8000".to_string(),
        format!("HTTP_X_FORWARDED_HOST={host}"),
        "HTTP_X_FORWARDED_FOR=198.18.200.1, 127.0.0.1".into(),
        "HTTP_X_FORWARDED_PROTO=http".into(),
    ] {
        assert!(
            headers.lines().any(|l| l == want),
            "{want} not in:\n{headers}"
        );
    }

    // Nothing on the port: a page that says so.
    let (code, page) = via(web, "localhost-8009.x", "/");
    assert_eq!(code, 502, "{page}");
    assert!(
        page.contains("nothing listens on port 8009 of pod web"),
        "{page}"
    );
    let (code, page) = via(solo, "localhost-8009.x", "/");
    assert_eq!(code, 502, "{page}");
    assert!(
        page.contains("nothing listens on port 8009 of pod solo"),
        "{page}"
    );

    // The shared router: both host forms, by pod name.
    let router = Router::start(&r);
    let rp = router.port;
    assert_eq!(
        via(rp, &format!("localhost-8000.pod-web.localhost:{rp}"), "/"),
        (200, "loopback\n".into())
    );
    assert_eq!(via(rp, "80--web.localhost", "/"), (200, "address\n".into()));
    assert_eq!(
        via(rp, "80--solo.localhost", "/"),
        (200, "address\n".into())
    );
    let (code, page) = via(rp, "localhost-80.pod-nosuch.localhost", "/");
    assert_eq!(code, 404);
    assert!(page.contains("no pod named nosuch"), "{page}");
    let (code, page) = via(rp, "web.localhost", "/");
    assert_eq!(code, 404);
    assert!(page.contains("localhost-PORT.pod-NAME.localhost"), "{page}");

    // Listening ports, read inside the sandbox, with the URLs of both entries.
    let ports: serde_json::Value =
        serde_json::from_str(&r.ok(&["port", "web", "--listening", "--format", "json"])).unwrap();
    let find = |p: u64| {
        ports
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["port"] == p)
            .unwrap_or_else(|| panic!("no port {p} in {ports}"))
            .clone()
    };
    assert_eq!(find(8000)["address"], "127.0.0.1");
    let urls = find(8000)["urls"].to_string();
    assert!(
        urls.contains(&format!("http://localhost-8000.pod-web.localhost:{web}/")),
        "{urls}"
    );
    assert!(
        urls.contains(&format!("http://localhost-8000.pod-web.localhost:{rp}/")),
        "{urls}"
    );
    let table = r.ok(&["port", "solo", "--listening"]);
    assert!(
        table.starts_with("PORT") && table.contains("8000"),
        "{table}"
    );

    // A pod that stops: its route port closes, the router says why.
    r.ok(&["stop", "-t", "1", "web"]);
    let (code, page) = via(rp, "80--web.localhost", "/");
    assert_eq!(code, 502, "{page}");
    assert!(page.contains("pod web is exited"), "{page}");
    assert_eq!(
        via(web, "x", "/").0,
        0,
        "the route port still answers after stop"
    );
    // Started again, it routes again on the same port, no router restart.
    r.ok(&["start", "web"]);
    assert_eq!(until_ok("restarted", || via(web, "x", "/")), "address\n");
    assert_eq!(
        until_ok("router", || via(rp, "80--web.localhost", "/")),
        "address\n"
    );
    drop(router);
    r.ok(&["rm", "-f", "web", "solo"]);
    r.assert_clean();
}

#[test]
fn route_options_are_checked_with_one_line_and_make_nothing() {
    require_runsc!();
    let r = Root::new();
    let one_line = |args: &[&str], needle: &str| {
        let o = r.gvpod(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(needle), "{args:?}: {e}");
    };
    one_line(
        &["create", "--route", "bogus", "busybox"],
        "invalid --route \"bogus\"",
    );
    one_line(
        &["create", "--route", "1.2.3:80", "busybox"],
        "invalid --route",
    );
    one_line(
        &["create", "--name", "Web", "--route", "auto", "busybox"],
        "pod name \"Web\" cannot be used in routes",
    );
    one_line(
        &["create", "--route-default", "80", "busybox"],
        "--route-default 80 needs --route",
    );
    // A port another program holds, and one another pod holds.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = held.local_addr().unwrap().port().to_string();
    one_line(&["create", "--route", &p, "busybox"], &p);
    drop(held);
    r.ok(&["create", "--name", "first", "--route", &p, "busybox"]);
    one_line(
        &["create", "--name", "second", "--route", &p, "busybox"],
        "first",
    );
    let names: Vec<String> = r
        .ps_all()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["first"]);
    // The router's own refusals.
    one_line(
        &["router", "--listen", "nowhere"],
        "invalid router address \"nowhere\"",
    );
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    one_line(
        &["router", "--listen", &addr],
        &format!("cannot listen on {addr}"),
    );
    one_line(&["port", "first", "--listening"], "pod first is created");
    // The router also runs inside `gvpod system service --router`, which
    // then does not idle out (--time 1 would end it after a second).
    let sock = r.path().join("api.sock");
    let sock = format!("unix://{}", sock.display());
    let mut svc = Router::spawn(
        &r,
        &[
            "system",
            "service",
            "--time",
            "1",
            "--router",
            "127.0.0.1:0",
            &sock,
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    let (code, page) = via(svc.port, "localhost-80.pod-first.localhost", "/");
    assert_eq!(code, 502, "{page}");
    assert!(page.contains("pod first is created"), "{page}");
    assert!(svc.running(), "the service idled out");
    drop(svc);
    r.ok(&["rm", "first"]);
    r.assert_clean();
}
