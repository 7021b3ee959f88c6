//! Pod orchestration: the lifecycle state machine, the per-pod monitor
//! process, and the rollback of half-done work. The only layer that knows
//! about images, bundles and runsc at once; one file per lifecycle verb.

mod attach;
mod blkio;
mod boot;
mod checkpoint;
mod cleanup;
mod commit;
mod create;
mod error;
mod events;
mod exec;
pub mod helpers;
mod host;
mod id;
mod images;
mod info;
mod kube;
mod lock;
mod logs;
mod monitor;
mod network;
mod orphans;
pub mod project;
mod proto;
mod provision;
mod restart;
mod restore;
pub mod route;
mod run;
pub mod service;
pub mod snapshots;
pub mod ssh;
mod start;
mod stats;
mod stop;
#[cfg(test)]
mod tests;
mod top;
mod views;

pub use attach::{attach_input, resize};
pub use boot::boot;
pub use checkpoint::{checkpoint, CheckpointRequest};
pub use cleanup::{gc, remove};
pub use commit::commit;
pub use create::{create, CreateRequest};
pub(crate) use error::io;
pub use error::{PodError, Result};
pub use events::{past_events, EventWatch, PodEvent};
pub use exec::{exec, exec_spawn, ExecRequest, ExecStdio};
pub use images::{
    ensure as ensure_image, pull as pull_image, remove as remove_image, resolve as resolve_image,
};
pub use info::{inspect, list, system_info};
pub use kube::kube as generate_kube;
pub use logs::{follow_launch, logs, open_launch_output, LogLine, LogsRequest};
pub use monitor::monitor_main;
pub(crate) use monitor::sleep_until_exit;
pub use network::{
    create_labeled_network, create_network, inspect_network, list_networks, remove_network,
};
pub use orphans::gc_orphans;
pub use restore::{restore, restore_with, RestoreRequest};
pub use run::{run, RunOutcome, RunRequest};
pub use start::{start, Attach, EarlyMonitor, StartOutcome};
pub use stats::{samples, stats, PodStats};
pub use stop::{kill, stop, wait};
pub use top::top;
pub use views::{BootLine, GcReport, NetworkView, OrphanReport, PodView, SystemInfo, Top};

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::failpoint;
use crate::image::ImageStore;
use crate::runsc::{GlobalFlags, Runsc};
use crate::state::{Db, Pick, PodRow, PodStatus};

/// Everything a pod operation needs: the data root, its state database, the
/// image store, (lazily detected) runsc and the host. runsc and the host are
/// the two test seams ([`crate::runsc::Exec`], [`host::Host`]): unit tests
/// build a `Ctx` over a temporary data root with fakes of both
/// ([`Ctx::with_seams`]).
pub struct Ctx {
    pub root: PathBuf,
    /// Per-data-root runtime directory under /run/gvpod (runsc state, sockets).
    pub run_dir: PathBuf,
    pub db: Db,
    pub images: ImageStore,
    runsc: OnceCell<Runsc>,
    host: Arc<dyn host::Host>,
}

impl Ctx {
    /// Opens the data root, creating its directories and database as needed.
    pub fn open(root: &Path) -> Result<Ctx> {
        if !nix::unistd::geteuid().is_root()
            || !caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_ADMIN,
            )
            .unwrap_or(false)
        {
            return Err(PodError::NotRoot);
        }
        for d in ["bundles", "logs", "images"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io("cannot create", &p))?;
        }
        let root = std::fs::canonicalize(root).map_err(io("cannot resolve data root", root))?;
        let run_dir = run_dir_for(&root);
        std::fs::create_dir_all(run_dir.join("runsc")).map_err(io("cannot create", &run_dir))?;
        let db = Db::open(&root)?;
        // After the database exists: a marker without one names a root
        // that was deleted (see `orphans`).
        orphans::mark_run_dir(&run_dir, &root)?;
        let images = ImageStore::new(&root)?;
        Ok(Ctx {
            root,
            run_dir,
            db,
            images,
            runsc: OnceCell::new(),
            host: Arc::new(host::System),
        })
    }

    /// A context over data root `root` whose runsc and host are the given
    /// fakes; no root privileges, no /run/gvpod (its run directory is
    /// `root/run`).
    #[cfg(test)]
    pub(crate) fn with_seams(root: &Path, runsc: Runsc, host: Arc<dyn host::Host>) -> Result<Ctx> {
        let run_dir = root.join("run");
        for d in ["bundles", "logs", "images", "run/runsc"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io("cannot create", &p))?;
        }
        Ok(Ctx {
            root: root.to_owned(),
            run_dir,
            db: Db::open(root)?,
            images: ImageStore::new(root)?,
            runsc: OnceCell::from(runsc),
            host,
        })
    }

    /// The host the pod operations change (see [`host::Host`]).
    pub(crate) fn host(&self) -> &dyn host::Host {
        &*self.host
    }

    /// Whether `pid` is the monitor of pod `id` (guards against pid reuse).
    pub(crate) fn monitor_alive(&self, pid: i32, id: &str) -> bool {
        self.host.runs(pid, &["__monitor", id])
    }

    /// runsc, detected on first use (cached on disk across invocations).
    pub fn runsc(&self) -> Result<&Runsc> {
        if let Some(r) = self.runsc.get() {
            return Ok(r);
        }
        let r = Runsc::detect(&self.root)?;
        Ok(self.runsc.get_or_init(|| r))
    }

    /// The runsc that created the container of `flags`, which every later
    /// call on it uses (see [`GlobalFlags::bin`]); the current runsc for
    /// pods recorded without one, or when the recorded binary is gone (a
    /// warning: `rm -f` must still work after a runsc was removed).
    pub fn runsc_for(&self, flags: &GlobalFlags) -> Result<Runsc> {
        let Some(bin) = &flags.bin else {
            return Ok(self.runsc()?.clone());
        };
        // The usual case, the current runsc: detected once per process
        // (and the only one a test context has).
        let current = match self.runsc.get() {
            Some(r) => r.bin == *bin,
            None => crate::runsc::find_binary().is_ok_and(|b| b == *bin),
        };
        if current {
            return Ok(self.runsc()?.clone());
        }
        Runsc::at(bin, &self.root).or_else(|e| {
            tracing::warn!("{e}; using the current runsc instead");
            Ok(self.runsc()?.clone())
        })
    }

    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.root.join("bundles").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.root.join("logs").join(format!("{id}.json"))
    }

    pub fn pod_run_dir(&self, id: &str) -> PathBuf {
        self.run_dir.join("pods").join(id)
    }

    /// The flags of a pod's runsc container, as recorded at creation.
    pub fn flags_of(&self, pod: &PodRow) -> Result<GlobalFlags> {
        Ok(pod.flags()?.clone())
    }

    /// Finds one pod by name, full id or unique id prefix.
    pub fn lookup(&self, key: &str) -> Result<PodRow> {
        match crate::state::pick(self.db.find_pods(key)?, key, |p| (&p.name, &p.id)) {
            Pick::One(p) => Ok(p),
            Pick::Nothing => Err(PodError::NotFound(key.to_string())),
            Pick::Several(names) => Err(PodError::Ambiguous(key.to_string(), names.join(", "))),
        }
    }

    /// Reconciles a pod's recorded status with the host: a pod just
    /// checkpointed (without `--leave-running`) is waited for until its
    /// monitor records it stopped, so `checkpoint && rm` works; a `running`
    /// pod whose monitor is gone (SIGKILL) and whose sandbox is gone too is
    /// `exited` with an unknown exit code.
    pub fn refresh(&mut self, pod: PodRow) -> Result<PodRow> {
        let mut pod = checkpoint::settle(self, pod)?;
        commit::recover(self, &pod)?;
        if let Some(pid) = pod.monitor_pid.filter(|p| !self.monitor_alive(*p, &pod.id)) {
            // Killed (or ended without saying so): forget it.
            self.db.monitor_done(&pod.id, pid)?;
            pod.monitor_pid = None;
        }
        if pod.status != PodStatus::Running || pod.monitor_pid.is_some() {
            return Ok(pod);
        }
        // Corrupt flags: runsc cannot be asked; the row stays as it is, so
        // that `rm -f` (which cleans up with default flags) still works.
        let Ok(flags) = self.flags_of(&pod) else {
            return Ok(pod);
        };
        let state = self.runsc_for(&flags)?.state(&flags, &pod.id)?;
        if state
            .as_ref()
            .is_some_and(|s| s.status == "running" || s.status == "created")
        {
            return Ok(pod);
        }
        let now = crate::util::now_rfc3339();
        self.db.set_pod_exited(&pod.id, &now, None)?;
        pod.status = PodStatus::Exited;
        pod.finished = Some(now);
        pod.exit_code = None;
        pod.pid = None;
        Ok(pod)
    }
}

/// Fails like a shell would (127 not found, 126 not executable) when `cmd`
/// cannot be run inside `rootfs` with the PATH of `env`.
pub(crate) fn check_command(
    rootfs: &Path,
    cmd: &str,
    env: &[String],
    cwd: &str,
    image: &str,
) -> Result<()> {
    // gvpod's own helpers are in every pod, not in the image.
    let helpers = [
        crate::runsc::HELPERS_IN_POD,
        crate::runsc::LEGACY_HELPERS_IN_POD,
    ];
    if helpers.iter().any(|h| {
        cmd.strip_prefix(h)
            .is_some_and(|rest| rest.starts_with('/'))
    }) {
        return Ok(());
    }
    let path_env = env.iter().find_map(|e| e.strip_prefix("PATH="));
    crate::bundle::check_executable(rootfs, cmd, path_env, cwd).map_err(|p| {
        let (why, code) = match p {
            crate::bundle::ExecProblem::NotFound => ("executable file not found", 127),
            crate::bundle::ExecProblem::NotExecutable => {
                ("permission denied (not an executable file)", 126)
            }
        };
        PodError::Command {
            cmd: cmd.to_string(),
            why,
            image: image.to_string(),
            code,
        }
    })
}

/// Waits (10 s at most) for the pod's monitor, if one is still finishing
/// after the exit it recorded, to end; returns whether it has. A pod is
/// wholly stopped only then: the monitor still reaps runsc leftovers and
/// forgets the sandbox's resource record, which must not race a restart.
pub(crate) fn await_monitor(pod: &PodRow) -> bool {
    let Some(pid) = pod.monitor_pid else {
        return true;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while monitor_alive(pid, &pod.id) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        monitor::sleep_until_exit(Some(pid), left.min(std::time::Duration::from_millis(100)));
    }
    true
}

/// Whether `pid` is the monitor of pod `id` (guards against pid reuse), on
/// the real host (see [`Ctx::monitor_alive`] for the seam).
pub(crate) fn monitor_alive(pid: i32, id: &str) -> bool {
    use host::Host;
    host::System.runs(pid, &["__monitor", id])
}

/// /run/gvpod/<first 12 hex of sha256(data root)>: short enough for unix socket paths.
pub fn run_dir_for(root: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(root.as_os_str().as_encoded_bytes());
    PathBuf::from("/run/gvpod").join(&hex::encode(h)[..12])
}
