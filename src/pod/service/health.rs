//! Health checks of supervised services, run by the pod's monitor from the
//! host (docker's HEALTHCHECK, compose's `healthcheck`, with the spec's
//! `{http|tcp|cmd, interval, timeout, retries, start_period}`):
//! * `http: PATH`: a GET of PATH on the service's port through the pod's
//!   address, or its loopback through gvpod's relay (the router's
//!   [`PodTarget`]); a 2xx or 3xx status is healthy;
//! * `tcp: PORT`: a connection to that port the same way;
//! * `cmd: "…"`: `sh -c` in the pod (as root), exit 0 is healthy; its
//!   output is the check's output.
//!
//! [`Tally`] is the verdict, pure and unit-tested: a service starts
//! `starting`; one passing check makes it `healthy`; `retries` failures in a
//! row make it `unhealthy`, except that failures inside `start_period`
//! (from the service's start) do not count (docker's semantics). A check
//! that takes longer than `timeout` fails.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::pod::route::PodTarget;
use crate::spec::{Health, Probe};

/// What a check found: passed or not, and a line about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub output: String,
}

/// The verdict so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub health: &'static str,
    pub failing: u32,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            health: "starting",
            failing: 0,
        }
    }

    /// Counts one check made `since_start` after the service started.
    pub fn record(self, h: &Health, ok: bool, since_start: Duration) -> Tally {
        if ok {
            return Tally {
                health: "healthy",
                failing: 0,
            };
        }
        if since_start < Duration::from_millis(h.start_period_ms) {
            return self;
        }
        let failing = self.failing + 1;
        Tally {
            health: if failing >= h.retries.max(1) {
                "unhealthy"
            } else {
                self.health
            },
            failing,
        }
    }
}

/// At most this much of a check's output is kept (docker keeps 4 KiB; a
/// line for `inspect` is enough here).
const OUTPUT_MAX: usize = 512;

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.len() <= OUTPUT_MAX {
        return s.to_string();
    }
    let mut end = OUTPUT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// An HTTP check through `target`; `port` is the service's port (an http
/// check needs one: `spec` refuses one without). (A TCP check connects to
/// the pod's address, else runs the relay's `--probe` in the pod: a relay
/// left holding an idle connection would outlive the check.)
pub fn probe_net(target: &PodTarget, h: &Health, port: Option<u16>) -> Outcome {
    let fail = |output: String| Outcome {
        ok: false,
        output: clip(&output),
    };
    let (port, path) = match (&h.probe, port) {
        (Probe::Tcp(p), _) => (*p, None),
        (Probe::Http(path), Some(p)) => (p, Some(path.as_str())),
        (Probe::Http(_), None) => return fail("an http check needs the service's port".into()),
        (Probe::Cmd(_), _) => return fail("not a network check".into()),
    };
    let deadline = Instant::now() + Duration::from_millis(h.timeout_ms);
    let mut up = match target.open(port) {
        Ok(u) => u,
        Err(r) => return fail(r.title),
    };
    let Some(path) = path else {
        return fail("a tcp check is made by the supervisor".into());
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: gvpod-health\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = up.write.write_all(req.as_bytes()) {
        return fail(format!("sending the request to port {port}: {e}"));
    }
    // The reader has no timeout of its own (a relay is a pipe): read on a
    // thread and give up at the deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut read = up.read;
    std::thread::spawn(move || {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            match read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(head);
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let head = match rx.recv_timeout(left) {
        Ok(h) => h,
        Err(_) => {
            drop(up.write);
            return fail(format!(
                "no answer from port {port} within {}",
                crate::spec::format_duration(h.timeout_ms)
            ));
        }
    };
    drop(up.write);
    if head.is_empty() {
        if let Some(r) = up.refused.take().and_then(|f| f()) {
            return fail(r.title);
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status_line = line.lines().next().unwrap_or("").trim().to_string();
    match status_of(&status_line) {
        Some(code) if (200..400).contains(&code) => Outcome {
            ok: true,
            output: status_line,
        },
        Some(_) => fail(status_line),
        None => fail(format!(
            "not an HTTP answer from port {port}: {status_line:?}"
        )),
    }
}

/// The status code of an HTTP status line.
pub fn status_of(line: &str) -> Option<u16> {
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(retries: u32, start_period_ms: u64) -> Health {
        Health {
            probe: Probe::Tcp(1),
            interval_ms: 1000,
            timeout_ms: 1000,
            retries,
            start_period_ms,
        }
    }

    #[test]
    fn retries_failures_in_a_row_make_a_service_unhealthy_and_one_pass_heals_it() {
        let h = health(3, 0);
        let s = Duration::from_secs(5);
        let t = Tally::new().record(&h, false, s).record(&h, false, s);
        assert_eq!(
            t,
            Tally {
                health: "starting",
                failing: 2
            }
        );
        let t = t.record(&h, false, s);
        assert_eq!(
            t,
            Tally {
                health: "unhealthy",
                failing: 3
            }
        );
        let t = t.record(&h, true, s);
        assert_eq!(
            t,
            Tally {
                health: "healthy",
                failing: 0
            }
        );
        // A healthy service stays healthy until `retries` failures.
        let t = t.record(&h, false, s).record(&h, false, s);
        assert_eq!(t.health, "healthy");
        assert_eq!(t.record(&h, false, s).health, "unhealthy");
    }

    #[test]
    fn failures_inside_the_start_period_do_not_count_but_a_pass_does() {
        let h = health(1, 10_000);
        let early = Duration::from_secs(2);
        let t = Tally::new()
            .record(&h, false, early)
            .record(&h, false, early);
        assert_eq!(t, Tally::new());
        assert_eq!(t.record(&h, true, early).health, "healthy");
        assert_eq!(
            t.record(&h, false, Duration::from_secs(11)).health,
            "unhealthy"
        );
    }

    #[test]
    fn status_lines_are_read_and_others_are_not() {
        assert_eq!(status_of("HTTP/1.0 200 OK"), Some(200));
        assert_eq!(status_of("HTTP/1.1 503 Service Unavailable"), Some(503));
        assert_eq!(status_of("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of(""), None);
        assert_eq!(clip(&"é".repeat(400)).chars().count(), 257);
    }
}
