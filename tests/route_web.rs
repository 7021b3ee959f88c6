//! Routes with the clients dev pods are used from (issue 11): headless
//! Chromium loading a page whose script talks over a WebSocket, a WebSocket
//! client that stays idle 75 s before it echoes, server-sent events that
//! must arrive one by one, a chunked upload, keep-alive. The service is
//! images/devbox's ws-echo bound to the pod's loopback only, so every byte
//! also crosses the loopback path (gvpod's relay under `runsc exec`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::route::{route_port, Router};
use common::{stderr, stdout, Root};

/// A pod running ws-echo on its loopback only, routed; its route port.
fn dev_pod(r: &Root) -> u16 {
    let image = r.load_devbox();
    r.network("rw", false);
    r.run_detached(&[
        "--name",
        "dev",
        "--network",
        "rw",
        "--route",
        "auto",
        image,
        "ws-echo",
        "--bind",
        "127.0.0.1",
    ]);
    r.wait_logs("dev", |l| l.contains("ws-echo: listening"));
    route_port(r, "dev")
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "-m", "30"])
        .args(args)
        .output()
        .unwrap()
}

/// The host's python3 with python3-websockets (not a pyenv one on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// Opens a WebSocket to ws-echo through `port` with Host `host`, echoes,
/// stays silent `idle` seconds, echoes again; prints "OK" when both came back.
fn ws_idle_client(port: u16, host: &str, idle: u64) -> Child {
    let script = format!(
        r#"
import asyncio, websockets
async def main():
    async with websockets.connect("ws://{host}/echo", host="127.0.0.1", port={port},
                                  ping_interval=None, close_timeout=5) as ws:
        await ws.send("before")
        assert await ws.recv() == "before"
        await asyncio.sleep({idle})
        await ws.send("after")
        assert await ws.recv() == "after"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
    print("OK")
asyncio.run(main())
"#
    );
    Command::new(PYTHON)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn websockets_idle_75s_sse_chunked_bodies_and_keep_alive_pass_through() {
    require_runsc!();
    let r = Root::new();
    let rp = dev_pod(&r);
    let router = Router::start(&r);
    let sp = router.port;
    // Idle WebSockets through both entries at once (75 s: past the 60 s
    // idle timeouts of common proxies).
    let idle = [
        ws_idle_client(rp, &format!("localhost-8765.pod-dev.localhost:{rp}"), 75),
        ws_idle_client(sp, &format!("localhost-8765.pod-dev.localhost:{sp}"), 75),
    ];

    // Keep-alive to the HTTP side: two requests on one connection, each
    // with the Host rewritten.
    let o = curl(&[
        "-v",
        "-H",
        "Host: localhost-8766.pod-dev.localhost",
        &format!("http://127.0.0.1:{rp}/host"),
        &format!("http://127.0.0.1:{rp}/host"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Re-using existing connection"),
        "{}",
        stderr(&o)
    );
    let first = stdout(&o)
        .split_inclusive('}')
        .next()
        .unwrap_or_default()
        .to_string();
    let h: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(h["Host"], "localhost:8766", "{h}");
    assert_eq!(
        h["X-Forwarded-Host"], "localhost-8766.pod-dev.localhost",
        "{h}"
    );
    assert_eq!(h["X-Forwarded-Proto"], "http", "{h}");

    // Server-sent events arrive one by one (5 events 300 ms apart), not
    // all at the end: the router never buffers a response.
    for (port, host) in [
        (rp, "localhost-8766.pod-dev.localhost".to_string()),
        (sp, "8766--dev.localhost".to_string()),
    ] {
        let mut c = Command::new("curl")
            .args(["-sSN", "-m", "30", "-H", &format!("Host: {host}")])
            .arg(format!("http://127.0.0.1:{port}/sse"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut at = vec![];
        for line in BufReader::new(c.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line.starts_with("data: ") {
                at.push((line, start.elapsed()));
            }
        }
        let _ = c.wait();
        let data: Vec<&str> = at.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            data,
            ["data: 1", "data: 2", "data: 3", "data: 4", "data: 5"],
            "{host}"
        );
        let spread = at[4].1 - at[0].1;
        assert!(
            spread >= Duration::from_millis(900),
            "{host}: events bunched: {at:?}"
        );
    }

    // A chunked upload of 200 KB comes back whole.
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("body");
    std::fs::write(&file, &body).unwrap();
    let o = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "30",
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Host: 8766--dev.localhost",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("http://127.0.0.1:{sp}/body"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout == body,
        "echoed {} bytes of {}",
        o.stdout.len(),
        body.len()
    );

    for c in idle {
        let o = c.wait_with_output().unwrap();
        assert_eq!(stdout(&o).trim(), "OK", "{}", stderr(&o));
    }
    drop(router);
    r.ok(&["rm", "-f", "dev"]);
    r.assert_clean();
}

/// Headless Chromium opens `url` (tests/chromium/cdp.py drives it over
/// the DevTools protocol, waiting in real time for the page's WebSocket
/// round trip) and saves a screenshot: `{"title", "result", "seconds"}`.
fn chromium(url: &str, screenshot: &std::path::Path) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/chromium/cdp.py");
    let o = Command::new(PYTHON)
        .arg(script)
        .arg(url)
        .arg(screenshot)
        .output()
        .expect("python3 for tests/chromium/cdp.py");
    assert!(o.status.success(), "chromium {url}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

#[test]
fn chromium_opens_a_page_and_its_websocket_through_both_entries() {
    require_runsc!();
    let r = Root::new();
    let rp = dev_pod(&r);
    let router = Router::start(&r);
    let sp = router.port;
    // Screenshots are kept with the build's outputs.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let release = common::runsc_info(&r)["runsc_version"]
        .as_str()
        .unwrap_or("runsc")
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    // Chromium resolves *.localhost to loopback by itself: no Host tricks.
    for (entry, url) in [
        (
            "route",
            format!("http://localhost-8765.pod-dev.localhost:{rp}/"),
        ),
        (
            "router",
            format!("http://localhost-8765.pod-dev.localhost:{sp}/"),
        ),
        (
            "router-one-label",
            format!("http://8765--dev.localhost:{sp}/"),
        ),
    ] {
        let shot = dir.join(format!("route-chromium-{entry}-{release}.png"));
        let _ = std::fs::remove_file(&shot);
        let page = chromium(&url, &shot);
        assert_eq!(page["title"], "echo ok", "{url}: {page}");
        assert!(
            page["result"]
                .as_str()
                .unwrap()
                .starts_with("echo ok: ping-"),
            "{url}: {page}"
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{}",
            shot.display()
        );
        eprintln!("{entry}: {page} screenshot {}", shot.display());
    }
    drop(router);
    r.ok(&["rm", "-f", "dev"]);
    r.assert_clean();
}
