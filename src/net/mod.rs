//! Pod networking built by gvpod itself: named network namespaces, veth
//! pairs and bridges over rtnetlink ([`link`]), IPv4 address arithmetic for
//! IPAM ([`cidr`]; the leases live in the state database), the nftables
//! firewall for NAT, isolation and published ports ([`nft`]), published-port
//! sockets ([`ports`]) and the pod's resolv.conf and hosts files ([`dns`]).
//!
//! This layer knows nothing about runsc: the pod orchestrator hands the
//! namespace path to the bundle builder and chooses runsc's flags.
//!
//! Naming (host-global names must not collide between data roots):
//! - bridges: `gvpod0` for the default network of the default data root,
//!   else `gvbr-<10 hex of sha256(root, network)>`;
//! - veth host ends: `gvv<first 12 hex of the pod id>`;
//! - every link gets an alias `gvpod root=<root> net=<name>` or
//!   `gvpod root=<root> pod=<id>`, so `system gc` (and the tests' leak check)
//!   can tell what belongs to which data root;
//! - namespaces: `<root>/netns/<pod id>`.

pub mod cidr;
pub mod conntrack;
mod counters;
pub mod dns;
mod error;
pub mod link;
pub mod netns;
pub mod nft;
pub mod nftnl;
mod port;
pub mod ports;

pub use cidr::Cidr;
pub use counters::IfStats;
pub use error::{NetError, Result};
pub use nft::Firewall;
pub use port::{parse_port, PortMapping, PortSpec, Proto};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A network as recorded in the state database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub bridge: String,
    pub subnet: Cidr,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

/// 10 hex characters of sha256 over the parts, for host-global names.
fn short_hash(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0]);
    }
    hex::encode(h.finalize())[..10].to_string()
}

/// The default data root, whose default network gets the friendly names.
pub const DEFAULT_ROOT: &str = "/var/lib/gvpod";
/// Name of the network pods join unless told otherwise.
pub const DEFAULT_NETWORK: &str = "gvpod";
/// The pool new networks take a /24 from when no --subnet is given
/// (RFC 2544's benchmarking range: never a LAN's or a VPN's).
pub const POOL: &str = "198.18.0.0/16";

pub fn bridge_name(root: &Path, network: &str) -> String {
    if root == Path::new(DEFAULT_ROOT) && network == DEFAULT_NETWORK {
        "gvpod0".to_string()
    } else {
        format!(
            "gvbr-{}",
            short_hash(&[root.as_os_str().as_encoded_bytes(), network.as_bytes()])
        )
    }
}

/// The firewall table of a data root.
pub fn table_name(root: &Path) -> String {
    if root == Path::new(DEFAULT_ROOT) {
        "gvpod".to_string()
    } else {
        format!(
            "gvpod-{}",
            short_hash(&[root.as_os_str().as_encoded_bytes()])
        )
    }
}

pub fn veth_name(pod_id: &str) -> String {
    format!("gvv{}", &pod_id[..12.min(pod_id.len())])
}

pub fn net_alias(root: &Path, network: &str) -> String {
    format!("gvpod root={} net={network}", root.display())
}

pub fn pod_alias(root: &Path, pod_id: &str) -> String {
    format!("gvpod root={} pod={pod_id}", root.display())
}

/// Parses an alias made by [`net_alias`] / [`pod_alias`] for `root`:
/// `Some(("net", name))` or `Some(("pod", id))`.
pub fn parse_alias<'a>(root: &Path, alias: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = alias.strip_prefix("gvpod root=")?;
    let (r, kv) = rest.rsplit_once(' ')?;
    if Path::new(r) != root {
        return None;
    }
    kv.split_once('=')
}

/// Parses any alias made by [`net_alias`] / [`pod_alias`], whatever its
/// data root: `Some((root, "net" | "pod", name or id))`.
pub fn parse_any_alias(alias: &str) -> Option<(PathBuf, &str, &str)> {
    let rest = alias.strip_prefix("gvpod root=")?;
    let (r, kv) = rest.rsplit_once(' ')?;
    let (k, v) = kv.split_once('=')?;
    Some((PathBuf::from(r), k, v))
}

/// Host-wide lock for choosing subnets and creating bridges.
const NET_LOCK: &str = "/run/gvpod/net.lock";

pub fn host_lock() -> Result<nft::HostLock> {
    nft::HostLock::take(Path::new(NET_LOCK))
}

/// IPv4 routes of the host's main table (prefix, device).
pub fn host_routes() -> Result<Vec<(Cidr, String)>> {
    link::run(None, |h| async move { link::main_routes(&h).await })
}

/// Fails when `subnet` overlaps a route of the host that is not `own_bridge`'s.
pub fn check_overlap(subnet: &Cidr, own_bridge: &str) -> Result<()> {
    for (c, dev) in host_routes()? {
        if dev != own_bridge && c.overlaps(subnet) {
            return Err(NetError::Overlap {
                subnet: *subnet,
                other: c,
                dev,
            });
        }
    }
    Ok(())
}

/// The first /24 of [`POOL`] that overlaps neither `taken` nor a host route.
pub fn free_subnet(taken: &[Cidr]) -> Result<Option<Cidr>> {
    let pool: Cidr = POOL.parse().expect("valid pool");
    let routes = host_routes()?;
    let mut n = pool.network();
    while n < pool.broadcast() {
        let c = Cidr::new(Ipv4Addr::from(n), 24).expect("valid length");
        if !taken.iter().any(|t| t.overlaps(&c)) && !routes.iter().any(|(r, _)| r.overlaps(&c)) {
            return Ok(Some(c));
        }
        n += 256;
    }
    Ok(None)
}

/// Makes the network's firewall rules, bridge and sysctls exist
/// (idempotent; cheap when the bridge is already up with its address, as
/// after a first pod).
///
/// The bridge comes last: a pod's set-up that finds the bridge skips this
/// (`pod::network::resolve`) and publishes its ports in the table's maps
/// at once, so the bridge must never exist before the rules and maps do.
/// (Made first, 20 concurrent `run -p` on a new root saw it while the
/// first one was still making the table: "nft rejected the ruleset: …
/// No such file or directory".) Nothing in the rules needs the bridge:
/// they match its name.
pub fn ensure_network(root: &Path, n: &Network) -> Result<()> {
    ensure_rules(root, n)?;
    ensure_bridge(root, n)
}

/// The bridge half of [`ensure_network`] (and forwarding for egress).
pub fn ensure_bridge(root: &Path, n: &Network) -> Result<()> {
    let alias = net_alias(root, &n.name);
    link::run(None, |h| async move {
        link::ensure_bridge(&h, &n.bridge, &alias, n.gateway, &n.subnet).await
    })?;
    if !n.internal {
        // Egress needs forwarding; a host-global switch, as with docker and podman.
        link::set_sysctl("net/ipv4/ip_forward", "1")?;
    }
    Ok(())
}

/// The firewall half of [`ensure_network`]: the network's nftables rules.
pub fn ensure_rules(root: &Path, n: &Network) -> Result<()> {
    Firewall::new(table_name(root)).ensure_network(&nft::NetRules {
        name: &n.name,
        bridge: &n.bridge,
        subnet: n.subnet,
        internal: n.internal,
    })
}

/// Whether the bridge of a network exists (a fast check before pod set-up).
pub fn bridge_exists(name: &str) -> Result<bool> {
    link::run(None, |h| async move {
        Ok(link::link_by_name(&h, name).await?.is_some())
    })
}

/// Removes a network's firewall rules and bridge (idempotent).
pub fn remove_network(root: &Path, n: &Network) -> Result<()> {
    remove_rules(root, n)?;
    delete_link(&n.bridge)?;
    Ok(())
}

/// The firewall half of [`remove_network`] (idempotent).
pub fn remove_rules(root: &Path, n: &Network) -> Result<()> {
    Firewall::new(table_name(root)).remove_tag(&nft::net_tag(&n.name), Some(&n.bridge))?;
    Ok(())
}

/// Deletes a host link (bridge or veth end) by name; missing is fine.
pub fn delete_link(name: &str) -> Result<bool> {
    link::run(None, |h| async move { link::delete_link(&h, name).await })
}

/// The counters of a pod's interface ([`link::POD_IF`]) read inside its
/// namespace at `netns` (runsc reports none of its own on older releases;
/// the sandbox's packets all cross this link). `None` when the namespace
/// or the interface is gone (a pod being removed).
pub fn pod_if_stats(netns: &Path) -> Result<Option<IfStats>> {
    if !netns::exists(netns) {
        return Ok(None);
    }
    link::run(Some(netns), |h| async move {
        Ok(link::link_by_name(&h, link::POD_IF)
            .await?
            .as_ref()
            .and_then(link::counters_of))
    })
}

/// Links of the host as (name, alias).
pub fn host_links() -> Result<Vec<(String, Option<String>)>> {
    link::run(None, |h| async move { link::links(&h).await })
}

/// A pod's attachment to a network.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    pub root: &'a Path,
    pub pod_id: &'a str,
    pub netns: &'a Path,
    pub network: &'a Network,
    pub ip: Ipv4Addr,
}

impl Attachment<'_> {
    fn pod_if<'b>(&'b self, veth: &'b str, alias: &'b str) -> link::PodIf<'b> {
        link::PodIf {
            netns: self.netns,
            veth,
            alias,
            bridge: &self.network.bridge,
            ip: self.ip,
            prefix: self.network.subnet.len,
            gateway: self.network.gateway,
        }
    }
}

/// Creates the pod's namespace and veth pair and configures them; or, when
/// the namespace already exists, re-adds what runsc stripped (fact 4).
pub fn attach(a: &Attachment) -> Result<()> {
    let veth = veth_name(a.pod_id);
    let alias = pod_alias(a.root, a.pod_id);
    let p = a.pod_if(&veth, &alias);
    if netns::exists(a.netns) {
        return link::reconfigure(&p);
    }
    if let Some(d) = a.netns.parent() {
        netns::ensure_dir(d)?;
    }
    // A half-made earlier attempt (crash, reboot) leaves these; start clean.
    delete_link(&veth)?;
    netns::remove(a.netns)?;
    link::create_pod_if(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.pod_port, p.proto),
            (None, Some(8080), 80, Proto::Tcp)
        );
        let p = parse_port("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (p.host_port, p.pod_port, p.proto),
            (Some(5353), 53, Proto::Udp)
        );
        let p = parse_port("80").unwrap();
        assert_eq!((p.host_port, p.pod_port), (None, 80));
        let p = parse_port("0.0.0.0::80").unwrap();
        assert_eq!((p.host_ip, p.host_port), (None, None));
        for bad in [
            "",
            "x",
            "0:80",
            "70000:80",
            "80/sctp",
            "1.2.3:80:80",
            "a:b:c:d",
        ] {
            let e = parse_port(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn names_fit_ifnamsiz_and_aliases_round_trip() {
        let root = Path::new("/tmp/gvpod-test-abc");
        let b = bridge_name(root, "frontend");
        assert!(b.len() <= 15 && b.starts_with("gvbr-"), "{b}");
        assert_ne!(b, bridge_name(root, "backend"));
        assert_eq!(
            bridge_name(Path::new(DEFAULT_ROOT), DEFAULT_NETWORK),
            "gvpod0"
        );
        assert_eq!(veth_name(&"ab".repeat(32)).len(), 15);
        let a = pod_alias(root, "f00");
        assert_eq!(parse_alias(root, &a), Some(("pod", "f00")));
        assert_eq!(parse_alias(Path::new("/other"), &a), None);
        assert_eq!(parse_alias(root, &net_alias(root, "x")), Some(("net", "x")));
    }
}
