//! Pod specs: a project of pods in YAML (`gvpod.yaml`), its types,
//! validation and merging. No I/O: the front end reads the files and hands
//! their text and directories in; `pod` (later: `up`/`down`) turns the
//! [`Project`] into pods.
//!
//! Invariants:
//! - Every error about a spec's content is one line `FILE:LINE:COL: what is
//!   wrong; what was expected`, at the offending key or value, also for
//!   errors found after parsing and after merging (the value tree keeps
//!   every location, see `tree`).
//! - `-f A -f B`: B overrides A key by key (mappings merge recursively,
//!   scalars and lists replace); `defaults` are merged into every pod the
//!   same way, the pod's own keys winning.
//! - Unknown keys are errors everywhere (serde's `deny_unknown_fields`).
//!
//! The YAML crate is saphyr (the maintained successor of yaml-rust /
//! yaml-rust2, YAML 1.2): its `MarkedYamlOwned` tree gives the line and
//! column of every node, which is what errors found after parsing and
//! merging need. serde_yaml is archived, and serde-based crates (such as
//! serde_norway) report a location only for errors met while
//! deserializing, not for a bad value found later or a value that won a
//! merge; so the tree is walked by hand (`decode`), one small function per
//! spec type.

mod check;
mod decode;
mod emit;
pub mod kube;
mod service;
mod tree;
mod types;
mod units;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use emit::to_yaml;
pub use tree::Loc;
#[allow(unused_imports)]
pub use types::*;
#[cfg(host_runtime)]
pub use units::format_duration;

use crate::error::Kind;
use tree::{Node, Val};

/// The default spec files, looked for in this order.
pub const DEFAULT_FILES: [&str; 2] = ["gvpod.yaml", "gvpod.yml"];

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{at}: {msg}")]
    At { at: Loc, msg: String },
    #[error("no spec file: neither ./gvpod.yaml nor ./gvpod.yml exists; give one with -f FILE")]
    NoFile,
    #[error("cannot read spec file {path}: {msg}; check the path given with -f")]
    Read { path: String, msg: String },
}

impl SpecError {
    pub fn at(at: &Loc, msg: String) -> SpecError {
        SpecError::At {
            at: at.clone(),
            msg,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            SpecError::At { .. } | SpecError::NoFile | SpecError::Read { .. } => Kind::User,
        }
    }
}

/// One spec file as the front end read it.
pub struct Source {
    /// The name errors use (the path as the user gave it).
    pub name: String,
    pub text: String,
    /// The absolute directory relative paths in the file are resolved against.
    pub dir: PathBuf,
}

/// Parses, merges (in order) and validates spec files.
pub fn load(sources: &[Source]) -> Result<Project, SpecError> {
    let mut root: Option<Node> = None;
    for s in sources {
        let n = tree::parse(&s.name, &s.text)?;
        root = Some(match root {
            None => n,
            Some(base) => tree::merge(base, n),
        });
    }
    let root = root.ok_or(SpecError::NoFile)?;
    let dir_of = |at: &Loc| -> PathBuf {
        sources
            .iter()
            .find(|s| *s.name == *at.file)
            .map(|s| s.dir.clone())
            .unwrap_or_else(|| Path::new("/").to_path_buf())
    };
    project(&root, &dir_of)
}

fn project(root: &Node, dir_of: &dyn Fn(&Loc) -> PathBuf) -> Result<Project, SpecError> {
    let top = decode::fields(root, "", &["name", "defaults", "pods", "networks"])?;
    let Some(name_n) = top.get("name") else {
        return Err(SpecError::at(
            top.at,
            "no project name; expected `name:` (pods are named NAME-POD)".into(),
        ));
    };
    let name = decode::text(name_n, "name", "a project name")?;
    // Room for "-" and a pod name of at least one character.
    check::name("project", &name, &name_n.at, 61)?;

    let mut networks = BTreeMap::new();
    let mut subnets: Vec<(String, crate::net::cidr::Cidr)> = Vec::new();
    if let Some(nets) = top.get("networks") {
        for (k, v) in decode::mapping(nets, "networks", "a mapping of network names to networks")? {
            let path = decode::join("networks", &k.name);
            check::name("network", &k.name, &k.at, 62 - name.len())?;
            let empty;
            let v = if matches!(v.val, Val::Null) {
                empty = Node {
                    val: Val::Map(Vec::new()),
                    at: v.at.clone(),
                };
                &empty
            } else {
                v
            };
            let f = decode::fields(v, &path, &["subnet", "internal"])?;
            let subnet = match f.get("subnet") {
                Some(s) => {
                    let p = f.path("subnet");
                    let t = decode::text(s, &p, "a subnet such as 198.18.60.0/24")?;
                    let cidr = t.parse::<crate::net::cidr::Cidr>().map_err(|_| {
                        SpecError::at(
                            &s.at,
                            format!("{p}: invalid value {t:?}; expected an IPv4 subnet such as 198.18.60.0/24"),
                        )
                    })?;
                    if let Some((other, _)) = subnets.iter().find(|(_, c)| cidr.overlaps(c)) {
                        return Err(SpecError::at(
                            &s.at,
                            format!("{p}: {t} overlaps the subnet of networks.{other}; expected subnets that do not overlap"),
                        ));
                    }
                    subnets.push((k.name.clone(), cidr));
                    Some(t)
                }
                None => None,
            };
            let internal = match f.get("internal") {
                Some(i) => decode::boolean(i, &f.path("internal"))?,
                None => false,
            };
            networks.insert(
                k.name.clone(),
                Network {
                    name: format!("{name}-{}", k.name),
                    subnet,
                    internal,
                },
            );
        }
    }

    let defaults = match top.get("defaults") {
        Some(d) => {
            // Checked here too, so a bad key in defaults is named even
            // when no pod uses it.
            decode::fields(d, "defaults", decode::POD_KEYS)?;
            Some(d)
        }
        None => None,
    };

    let Some(pods_n) = top.get("pods") else {
        return Err(SpecError::at(
            top.at,
            "no pods; expected `pods:` with at least one pod".into(),
        ));
    };
    let entries = decode::mapping(pods_n, "pods", "a mapping of pod names to pods")?;
    if entries.is_empty() {
        return Err(SpecError::at(
            &pods_n.at,
            "pods: no pods; expected at least one pod".into(),
        ));
    }
    let pod_keys: Vec<&str> = entries.iter().map(|(k, _)| k.name.as_str()).collect();
    let mut merged_nodes = BTreeMap::new();
    let mut pods = BTreeMap::new();
    // Host ports published so far: (address, port, protocol) and the pod.
    let mut published: Vec<(crate::net::PortSpec, String)> = Vec::new();
    for (k, v) in entries {
        let path = decode::join("pods", &k.name);
        check::name("pod", &k.name, &k.at, 62 - name.len())?;
        let own = match v.val {
            Val::Null => Node {
                val: Val::Map(Vec::new()),
                at: v.at.clone(),
            },
            _ => v.clone(),
        };
        // The pod must be a mapping before defaults are merged into it.
        decode::mapping(&own, &path, "a mapping (the pod)")?;
        let merged = match defaults {
            Some(d) => tree::merge(d.clone(), own),
            None => own,
        };
        let pod = decode::pod(&merged, &path, format!("{name}-{}", k.name), dir_of)?;
        cross_checks(&pod, &merged, &k.name, &pod_keys, &networks)?;
        host_ports(&pod, &merged, &path, &mut published)?;
        pods.insert(k.name.clone(), pod);
        merged_nodes.insert(k.name.clone(), merged);
    }
    no_cycle(&pods, &merged_nodes)?;
    Ok(Project {
        name,
        networks,
        pods,
    })
}

/// The node at `keys` under `n`, if every step is a mapping that has it.
fn find<'a>(n: &'a Node, keys: &[&str]) -> Option<&'a Node> {
    let mut cur = n;
    for k in keys {
        let Val::Map(m) = &cur.val else { return None };
        cur = &m.iter().find(|(key, _)| key.name == *k)?.1;
    }
    Some(cur)
}

fn key_loc<'a>(n: &'a Node, keys: &[&str], last: &str) -> Option<&'a Loc> {
    let Val::Map(m) = &find(n, keys)?.val else {
        return None;
    };
    m.iter().find(|(k, _)| k.name == last).map(|(k, _)| &k.at)
}

fn cross_checks(
    pod: &Pod,
    n: &Node,
    key: &str,
    pod_keys: &[&str],
    networks: &BTreeMap<String, Network>,
) -> Result<(), SpecError> {
    let path = decode::join("pods", key);
    if let (Some(net), Some(at)) = (&pod.network, find(n, &["network"])) {
        if !networks.contains_key(net) && !crate::util::is_valid_name(net) {
            return Err(SpecError::at(
                &at.at,
                format!("{path}.network: invalid network name {net:?}; expected a network of this spec (networks:), gvpod, none, host or one made with gvpod network create"),
            ));
        }
    }
    for (s, svc) in &pod.services {
        let spath = format!("{path}.services.{s}");
        if let Some(at) = key_loc(n, &["services"], s) {
            check::name("service", s, at, 63)?;
        }
        for (i, d) in svc.depends_on.iter().enumerate() {
            let other_pod = *d != key && pod_keys.contains(&d.as_str());
            if !pod.services.contains_key(d) && !other_pod {
                let known: Vec<String> = pod
                    .services
                    .keys()
                    .filter(|k| *k != s)
                    .cloned()
                    .chain(
                        pod_keys
                            .iter()
                            .filter(|p| **p != key)
                            .map(|p| format!("pod {p}")),
                    )
                    .collect();
                return Err(SpecError::at(
                    &dep_loc(n, s, i),
                    format!(
                        "{spath}.depends_on[{i}]: no service {d:?} in this pod and no other pod {d:?}; expected one of: {}",
                        if known.is_empty() { "(nothing else to wait for)".to_string() } else { known.join(", ") }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Where `services.<s>.depends_on[i]` was written.
fn dep_loc(n: &Node, s: &str, i: usize) -> Loc {
    let deps = find(n, &["services", s, "depends_on"]);
    match deps.map(|d| &d.val) {
        Some(Val::Seq(items)) if i < items.len() => items[i].at.clone(),
        _ => deps.map(|d| d.at.clone()).unwrap_or_else(|| n.at.clone()),
    }
}

/// No service waits, through `depends_on`, for itself. A service that
/// names a service of its pod waits for it; one that names another pod
/// waits for every service of that pod (a name that is both is the
/// service).
fn no_cycle(pods: &BTreeMap<String, Pod>, nodes: &BTreeMap<String, Node>) -> Result<(), SpecError> {
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (pk, pod) in pods {
        for (s, svc) in &pod.services {
            let mut out = Vec::new();
            for d in &svc.depends_on {
                if pod.services.contains_key(d) {
                    out.push(format!("{pk}.{d}"));
                } else if let Some(other) = pods.get(d) {
                    out.extend(other.services.keys().map(|o| format!("{d}.{o}")));
                }
            }
            graph.insert(format!("{pk}.{s}"), out);
        }
    }
    let Some(c) = check::cycle(&graph) else {
        return Ok(());
    };
    let (pk, s) = c[0].split_once('.').unwrap_or_default();
    let (npk, ns) = c[1].split_once('.').unwrap_or_default();
    let target = if npk == pk { ns } else { npk };
    let pod = &pods[pk];
    let i = pod.services[s]
        .depends_on
        .iter()
        .position(|d| d == target)
        .unwrap_or(0);
    Err(SpecError::at(
        &dep_loc(&nodes[pk], s, i),
        format!(
            "pods.{pk}.services.{s}.depends_on: a cycle {}; expected services that do not wait for each other",
            c.join(" -> ")
        ),
    ))
}

/// A pod publishes ports only with a network to publish from, and no two
/// pods of the project (nor two entries of one) take the same host port.
fn host_ports(
    pod: &Pod,
    n: &Node,
    path: &str,
    published: &mut Vec<(crate::net::PortSpec, String)>,
) -> Result<(), SpecError> {
    let Some(Val::Seq(items)) = find(n, &["ports"]).map(|p| &p.val) else {
        return Ok(());
    };
    for (i, (s, item)) in pod.ports.iter().zip(items).enumerate() {
        let here = format!("{path}.ports[{i}]");
        if let Some(net @ ("none" | "host")) = pod.network.as_deref() {
            return Err(SpecError::at(
                &item.at,
                format!("{here}: a published port on network {net}; expected a pod network (remove network: {net} or the port)"),
            ));
        }
        let Ok(spec) = crate::net::parse_port(s) else {
            continue;
        };
        let Some(hp) = spec.host_port else { continue };
        let clash = published.iter().find(|(o, _)| {
            o.host_port == Some(hp)
                && o.proto == spec.proto
                && (o.host_ip.is_none() || spec.host_ip.is_none() || o.host_ip == spec.host_ip)
        });
        if let Some((_, other)) = clash {
            return Err(SpecError::at(
                &item.at,
                format!("{here}: host port {hp}/{} is already published by {other}; expected a free host port", spec.proto),
            ));
        }
        published.push((spec, here));
    }
    Ok(())
}
