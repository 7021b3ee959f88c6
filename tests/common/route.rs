//! Helpers of the route tests (tests/route.rs, tests/route_web.rs): a
//! `gvpod router` (or `system service --router`) of a test root that is
//! stopped with the test, and the route port a pod was given.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use super::Root;

/// A process of a test root that serves the shared router, stopped (and
/// reaped) on drop.
pub struct Router {
    child: Child,
    pub port: u16,
}

impl Router {
    /// `gvpod router --listen 127.0.0.1:0`.
    pub fn start(r: &Root) -> Router {
        Router::spawn(r, &["router", "--listen", "127.0.0.1:0"])
    }

    /// Runs `args` (a command that serves the router on 127.0.0.1:0) and
    /// reads the port from its first line: "gvpod router: listening on
    /// 127.0.0.1:PORT; open …".
    pub fn spawn(r: &Root, args: &[&str]) -> Router {
        let mut child = r.cmd(args).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split("listening on 127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .and_then(|p| p.parse().ok());
        match port {
            Some(port) => Router { child, port },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} said: {line}");
            }
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The route port `gvpod port POD` names ("route -> 127.0.0.1:P (default port D)").
pub fn route_port(r: &Root, pod: &str) -> u16 {
    let out = r.ok(&["port", pod]);
    out.lines()
        .find_map(|l| l.strip_prefix("route -> 127.0.0.1:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no route in: {out}"))
}
