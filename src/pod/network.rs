//! Networks and the network side of pods: the only place that joins the
//! `net` layer (host links, firewall), the state database (networks, leases,
//! ports) and the pod's resources. `net` never sees runsc; runsc never sees
//! `net`.

pub use super::views::{NetworkPod, NetworkView};

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::{failpoint, Ctx, PodError, Result};
use crate::net::{self, Cidr, Network, PortMapping, PortSpec, Proto};
use crate::state::{Lease, NetworkRow, PodRow, PortRow, ResourceKind, StateError};

impl From<net::NetError> for PodError {
    fn from(e: net::NetError) -> PodError {
        PodError::Net(e)
    }
}

fn to_network(r: &NetworkRow) -> Result<Network> {
    let corrupt = |what: &str| {
        PodError::State(StateError::Corrupt(format!(
            "network {}: bad {what}",
            r.name
        )))
    };
    Ok(Network {
        name: r.name.clone(),
        bridge: r.bridge.clone(),
        subnet: r.subnet.parse().map_err(|_| corrupt("subnet"))?,
        gateway: r.gateway.parse().map_err(|_| corrupt("gateway"))?,
        internal: r.internal,
    })
}

fn view(ctx: &Ctx, r: NetworkRow) -> Result<NetworkView> {
    let pods = ctx
        .db
        .leases(&r.name)?
        .into_iter()
        .map(|(ip, name, id)| NetworkPod {
            name,
            id,
            ip: ip.to_string(),
        })
        .collect();
    Ok(NetworkView {
        name: r.name,
        bridge: r.bridge,
        subnet: r.subnet,
        gateway: r.gateway,
        internal: r.internal,
        created: r.created,
        labels: r.labels,
        pods,
    })
}

pub fn list_networks(ctx: &Ctx) -> Result<Vec<NetworkView>> {
    ctx.db
        .networks()?
        .into_iter()
        .map(|r| view(ctx, r))
        .collect()
}

pub fn inspect_network(ctx: &Ctx, name: &str) -> Result<NetworkView> {
    let r = ctx
        .db
        .network(name)?
        .ok_or_else(|| PodError::NoNetwork(name.to_string()))?;
    view(ctx, r)
}

fn check_network_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok || name == "none" || name == "host" {
        return Err(PodError::Usage(format!(
            "invalid network name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,63}}, not none or host"
        )));
    }
    Ok(())
}

/// `network create`. Without `subnet`, the first free /24 of 198.18.0.0/16.
pub fn create_network(
    ctx: &mut Ctx,
    name: &str,
    subnet: Option<&str>,
    gateway: Option<&str>,
    internal: bool,
) -> Result<NetworkView> {
    create_labeled_network(ctx, name, subnet, gateway, internal, Default::default())
}

/// [`create_network`] with docker's labels recorded on the network.
pub fn create_labeled_network(
    ctx: &mut Ctx,
    name: &str,
    subnet: Option<&str>,
    gateway: Option<&str>,
    internal: bool,
    labels: std::collections::BTreeMap<String, String>,
) -> Result<NetworkView> {
    check_network_name(name)?;
    if ctx.db.network(name)?.is_some() {
        return Err(PodError::State(StateError::NetworkExists(name.into())));
    }
    let bad = |what: &'static str, value: &str, hint: String| {
        PodError::Net(net::NetError::BadValue {
            what,
            value: value.to_string(),
            hint,
        })
    };
    let subnet: Option<Cidr> = subnet
        .map(|s| s.parse().map_err(|h| bad("--subnet", s, h)))
        .transpose()?;
    if let Some(s) = &subnet {
        if s.len > 30 {
            return Err(bad(
                "--subnet",
                &s.to_string(),
                "a network needs at least a /30 (a gateway and one pod)".into(),
            ));
        }
    }
    let gw: Option<Ipv4Addr> = gateway
        .map(|g| {
            g.parse()
                .map_err(|_| bad("--gateway", g, "use an IPv4 address".into()))
        })
        .transpose()?;
    let bridge = net::bridge_name(&ctx.root, name);
    let _lock = net::host_lock()?;
    let subnet = match subnet {
        Some(s) => {
            net::check_overlap(&s, &bridge)?;
            if let Some(o) = ctx
                .db
                .networks()?
                .iter()
                .find(|n| n.subnet.parse::<Cidr>().is_ok_and(|c| c.overlaps(&s)))
            {
                return Err(PodError::Usage(format!(
                    "subnet {s} overlaps network {} ({})",
                    o.name, o.subnet
                )));
            }
            s
        }
        None => {
            let taken: Vec<Cidr> = ctx
                .db
                .networks()?
                .iter()
                .filter_map(|n| n.subnet.parse().ok())
                .collect();
            net::free_subnet(&taken)?.ok_or_else(|| {
                PodError::Usage(format!(
                    "no free /24 left in {}; give the network a --subnet",
                    net::POOL
                ))
            })?
        }
    };
    let gateway = match gw {
        Some(g) if !subnet.is_host(g) => {
            return Err(bad(
                "--gateway",
                &g.to_string(),
                format!("it must be a host address of {subnet}"),
            ))
        }
        Some(g) => g,
        None => subnet.hosts().next().expect("a /30 or larger has hosts"),
    };
    let row = NetworkRow {
        name: name.to_string(),
        bridge,
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        internal,
        created: crate::util::now_rfc3339(),
        labels,
    };
    // Recorded first: a crash before the bridge exists leaves a row that
    // `network rm` (or the next pod, which re-ensures it) completes.
    ctx.db.insert_network(&row)?;
    failpoint::hit("network-create:recorded");
    let n = to_network(&row)?;
    // Rules first, the bridge last (see `net::ensure_network`).
    let made = net::ensure_rules(&ctx.root, &n).and_then(|()| {
        failpoint::hit("network-create:firewalled");
        net::ensure_bridge(&ctx.root, &n)
    });
    if let Err(e) = made {
        let _ = net::remove_network(&ctx.root, &n);
        let _ = ctx.db.delete_network(name);
        return Err(e.into());
    }
    failpoint::hit("network-create:bridged");
    view(ctx, row)
}

/// `network rm`: refused while pods use it; removes rules, bridge and row,
/// and the data root's firewall table with its last network.
pub fn remove_network(ctx: &mut Ctx, name: &str) -> Result<()> {
    let r = ctx
        .db
        .network(name)?
        .ok_or_else(|| PodError::NoNetwork(name.to_string()))?;
    let users = ctx.db.leases(name)?;
    if !users.is_empty() {
        return Err(PodError::State(StateError::NetworkInUse {
            name: name.into(),
            pods: users
                .iter()
                .map(|u| u.1.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }));
    }
    let n = to_network(&r)?;
    // Undone in the reverse order of `create`, the row last: a kill at any
    // step leaves a row that a retried `network rm` finishes (each step
    // is idempotent), or, after the row, a table gc removes.
    net::remove_rules(&ctx.root, &n)?;
    failpoint::hit("network-rm:unfirewalled");
    net::delete_link(&n.bridge)?;
    failpoint::hit("network-rm:unbridged");
    ctx.db.delete_network(name)?;
    failpoint::hit("network-rm:deleted");
    if ctx.db.networks()?.is_empty() {
        net::Firewall::new(net::table_name(&ctx.root)).delete_table()?;
    }
    Ok(())
}

/// The network a pod asks for: None for `none` and `host`. The default
/// network is created on first use; any network's bridge is re-made if it
/// is missing (after a reboot).
pub fn resolve(ctx: &mut Ctx, name: &str) -> Result<Option<Network>> {
    if matches!(name, "none" | "host" | "") {
        return Ok(None);
    }
    let row = match ctx.db.network(name)? {
        Some(r) => r,
        None if name == net::DEFAULT_NETWORK => {
            match create_network(ctx, name, None, None, false) {
                Ok(_) | Err(PodError::State(StateError::NetworkExists(_))) => {}
                Err(e) => return Err(e),
            }
            ctx.db
                .network(name)?
                .ok_or_else(|| PodError::NoNetwork(name.to_string()))?
        }
        None => return Err(PodError::NoNetwork(name.to_string())),
    };
    let n = to_network(&row)?;
    // The bridge is made last (`net::ensure_network`): when it exists, so
    // do the network's rules and the maps its pods' ports go in. Without
    // it, the lock waits for a `network create` still making them.
    if !net::bridge_exists(&n.bridge)? {
        let _lock = net::host_lock()?;
        net::ensure_network(&ctx.root, &n)?;
    }
    Ok(Some(n))
}

/// Parsed network options of a pod.
pub struct PodNetOpts {
    pub ports: Vec<PortMapping>,
    /// The route port (`--route`; `pod::route`), its pod port the default one.
    pub route: Option<PortMapping>,
    pub ip: Option<Ipv4Addr>,
    pub dns: Vec<IpAddr>,
    pub add_hosts: Vec<(String, IpAddr)>,
}

/// Validates `-p`, `--ip`, `--dns`, `--add-host` against the network and
/// reserves host ports (refused now, before the pod exists, if in use).
pub fn parse_opts(
    opts: &crate::bundle::PodOptions,
    network: Option<&Network>,
) -> Result<PodNetOpts> {
    let specs: Vec<PortSpec> = opts
        .publish
        .iter()
        .map(|p| net::parse_port(p))
        .collect::<std::result::Result<_, _>>()?;
    if !specs.is_empty() && network.is_none() {
        return Err(PodError::Usage(format!(
            "-p needs a pod network; --network {} has none",
            opts.network
        )));
    }
    let mut ports: Vec<PortMapping> = vec![];
    for s in &specs {
        let m = net::ports::reserve(s)?;
        if let Some(o) = ports.iter().find(|o| net::ports::conflicts(o, &m)) {
            return Err(PodError::Usage(format!(
                "-p {} and -p {} publish the same host port",
                m, o
            )));
        }
        ports.push(m);
    }
    let ip = match (&opts.ip, network) {
        (None, _) => None,
        (Some(s), None) => {
            return Err(PodError::Usage(format!(
                "--ip {s} needs a pod network; --network {} has none",
                opts.network
            )))
        }
        (Some(s), Some(n)) => {
            let ip: Ipv4Addr = s
                .parse()
                .map_err(|_| PodError::Usage(format!("invalid --ip {s:?}: use an IPv4 address")))?;
            if !n.subnet.is_host(ip) || ip == n.gateway {
                return Err(PodError::Usage(format!(
                    "invalid --ip {ip}: not a free host address of network {} ({}, gateway {})",
                    n.name, n.subnet, n.gateway
                )));
            }
            Some(ip)
        }
    };
    let dns = opts
        .dns
        .iter()
        .map(|d| {
            d.parse::<IpAddr>()
                .map_err(|_| PodError::Usage(format!("invalid --dns {d:?}: use an IP address")))
        })
        .collect::<Result<_>>()?;
    let add_hosts = opts
        .add_hosts
        .iter()
        .map(|h| net::dns::parse_add_host(h))
        .collect::<std::result::Result<_, _>>()?;
    Ok(PodNetOpts {
        ports,
        route: None,
        ip,
        dns,
        add_hosts,
    })
}

/// The rows of a pod's published ports and its route port.
pub fn port_rows(o: &PodNetOpts) -> Vec<PortRow> {
    let row = |p: &PortMapping, route: bool| PortRow {
        proto: p.proto.as_str().into(),
        host_ip: p.host_ip.to_string(),
        host_port: p.host_port,
        pod_port: p.pod_port,
        route,
    };
    let mut rows: Vec<PortRow> = o.ports.iter().map(|p| row(p, false)).collect();
    rows.extend(o.route.iter().map(|p| row(p, true)));
    rows
}

/// The published ports among a pod's port rows.
pub fn mappings(rows: &[PortRow]) -> Vec<PortMapping> {
    rows.iter()
        .filter(|r| !r.route)
        .filter_map(|r| {
            Some(PortMapping {
                host_ip: r.host_ip.parse().ok()?,
                host_port: r.host_port,
                pod_port: r.pod_port,
                proto: Proto::parse(&r.proto)?,
            })
        })
        .collect()
}

/// Inserts the pod row with its lease and ports in one transaction.
pub fn insert_pod(
    ctx: &mut Ctx,
    row: &PodRow,
    network: Option<&Network>,
    o: &PodNetOpts,
) -> Result<Option<Ipv4Addr>> {
    let pick = |taken: &std::collections::HashSet<Ipv4Addr>| {
        network.and_then(|n| net::cidr::pick_free(&n.subnet, n.gateway, taken))
    };
    let lease = network.map(|n| {
        (
            n.name.as_str(),
            match o.ip {
                Some(ip) => Lease::Fixed(ip),
                None => Lease::Pick(&pick),
            },
        )
    });
    Ok(ctx.db.insert_pod_networked(row, lease, &port_rows(o))?)
}

pub fn netns_path(ctx: &Ctx, pod_id: &str) -> PathBuf {
    ctx.root.join("netns").join(pod_id)
}

/// Creates the pod's namespace, veth and port rules, each recorded first.
pub fn setup_pod(ctx: &mut Ctx, pod_id: &str, n: &Network, ip: Ipv4Addr) -> Result<()> {
    let t0 = std::time::Instant::now();
    let ns = netns_path(ctx, pod_id);
    ctx.db
        .add_resource(pod_id, ResourceKind::Netns, &ns.to_string_lossy())?;
    ctx.db
        .add_resource(pod_id, ResourceKind::Veth, &net::veth_name(pod_id))?;
    failpoint::hit("net:recorded");
    net::attach(&net::Attachment {
        root: &ctx.root,
        pod_id,
        netns: &ns,
        network: n,
        ip,
    })?;
    failpoint::hit("net:attached");
    let rules = port_rules(ctx, pod_id)?;
    if !rules.is_empty() {
        ctx.db
            .add_resource(pod_id, ResourceKind::Firewall, &net::nft::pod_tag(pod_id))?;
        net::Firewall::new(net::table_name(&ctx.root)).add_ports(pod_id, &rules)?;
    }
    // Read by benches/network.sh (GVPOD_LOG=debug).
    tracing::debug!("step net:ready setup_us={}", t0.elapsed().as_micros());
    Ok(())
}

/// Before each start: the network exists and the pod's interface has its
/// address again (DESIGN.md fact 4: runsc strips it when it takes the
/// interface over; the address recorded in the lease is re-added).
pub fn prepare_start(ctx: &mut Ctx, pod: &PodRow) -> Result<()> {
    let Some((net_name, ip)) = ctx.db.lease_of(&pod.id)? else {
        return Ok(());
    };
    if pod.status == crate::state::PodStatus::Created
        && net::netns::exists(&netns_path(ctx, &pod.id))
    {
        return Ok(()); // just configured by `create`: nothing stripped yet
    }
    let n = resolve(ctx, &net_name)?.ok_or_else(|| PodError::NoNetwork(net_name.clone()))?;
    setup_pod(ctx, &pod.id, &n, ip)
}

/// `/etc/hosts` lines for the other pods on a network.
pub fn peers(ctx: &Ctx, network: &str, except: &str) -> Result<Vec<(Ipv4Addr, String)>> {
    Ok(ctx
        .db
        .leases(network)?
        .into_iter()
        .filter(|(_, _, id)| id != except)
        .map(|(ip, name, _)| (ip, name))
        .collect())
}

/// Rewrites (in place, so the bind mount keeps pointing at it) the hosts
/// file of every other pod on the network after one joined or left.
pub fn refresh_peer_hosts(ctx: &Ctx, network: &str) -> Result<()> {
    for (ip, name, id) in ctx.db.leases(network)? {
        let path = ctx.bundle_dir(&id).join("hosts");
        let Ok(old) = std::fs::read_to_string(&path) else {
            continue;
        };
        let peers = peers(ctx, network, &id)?;
        let _ = (ip, name);
        let text = net::dns::replace_peers(&old, &peers);
        if text != old {
            // Same inode (the pod's bind mount points at it): truncate and
            // write, never create: a pod being removed concurrently must not
            // get a new file in the bundle its `rm` is deleting.
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
    }
    Ok(())
}

/// A pod's /etc/hosts (see [`net::dns::hosts`]), its peers read from the
/// network's leases.
pub fn pod_hosts(
    ctx: &Ctx,
    pod_id: &str,
    name: &str,
    hostname: &str,
    attach: Option<(&Network, Ipv4Addr)>,
    add_hosts: &[(String, IpAddr)],
) -> Result<String> {
    let peers = match attach {
        Some((n, _)) => peers(ctx, &n.name, pod_id)?,
        None => vec![],
    };
    Ok(net::dns::hosts(
        hostname,
        name,
        attach.map(|(_, ip)| ip),
        &peers,
        add_hosts,
    ))
}

/// A pod's published ports and route port as its monitor holds them:
/// bound for the pod's life, and closed by [`HeldPorts::release`] (or the
/// drop) before the monitor says it is done, so whoever binds them next
/// (the pod restored in place at once) finds them free (`sys::Served`).
pub struct HeldPorts {
    /// TCP listeners served by proxy threads, and the route port.
    served: Vec<crate::sys::Served>,
    /// UDP sockets, only held.
    held: Vec<std::os::fd::OwnedFd>,
}

impl HeldPorts {
    /// Closes every socket; when it returns, none of the ports is bound here.
    pub fn release(self) {
        drop(self);
    }
}

/// Binds the pod's published ports (the monitor holds them) and its route
/// port (`pod::route::hold`). TCP listeners also proxy to the pod whatever
/// reaches them rather than the DNAT rules. A failure closes what was
/// bound before it.
pub fn hold_ports(ctx: &Ctx, pod: &PodRow) -> Result<HeldPorts> {
    let rows = ctx.db.ports_of(&pod.id)?;
    let ports = mappings(&rows);
    let ip = ctx.db.lease_of(&pod.id)?.map(|(_, ip)| ip);
    let mut out = HeldPorts {
        served: vec![],
        held: vec![],
    };
    for p in ports {
        let fd = net::ports::bind(p.proto, p.host_ip, p.host_port)?;
        match (p.proto, ip) {
            (Proto::Tcp, Some(ip)) => out.served.push(net::ports::proxy_tcp(
                fd,
                std::net::SocketAddrV4::new(ip, p.pod_port),
            )?),
            _ => out.held.push(fd),
        }
    }
    if let Some(route) = super::route::route_in(&rows) {
        out.served.push(super::route::hold(ctx, pod, route)?);
    }
    Ok(out)
}

/// The DNAT entries of a pod's published ports (empty without a lease).
pub fn port_rules(ctx: &Ctx, pod_id: &str) -> Result<Vec<net::nft::PortRule>> {
    let Some((_, ip)) = ctx.db.lease_of(pod_id)? else {
        return Ok(vec![]);
    };
    Ok(mappings(&ctx.db.ports_of(pod_id)?)
        .iter()
        .map(|p| net::nft::PortRule {
            proto: p.proto,
            host_ip: Some(p.host_ip).filter(|i| !i.is_unspecified()),
            host_port: p.host_port,
            pod_ip: ip,
            pod_port: p.pod_port,
        })
        .collect())
}
