//! The dev-access test image (images/devbox, `common::devbox_image()`) end
//! to end, with real clients on the host: ws-echo's page, WebSocket echo,
//! header echo, server-sent events, chunked bodies and keep-alive, straight
//! to a pod on a 198.18.x.0/24 test network; `--bind 127.0.0.1` keeps them
//! inside the pod; sshd and sudo are there and no ssh host key ships.
//!
//! The image is built once per machine and cached (see
//! `common::devbox_image`); the first run needs a Debian mirror.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{stderr, stdout, Root};

/// The host's Debian python3 (python3-websockets is a Debian package; a
/// python3 earlier on PATH, such as pyenv's, would not have it).
const PYTHON: &str = "/usr/bin/python3";

fn curl(args: &[&str]) -> Output {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(o.status.success(), "curl {args:?}: {}", stderr(&o));
    o
}

/// Starts `ws-echo ARGS` in a pod named NAME and waits until it listens.
fn ws_echo(r: &Root, name: &str, opts: &[&str], args: &[&str]) -> String {
    let image = r.load_devbox();
    let mut all = vec!["--name", name];
    all.extend_from_slice(opts);
    all.extend_from_slice(&[image, "ws-echo"]);
    all.extend_from_slice(args);
    let id = r.run_detached(&all);
    r.wait_logs(name, |l| l.contains("ws-echo: listening"));
    id
}

#[test]
fn ws_echo_serves_page_websocket_headers_sse_and_bodies() {
    require_runsc!();
    let r = Root::empty();
    let net = r.network("devnet", false);
    let subnet = net["subnet"].as_str().unwrap_or_default().to_string();
    assert!(subnet.starts_with("198.1"), "test network {net}");
    ws_echo(&r, "dev", &["--network", "devnet"], &[]);
    let ip = r.inspect("dev")["ip"].as_str().unwrap().to_string();
    let (ws, http) = (format!("http://{ip}:8765"), format!("http://{ip}:8766"));

    // The image's own config: a sleeping Cmd, 8765 exposed.
    let img: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", common::DEVBOX_REF])).unwrap();
    let cfg = if img["config"]["config"].is_object() {
        &img["config"]["config"]
    } else {
        &img["config"]
    };
    assert_eq!(
        cfg["Cmd"],
        serde_json::json!(["sleep", "infinity"]),
        "{img}"
    );
    assert!(cfg["ExposedPorts"]["8765/tcp"].is_object(), "{img}");

    // The page on 8765: the WebSocket script and the result element.
    let page = stdout(&curl(&[&format!("{ws}/")]));
    assert!(page.contains("<p id=result>"), "{page}");
    assert!(
        page.contains("+'/echo'") || page.contains("+ '/echo'"),
        "{page}"
    );
    assert!(page.contains("document.title = 'echo ok'"), "{page}");
    let o = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{ws}/nope"),
    ]);
    assert_eq!(stdout(&o), "404");

    // Headers as the service saw them.
    let o = curl(&[
        "-H",
        "Host: localhost:8766",
        "-H",
        "X-Forwarded-Host: localhost-8766.pod-dev.localhost:8080",
        "-H",
        "X-Forwarded-For: 127.0.0.1",
        "-H",
        "X-Forwarded-Proto: http",
        &format!("{http}/host"),
    ]);
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        h,
        serde_json::json!({
            "Host": "localhost:8766",
            "X-Forwarded-Host": "localhost-8766.pod-dev.localhost:8080",
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Proto": "http",
        })
    );
    let h: serde_json::Value =
        serde_json::from_slice(&curl(&[&format!("{http}/host")]).stdout).unwrap();
    assert_eq!(h["Host"], format!("{ip}:8766"));
    assert!(h["X-Forwarded-Host"].is_null(), "{h}");

    // Server-sent events arrive one by one, not in one piece at the end.
    let mut c = Command::new("curl")
        .args(["-sSN", "--max-time", "20", &format!("{http}/sse")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = vec![];
    for l in BufReader::new(c.stdout.take().unwrap()).lines() {
        let l = l.unwrap();
        if !l.is_empty() {
            events.push((l, Instant::now()));
        }
    }
    assert!(c.wait().unwrap().success());
    let names: Vec<&str> = events.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        names,
        ["data: 1", "data: 2", "data: 3", "data: 4", "data: 5"]
    );
    let spread = events[4].1 - events[0].1;
    assert!(
        spread >= Duration::from_millis(900),
        "events came {spread:?} apart from first to last: buffered"
    );

    // Bodies: chunked and with a length, echoed with their length; one
    // keep-alive connection for both.
    let tmp = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = tmp.path().join("body");
    std::fs::write(&src, &body).unwrap();
    let got = tmp.path().join("got");
    let o = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", src.display()),
        "-o",
        got.to_str().unwrap(),
        "-w",
        "%header{x-body-length}",
        &format!("{http}/body"),
    ]);
    assert_eq!(stdout(&o), "200000");
    assert!(std::fs::read(&got).unwrap() == body, "chunked body differs");
    let o = curl(&[
        "-v",
        "--data-binary",
        "hello",
        "-w",
        " %header{x-body-length}\n",
        &format!("{http}/body"),
        "--next",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}\n",
        &format!("{http}/big?n=1048576"),
    ]);
    assert_eq!(stdout(&o), "hello 5\n1048576\n");
    assert!(
        stderr(&o).contains("Re-using existing connection"),
        "no keep-alive: {}",
        stderr(&o)
    );

    // A WebSocket client: text and binary frames come back unchanged.
    let o = Command::new(PYTHON)
        .args([
            "-c",
            r#"
import asyncio, sys, websockets
async def main(url):
    async with websockets.connect(url, ping_interval=None) as ws:
        await ws.send("ping-devbox")
        print(await ws.recv())
        await ws.send(b"\x00\xffbin")
        print(repr(await ws.recv()))
asyncio.run(main(sys.argv[1]))
"#,
            &format!("ws://{ip}:8765/echo"),
        ])
        .output()
        .expect("run /usr/bin/python3 (scripts/setup.sh installs python3-websockets)");
    assert!(
        o.status.success(),
        "websocket client (needs python3-websockets on the host): {}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "ping-devbox\nb'\\x00\\xffbin'\n");

    r.assert_clean();
}

#[test]
fn loopback_bind_stays_inside_and_sshd_sudo_ship_without_host_keys() {
    require_runsc!();
    let r = Root::empty();
    r.network("devlo", false);
    ws_echo(&r, "lo", &["--network", "devlo"], &["--bind", "127.0.0.1"]);
    let ip = r.inspect("lo")["ip"].as_str().unwrap().to_string();

    // Not reachable from outside the pod ...
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{ip}:8766/host")])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "loopback-only service answered on {ip}"
    );
    // ... but inside it, on 127.0.0.1, both servers answer.
    let got = r.ok(&[
        "exec",
        "lo",
        "python3",
        "-c",
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8766/host').read().decode()); print(u.urlopen('http://127.0.0.1:8765/').status)",
    ]);
    assert!(got.contains(r#""Host": "127.0.0.1:8766""#), "{got}");
    assert!(got.trim_end().ends_with("200"), "{got}");

    // sshd and sudo are installed; no host key ships; /run/sshd is left
    // to whoever starts sshd; with a key and that dir, the config is valid.
    let n = r.ok(&[
        "exec",
        "lo",
        "sh",
        "-c",
        "ls /etc/ssh/ssh_host_* 2>/dev/null | wc -l",
    ]);
    assert_eq!(n.trim(), "0", "ssh host keys ship in the image");
    r.ok(&["exec", "lo", "test", "-x", "/usr/sbin/sshd"]);
    r.ok(&["exec", "lo", "test", "-x", "/usr/bin/sudo"]);
    r.ok(&["exec", "lo", "test", "!", "-e", "/run/sshd"]);
    let o = r.gvpod(&["exec", "lo", "/usr/sbin/sshd", "-t"]);
    assert!(!o.status.success(), "sshd -t passed with no host key");
    r.ok(&[
        "exec",
        "lo",
        "sh",
        "-c",
        "mkdir -p -m 0755 /run/sshd && ssh-keygen -q -t ed25519 -N '' -f /tmp/hostkey && /usr/sbin/sshd -t -h /tmp/hostkey",
    ]);
    let v = r.ok(&["exec", "lo", "sudo", "-n", "id", "-u"]);
    assert_eq!(v.trim(), "0");

    r.assert_clean();
}
