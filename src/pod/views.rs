//! What the pod layer shows of pods, services, networks, snapshots and the
//! host (the views `ps`, `inspect`, `top`, `stats`, `service ls`, `network
//! ls`, `snapshot ls`, `system info`, `system boot`, `system gc`, `up` and
//! `down` print, and the API sends as JSON), and the requests the API takes
//! (`create`, `checkpoint`, `restore`). Plain serde types: portable, so the
//! client build (see lib.rs) reads and writes the same types the host does.
//! The functions that make or take them live next to their verbs (`info`,
//! `top`, `create`, ...), which re-export them under their old paths.

use serde::{Deserialize, Serialize};

use crate::bundle::PodOptions;
use crate::net::IfStats;
use crate::runsc::Process;

/// A pod's route port, as inspect shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteView {
    /// "HOSTIP:HOSTPORT".
    pub address: String,
    /// The port a host that names none reaches.
    pub default_port: u16,
}

/// What `inspect` prints (and `ps --format json` lists).
#[derive(Debug, Serialize, Deserialize)]
pub struct PodView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub command: Vec<String>,
    pub status: String,
    pub pid: Option<i32>,
    /// The exit code (of a running pod: its last exit before its restart
    /// policy restarted it, if any).
    pub exit_code: Option<i32>,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// The pod's address on its network (null for --network none/host).
    pub ip: Option<String>,
    /// The gvpod network the pod is attached to.
    pub network: Option<String>,
    /// Published ports, "PODPORT/PROTO -> HOSTIP:HOSTPORT".
    pub ports: Vec<String>,
    /// The route port (`--route`), "HOSTIP:HOSTPORT", and its default port.
    #[serde(default)]
    pub route: Option<RouteView>,
    pub bundle: String,
    pub log_path: String,
    pub auto_remove: bool,
    pub monitor_pid: Option<i32>,
    pub config: PodOptions,
    pub runsc: serde_json::Value,
    /// The snapshot an exited pod was checkpointed to, when that is why it stopped.
    pub checkpointed: Option<String>,
    /// Restarts by the pod's restart policy (`config.restart`) since the
    /// user last started it.
    pub restart_count: u32,
    /// Between two launches of its restart policy (counted as running).
    pub restarting: bool,
    /// Its supervised services (`pod::service`): state, health, restarts,
    /// last check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceView>,
    /// The health of its checked services, as `ps` shows it (`healthy`,
    /// `unhealthy`, `starting`); none without checks or while not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

/// `system info`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SystemInfo {
    pub gvpod_version: String,
    pub data_root: String,
    pub runsc_root: String,
    pub runsc_path: String,
    pub runsc_version: String,
    pub runsc_release: u32,
    pub platforms: Vec<String>,
    pub default_platform: String,
    pub features: serde_json::Value,
    pub cgroup_version: u8,
    pub kernel: String,
    pub pods: usize,
    pub images: usize,
}

/// What `system boot` did with one pod.
#[derive(Debug, Serialize)]
pub struct BootLine {
    pub id: String,
    pub name: String,
    /// The pod's restart policy (docker's name).
    pub restart: &'static str,
    /// `started`, `left` (the policy, or the pod's state, says no) or `failed`.
    pub action: &'static str,
    /// Why it was left, or why it failed.
    pub reason: Option<String>,
    /// The error's exit code, for a failure.
    #[serde(skip)]
    pub code: Option<i32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GcReport {
    pub pods_removed: Vec<String>,
    pub resources_released: usize,
    pub runsc_containers: Vec<String>,
    pub mounts: Vec<String>,
    pub paths: Vec<String>,
    pub cgroups: Vec<String>,
    /// Network namespaces, veths, bridges and firewall rules with no owner.
    pub network: Vec<String>,
}

/// The processes of one pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Top {
    pub id: String,
    pub name: String,
    pub processes: Vec<Process>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OrphanReport {
    pub dry_run: bool,
    /// Deleted data roots, each with the objects removed (or, in a dry
    /// run, that would be).
    pub roots: Vec<OrphanRoot>,
    /// Objects that could not be removed, each with the reason.
    pub failed: Vec<String>,
}

/// What `network ls` and `network inspect` print.
#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkView {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub internal: bool,
    pub created: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// (pod name, address) of the pods attached.
    pub pods: Vec<NetworkPod>,
}

/// One listening port of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningPort {
    pub port: u16,
    /// The address it listens on in the pod (`0.0.0.0`, `127.0.0.1`, `::`).
    pub address: String,
    /// URLs that reach it from the host.
    pub urls: Vec<String>,
}

/// A service as `service ls` and `inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceView {
    pub name: String,
    pub state: String,
    pub health: String,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Consecutive failed checks.
    pub failing: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub check_output: String,
}

/// One thing `up` or `down` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// `network`, `pod` or `image`.
    pub kind: String,
    pub name: String,
    /// `created`, `started`, `recreated`, `unchanged`, `removed`, `kept`,
    /// `orphaned` (a pod of the project its spec no longer names).
    pub action: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OrphanRoot {
    /// The deleted data root, or "(unknown)" for objects whose root cannot
    /// be named (unmarked empty state directories, tables with no bridge).
    pub root: String,
    pub objects: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkPod {
    pub name: String,
    pub id: String,
    pub ip: String,
}

/// The label naming a spec pod's project (`gvpod up`).
pub const PROJECT_LABEL: &str = "gvpod.project";

/// One sample of a pod's resource use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodStats {
    pub id: String,
    pub name: String,
    /// When the sample was taken (RFC 3339, nanoseconds).
    pub read: String,
    pub running: bool,
    /// CPU time the pod used, nanoseconds (user and kernel: 0 when runsc
    /// does not split it).
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_kernel_ns: u64,
    /// The host's total CPU time (all CPUs, every state), nanoseconds.
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    pub memory_bytes: u64,
    pub memory_limit: u64,
    pub pids: u64,
    /// Bytes the pod's host processes (sandbox, gofer) read from and wrote
    /// to storage (`blkio`).
    #[serde(default)]
    pub block_read_bytes: u64,
    #[serde(default)]
    pub block_write_bytes: u64,
    /// The pod's eth0 counters; `None` without a pod network.
    pub network: Option<IfStats>,
}

impl PodStats {
    /// Docker's CPU %: the pod's share of the host's cpu time between two
    /// samples, times the online cpus (100 % = one cpu busy). 0 when the
    /// host's clock did not move or the pod's counter went backwards (a
    /// restart in between).
    pub fn cpu_percent(&self, prev: &PodStats) -> f64 {
        let pod = self.cpu_total_ns.checked_sub(prev.cpu_total_ns);
        let host = self.system_cpu_ns.saturating_sub(prev.system_cpu_ns);
        match pod {
            Some(p) if host > 0 => {
                p as f64 / host as f64 * f64::from(self.online_cpus.max(1)) * 100.0
            }
            _ => 0.0,
        }
    }

    /// Memory in use as a percentage of the limit.
    pub fn memory_percent(&self) -> f64 {
        if self.memory_limit == 0 {
            0.0
        } else {
            self.memory_bytes as f64 / self.memory_limit as f64 * 100.0
        }
    }
}

/// What `create` makes (also the body of the API's `POST /gvpod/v1/pods`).
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateRequest {
    pub image: String,
    pub name: Option<String>,
    pub opts: PodOptions,
    pub auto_remove: bool,
    /// Keep a full runsc debug log under the bundle (`gvpod --debug`).
    pub debug: bool,
    /// The caller starts the pod at once (`run`): config.json is renamed
    /// into place without an fsync, which the pod's monitor does off the
    /// start path (`gvpod create` alone fsyncs it here).
    pub starting: bool,
}

/// What `checkpoint` saves (also the body of `POST /gvpod/v1/checkpoint`).
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckpointRequest {
    pub pod: String,
    pub name: Option<String>,
    pub leave_running: bool,
    /// Reset open TCP connections instead of refusing (see `tcp`).
    pub tcp_close: bool,
}

/// What `restore` brings back (also the body of `POST /gvpod/v1/restore`).
#[derive(Debug, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub snapshot: String,
    pub name: Option<String>,
    /// `-p` specs for the restored pod (a clone gets no ports otherwise).
    pub ports: Vec<String>,
    /// `--route` for the restored pod (a clone gets no route otherwise).
    #[serde(default)]
    pub route: Option<String>,
    pub network: Option<String>,
    pub debug: bool,
}

/// One line of `snapshot ls --format json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotView {
    pub id: String,
    pub name: String,
    pub pod_id: String,
    pub pod_name: String,
    pub image: String,
    pub image_id: String,
    pub runsc_version: String,
    pub platform: String,
    pub created: String,
    pub size: u64,
}
