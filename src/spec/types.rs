//! The typed, validated project a spec describes: what `gvpod config`
//! prints and what `pod` will turn into pods.
//!
//! Invariants (established by `decode` and `check`, relied on by users of
//! these types): `defaults` are already merged into every pod; every pod's
//! `name` is `<project>-<pod>`, a valid pod name and a DNS label; every
//! port, route, restart policy, size and duration has passed gvpod's own
//! parser; volume and ssh-key paths are absolute unless they start with `~`
//! (expanded by whoever uses them); every `network` is a network of the
//! project or a valid gvpod network name (`gvpod`, `none`, `host`, or one
//! made with `gvpod network create`: whether it exists is `up`'s to check,
//! not this I/O-free module's); no two pods publish the same host port, and
//! none on network `none`/`host`; each `depends_on` entry names a service
//! of the same pod (that wins a tie) or another pod of the project (all its
//! services), and no service waits for itself through them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Project {
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    pub pods: BTreeMap<String, Pod>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Network {
    /// The gvpod network's name: `<project>-<key>` (not printed: `gvpod
    /// config` prints a spec that loads again).
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    pub internal: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Pod {
    /// The pod's gvpod name: `<project>-<key>` (not printed, as above).
    #[serde(skip)]
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `HOSTPATH:PODPATH[:ro|:rw]` with HOSTPATH made absolute.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_default: Option<u16>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Service>,
}

/// The pod's dev user: `--dev-user NAME`, plus `--ssh` with `--ssh-key`s
/// when `ssh_keys` is not empty.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub name: String,
    pub sudo: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// The writable layer's bound, bytes (`--storage-opt size=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<u64>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// Stored with a pod's options (`bundle::PodOptions::services`), so it also
/// reads back from the JSON it writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<String>,
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// What a health check probes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// An HTTP GET of this path on the service's port; 2xx/3xx is healthy.
    Http(String),
    /// A TCP connect to this port of the pod.
    Tcp(u16),
    /// A shell command run in the pod; exit 0 is healthy.
    Cmd(String),
}

/// Durations in milliseconds (printed as the spec writes them: `1m30s`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    #[serde(flatten)]
    pub probe: Probe,
    #[serde(
        rename = "interval",
        serialize_with = "duration",
        deserialize_with = "read_duration"
    )]
    pub interval_ms: u64,
    #[serde(
        rename = "timeout",
        serialize_with = "duration",
        deserialize_with = "read_duration"
    )]
    pub timeout_ms: u64,
    pub retries: u32,
    #[serde(
        rename = "start_period",
        serialize_with = "duration",
        deserialize_with = "read_duration",
        skip_serializing_if = "is_zero",
        default
    )]
    pub start_period_ms: u64,
}

fn duration<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::units::format_duration(*ms))
}

fn read_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    super::units::parse_duration(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("bad duration {text:?}")))
}

fn is_zero(ms: &u64) -> bool {
    *ms == 0
}

/// Defaults of a health check (docker's, but a 5 s interval: dev pods).
pub const HEALTH_INTERVAL_MS: u64 = 5_000;
pub const HEALTH_TIMEOUT_MS: u64 = 2_000;
pub const HEALTH_RETRIES: u32 = 3;
