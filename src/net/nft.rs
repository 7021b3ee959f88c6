//! gvpod's firewall: one nftables table per data root (`inet gvpod` for the
//! default root, `inet gvpod-<hash>` for others), fed to `nft -j -f -` as
//! JSON built with serde_json.
//!
//! (Only the two DNAT maps are declared in nft's text syntax, which 1.0.6's
//! JSON parser cannot express; see [`Firewall::ensure_network`].)
//!
//! Why `nft -j` and not a crate: the only netlink-level nftables crate
//! (rustables) is GPL-3.0, which this Apache-2.0 binary cannot link; the
//! `nftables` crate is itself a typed wrapper that spawns the same
//! `nft -j -f -`, so it would add a dependency and no capability. The JSON
//! schema is stable (libnftables-json(5)) and nftables is installed wherever
//! gvpod networking is used.
//!
//! Traceability: every rule and map element carries a comment, `base` (the
//! table's own rules), `net:<network>` or `pod:<pod id>`; removing a network
//! or a pod deletes exactly what has its comment (rules by handle, elements
//! by key). Additions first
//! list the table and skip rules that are already there (idempotent); a
//! host-wide lock serialises gvpod processes so two never race on that.
//!
//! Layout (hooks at netavark's priorities: DNAT -100, filter 0, SNAT 100):
//! - `prerouting`/`output` (nat): `fib daddr type local` → `ports`, which
//!   DNATs through two maps, `ports_ip` (host address, proto, port) and
//!   `ports_any` (proto, port), whose elements are the published ports,
//!   each commented with its pod (from any local address, 127.0.0.1
//!   included);
//! - `postrouting` (nat): masquerade of each non-internal network's egress;
//!   masquerade of DNATed connections that come from the same network
//!   (hairpin) or from 127.0.0.1, so the pod answers through the host;
//! - `forward` (filter): established and DNATed traffic accepted, then
//!   traffic from a network's bridge to another gvpod bridge dropped (each
//!   network has that rule, so isolation holds in both directions), then an
//!   internal network's traffic to or from anything but its own bridge;
//! - `input` (filter): packets from a gvpod bridge to 127.0.0.0/8 (in the
//!   original direction, so replies of published ports still pass) dropped,
//!   since route_localnet on the bridges would otherwise let a pod reach the
//!   host's loopback services (the CVE-2020-8558 class of bug); then any
//!   other new traffic from a gvpod bridge to the host (tag `host`): a pod
//!   reaches the host's addresses only on published ports, which are DNATed
//!   before `input` (tests/isolation.rs).

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{Cidr, NetError, Proto, Result};

/// The firewall table of one data root.
#[derive(Debug, Clone)]
pub struct Firewall {
    pub table: String,
}

/// What a network needs from the firewall.
pub struct NetRules<'a> {
    pub name: &'a str,
    pub bridge: &'a str,
    pub subnet: Cidr,
    pub internal: bool,
}

/// One published port.
pub struct PortRule {
    pub proto: Proto,
    /// None: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub pod_ip: Ipv4Addr,
    pub pod_port: u16,
}

const FAMILY: &str = "inet";
/// DNAT maps of published ports: (address, proto, port) and (proto, port).
const MAP_IP: &str = "ports_ip";
const MAP_ANY: &str = "ports_any";
const LOCK: &str = "/run/gvpod/nft.lock";
/// The comment of the rule that closes the host to pods ([`Firewall::host_rule`]).
const HOST_TAG: &str = "host";

pub fn net_tag(name: &str) -> String {
    format!("net:{name}")
}

pub fn pod_tag(id: &str) -> String {
    format!("pod:{id}")
}

fn m(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn saddr() -> Value {
    json!({"payload": {"protocol": "ip", "field": "saddr"}})
}

fn prefix(c: &Cidr) -> Value {
    json!({"prefix": {"addr": c.addr.to_string(), "len": c.len}})
}

impl Firewall {
    pub fn new(table: impl Into<String>) -> Firewall {
        Firewall {
            table: table.into(),
        }
    }

    fn rule(&self, chain: &str, comment: &str, expr: Vec<Value>) -> Value {
        json!({"rule": {"family": FAMILY, "table": self.table, "chain": chain,
                        "comment": comment, "expr": expr}})
    }

    fn skeleton(&self) -> Vec<Value> {
        let t = &self.table;
        let chain = |name: &str, ty: &str, hook: &str, prio: i32| {
            json!({"add": {"chain": {"family": FAMILY, "table": t, "name": name, "type": ty,
                                     "hook": hook, "prio": prio, "policy": "accept"}}})
        };
        vec![
            json!({"add": {"table": {"family": FAMILY, "name": t}}}),
            json!({"add": {"set": {"family": FAMILY, "table": t, "name": "bridges", "type": "ifname"}}}),
            json!({"add": {"chain": {"family": FAMILY, "table": t, "name": "ports"}}}),
            chain("prerouting", "nat", "prerouting", -100),
            chain("output", "nat", "output", -100),
            chain("postrouting", "nat", "postrouting", 100),
            chain("forward", "filter", "forward", 0),
            chain("input", "filter", "input", 0),
        ]
    }

    fn base_rules(&self) -> Vec<Value> {
        let local = || {
            m(
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                "==",
                json!("local"),
            )
        };
        let jump = json!({"jump": {"target": "ports"}});
        let l4 = || json!({"meta": {"key": "l4proto"}});
        let dport = || json!({"payload": {"protocol": "th", "field": "dport"}});
        let dnat_map = |key: Vec<Value>, map: &str| {
            json!({"dnat": {"family": "ip", "addr": {"map": {
                "key": {"concat": key}, "data": format!("@{map}")}}}})
        };
        vec![
            self.rule("prerouting", "base", vec![local(), jump.clone()]),
            self.rule("output", "base", vec![local(), jump]),
            // Published ports are map elements (one per port, commented
            // with the pod), so a pod's set-up and tear-down are one small
            // nft transaction each, with no listing. Address-specific
            // bindings first, then those on every local address.
            self.rule(
                "ports",
                "base",
                vec![dnat_map(
                    vec![
                        json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                        l4(),
                        dport(),
                    ],
                    MAP_IP,
                )],
            ),
            self.rule(
                "ports",
                "base",
                vec![dnat_map(vec![l4(), dport()], MAP_ANY)],
            ),
            self.rule(
                "forward",
                "base",
                vec![
                    m(
                        json!({"ct": {"key": "state"}}),
                        "in",
                        json!(["established", "related"]),
                    ),
                    json!({"accept": null}),
                ],
            ),
            self.rule(
                "forward",
                "base",
                vec![
                    m(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
                    json!({"accept": null}),
                ],
            ),
            self.rule(
                "input",
                "base",
                vec![
                    m(meta("iifname"), "==", json!("@bridges")),
                    m(
                        json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                        "==",
                        json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
                    ),
                    // Replies to 127.0.0.1-originated, DNATed connections
                    // arrive here too (un-NATed to 127.0.0.1): only new
                    // traffic from a pod is refused.
                    m(json!({"ct": {"key": "direction"}}), "==", json!("original")),
                    json!({"drop": null}),
                ],
            ),
        ]
    }

    fn network_rules(&self, n: &NetRules) -> Vec<Value> {
        let tag = net_tag(n.name);
        let br = json!(n.bridge);
        let dnat = || m(json!({"ct": {"key": "status"}}), "in", json!("dnat"));
        let masq = json!({"masquerade": null});
        let mut v = vec![
            // Hairpin: a pod reaching a published port of a pod on its own bridge.
            self.rule(
                "postrouting",
                &tag,
                vec![
                    m(meta("oifname"), "==", br.clone()),
                    m(saddr(), "==", prefix(&n.subnet)),
                    dnat(),
                    masq.clone(),
                ],
            ),
            // 127.0.0.1:PORT on the host, DNATed out of the bridge.
            self.rule(
                "postrouting",
                &tag,
                vec![
                    m(meta("oifname"), "==", br.clone()),
                    m(
                        saddr(),
                        "==",
                        json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
                    ),
                    masq.clone(),
                ],
            ),
        ];
        // Isolation. With br_netfilter (bridge-nf-call-iptables=1) traffic
        // between two pods of one bridge also passes the forward hook, with
        // the bridge as both input and output: only other interfaces count.
        v.push(self.rule(
            "forward",
            &tag,
            vec![
                m(meta("iifname"), "==", br.clone()),
                m(meta("oifname"), "!=", br.clone()),
                m(meta("oifname"), "==", json!("@bridges")),
                json!({"drop": null}),
            ],
        ));
        if n.internal {
            for (a, b) in [("iifname", "oifname"), ("oifname", "iifname")] {
                v.push(self.rule(
                    "forward",
                    &tag,
                    vec![
                        m(meta(a), "==", br.clone()),
                        m(meta(b), "!=", br.clone()),
                        json!({"drop": null}),
                    ],
                ));
            }
        } else {
            v.push(self.rule(
                "postrouting",
                &tag,
                vec![
                    m(saddr(), "==", prefix(&n.subnet)),
                    m(meta("oifname"), "!=", br),
                    masq,
                ],
            ));
        }
        v
    }

    /// The map and key of a published port's DNAT element.
    fn port_key(p: &PortRule) -> (&'static str, Value) {
        match p.host_ip {
            Some(ip) => (
                MAP_IP,
                json!({"concat": [ip.to_string(), p.proto.as_str(), p.host_port]}),
            ),
            None => (MAP_ANY, json!({"concat": [p.proto.as_str(), p.host_port]})),
        }
    }

    /// The same elements as [`Self::port_element`], encoded for netlink.
    fn nl_elems(&self, tag: &str, ports: &[PortRule]) -> Vec<super::nftnl::Elem> {
        use super::nftnl::{concat, Elem};
        ports
            .iter()
            .map(|p| {
                let proto = [match p.proto {
                    Proto::Tcp => libc::IPPROTO_TCP as u8,
                    Proto::Udp => libc::IPPROTO_UDP as u8,
                }];
                let port = p.host_port.to_be_bytes();
                let (map, key) = match p.host_ip {
                    Some(ip) => (MAP_IP, concat(&[&ip.octets(), &proto, &port])),
                    None => (MAP_ANY, concat(&[&proto, &port])),
                };
                Elem {
                    map,
                    key,
                    data: concat(&[&p.pod_ip.octets(), &p.pod_port.to_be_bytes()]),
                    comment: tag.to_string(),
                }
            })
            .collect()
    }

    fn element(&self, verb: &str, map: &str, elem: Value) -> Value {
        json!({verb: {"element": {"family": FAMILY, "table": self.table, "name": map, "elem": [elem]}}})
    }

    fn port_element(&self, tag: &str, p: &PortRule) -> Value {
        let (map, key) = Self::port_key(p);
        self.element(
            "add",
            map,
            json!([{"elem": {"val": key, "comment": tag}},
                   {"concat": [p.pod_ip.to_string(), p.pod_port]}]),
        )
    }

    /// Creates the table if needed and adds the network's rules (idempotent).
    pub fn ensure_network(&self, n: &NetRules) -> Result<()> {
        let _lock = HostLock::take(Path::new(LOCK))?;
        let have = self.list_rules()?;
        let mut cmds = self.skeleton();
        cmds.push(
            json!({"add": {"element": {"family": FAMILY, "table": self.table,
                                             "name": "bridges", "elem": [n.bridge]}}}),
        );
        let has = |tag: &str| have.iter().any(|(c, _, _)| c == tag);
        if !has("base") {
            // nft 1.0.6's JSON parser cannot declare a map whose data is a
            // concatenation (address . port), nor type a rule that uses a
            // map declared in the same batch: the two DNAT maps are
            // declared in nft's own syntax first, then used from JSON.
            apply(&cmds)?;
            apply_text(&format!(
                "add map {FAMILY} {t} {MAP_IP} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}\n\
                 add map {FAMILY} {t} {MAP_ANY} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}\n",
                t = self.table
            ))?;
            cmds = self
                .base_rules()
                .into_iter()
                .map(|r| json!({"add": r}))
                .collect();
        }
        if !has(HOST_TAG) {
            // Its own tag, so that tables made before the rule existed get it too.
            cmds.push(json!({"add": self.host_rule()}));
        }
        if !has(&net_tag(n.name)) {
            cmds.extend(self.network_rules(n).into_iter().map(|r| json!({"add": r})));
        }
        apply(&cmds)
    }

    /// Closes the host itself to pods: any new connection from a gvpod
    /// bridge to a local address (the gateways, the host's other addresses)
    /// is dropped in `input`. Published ports are DNATed in `prerouting`
    /// and go through `forward`, so they stay open; replies to connections
    /// the host opened (the router, health checks, ssh) are in the reply
    /// direction and pass.
    fn host_rule(&self) -> Value {
        self.rule(
            "input",
            HOST_TAG,
            vec![
                m(meta("iifname"), "==", json!("@bridges")),
                m(json!({"ct": {"key": "direction"}}), "==", json!("original")),
                json!({"drop": null}),
            ],
        )
    }

    /// Publishes a pod's ports: one transaction adding its map elements.
    /// Adding an element that is already there is a no-op, so a retry is
    /// safe; an element left by a vanished pod with other data is replaced.
    pub fn add_ports(&self, pod_id: &str, ports: &[PortRule]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let tag = pod_tag(pod_id);
        match super::nftnl::apply(&self.table, true, &self.nl_elems(&tag, ports)) {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!("{e}; retrying through nft"),
        }
        let adds: Vec<Value> = ports.iter().map(|p| self.port_element(&tag, p)).collect();
        if apply(&adds).is_ok() {
            return Ok(());
        }
        let mut cmds = vec![];
        for p in ports {
            let (map, key) = Self::port_key(p);
            if self.map_keys(map)?.contains(&key) {
                cmds.push(self.element("delete", map, key));
            }
        }
        cmds.extend(adds);
        apply(&cmds)
    }

    /// Unpublishes a pod's ports: one transaction deleting its elements by
    /// key; if some are missing (an interrupted earlier removal), every
    /// element still commented with the pod is deleted instead.
    pub fn remove_ports(&self, pod_id: &str, ports: &[PortRule]) -> Result<()> {
        let tag = pod_tag(pod_id);
        if !ports.is_empty() {
            match super::nftnl::apply(&self.table, false, &self.nl_elems(&tag, ports)) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!("{e}; retrying through nft"),
            }
        }
        let dels: Vec<Value> = ports
            .iter()
            .map(|p| {
                let (map, key) = Self::port_key(p);
                self.element("delete", map, key)
            })
            .collect();
        if !dels.is_empty() && apply(&dels).is_ok() {
            return Ok(());
        }
        self.remove_tag(&pod_tag(pod_id), None).map(|_| ())
    }

    /// Keys of a map's elements with their comments.
    fn map_elements(&self, doc: &Value, map: &str) -> Vec<(Value, Option<String>)> {
        items(doc)
            .filter_map(|o| o.get("map"))
            .filter(|m| m["name"] == map)
            .flat_map(|m| m["elem"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| {
                let k = e.get(0)?;
                Some(match k.get("elem") {
                    Some(inner) => (
                        inner["val"].clone(),
                        inner["comment"].as_str().map(str::to_string),
                    ),
                    None => (k.clone(), None),
                })
            })
            .collect()
    }

    fn map_keys(&self, map: &str) -> Result<Vec<Value>> {
        let Some(doc) = self.list_raw()? else {
            return Ok(vec![]);
        };
        Ok(self
            .map_elements(&doc, map)
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Deletes every rule with comment `tag` (and a network's set element). Idempotent.
    pub fn remove_tag(&self, tag: &str, bridge: Option<&str>) -> Result<usize> {
        let _lock = HostLock::take(Path::new(LOCK))?;
        let have = self.list_rules()?;
        let mut cmds: Vec<Value> = have
            .iter()
            .filter(|(c, _, _)| c == tag)
            .map(|(_, chain, handle)| {
                json!({"delete": {"rule": {"family": FAMILY, "table": self.table,
                                           "chain": chain, "handle": handle}}})
            })
            .collect();
        if let Some(doc) = self.list_raw()? {
            for map in [MAP_IP, MAP_ANY] {
                for (key, c) in self.map_elements(&doc, map) {
                    if c.as_deref() == Some(tag) {
                        cmds.push(self.element("delete", map, key));
                    }
                }
            }
        }
        let n = cmds.len();
        if let Some(b) = bridge {
            if self.bridges()?.iter().any(|x| x == b) {
                cmds.push(
                    json!({"delete": {"element": {"family": FAMILY, "table": self.table,
                                                        "name": "bridges", "elem": [b]}}}),
                );
            }
        }
        if !cmds.is_empty() {
            apply(&cmds)?;
        }
        Ok(n)
    }

    /// Deletes the whole table (when the data root has no network left).
    pub fn delete_table(&self) -> Result<()> {
        let _lock = HostLock::take(Path::new(LOCK))?;
        if self.list_raw()?.is_none() {
            return Ok(());
        }
        apply(&[json!({"delete": {"table": {"family": FAMILY, "name": self.table}}})])
    }

    /// Comments of all rules in the table (for `gc`).
    pub fn tags(&self) -> Result<Vec<String>> {
        let mut v: Vec<String> = self.list_rules()?.into_iter().map(|r| r.0).collect();
        if let Some(doc) = self.list_raw()? {
            for map in [MAP_IP, MAP_ANY] {
                v.extend(
                    self.map_elements(&doc, map)
                        .into_iter()
                        .filter_map(|(_, c)| c),
                );
            }
        }
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// The names in the table's `bridges` set (empty when the table is missing).
    pub fn bridges(&self) -> Result<Vec<String>> {
        let Some(doc) = self.list_raw()? else {
            return Ok(vec![]);
        };
        Ok(items(&doc)
            .filter_map(|o| o.get("set"))
            .filter(|s| s["name"] == "bridges")
            .flat_map(|s| s["elem"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect())
    }

    /// (comment, chain, handle) of each rule; empty when the table is missing.
    fn list_rules(&self) -> Result<Vec<(String, String, u64)>> {
        let Some(doc) = self.list_raw()? else {
            return Ok(vec![]);
        };
        Ok(items(&doc)
            .filter_map(|o| o.get("rule"))
            .filter_map(|r| {
                Some((
                    r.get("comment")?.as_str()?.to_string(),
                    r.get("chain")?.as_str()?.to_string(),
                    r.get("handle")?.as_u64()?,
                ))
            })
            .collect())
    }

    fn list_raw(&self) -> Result<Option<Value>> {
        let out = Command::new("nft")
            .args(["-j", "list", "table", FAMILY, &self.table])
            .stdin(Stdio::null())
            .output();
        let out = match out {
            // Without nft no table of ours can exist.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NetError::Nft(format!("cannot run nft: {e}"))),
            Ok(o) => o,
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(NetError::Nft(format!(
                "nft list table {FAMILY} {}: {}",
                self.table,
                err.trim()
            )));
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| NetError::Nft(format!("cannot parse nft -j output: {e}")))
    }
}

/// Names of the host's `inet` tables that gvpod made (`gvpod`, `gvpod-*`),
/// for `system gc --orphans`.
pub fn list_tables() -> Result<Vec<String>> {
    let out = match Command::new("nft")
        .args(["-j", "list", "tables", FAMILY])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(NetError::Nft(format!("cannot run nft: {e}"))),
        Ok(o) => o,
    };
    if !out.status.success() {
        return Err(NetError::Nft(format!(
            "nft list tables {FAMILY}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| NetError::Nft(format!("cannot parse nft -j output: {e}")))?;
    Ok(items(&doc)
        .filter_map(|o| o.get("table"))
        .filter_map(|t| t["name"].as_str())
        .filter(|n| *n == "gvpod" || n.starts_with("gvpod-"))
        .map(str::to_string)
        .collect())
}

fn items(doc: &Value) -> impl Iterator<Item = &serde_json::Map<String, Value>> {
    doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_object())
}

/// Feeds one batch (one atomic transaction) to `nft -j -f -`.
fn apply(cmds: &[Value]) -> Result<()> {
    feed(&["-j", "-f", "-"], json!({"nftables": cmds}).to_string())
}

/// Feeds nft's own syntax to `nft -f -` (only for what 1.0.6's JSON lacks).
fn apply_text(text: &str) -> Result<()> {
    feed(&["-f", "-"], text.to_string())
}

fn feed(args: &[&str], doc: String) -> Result<()> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Nft(format!("cannot run nft (install nftables): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(doc.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Nft(format!("nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        tracing::debug!("nft -j -f - rejected: {doc}");
        Err(NetError::Nft(format!(
            "nft rejected the ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// An exclusive flock on a host-wide lock file, released on drop.
pub struct HostLock {
    _file: std::fs::File,
}

impl HostLock {
    pub fn take(path: &Path) -> Result<HostLock> {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| NetError::Io {
                what: "cannot open lock",
                path: path.to_owned(),
                source,
            })?;
        crate::sys::flock_exclusive(f.as_fd()).map_err(|source| NetError::Io {
            what: "cannot lock",
            path: path.to_owned(),
            source,
        })?;
        Ok(HostLock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_tagged_and_shaped_for_nft_json() {
        let fw = Firewall::new("gvpod-test");
        let n = NetRules {
            name: "a",
            bridge: "gvbr-a",
            subnet: "198.18.7.0/24".parse().unwrap(),
            internal: false,
        };
        let rules = fw.network_rules(&n);
        assert!(rules.iter().all(|r| r["rule"]["comment"] == "net:a"));
        let egress = rules.last().unwrap().to_string();
        assert!(
            egress.contains("masquerade") && egress.contains("198.18.7.0"),
            "{egress}"
        );
        let internal = fw.network_rules(&NetRules {
            internal: true,
            ..n
        });
        assert!(!internal
            .iter()
            .any(|r| r["rule"]["chain"] == "postrouting" && r.to_string().contains("\"!=\"")));
        let p = fw.port_element(
            "pod:x",
            &PortRule {
                proto: Proto::Udp,
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 5353,
                pod_ip: "198.18.7.2".parse().unwrap(),
                pod_port: 53,
            },
        );
        let s = p.to_string();
        assert!(
            s.contains("\"udp\"") && s.contains("5353") && s.contains("198.18.7.2"),
            "{s}"
        );
        assert!(s.contains("ports_ip") && s.contains("pod:x"), "{s}");
    }

    #[test]
    fn the_host_rule_drops_new_traffic_from_bridges_in_input() {
        let r = Firewall::new("gvpod-test").host_rule();
        assert_eq!(r["rule"]["chain"], "input");
        assert_eq!(r["rule"]["comment"], HOST_TAG);
        let s = r.to_string();
        assert!(s.contains("@bridges") && s.contains("\"original\""), "{s}");
        let expr = r["rule"]["expr"].as_array().unwrap();
        assert_eq!(expr.last(), Some(&json!({"drop": null})), "{s}");
    }
}
