//! `/networks…`: list (filters name, id, label, driver, type), inspect,
//! create (bridge driver only) and delete over `pod`'s networks, in
//! docker's shapes.
//!
//! gvpod networks have names, not ids: a network's id is derived from its
//! name and creation time (stable while it exists, new if it is made
//! again), so docker's id prefixes work. The predefined `host` and `none`
//! are listed as docker lists them; docker's `bridge` (and `default`) name
//! gvpod's default network, as `NetworkMode` does on create.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::http::Request;
use super::{After, Reply};
use crate::pod::{self, Ctx, NetworkView, PodError};

/// A network as the API sees it: one of gvpod's, or a predefined one.
enum Net {
    Gvpod(NetworkView),
    /// `host` or `none`.
    Predefined(&'static str),
}

fn hex_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

impl Net {
    fn name(&self) -> &str {
        match self {
            Net::Gvpod(v) => &v.name,
            Net::Predefined(n) => n,
        }
    }

    fn id(&self) -> String {
        match self {
            Net::Gvpod(v) => hex_id(&["gvpod network", &v.name, &v.created]),
            Net::Predefined(n) => hex_id(&["gvpod predefined network", n]),
        }
    }

    fn driver(&self) -> &'static str {
        match self {
            Net::Gvpod(_) => "bridge",
            Net::Predefined("host") => "host",
            Net::Predefined(_) => "null",
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        match self {
            Net::Gvpod(v) => v.labels.clone(),
            Net::Predefined(_) => BTreeMap::new(),
        }
    }

    /// Docker's network object (what list and inspect answer).
    fn shape(&self) -> Value {
        let (created, ipam, internal, containers, options) = match self {
            Net::Gvpod(v) => {
                let len = v.subnet.rsplit_once('/').map_or("32", |x| x.1);
                let containers: Map<String, Value> = v
                    .pods
                    .iter()
                    .map(|p| {
                        (
                            p.id.clone(),
                            json!({"Name": p.name, "EndpointID": "", "MacAddress": "",
                                   "IPv4Address": format!("{}/{len}", p.ip), "IPv6Address": ""}),
                        )
                    })
                    .collect();
                (
                    v.created.clone(),
                    json!([{"Subnet": v.subnet, "Gateway": v.gateway}]),
                    v.internal,
                    containers,
                    json!({"com.docker.network.bridge.name": v.bridge}),
                )
            }
            Net::Predefined(_) => (
                "0001-01-01T00:00:00Z".to_string(),
                json!([]),
                false,
                Map::new(),
                json!({}),
            ),
        };
        json!({
            "Name": self.name(), "Id": self.id(), "Created": created, "Scope": "local",
            "Driver": self.driver(), "EnableIPv4": true, "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": ipam},
            "Internal": internal, "Attachable": false, "Ingress": false,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": containers, "Options": options, "Labels": self.labels()
        })
    }

    /// Whether it passes docker's network filters (`name` and `id` match
    /// substrings, `label` is `KEY` or `KEY=VALUE`, `driver` exactly,
    /// `type` custom or builtin); any value of a key passes that key.
    fn matches(&self, filters: &Map<String, Value>) -> bool {
        filters.iter().all(|(k, vals)| {
            let vals = values(vals);
            let one = |want: &str| match k.as_str() {
                "name" => self.name().contains(want),
                "id" => self.id().starts_with(want) || self.id().contains(want),
                "driver" => self.driver() == want,
                "type" => match self {
                    Net::Gvpod(_) => want == "custom",
                    Net::Predefined(_) => want == "builtin",
                },
                "label" => {
                    let l = self.labels();
                    match want.split_once('=') {
                        Some((key, v)) => l.get(key).is_some_and(|x| x == v),
                        None => l.contains_key(want),
                    }
                }
                "scope" => want == "local",
                _ => true,
            };
            vals.is_empty() || vals.iter().any(|v| one(v))
        })
    }
}

/// A filter's values: docker sends `{"name": {"web": true}}` (old style) or
/// `{"name": ["web"]}`.
fn values(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Value::Object(o) => o.keys().cloned().collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

const PREDEFINED: [&str; 2] = ["host", "none"];

fn all(ctx: &Ctx) -> pod::Result<Vec<Net>> {
    let mut out: Vec<Net> = pod::list_networks(ctx)?
        .into_iter()
        .map(Net::Gvpod)
        .collect();
    out.extend(PREDEFINED.iter().map(|n| Net::Predefined(n)));
    Ok(out)
}

/// The network `key` names: a name (`bridge` and `default` are gvpod's
/// default network), a full id or a unique id prefix.
fn find(ctx: &Ctx, asked: &str) -> Result<Net, Reply> {
    let key = match asked {
        "bridge" | "default" => crate::net::DEFAULT_NETWORK,
        k => k,
    };
    let nets = all(ctx).map_err(|e| Reply::from_err(e.kind(), e))?;
    let no_such = || Reply::Error(404, format!("network {asked} not found"));
    if key.is_empty() {
        return Err(no_such());
    }
    let mut by_name = vec![];
    let mut by_id = vec![];
    for n in nets {
        if n.name() == key {
            by_name.push(n);
        } else if n.id().starts_with(key) {
            by_id.push(n);
        }
    }
    if let Some(n) = by_name.pop() {
        return Ok(n);
    }
    match by_id.len() {
        0 => Err(no_such()),
        1 => Ok(by_id.pop().expect("one")),
        _ => Err(Reply::Error(
            400,
            format!(
                "network {key} is ambiguous ({} matches): give more of the id",
                by_id.len()
            ),
        )),
    }
}

fn open(root: &Path) -> Result<Ctx, Reply> {
    Ctx::open(root).map_err(|e| Reply::from_err(e.kind(), e))
}

fn answer(r: Result<Reply, Reply>, w: &mut UnixStream, keep: bool) -> std::io::Result<After> {
    match r {
        Ok(r) | Err(r) => r.send(w, keep),
    }
}

pub fn list(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let r = (|| {
        let filters: Map<String, Value> = match req.query("filters") {
            None | Some("") => Map::new(),
            Some(f) => serde_json::from_str(f)
                .map_err(|e| Reply::Error(400, format!("invalid filters {f:?}: {e}")))?,
        };
        let ctx = open(root)?;
        let nets = all(&ctx).map_err(|e| Reply::from_err(e.kind(), e))?;
        let out: Vec<Value> = nets
            .iter()
            .filter(|n| n.matches(&filters))
            .map(Net::shape)
            .collect();
        Ok(Reply::Json(200, json!(out)))
    })();
    answer(r, w, keep)
}

pub fn inspect(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let r = open(root).and_then(|ctx| Ok(Reply::Json(200, find(&ctx, key)?.shape())));
    answer(r, w, keep)
}

/// The create body's fields gvpod uses (others are ignored, never fatal).
struct CreateBody {
    name: String,
    subnet: Option<String>,
    gateway: Option<String>,
    internal: bool,
    labels: BTreeMap<String, String>,
}

fn parse_create(body: &[u8]) -> Result<CreateBody, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid network config: {e}"))?;
    let name = v
        .get("Name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("network config has no Name: name the network")?
        .to_string();
    match v.get("Driver").and_then(Value::as_str) {
        None | Some("") | Some("bridge") => {}
        Some(d) => {
            return Err(format!(
                "network driver {d:?} is not supported: gvpod networks use the bridge driver"
            ))
        }
    }
    if v.get("EnableIPv6").and_then(Value::as_bool) == Some(true) {
        return Err(format!(
            "network {name}: IPv6 is not supported; leave EnableIPv6 off"
        ));
    }
    let configs = v
        .pointer("/IPAM/Config")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if configs.len() > 1 {
        return Err(format!(
            "network {name}: {} IPAM configs given; gvpod networks have one subnet",
            configs.len()
        ));
    }
    let field = |k: &str| {
        configs
            .first()
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let labels = v
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(CreateBody {
        name,
        subnet: field("Subnet"),
        gateway: field("Gateway"),
        internal: v.get("Internal").and_then(Value::as_bool).unwrap_or(false),
        labels,
    })
}

pub fn create(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let r = (|| {
        let b = parse_create(&req.body).map_err(|m| Reply::Error(400, m))?;
        if PREDEFINED.contains(&b.name.as_str()) || b.name == "bridge" {
            return Err(Reply::Error(
                403,
                format!("{} is a pre-defined network and cannot be created", b.name),
            ));
        }
        let mut ctx = open(root)?;
        let v = pod::create_labeled_network(
            &mut ctx,
            &b.name,
            b.subnet.as_deref(),
            b.gateway.as_deref(),
            b.internal,
            b.labels,
        )
        .map_err(|e| match e {
            PodError::State(crate::state::StateError::NetworkExists(_)) => {
                Reply::Error(409, format!("network with name {} already exists", b.name))
            }
            e => Reply::from_err(e.kind(), e),
        })?;
        let id = Net::Gvpod(v).id();
        Ok(Reply::Json(201, json!({"Id": id, "Warning": ""})))
    })();
    answer(r, w, keep)
}

pub fn remove(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let r = (|| {
        let mut ctx = open(root)?;
        match find(&ctx, key)? {
            Net::Predefined(n) => Err(Reply::Error(
                403,
                format!("{n} is a pre-defined network and cannot be removed"),
            )),
            Net::Gvpod(v) => match pod::remove_network(&mut ctx, &v.name) {
                Ok(()) => Ok(Reply::Empty(204)),
                Err(e) => Err(Reply::from_err(e.kind(), e)),
            },
        }
    })();
    answer(r, w, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, labels: &[(&str, &str)]) -> Net {
        Net::Gvpod(NetworkView {
            name: name.into(),
            bridge: "gvbr-x".into(),
            subnet: "198.18.77.0/24".into(),
            gateway: "198.18.77.1".into(),
            internal: false,
            created: "2026-01-01T00:00:00Z".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pods: vec![],
        })
    }

    fn f(s: &str) -> Map<String, Value> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn filters_follow_docker() {
        let n = view("n1", &[("team", "a")]);
        assert!(n.matches(&f(r#"{"name":["n"]}"#)));
        assert!(!n.matches(&f(r#"{"name":["web"]}"#)));
        assert!(n.matches(&f(r#"{"name":{"n1":true}}"#)));
        assert!(n.matches(&f(r#"{"label":["team"]}"#)));
        assert!(n.matches(&f(r#"{"label":["team=a"]}"#)));
        assert!(!n.matches(&f(r#"{"label":["team=b"]}"#)));
        assert!(n.matches(&f(&format!(r#"{{"id":["{}"]}}"#, &n.id()[..12]))));
        assert!(n.matches(&f(r#"{"type":["custom"],"driver":["bridge"]}"#)));
        assert!(!Net::Predefined("host").matches(&f(r#"{"type":["custom"]}"#)));
        assert!(Net::Predefined("none").matches(&f(r#"{"driver":["null"]}"#)));
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(view("a", &[]).id(), view("a", &[]).id());
        assert_ne!(view("a", &[]).id(), view("b", &[]).id());
        assert_eq!(view("a", &[]).id().len(), 64);
        let s = view("n1", &[]).shape();
        assert_eq!(s["IPAM"]["Config"][0]["Subnet"], "198.18.77.0/24");
        assert_eq!(s["Driver"], "bridge");
    }

    #[test]
    fn create_bodies_are_checked() {
        let b = parse_create(
            br#"{"Name":"n1","Driver":"bridge","CheckDuplicate":true,"IPAM":{"Driver":"default","Config":[{"Subnet":"198.18.77.0/24","Gateway":"198.18.77.1"}]},"Internal":true,"Labels":{"a":"b"},"Options":{}}"#,
        )
        .unwrap();
        assert_eq!(b.name, "n1");
        assert_eq!(b.subnet.as_deref(), Some("198.18.77.0/24"));
        assert_eq!(b.gateway.as_deref(), Some("198.18.77.1"));
        assert!(b.internal);
        assert_eq!(b.labels["a"], "b");
        let b = parse_create(br#"{"Name":"n2"}"#).unwrap();
        assert_eq!((b.subnet, b.internal), (None, false));
        for bad in [
            &br#"{"Name":"x","Driver":"overlay"}"#[..],
            br#"{"Driver":"bridge"}"#,
            br#"not json"#,
            br#"{"Name":"x","IPAM":{"Config":[{},{}]}}"#,
        ] {
            assert!(parse_create(bad).is_err());
        }
    }
}
