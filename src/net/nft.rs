//! gvpod's firewall: one nftables table per data root (`inet gvpod` for the
//! default root, `inet gvpod-<hash>` for others), fed to `nft -j -f -` as
//! JSON built with serde_json.
//!
//! Why `nft -j` and not a crate: the only netlink-level nftables crate
//! (rustables) is GPL-3.0, which this Apache-2.0 binary cannot link; the
//! `nftables` crate is itself a typed wrapper that spawns the same
//! `nft -j -f -`, so it would add a dependency and no capability. The JSON
//! schema is stable (libnftables-json(5)) and nftables is installed wherever
//! gvpod networking is used.
//!
//! Traceability: every rule carries a comment, `base` (the table's own
//! rules), `net:<network>` or `pod:<pod id>`; removing a network or a pod
//! deletes exactly the rules with its comment, by handle. Additions first
//! list the table and skip rules that are already there (idempotent); a
//! host-wide lock serialises gvpod processes so two never race on that.
//!
//! Layout (hooks at netavark's priorities: DNAT -100, filter 0, SNAT 100):
//! - `prerouting`/`output` (nat): `fib daddr type local` → `ports`, where
//!   each published port is a DNAT to the pod (from any local address,
//!   127.0.0.1 included);
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
//!   host's loopback services (the CVE-2020-8558 class of bug).

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
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
const LOCK: &str = "/run/gvpod/nft.lock";

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
        vec![
            self.rule("prerouting", "base", vec![local(), jump.clone()]),
            self.rule("output", "base", vec![local(), jump]),
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

    fn port_rule(&self, tag: &str, p: &PortRule) -> Value {
        let mut e = vec![];
        if let Some(ip) = p.host_ip {
            e.push(m(
                json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                "==",
                json!(ip.to_string()),
            ));
        }
        e.push(m(
            json!({"payload": {"protocol": p.proto.as_str(), "field": "dport"}}),
            "==",
            json!(p.host_port),
        ));
        e.push(json!({"dnat": {"family": "ip", "addr": p.pod_ip.to_string(), "port": p.pod_port}}));
        self.rule("ports", tag, e)
    }

    /// Creates the table if needed and adds the network's rules (idempotent).
    pub fn ensure_network(&self, n: &NetRules) -> Result<()> {
        let _lock = HostLock::take(Path::new(LOCK))?;
        let have = self.list_rules()?;
        let mut cmds = self.skeleton();
        cmds.push(json!({"add": {"element": {"family": FAMILY, "table": self.table,
                                             "name": "bridges", "elem": [n.bridge]}}}));
        let has = |tag: &str| have.iter().any(|(c, _, _)| c == tag);
        if !has("base") {
            cmds.extend(self.base_rules().into_iter().map(|r| json!({"add": r})));
        }
        if !has(&net_tag(n.name)) {
            cmds.extend(self.network_rules(n).into_iter().map(|r| json!({"add": r})));
        }
        apply(&cmds)
    }

    /// Adds a pod's DNAT rules unless it already has some.
    pub fn add_ports(&self, pod_id: &str, ports: &[PortRule]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let _lock = HostLock::take(Path::new(LOCK))?;
        let tag = pod_tag(pod_id);
        let have = self.list_rules()?;
        if have.iter().any(|(c, _, _)| *c == tag) {
            return Ok(());
        }
        let cmds: Vec<Value> = ports
            .iter()
            .map(|p| json!({"add": self.port_rule(&tag, p)}))
            .collect();
        apply(&cmds)
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
        let n = cmds.len();
        if let Some(b) = bridge {
            if self.bridges()?.iter().any(|x| x == b) {
                cmds.push(json!({"delete": {"element": {"family": FAMILY, "table": self.table,
                                                        "name": "bridges", "elem": [b]}}}));
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
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn bridges(&self) -> Result<Vec<String>> {
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

fn items(doc: &Value) -> impl Iterator<Item = &serde_json::Map<String, Value>> {
    doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_object())
}

/// Feeds one batch (one atomic transaction) to `nft -j -f -`.
fn apply(cmds: &[Value]) -> Result<()> {
    let doc = json!({"nftables": cmds}).to_string();
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
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
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(HostLock { _file: f });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(NetError::Io {
                    what: "cannot lock",
                    path: path.to_owned(),
                    source: e,
                });
            }
        }
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
        assert!(egress.contains("masquerade") && egress.contains("198.18.7.0"), "{egress}");
        let internal = fw.network_rules(&NetRules { internal: true, ..n });
        assert!(!internal
            .iter()
            .any(|r| r["rule"]["chain"] == "postrouting" && r.to_string().contains("\"!=\"")));
        let p = fw.port_rule(
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
        assert!(s.contains("\"udp\"") && s.contains("5353") && s.contains("198.18.7.2"), "{s}");
    }
}
