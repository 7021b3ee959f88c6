//! `gvpod port POD --listening`: the TCP ports processes in a pod listen
//! on, read from the sandbox's own /proc/net/tcp and tcp6 (gVisor's
//! netstack; the host's tables never show them), each with the URLs that
//! reach it: the pod's route port, the shared router of this data root if
//! one runs, and published ports.
//!
//! The shared router says where it listens in `<run dir>/router.json`
//! (pid and address), so this can name its URL; a file whose process is
//! gone is ignored.

pub use crate::pod::views::ListeningPort;

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::super::{Ctx, PodError, Result};
use crate::state::PodStatus;

/// Where a running shared router listens.
#[derive(Debug, Serialize, Deserialize)]
pub struct RouterFile {
    pub pid: u32,
    pub listen: String,
}

fn router_file(ctx: &Ctx) -> std::path::PathBuf {
    ctx.run_dir.join("router.json")
}

/// Records this process as the data root's shared router.
pub fn record_router(ctx: &Ctx, listen: &str) {
    let f = RouterFile {
        pid: std::process::id(),
        listen: listen.to_string(),
    };
    if let Ok(text) = serde_json::to_vec(&f) {
        let _ = crate::util::write_atomic(&router_file(ctx), &text);
    }
}

/// The address of the data root's shared router, if one runs.
pub fn router_address(ctx: &Ctx) -> Option<String> {
    let f: RouterFile = serde_json::from_slice(&std::fs::read(router_file(ctx)).ok()?).ok()?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", f.pid)).ok()?;
    cmdline
        .split(|b| *b == 0)
        .any(|a| a == b"router")
        .then_some(f.listen)
}

/// Listening sockets in /proc/net/tcp or tcp6 text: (address, port), sorted
/// by port, one per address and port.
pub fn parse(text: &str) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || f[3] != "0A" {
                return None;
            }
            let (addr, port) = f[1].split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let addr = match addr.len() {
                8 => Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.swap_bytes()).to_string(),
                32 => {
                    // Four 32-bit words, each in host (little-endian) order.
                    let mut b = [0u8; 16];
                    for (i, w) in b.chunks_mut(4).enumerate() {
                        let word = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()?;
                        w.copy_from_slice(&word.swap_bytes().to_be_bytes());
                    }
                    let v6 = Ipv6Addr::from(b);
                    match v6.to_ipv4_mapped() {
                        Some(v4) => v4.to_string(),
                        None => v6.to_string(),
                    }
                }
                _ => return None,
            };
            Some((addr, port))
        })
        .collect();
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    out.dedup();
    out
}

/// The listening ports of running pod `key`, with their URLs.
pub fn listening(ctx: &mut Ctx, key: &str) -> Result<Vec<ListeningPort>> {
    let pod = ctx.lookup(key)?;
    let pod = ctx.refresh(pod)?;
    if pod.status != PodStatus::Running {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "only a running pod has listening ports; start it first",
        });
    }
    let flags = ctx.flags_of(&pod)?;
    let runsc = ctx.runsc_for(&flags)?;
    let relay = super::super::helpers::relay_of(&ctx.bundle_dir(&pod.id));
    let text = runsc.read_in_pod(&flags, &pod.id, relay, &["/proc/net/tcp", "/proc/net/tcp6"])?;
    let rows = ctx.db.ports_of(&pod.id)?;
    let route = super::route_in(&rows);
    let router = router_address(ctx);
    let published = super::super::network::mappings(&rows);
    let url_host = |ip: Ipv4Addr| {
        if ip.is_unspecified() || ip.is_loopback() {
            None
        } else {
            Some(ip.to_string())
        }
    };
    Ok(parse(&text)
        .into_iter()
        .map(|(address, port)| {
            let mut urls = vec![];
            if let Some(r) = &route {
                urls.push(match url_host(r.host_ip) {
                    None => format!(
                        "http://localhost-{port}.pod-{}.localhost:{}/",
                        pod.name, r.host_port
                    ),
                    // Not loopback: the address, with the Host the route reads.
                    Some(h) => format!(
                        "http://{h}:{}/ (Host: localhost-{port}.pod-{})",
                        r.host_port, pod.name
                    ),
                });
            }
            if let Some(listen) = &router {
                let p = listen.rsplit(':').next().unwrap_or("80");
                urls.push(format!(
                    "http://localhost-{port}.pod-{}.localhost:{p}/",
                    pod.name
                ));
            }
            for m in published.iter().filter(|m| m.pod_port == port) {
                let h = url_host(m.host_ip).unwrap_or_else(|| "localhost".into());
                urls.push(format!("http://{h}:{}/", m.host_port));
            }
            ListeningPort {
                port,
                address,
                urls,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_of_both_families() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   1: 00000000:2242 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
   2: 0200C6C6:2242 0100C6C6:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
  sl  local_address                         remote_address                        st tx_queue\n\
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000\n\
   1: 00000000000000000000000001000000:1F41 00000000000000000000000000000000:0000 0A 00000000:00000000\n\
   2: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000\n";
        assert_eq!(
            parse(text),
            vec![
                ("::".to_string(), 22),
                ("127.0.0.1".to_string(), 80),
                ("127.0.0.1".to_string(), 8000),
                ("::1".to_string(), 8001),
                ("0.0.0.0".to_string(), 8770),
            ]
        );
        assert!(parse("garbage\n\n").is_empty());
    }
}
