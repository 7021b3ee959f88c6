//! Pods the snapshot tests share: a counter that lives only in memory,
//! and a tiny HTTP client for busybox httpd.

use std::time::{Duration, Instant};

use super::{stdout, Root};

/// Counts in memory (never re-reads its state); writes a file and deletes
/// one of the image's first.
pub const COUNTER: &str =
    "echo before > /written; rm /bin/vi; i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done";

pub fn start_counter(r: &Root, name: &str) -> String {
    let id = r.run_detached(&["--name", name, "busybox", "sh", "-c", COUNTER]);
    wait_count(r, name, 3);
    id
}

/// The last number the pod printed (from its log).
pub fn last_count(r: &Root, pod: &str) -> u64 {
    stdout(&r.gvpod(&["logs", pod]))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// All numbers in the log, in order.
pub fn counts(r: &Root, pod: &str) -> Vec<u64> {
    stdout(&r.gvpod(&["logs", pod]))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

pub fn wait_count(r: &Root, pod: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = last_count(r, pod);
        if n >= at_least {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "pod {pod} did not count to {at_least} (at {n})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn status(r: &Root, pod: &str) -> String {
    r.inspect(pod)["status"].as_str().unwrap().to_string()
}

/// A one-shot HTTP GET of /hostname; the whole answer.
pub fn http_get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /hostname HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

pub fn http_ok(addr: &str) -> String {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http_get(addr) {
            Ok(s) if s.contains("200 OK") => return s,
            r => {
                assert!(Instant::now() < deadline, "GET {addr}: {r:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A free TCP port on loopback (the kernel picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pod on network `net` serving /etc on port 80 (published on a free
/// loopback port, returned) and counting in memory; no request made yet.
pub fn web(r: &Root, name: &str, net: &str) -> u16 {
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    r.run_detached(&[
        "--name",
        name,
        "--network",
        net,
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "httpd -p 80 -h /etc; i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done",
    ]);
    wait_count(r, name, 3);
    port
}
