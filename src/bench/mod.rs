//! `gvpod bench`: gVisor benchmark workloads run side by side on several
//! runtimes (runsc platforms, runsc releases, runc), with statistics and a
//! versioned JSON report. gVisor's `test/benchmarks` is the model for what
//! to measure (REFERENCES.md); unlike it, nothing sits between gvpod and
//! the runtime (no Docker), and every figure gets median, p95, min, max and
//! CV, not a mean. Workloads (see `workloads`): startup (run-true,
//! first-http), exec, syscall, fileio, network, density, checkpoint.
//!
//! Invariants:
//! - one bundle per bench run, made from an image of the data root through
//!   `bundle` (an overlay of its cached layers), used by every runtime;
//! - rounds are interleaved across runtimes (the order rotates every round)
//!   so drift on the machine hits every runtime alike;
//! - everything the bench makes lives in one work directory under the data
//!   root (`bench/<tag>`), every container id starts with [`ID_PREFIX`] and
//!   the bench's tag, cgroups sit under `gvpod-bench-<tag>`, host veths are
//!   named `gvbn<tag><n>` with their netns under the work directory, the
//!   published port's nftables table is `inet gvbench-<tag>`: the
//!   [`Stage`] guard force-deletes, unmounts and removes all of it, on success,
//!   failure or Ctrl-C (SIGINT/SIGTERM/SIGHUP stop the run between steps);
//! - runtimes are driven through [`runtime::Runtime`] only (runsc's command
//!   lines come from the `runsc` module, DESIGN.md fact 1).

pub mod chart;
mod checkpoint;
pub mod compare;
mod env;
pub mod gc;
mod network;
mod publish;
pub mod report;
mod rtspec;
mod runtime;
mod stats;
mod workloads;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub use report::Report;

use crate::bundle::{self, BundleError, PodOptions, SpecInput, Volume};
use crate::pod::{Ctx, PodError};
use runtime::Runtime;

/// Every bench container id starts with this (fixed length: runsc
/// prefix-matches ids, DESIGN.md fact 2).
pub const ID_PREFIX: &str = "gvbench";

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad runtime spec {spec:?}: {why}")]
    BadSpec { spec: String, why: String },
    #[error("runtime {spec} cannot be used: {why}")]
    Unusable { spec: String, why: String },
    #[error("unknown workload {0:?}; use {list}", list = workloads::ALL.join(", "))]
    UnknownWorkload(String),
    #[error("baseline {name:?} is not one of the runtimes benchmarked ({have}); name one with --baseline or add it with --runtime")]
    BadBaseline { name: String, have: String },
    #[error("{0}")]
    Usage(String),
    #[error("bench {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{runtime}: {what} failed: {msg}")]
    Failed {
        runtime: String,
        what: String,
        msg: String,
    },
    #[error("cannot draw the bench chart: {0}")]
    Chart(String),
    #[error("bench interrupted; everything it made was removed")]
    Interrupted,
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl BenchError {
    /// See [`crate::error::Kind`]: specs, names and options are the
    /// user's to fix; a runtime that fails mid-run is not.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            BenchError::BadSpec { .. }
            | BenchError::Unusable { .. }
            | BenchError::UnknownWorkload(_)
            | BenchError::BadBaseline { .. }
            | BenchError::Usage(_) => Kind::User,
            BenchError::Io { .. }
            | BenchError::Failed { .. }
            | BenchError::Chart(_)
            | BenchError::Interrupted => Kind::Internal,
            BenchError::Pod(e) => e.kind(),
            BenchError::Bundle(e) => e.kind(),
        }
    }
}

pub type Result<T> = std::result::Result<T, BenchError>;

/// What `gvpod bench` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Workload names (empty: every one).
    pub workloads: Vec<String>,
    /// `--runtime` specs (empty: the default set, see [`default_runtimes`]).
    pub runtimes: Vec<String>,
    /// Rounds per workload (None: 10, or 3 with `quick`).
    pub runs: Option<u32>,
    pub quick: bool,
    /// Label of the baseline runtime (None: runc when benchmarked, else the first).
    pub baseline: Option<String>,
    /// The image the bundle is made from.
    pub image: String,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(BenchError::Interrupted)
    } else {
        Ok(())
    }
}

/// Turns SIGINT/SIGTERM/SIGHUP into a flag the run checks between steps
/// (the runtimes run in process groups of their own, so a Ctrl-C does not
/// hit them mid-step). Called before any other thread starts.
fn catch_signals() {
    let mask = crate::util::block_forwarded_signals();
    std::thread::spawn(move || loop {
        match mask.wait() {
            Ok(nix::sys::signal::Signal::SIGWINCH) => continue,
            Ok(_) => {
                INTERRUPTED.store(true, Ordering::SeqCst);
                eprintln!("\ngvpod bench: interrupted, cleaning up");
            }
            Err(_) => return,
        }
    });
}

/// Without `--runtime`: every platform the default runsc offers (kvm
/// only when its probe answers: a note otherwise), plus runc when
/// installed.
fn default_runtimes(cache: &Path, note: &mut dyn FnMut(String)) -> Result<Vec<String>> {
    let bin = crate::runsc::find_binary().map_err(|e| BenchError::Unusable {
        spec: "runsc".into(),
        why: e.to_string(),
    })?;
    let runsc = crate::runsc::Runsc::at(&bin, cache).map_err(|e| BenchError::Unusable {
        spec: "runsc".into(),
        why: e.to_string(),
    })?;
    let mut v = vec![];
    for p in &runsc.features.platforms {
        if !["systrap", "ptrace", "kvm"].contains(&p.as_str()) {
            continue;
        }
        if p == "kvm" {
            if let Err(e) = runsc.probe_platform("kvm", cache) {
                note(format!("skipping runsc:kvm: {e}"));
                continue;
            }
        }
        v.push(format!("runsc:{p}"));
    }
    if runtime::runc_installed() {
        v.push("runc".into());
    } else {
        note("runc is not installed (apt-get install runc): no native baseline".into());
    }
    Ok(v)
}

/// Runs the bench; `progress` gets one line per step (for stderr).
pub fn run(ctx: &mut Ctx, opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    // Everything that needs no sandbox is checked first.
    let mut chosen: Vec<&'static str> = vec![];
    for w in &opts.workloads {
        let name = workloads::ALL
            .iter()
            .find(|a| **a == w.as_str())
            .ok_or_else(|| BenchError::UnknownWorkload(w.clone()))?;
        if !chosen.contains(name) {
            chosen.push(name);
        }
    }
    if chosen.is_empty() {
        chosen = workloads::ALL.to_vec();
    }
    let runs = opts.runs.unwrap_or(if opts.quick { 3 } else { 10 });
    if runs == 0 || runs > 10_000 {
        return Err(BenchError::Usage(format!(
            "invalid --runs {runs}: use 1 to 10000"
        )));
    }
    catch_signals();
    let mut warnings = vec![];
    let specs = if opts.runtimes.is_empty() {
        default_runtimes(&ctx.root, &mut |n| {
            progress(&n);
            warnings.push(n);
        })?
    } else {
        opts.runtimes.clone()
    };
    let specs = rtspec::parse_all(&specs)?;
    if specs.is_empty() {
        return Err(BenchError::Usage(
            "no runtime to benchmark; name one with --runtime".into(),
        ));
    }
    let baseline = match &opts.baseline {
        Some(b) => {
            if !specs.iter().any(|s| &s.label == b) {
                return Err(BenchError::BadBaseline {
                    name: b.clone(),
                    have: specs
                        .iter()
                        .map(|s| s.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            b.clone()
        }
        None => specs
            .iter()
            .find(|s| s.label == "runc")
            .unwrap_or(&specs[0])
            .label
            .clone(),
    };
    let image = crate::pod::resolve_image(ctx, &opts.image)?;
    let mut environment = env::Environment::read();
    let started = crate::util::now_rfc3339();
    let mut stage = Stage::new(&ctx.root, &image)?;
    for (i, s) in specs.iter().enumerate() {
        let rt = Runtime::open(s, &stage.work.join(format!("rt{i}")), &ctx.root)?;
        progress(&format!(
            "runtime {}: {} {}",
            rt.info.label,
            rt.info.version,
            rt.info.flags.join(" ")
        ));
        stage.runtimes.push(rt);
        stage.ids.push(vec![]);
    }
    check_interrupted()?;

    let mut results = report::Results::default();
    let clock = Instant::now();
    for w in &chosen {
        let mut wl = workloads::make(w, opts.quick);
        let n = stage.runtimes.len();
        for rt in 0..n {
            check_interrupted()?;
            progress(&format!("{w}: preparing {}", stage.runtimes[rt].info.label));
            wl.prepare(&mut stage, rt)?;
            // One untimed sample: first-run costs (page cache, the kvm
            // probe's cache) are not what is measured.
            if wl.warm_up() {
                wl.sample(&mut stage, rt)?;
            }
        }
        for round in 0..runs as usize {
            for j in 0..n {
                let rt = (j + round) % n;
                check_interrupted()?;
                progress(&format!(
                    "{w}: round {}/{runs} {}",
                    round + 1,
                    stage.runtimes[rt].info.label
                ));
                for s in wl.sample(&mut stage, rt)? {
                    results.add(w, &s, &stage.runtimes[rt].info.label);
                }
            }
        }
        for rt in 0..n {
            wl.finish(&mut stage, rt);
        }
        for note in wl.notes() {
            warnings.push(note);
        }
    }
    environment.finish();
    let rep = report::build(report::Inputs {
        started,
        seconds: clock.elapsed().as_secs_f64(),
        quick: opts.quick,
        runs,
        baseline,
        workloads: chosen.iter().map(|s| s.to_string()).collect(),
        runtimes: stage.runtimes.iter().map(|r| r.info.clone()).collect(),
        environment,
        results,
        warnings,
    });
    drop(stage);
    check_interrupted()?;
    Ok(rep)
}

/// The bench's work directory, bundle and runtimes, and the guard that
/// removes all of it (see the module invariants).
pub struct Stage {
    pub work: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host directory bound at [`OUT_IN_POD`] (workload output files).
    pub out: PathBuf,
    image: crate::image::Image,
    tag: String,
    next: u32,
    mounted: bool,
    pub runtimes: Vec<Runtime>,
    /// Container ids given to each runtime (force-deleted on drop).
    ids: Vec<Vec<String>>,
    /// Network namespaces and host veths of the `network` workload,
    /// recorded before they are made (removed on drop, after the
    /// containers).
    nets: Vec<(PathBuf, String)>,
    /// The `network` workload's nftables table (see `publish`), recorded
    /// before it is made.
    firewall: Option<String>,
}

/// The host end of every `network` workload veth is named this, the
/// bench's tag and the runtime's index (`gvbr-` is gvpod's bridges').
pub const VETH_PREFIX: &str = "gvbn";
/// Where the `network` workload's point-to-point links come from (RFC 2544
/// space, DESIGN.md networking rules; pods use 198.18.0.0/16).
pub const NET_POOL: &str = "198.19.80.0/22";
/// Where the bench's output directory appears inside the container.
pub const OUT_IN_POD: &str = "/gvpod-out";
/// A tmpfs in every bench container.
pub const TMPFS_IN_POD: &str = "/gvpod-tmp";
/// Where the bench's helpers are put in the rootfs.
pub const HELPERS_IN_POD: &str = "/gvpod-bench";

impl Stage {
    fn new(root: &Path, image: &crate::image::Image) -> Result<Stage> {
        let tag = crate::util::random_hex(4);
        let work = root.join("bench").join(&tag);
        let bundle = work.join("bundle");
        let out = work.join("out");
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| BenchError::Io { path: p, source }
        };
        for d in [&bundle, &out] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        // Before anything else is made: `system gc` sweeps the work
        // directories of dead owners only (see `gc`).
        let owner = work.join(gc::OWNER_FILE);
        let me = gc::Owner::me().ok_or_else(|| BenchError::Io {
            path: "/proc/self/stat".into(),
            source: std::io::Error::other("cannot read this process's start time"),
        })?;
        std::fs::write(&owner, me.render()).map_err(io(&owner))?;
        let paths = bundle::RootfsPaths::new(&bundle);
        let stage = Stage {
            work,
            rootfs: paths.merged.clone(),
            bundle,
            out,
            image: image.clone(),
            tag,
            next: 0,
            mounted: true,
            runtimes: vec![],
            ids: vec![],
            nets: vec![],
            firewall: None,
        };
        // Recorded (mounted = true) before it is made: the guard's unmount
        // of a mount that failed is harmless.
        bundle::mount_overlay(&image.layers, &paths, true)?;
        let helpers = stage.rootfs.join(HELPERS_IN_POD.trim_start_matches('/'));
        std::fs::create_dir_all(&helpers).map_err(io(&helpers))?;
        Ok(stage)
    }

    /// A fresh container id for runtime `rt`, recorded for cleanup.
    pub fn new_id(&mut self, rt: usize) -> String {
        self.next += 1;
        let id = format!("{ID_PREFIX}{}{:06}", self.tag, self.next);
        self.ids[rt].push(id.clone());
        id
    }

    /// Writes the bundle's config.json for container `id` running `args`.
    pub fn configure(&self, id: &str, args: &[&str]) -> Result<()> {
        self.configure_in(id, args, None)
    }

    /// A network namespace of its own for runtime `rt`: a veth pair with
    /// the host end on the first free /30 of [`NET_POOL`] (under the host's
    /// network lock, so concurrent benches and pods pick different ones)
    /// and `eth0` inside (see `net::link::create_direct_if`). Recorded
    /// first; the guard removes it. Returns the netns path and the pod's
    /// address.
    pub fn make_netns(&mut self, rt: usize) -> Result<(PathBuf, std::net::Ipv4Addr)> {
        self.make_netns_as(rt, "")
    }

    /// [`Stage::make_netns`] for a second namespace of runtime `rt` (a
    /// client's), told apart by `role` in its file and veth names
    /// (`gvbn<tag><role><rt>`, at most 15 bytes).
    pub fn make_netns_as(
        &mut self,
        rt: usize,
        role: &str,
    ) -> Result<(PathBuf, std::net::Ipv4Addr)> {
        use std::net::Ipv4Addr;
        let failed = |label: &str, e: crate::net::NetError| BenchError::Failed {
            runtime: label.to_string(),
            what: "network setup".into(),
            msg: e.to_string(),
        };
        let label = self.runtimes[rt].info.label.clone();
        let path = self.work.join(format!("netns{role}{rt}"));
        let veth = format!("{VETH_PREFIX}{}{role}{rt}", self.tag);
        let _lock = crate::net::host_lock().map_err(|e| failed(&label, e))?;
        let routes = crate::net::host_routes().map_err(|e| failed(&label, e))?;
        let pool: crate::net::Cidr = NET_POOL.parse().expect("valid pool");
        let slot = (pool.network()..pool.broadcast())
            .step_by(4)
            .map(|n| crate::net::Cidr::new(Ipv4Addr::from(n), 30).expect("valid length"))
            .find(|c| !routes.iter().any(|(r, _)| r.overlaps(c)))
            .ok_or_else(|| BenchError::Failed {
                runtime: label.clone(),
                what: "network setup".into(),
                msg: format!("no free /30 left in {NET_POOL}; remove stale gvbn* links"),
            })?;
        let host_ip = Ipv4Addr::from(slot.network() + 1);
        let pod_ip = Ipv4Addr::from(slot.network() + 2);
        self.nets.push((path.clone(), veth.clone()));
        let p = crate::net::link::PodIf {
            netns: &path,
            veth: &veth,
            alias: "",
            bridge: "",
            ip: pod_ip,
            prefix: 30,
            gateway: host_ip,
        };
        crate::net::link::create_direct_if(&p, host_ip).map_err(|e| failed(&label, e))?;
        Ok((path, pod_ip))
    }

    /// Re-adds the address and default route of runtime `rt`'s namespace
    /// at `netns` (made by [`Stage::make_netns`] with `pod_ip`) that runsc
    /// stripped when it took the interface over (DESIGN.md fact 4): a
    /// restore into it needs them back.
    pub fn readdress_netns(
        &self,
        rt: usize,
        netns: &Path,
        pod_ip: std::net::Ipv4Addr,
    ) -> Result<()> {
        let veth = format!("{VETH_PREFIX}{}{rt}", self.tag);
        let p = crate::net::link::PodIf {
            netns,
            veth: &veth,
            alias: "",
            bridge: "",
            ip: pod_ip,
            prefix: 30,
            gateway: std::net::Ipv4Addr::from(u32::from(pod_ip) - 1),
        };
        crate::net::link::reconfigure(&p).map_err(|e| BenchError::Failed {
            runtime: self.runtimes[rt].info.label.clone(),
            what: "network setup".into(),
            msg: e.to_string(),
        })
    }

    /// Removes the namespaces and veths [`Stage::make_netns`] made
    /// (idempotent: a missing one is fine).
    pub fn remove_nets(&mut self) {
        for (path, veth) in self.nets.drain(..) {
            let _ = crate::net::delete_link(&veth);
            let _ = crate::net::netns::remove(&path);
        }
    }

    /// [`Stage::configure`] in the network namespace at `netns` (None: the
    /// runtime's own, with no network).
    pub fn configure_in(&self, id: &str, args: &[&str], netns: Option<&Path>) -> Result<()> {
        let opts = PodOptions {
            cmd: args.iter().map(|s| s.to_string()).collect(),
            entrypoint: Some(String::new()),
            network: "none".into(),
            volumes: vec![Volume {
                host: self.out.clone(),
                pod: OUT_IN_POD.into(),
                readonly: false,
            }],
            ..Default::default()
        };
        let process = bundle::resolve_process(
            &self.image.reference,
            &self.image.config,
            &opts,
            &self.rootfs,
        )?;
        let cgroup = format!("{}/{id}", self.cgroup_parent());
        let spec = bundle::build_spec(
            &process,
            &SpecInput {
                opts: &opts,
                hostname: "bench",
                cgroups_path: &cgroup,
                etc_files: &[],
                readonly_binds: &[],
                netns,
            },
        )?;
        // A pod's RLIMIT_NOFILE (1M) can exceed the host's fs.nr_open, which
        // runc refuses; the bench keeps the host's limits for every runtime.
        let mut spec = spec;
        if let Some(p) = spec.process_mut() {
            p.set_rlimits(None);
        }
        // A tmpfs for the fileio workload, in every container alike.
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(TMPFS_IN_POD)
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec!["nosuid".into(), "nodev".into(), "mode=1777".into()])
                .build()
                .map_err(|e| BenchError::Bundle(BundleError::Spec(e)))?,
        );
        spec.set_mounts(Some(mounts));
        bundle::write_config(&self.bundle, &spec, false)?;
        Ok(())
    }

    /// The host processes in container `id`'s cgroup (v2, or v1's memory
    /// controller).
    pub fn pids_of(&self, id: &str) -> Vec<i32> {
        let rel = format!("{}/{id}/cgroup.procs", self.cgroup_parent());
        ["/sys/fs/cgroup", "/sys/fs/cgroup/memory"]
            .iter()
            .find_map(|b| std::fs::read_to_string(Path::new(b).join(&rel)).ok())
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    fn cgroup_parent(&self) -> String {
        gc::cgroup_parent(&self.tag)
    }

    /// Removes the cgroup parent (and any leaf a runtime left) from every
    /// hierarchy: v2's single one and each v1 controller's.
    fn remove_cgroups(&self) {
        gc::remove_cgroups(&self.tag);
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        for (rt, ids) in self.runtimes.iter().zip(&self.ids) {
            rt.delete_all(ids);
        }
        self.remove_nets();
        self.remove_firewall();
        if self.mounted {
            let _ = bundle::unmount(&self.rootfs);
            self.mounted = false;
        }
        self.remove_cgroups();
        let _ = crate::sys::remove_path(&self.work);
        if let Some(parent) = self.work.parent() {
            let _ = std::fs::remove_dir(parent); // only when no other bench runs
        }
    }
}
