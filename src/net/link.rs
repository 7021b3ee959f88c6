//! Links, addresses and routes over rtnetlink, in the host's network
//! namespace or inside a pod's.
//!
//! A netlink socket belongs to the network namespace its creating thread was
//! in, so every operation runs on a short-lived thread that first enters the
//! namespace it needs (setns only affects that thread) and drives rtnetlink
//! on a single-threaded tokio runtime. Creating a pod's network is one such
//! thread: it opens a socket in the host namespace, unshares into a new one,
//! pins it with a bind mount, opens a second socket there, then creates the
//! veth pair with its peer already inside the new namespace (named `eth0`
//! from the start, so no rename) and configures both ends.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::{Cidr, NetError, Result};

/// Name of the pod's interface inside its namespace.
pub const POD_IF: &str = "eth0";

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |e| NetError::Netlink {
        what,
        msg: e.to_string(),
    }
}

/// errno of a netlink error reply (positive), 0 when it is not one.
fn errno(e: &rtnetlink::Error) -> i32 {
    match e {
        rtnetlink::Error::NetlinkError(m) => -m.raw_code(),
        _ => 0,
    }
}

/// Runs `f` with a netlink handle on a fresh thread, inside `netns` when given.
pub fn run<T, F, Fut>(netns: Option<&Path>, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(p) = netns {
                enter(p)?;
            }
            block_on(async move {
                let h = connect()?;
                f(h).await
            })
        })
        .join()
        .unwrap_or_else(|_| Err(NetError::Other("netlink thread panicked".into())))
    })
}

fn block_on<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| NetError::Other(format!("tokio runtime: {e}")))?;
    rt.block_on(fut)
}

/// A handle whose connection task runs on the current runtime.
fn connect() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| NetError::Other(format!("netlink socket: {e}")))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Moves the calling thread into the network namespace pinned at `path`.
fn enter(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|source| NetError::Io {
        what: "cannot open network namespace",
        path: path.to_owned(),
        source,
    })?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Io {
        what: "cannot enter network namespace",
        path: path.to_owned(),
        source: e.into(),
    })
}

pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(m) => Ok(m),
        Err(e) if errno(&e) == libc::ENODEV => Ok(None),
        Err(e) => Err(nl(format!("get link {name}"))(e)),
    }
}

/// Deletes a link by name; a missing link is not an error (idempotent undo).
pub async fn delete_link(h: &Handle, name: &str) -> Result<bool> {
    let Some(l) = link_by_name(h, name).await? else {
        return Ok(false);
    };
    match h.link().del(l.header.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == libc::ENODEV => Ok(false),
        Err(e) => Err(nl(format!("delete link {name}"))(e)),
    }
}

pub fn alias_of(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    })
}

pub fn name_of(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(s) => Some(s.as_str()),
        _ => None,
    })
}

/// The 64-bit counters of a link (`IFLA_STATS64`), if the kernel gave them.
pub fn counters_of(l: &LinkMessage) -> Option<super::IfStats> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Stats64(s) => Some(super::IfStats {
            rx_bytes: s.rx_bytes,
            rx_packets: s.rx_packets,
            rx_errors: s.rx_errors,
            rx_dropped: s.rx_dropped,
            tx_bytes: s.tx_bytes,
            tx_packets: s.tx_packets,
            tx_errors: s.tx_errors,
            tx_dropped: s.tx_dropped,
        }),
        _ => None,
    })
}

/// Every link of the namespace as (name, alias).
pub async fn links(h: &Handle) -> Result<Vec<(String, Option<String>)>> {
    let mut out = vec![];
    let mut s = h.link().get().execute();
    while let Some(l) = s.try_next().await.map_err(nl("list links"))? {
        if let Some(n) = name_of(&l) {
            out.push((n.to_string(), alias_of(&l).map(str::to_string)));
        }
    }
    Ok(out)
}

/// IPv4 prefixes of the main routing table (for subnet overlap checks).
pub async fn main_routes(h: &Handle) -> Result<Vec<(Cidr, String)>> {
    let mut idx_names = std::collections::HashMap::new();
    for (i, (n, _)) in links_with_index(h).await? {
        idx_names.insert(i, n);
    }
    let mut out = vec![];
    let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut s = h.route().get(msg).execute();
    while let Some(r) = s.try_next().await.map_err(nl("list routes"))? {
        if r.header.table != 254 || r.header.destination_prefix_length == 0 {
            continue;
        }
        let mut dst = None;
        let mut dev = String::new();
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
                RouteAttribute::Oif(i) => dev = idx_names.get(i).cloned().unwrap_or_default(),
                _ => {}
            }
        }
        if let Some(c) = dst.and_then(|d| Cidr::new(d, r.header.destination_prefix_length)) {
            out.push((c, dev));
        }
    }
    Ok(out)
}

async fn links_with_index(h: &Handle) -> Result<Vec<(u32, (String, Option<String>))>> {
    let mut out = vec![];
    let mut s = h.link().get().execute();
    while let Some(l) = s.try_next().await.map_err(nl("list links"))? {
        if let Some(n) = name_of(&l) {
            out.push((
                l.header.index,
                (n.to_string(), alias_of(&l).map(str::to_string)),
            ));
        }
    }
    Ok(out)
}

async fn ipv4_addrs(h: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
    let mut out = vec![];
    let mut s = h.address().get().set_link_index_filter(index).execute();
    while let Some(a) = s.try_next().await.map_err(nl("list addresses"))? {
        if a.header.index != index {
            continue;
        }
        for attr in &a.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = attr {
                out.push((*ip, a.header.prefix_len));
            }
        }
    }
    Ok(out)
}

async fn ensure_addr(h: &Handle, index: u32, ip: Ipv4Addr, len: u8, what: &str) -> Result<()> {
    if ipv4_addrs(h, index).await?.contains(&(ip, len)) {
        return Ok(());
    }
    match h.address().add(index, IpAddr::V4(ip), len).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == libc::EEXIST => Ok(()),
        Err(e) => Err(nl(format!("add address {ip}/{len} to {what}"))(e)),
    }
}

/// Creates (or finds) the bridge of a network, up, with the gateway address.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    alias: &str,
    gateway: Ipv4Addr,
    subnet: &Cidr,
) -> Result<()> {
    let link = match link_by_name(h, name).await? {
        Some(l) => l,
        None => {
            let msg = LinkBridge::new(name).alias(alias).build();
            match h.link().add(msg).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == libc::EEXIST => {}
                Err(e) => return Err(nl(format!("create bridge {name}"))(e)),
            }
            link_by_name(h, name)
                .await?
                .ok_or_else(|| NetError::Other(format!("bridge {name} vanished after creation")))?
        }
    };
    let index = link.header.index;
    // Published ports reached from 127.0.0.1 are DNATed out of this bridge
    // with a loopback source; the kernel drops those as martians unless
    // route_localnet is on for the outgoing interface (as CNI portmap does).
    // Per interface, so the host's other interfaces keep their setting.
    set_sysctl(&format!("net/ipv4/conf/{name}/route_localnet"), "1")?;
    ensure_addr(h, index, gateway, subnet.len, name).await?;
    // The alias goes in a SETLINK: RTM_NEWLINK ignores IFLA_IFALIAS.
    h.link()
        .set(LinkUnspec::new_with_index(index).up().alias(alias).build())
        .execute()
        .await
        .map_err(nl(format!("set {name} up")))
}

/// Writes a sysctl under /proc/sys (only if it differs).
pub fn set_sysctl(key: &str, value: &str) -> Result<()> {
    let p = PathBuf::from("/proc/sys").join(key);
    if std::fs::read_to_string(&p).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&p, value).map_err(|source| NetError::Io {
        what: "cannot set sysctl",
        path: p,
        source,
    })
}

/// What a pod's interface gets.
#[derive(Debug, Clone)]
pub struct PodIf<'a> {
    pub netns: &'a Path,
    pub veth: &'a str,
    pub alias: &'a str,
    pub bridge: &'a str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// Creates the pod's namespace at `netns` (an empty file is bind-mounted
/// over with the namespace), the veth pair (host end on the bridge, `eth0`
/// inside), the address, the default route and loopback.
pub fn create_pod_if(p: &PodIf) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            block_on(async {
                // Opened before unshare: this socket stays in the host namespace.
                let host = connect()?;
                super::netns::unshare_and_pin(p.netns)?;
                let pod = connect()?;
                let bridge = link_by_name(&host, p.bridge).await?.ok_or_else(|| {
                    NetError::Other(format!("bridge {} does not exist", p.bridge))
                })?;
                add_veth(&host, p, Some(bridge.header.index)).await?;
                // RTM_NEWLINK ignores IFLA_IFALIAS: the mark that lets `gc`
                // find the veth goes in a SETLINK right after.
                host.link()
                    .set(LinkUnspec::new_with_name(p.veth).alias(p.alias).build())
                    .execute()
                    .await
                    .map_err(nl(format!("set alias of {}", p.veth)))?;
                configure_inside(&pod, p).await
            })
        })
        .join()
        .unwrap_or_else(|_| Err(NetError::Other("netlink thread panicked".into())))
    })
}

/// Like [`create_pod_if`] without a bridge: the host end of the veth pair
/// gets `host_ip` itself (a point-to-point link, `p.bridge` is unused), so
/// the host reaches `p.ip` with no bridge and no firewall rules. For `gvpod
/// bench`'s network workload; `p.gateway` should be `host_ip`.
pub fn create_direct_if(p: &PodIf, host_ip: Ipv4Addr) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            block_on(async {
                let host = connect()?;
                super::netns::unshare_and_pin(p.netns)?;
                let pod = connect()?;
                add_veth(&host, p, None).await?;
                let l = link_by_name(&host, p.veth)
                    .await?
                    .ok_or_else(|| NetError::Other(format!("veth {} vanished", p.veth)))?;
                ensure_addr(&host, l.header.index, host_ip, p.prefix, p.veth).await?;
                configure_inside(&pod, p).await
            })
        })
        .join()
        .unwrap_or_else(|_| Err(NetError::Other("netlink thread panicked".into())))
    })
}

/// Adds the veth pair: `p.veth` up on the host, enslaved to the bridge of
/// index `controller` when there is one, its peer created as eth0 straight
/// in `p.netns` (never visible on the host under a second name).
async fn add_veth(host: &Handle, p: &PodIf<'_>, controller: Option<u32>) -> Result<()> {
    let nsfile = std::fs::File::open(p.netns).map_err(|source| NetError::Io {
        what: "cannot open network namespace",
        path: p.netns.to_owned(),
        source,
    })?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(POD_IF.to_string())
        .setns_by_fd(nsfile.as_raw_fd())
        .build();
    let mut msg = LinkVeth::new(p.veth, POD_IF).set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
    if let Some(index) = controller {
        msg = msg.controller(index);
    }
    host.link()
        .add(msg.up().build())
        .execute()
        .await
        .map_err(nl(format!("create veth {}", p.veth)))
}

/// Inside the pod's namespace: lo and eth0 up, the address, the default
/// route. Idempotent, so it also re-addresses an interface runsc stripped
/// (DESIGN.md fact 4: runsc removes the addresses from the namespace's
/// interface when it takes it over; a restart or restore needs them back,
/// and runsc only copies a default route that has a gateway).
pub async fn configure_inside(h: &Handle, p: &PodIf<'_>) -> Result<()> {
    for name in ["lo", POD_IF] {
        let l = link_by_name(h, name)
            .await?
            .ok_or_else(|| NetError::Other(format!("{name} missing in {}", p.netns.display())))?;
        if name == POD_IF {
            ensure_addr(h, l.header.index, p.ip, p.prefix, POD_IF).await?;
        }
        h.link()
            .set(LinkUnspec::new_with_index(l.header.index).up().build())
            .execute()
            .await
            .map_err(nl(format!("set {name} up")))?;
    }
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(p.gateway)
        .build();
    match h.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == libc::EEXIST => Ok(()),
        Err(e) => Err(nl(format!("add default route via {}", p.gateway))(e)),
    }
}

/// Re-adds what runsc stripped (fact 4) in an existing pod namespace.
pub fn reconfigure(p: &PodIf) -> Result<()> {
    run(
        Some(p.netns),
        |h| async move { configure_inside(&h, p).await },
    )
}
