//! A published port for the `network` workload's server, made the way
//! `gvpod run -p 127.0.0.1:PORT:80` makes one, so the `published-port-*`
//! figures cost what a user's published port costs: gvpod's own firewall
//! code ([`crate::net::Firewall`], `net::nft`'s layout: `fib daddr type
//! local` in the nat `output` hook at -100 jumping to `ports`, which DNATs
//! through the `ports_ip` map; masquerade at 100 of 127.0.0.0/8-sourced
//! traffic leaving by the server's link), `route_localnet` on that link (as
//! `net::link` sets it on gvpod's bridges), and a listening socket held on
//! the host port (`net::ports`, DESIGN.md networking rules). The host end of
//! the server's veth stands where a pod's bridge would.
//!
//! Invariants:
//! - the rules live in a table of the bench's own, `inet gvbench-<tag>`
//!   (not `gvpod-*`: `system gc --orphans` takes those for a data root's),
//!   recorded in the [`Stage`] before it is made and deleted on drop; a
//!   killed bench's table is deleted by `system gc` (`gc`), found by its tag;
//! - the port is bound on 127.0.0.1 only and chosen by the kernel (a free
//!   one), so no host service's port is redirected and nothing outside the
//!   host reaches the server.

use std::net::{Ipv4Addr, TcpListener};

use super::{BenchError, Result, Stage, VETH_PREFIX};
use crate::net::nft::{NetRules, PortRule};
use crate::net::{Cidr, Firewall, Proto};

/// The nftables table (family inet) of the bench tagged `tag`.
pub fn table(tag: &str) -> String {
    format!("gvbench-{tag}")
}

impl Stage {
    /// Publishes `pod_ip`:`pod_port` of runtime `rt`'s namespace (made by
    /// [`Stage::make_netns`]) on 127.0.0.1 at a free port. Returns the port
    /// and the listening socket that holds it (dropped when done).
    pub fn publish_port(
        &mut self,
        rt: usize,
        pod_ip: Ipv4Addr,
        pod_port: u16,
    ) -> Result<(u16, TcpListener)> {
        let label = self.runtimes[rt].info.label.clone();
        let failed = |msg: String| BenchError::Failed {
            runtime: label.clone(),
            what: "published port setup".into(),
            msg,
        };
        let name = table(&self.tag);
        self.firewall = Some(name.clone());
        let veth = format!("{VETH_PREFIX}{}{rt}", self.tag);
        let subnet = Cidr::new(Ipv4Addr::from(u32::from(pod_ip) & !3), 30)
            .ok_or_else(|| failed(format!("no /30 around {pod_ip}")))?;
        let fw = Firewall::new(name);
        let network = format!("bench{rt}");
        fw.ensure_network(&NetRules {
            name: &network,
            bridge: &veth,
            subnet,
            internal: false,
        })
        .map_err(|e| failed(e.to_string()))?;
        crate::net::link::set_sysctl(&format!("net/ipv4/conf/{veth}/route_localnet"), "1")
            .map_err(|e| failed(e.to_string()))?;
        let lo = Ipv4Addr::LOCALHOST;
        let fd = crate::net::ports::bind(Proto::Tcp, lo, 0).map_err(|e| failed(e.to_string()))?;
        let listener = TcpListener::from(fd);
        let port = listener
            .local_addr()
            .map_err(|e| failed(format!("getsockname: {e}")))?
            .port();
        fw.add_ports(
            &network,
            &[PortRule {
                proto: Proto::Tcp,
                host_ip: Some(lo),
                host_port: port,
                pod_ip,
                pod_port,
            }],
        )
        .map_err(|e| failed(e.to_string()))?;
        Ok((port, listener))
    }

    /// Deletes the bench's table, if it made one (idempotent).
    pub fn remove_firewall(&mut self) {
        if let Some(t) = self.firewall.take() {
            if let Err(e) = Firewall::new(t.clone()).delete_table() {
                tracing::warn!("cannot delete nftables table inet {t}: {e}");
                self.firewall = Some(t);
            }
        }
    }
}

/// Deletes a dead bench's table (see `gc`); returns what it removed.
pub fn sweep(tag: &str) -> Option<String> {
    let name = table(tag);
    let fw = Firewall::new(name.clone());
    let there = fw.bridges().is_ok_and(|b| !b.is_empty()) || fw.tags().is_ok_and(|t| !t.is_empty());
    (fw.delete_table().is_ok() && there).then(|| format!("nftables table inet {name}"))
}
