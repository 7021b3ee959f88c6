//! The `network` workload: busybox httpd in a container of each runtime,
//! driven from the host by `wrk` over a veth pair into a network namespace
//! the bench makes ([`Stage::make_netns`], a /30 of `NET_POOL`): requests/s
//! for a small page and MiB/s for a large file (a single large transfer is
//! the TCP throughput figure: httpd only copies it to the socket).
//!
//! The same two figures prefixed `pod-to-pod-` come from wrk run in a
//! second namespace of the bench's (the client's, `gvbn<tag>c<n>`, its own
//! /30), as a pod on the same host would reach the server: the host routes
//! between the two veths (one kernel forwarding step, as gvpod's bridge
//! is for two pods on one network; the host has `ip_forward` on, as
//! gvpod's networks set it). The figures prefixed `published-port-` come
//! from wrk on the host against 127.0.0.1:PORT, a port published to the
//! server the way `gvpod run -p 127.0.0.1:PORT:80` publishes one (gvpod's
//! own DNAT and masquerade rules, see `publish`): the same server, pages and
//! wrk settings as the direct figures, plus the NAT. The client is native
//! wrk in every case, so the runtimes differ only on the server's side.
//!
//! Invariants:
//! - every runtime gets the same bundle and the same kind of link: runc
//!   joins the namespace through the spec's `namespaces`, runsc with
//!   `--network=sandbox` (its netstack takes the interface over; the
//!   `runsc` module adds DESIGN.md fact 3's workaround on old releases);
//! - traffic goes only to the bench's own namespaces (the published port:
//!   127.0.0.1, DNATed to the server's);
//! - the runtime leaves networked mode, its container is deleted and its
//!   namespace removed in `finish`; the [`Stage`] guard does the same on
//!   failure or Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::workloads::{Sample, Workload};
use super::{BenchError, Result, Stage, HELPERS_IN_POD};

/// The large file's size (MiB).
const BIG_MIB: usize = 4;

pub struct Network {
    /// Seconds per wrk run.
    pub secs: u32,
    /// Open connections per wrk run.
    pub conns: u32,
    /// The server container and its address, per runtime.
    servers: Vec<Option<(String, Ipv4Addr)>>,
    /// The client's namespace, per runtime.
    clients: Vec<Option<std::path::PathBuf>>,
    /// The published port and the socket holding it, per runtime.
    published: Vec<Option<(u16, std::net::TcpListener)>>,
    quick: bool,
}

impl Network {
    pub fn new(quick: bool) -> Network {
        Network {
            secs: if quick { 1 } else { 5 },
            conns: 4,
            servers: vec![],
            clients: vec![],
            published: vec![],
            quick,
        }
    }

    /// Puts the server's pages (a small one and a large file) into the
    /// bundle's rootfs.
    pub(super) fn install(stage: &Stage) -> Result<()> {
        let www = stage
            .rootfs
            .join(HELPERS_IN_POD.trim_start_matches('/'))
            .join("www");
        let io = |source| BenchError::Io {
            path: www.clone(),
            source,
        };
        std::fs::create_dir_all(&www).map_err(io)?;
        std::fs::write(www.join("index.html"), b"gvpod bench\n").map_err(io)?;
        let big: Vec<u8> = (0..BIG_MIB << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(www.join("big.bin"), big).map_err(io)
    }
}

/// `wrk`'s "Requests/sec:" and "Transfer/sec:" (in MiB/s; wrk prints
/// binary units as B, KB, MB, GB).
pub fn parse_wrk(text: &str) -> Option<(f64, f64)> {
    let mut req = None;
    let mut xfer = None;
    for l in text.lines() {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            req = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("Transfer/sec:") {
            let v = v.trim();
            let split = v.find(|c: char| c.is_ascii_alphabetic())?;
            let (n, unit) = v.split_at(split);
            let n: f64 = n.parse().ok()?;
            let scale = match unit {
                "B" => 1.0 / 1048576.0,
                "KB" => 1.0 / 1024.0,
                "MB" => 1.0,
                "GB" => 1024.0,
                _ => return None,
            };
            xfer = Some(n * scale);
        }
    }
    let (r, x) = (req?, xfer?);
    (r.is_finite() && r > 0.0 && x.is_finite() && x > 0.0).then_some((r, x))
}

/// One `GET /index.html` to `addr` and its whole answer.
fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    c.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut answer = String::new();
    c.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Waits until the server at `addr` serves its page (within 10 s, else
/// the runtime fails): before the first timed run, and before each one,
/// so that no run inherits the previous one's tail (wrk stops in the middle
/// of 4 MiB transfers that httpd, forked per connection, is still writing).
fn wait_answer(label: &str, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        super::check_interrupted()?;
        let got = fetch(addr);
        if got.as_ref().is_ok_and(|a| a.contains("gvpod bench")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Failed {
                runtime: label.to_string(),
                what: "network".into(),
                msg: format!(
                    "httpd did not serve its page on {addr} within 10 s ({})",
                    match got {
                        Ok(a) => format!("answer {:?}", a.lines().next().unwrap_or("")),
                        Err(e) => e.to_string(),
                    }
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Network {
    /// wrk against `url`, from the host or (`netns`) from inside a namespace.
    fn wrk(&self, label: &str, url: &str, netns: Option<&std::path::Path>) -> Result<(f64, f64)> {
        let failed = |msg: String| BenchError::Failed {
            runtime: label.to_string(),
            what: "network (wrk)".into(),
            msg,
        };
        use std::os::unix::process::CommandExt;
        let mut cmd = match netns {
            Some(p) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", p.display())).arg("wrk");
                c
            }
            None => Command::new("wrk"),
        };
        let out = cmd
            .args([
                "-t1",
                &format!("-c{}", self.conns),
                &format!("-d{}s", self.secs),
            ])
            .arg(url)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .output()
            .map_err(|e| {
                failed(format!(
                    "cannot run wrk: {e}; install it (Debian: apt-get install wrk)"
                ))
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || text.contains("Socket errors") {
            return Err(failed(format!(
                "wrk {url} failed: {}",
                text.lines()
                    .chain(String::from_utf8_lossy(&out.stderr).lines())
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("no output")
            )));
        }
        if text.contains(" 0 requests in ") {
            return Err(failed(format!(
                "wrk {url} got no answer in its {} s run; the server stalled (a busy machine?)",
                self.secs
            )));
        }
        parse_wrk(&text).ok_or_else(|| failed(format!("unreadable wrk output {text:?}")))
    }
}

impl Workload for Network {
    fn prepare(&mut self, stage: &mut Stage, rt: usize) -> Result<()> {
        Network::install(stage)?;
        if self.servers.len() <= rt {
            self.servers.resize(rt + 1, None);
            self.clients.resize(rt + 1, None);
            self.published.resize_with(rt + 1, || None);
        }
        stage.runtimes[rt].set_networked(true);
        let (ns, ip) = stage.make_netns(rt)?;
        let id = stage.new_id(rt);
        stage.configure_in(
            &id,
            &["/bin/sh", "-c", "exec httpd -f -p 80 -h /gvpod-bench/www"],
            Some(&ns),
        )?;
        stage.runtimes[rt].create_start(&stage.bundle, &id)?;
        self.servers[rt] = Some((id, ip));
        self.published[rt] = Some(stage.publish_port(rt, ip, 80)?);
        let (client, _) = stage.make_netns_as(rt, "c")?;
        self.clients[rt] = Some(client);
        crate::net::link::set_sysctl("net/ipv4/ip_forward", "1").map_err(|e| {
            BenchError::Failed {
                runtime: stage.runtimes[rt].info.label.clone(),
                what: "network setup".into(),
                msg: e.to_string(),
            }
        })?;
        // The server answers within 10 s or the runtime fails, directly
        // and through its published port.
        let label = stage.runtimes[rt].info.label.clone();
        wait_answer(&label, SocketAddr::from((ip, 80)))?;
        if let Some(Some((port, _))) = self.published.get(rt) {
            wait_answer(&label, SocketAddr::from((Ipv4Addr::LOCALHOST, *port)))?;
        }
        Ok(())
    }

    /// A `--quick` run (a smoke run) takes no untimed round: `prepare`
    /// already waited for the server's first answer, and six wrk runs per
    /// round are most of a quick bench's time.
    fn warm_up(&self) -> bool {
        !self.quick
    }

    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>> {
        let label = stage.runtimes[rt].info.label.clone();
        let missing = |msg: &str| BenchError::Failed {
            runtime: label.clone(),
            what: "network".into(),
            msg: msg.into(),
        };
        let Some(Some((_, ip))) = self.servers.get(rt) else {
            return Err(missing("no running server"));
        };
        let ip = *ip;
        let Some(Some((port, _))) = self.published.get(rt) else {
            return Err(missing("no published port"));
        };
        let port = *port;
        let client = self.clients.get(rt).cloned().flatten();
        let direct = format!("http://{ip}");
        let published = format!("http://127.0.0.1:{port}");
        // (url, client namespace) of each run: small page, then large file.
        let runs = [
            (&direct, None),
            (&direct, client.as_deref()),
            (&published, None),
        ];
        let mut got = [(0.0, 0.0); 6];
        let mut i = 0;
        for (base, netns) in runs {
            for page in ["index.html", "big.bin"] {
                wait_answer(&label, SocketAddr::from((ip, 80)))?;
                got[i] = self.wrk(&label, &format!("{base}/{page}"), netns)?;
                i += 1;
            }
        }
        let [(req, _), (_, mib), (p2p_req, _), (_, p2p_mib), (pub_req, _), (_, pub_mib)] = got;
        Ok(vec![
            Sample {
                figure: "http-small-requests".into(),
                unit: "req/s",
                value: req,
            },
            Sample {
                figure: format!("http-{BIG_MIB}mib-throughput"),
                unit: "MiB/s",
                value: mib,
            },
            Sample {
                figure: "pod-to-pod-http-small-requests".into(),
                unit: "req/s",
                value: p2p_req,
            },
            Sample {
                figure: format!("pod-to-pod-http-{BIG_MIB}mib-throughput"),
                unit: "MiB/s",
                value: p2p_mib,
            },
            Sample {
                figure: "published-port-http-small-requests".into(),
                unit: "req/s",
                value: pub_req,
            },
            Sample {
                figure: format!("published-port-http-{BIG_MIB}mib-throughput"),
                unit: "MiB/s",
                value: pub_mib,
            },
        ])
    }

    fn finish(&mut self, stage: &mut Stage, rt: usize) {
        if let Some(Some((id, _))) = self.servers.get(rt) {
            stage.runtimes[rt].delete(id);
        }
        stage.runtimes[rt].set_networked(false);
        if let Some(p) = self.published.get_mut(rt) {
            *p = None;
        }
        if rt + 1 == stage.runtimes.len() {
            stage.remove_nets();
            stage.remove_firewall();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_output() {
        let out = "Running 1s test @ http://198.19.80.2/index.html\n  1 threads and 4 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.21ms  300.00us   5.00ms   90.00%\n  2000 requests in 1.00s, 400.00KB read\nRequests/sec:   1998.12\nTransfer/sec:    399.62KB\n";
        let (r, x) = super::parse_wrk(out).unwrap();
        assert_eq!(r, 1998.12);
        assert!((x - 399.62 / 1024.0).abs() < 1e-9);
        let big = "Requests/sec:     80.00\nTransfer/sec:    320.50MB\n";
        assert_eq!(super::parse_wrk(big).unwrap(), (80.0, 320.5));
        assert_eq!(
            super::parse_wrk("Requests/sec: 1\nTransfer/sec: 1.5GB")
                .unwrap()
                .1,
            1536.0
        );
        assert!(super::parse_wrk("").is_none());
        assert!(super::parse_wrk("Requests/sec: 10\nTransfer/sec: 1XB").is_none());
        assert!(super::parse_wrk("Requests/sec: 0\nTransfer/sec: 1MB").is_none());
    }
}
