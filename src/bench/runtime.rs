//! A bench runtime: a [`RuntimeSpec`] checked against its binary, and the
//! narrow seam the workloads drive it through (the OCI runtime verbs both
//! runsc and runc share: run, create, start, exec, delete).
//!
//! runsc command lines come from the `runsc` module (one place, DESIGN.md
//! fact 1: every call repeats the same global flags); runc's are built
//! here, the only place gvpod runs runc. Each runtime has its own state
//! root and JSON log under the bench's work directory, so cleanup can list
//! and force-delete whatever it still knows. kvm is only accepted after the
//! `runsc` module's platform probe answered (DESIGN.md fact 7).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::rtspec::{Kind, RuntimeSpec};
use super::BenchError;
use crate::runsc::{GlobalFlags, Runsc};

/// What the report says about a runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub label: String,
    pub kind: String,
    pub bin: PathBuf,
    pub version: String,
    /// runsc's platform (empty for runc).
    pub platform: String,
    /// The global flags every call gets (runsc), without the per-bench paths.
    pub flags: Vec<String>,
}

enum Driver {
    Runsc {
        runsc: Box<Runsc>,
        flags: GlobalFlags,
        /// The spec's `--network` (`flags.network` differs while networked).
        network: String,
        /// The spec's `--overlay2` (`flags.overlay2` differs meanwhile
        /// [`Runtime::set_overlay`]).
        overlay2: Option<String>,
    },
    Runc {
        bin: PathBuf,
        root: PathBuf,
        log: PathBuf,
    },
}

pub struct Runtime {
    pub info: RuntimeInfo,
    driver: Driver,
    /// Its state root (force-deleted from on cleanup).
    pub state: PathBuf,
}

/// The first `name` on `$PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether runc is installed (the default runtime list includes it then).
pub fn runc_installed() -> bool {
    on_path("runc").is_some()
}

impl Runtime {
    /// Checks `spec` against its binary; `dir` is this runtime's own
    /// directory (state root and log), `cache` the data root (runsc's
    /// detection and probe caches).
    pub fn open(spec: &RuntimeSpec, dir: &Path, cache: &Path) -> Result<Runtime, BenchError> {
        let unusable = |why: String| BenchError::Unusable {
            spec: spec.label.clone(),
            why,
        };
        let io = |e: std::io::Error| BenchError::Io {
            path: dir.to_owned(),
            source: e,
        };
        std::fs::create_dir_all(dir.join("state")).map_err(io)?;
        let state = dir.join("state");
        match spec.kind {
            Kind::Runsc => {
                let bin = match &spec.bin {
                    Some(b) => PathBuf::from(b),
                    None => crate::runsc::find_binary().map_err(|e| unusable(e.to_string()))?,
                };
                let runsc = Runsc::at(&bin, cache).map_err(|e| unusable(e.to_string()))?;
                let platform = spec
                    .platform
                    .clone()
                    .unwrap_or_else(|| runsc.features.default_platform.clone());
                runsc
                    .probe_platform(&platform, cache)
                    .map_err(|e| unusable(e.to_string()))?;
                if spec.overlay2.is_some() && !runsc.features.has_flag("overlay2") {
                    return Err(unusable(format!(
                        "{} ({}) has no --overlay2 flag; drop overlay2= or use a newer runsc",
                        bin.display(),
                        runsc.version.raw
                    )));
                }
                let flags = GlobalFlags {
                    root: state.clone(),
                    platform: platform.clone(),
                    network: spec.network.clone(),
                    overlay2: spec.overlay2.clone(),
                    log: dir.join("runsc.log"),
                    debug_log: None,
                    extra: vec![],
                    net_disconnect_ok: false,
                    bin: Some(bin.clone()),
                };
                let mut shown = vec![
                    format!("--platform={platform}"),
                    format!("--network={}", spec.network),
                ];
                if let Some(o) = &spec.overlay2 {
                    shown.push(format!("--overlay2={o}"));
                }
                Ok(Runtime {
                    info: RuntimeInfo {
                        label: spec.label.clone(),
                        kind: "runsc".into(),
                        bin,
                        version: runsc.version.raw.clone(),
                        platform,
                        flags: shown,
                    },
                    driver: Driver::Runsc {
                        runsc: Box::new(runsc),
                        flags,
                        network: spec.network.clone(),
                        overlay2: spec.overlay2.clone(),
                    },
                    state,
                })
            }
            Kind::Runc => {
                let bin = match &spec.bin {
                    Some(b) => PathBuf::from(b),
                    None => on_path("runc").ok_or_else(|| {
                        unusable(
                            "runc not found in $PATH; install it (Debian: apt-get install runc) or drop --runtime runc".into(),
                        )
                    })?,
                };
                let out = Command::new(&bin)
                    .arg("--version")
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .map_err(|e| unusable(format!("cannot run {}: {e}", bin.display())))?;
                if !out.status.success() {
                    return Err(unusable(format!(
                        "{} --version failed; is it runc?",
                        bin.display()
                    )));
                }
                let version = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("runc")
                    .to_string();
                Ok(Runtime {
                    info: RuntimeInfo {
                        label: spec.label.clone(),
                        kind: "runc".into(),
                        bin: bin.clone(),
                        version,
                        platform: String::new(),
                        flags: vec![],
                    },
                    driver: Driver::Runc {
                        bin,
                        root: state.clone(),
                        log: dir.join("runc.log"),
                    },
                    state,
                })
            }
        }
    }

    /// `RUNTIME GLOBALFLAGS sub` with null stdio, in a process group of its
    /// own (a Ctrl-C reaches gvpod, which stops between steps and cleans
    /// up, not the runtime in the middle of one).
    fn command(&self, sub: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = match &self.driver {
            Driver::Runsc { runsc, flags, .. } => runsc.command(flags, sub),
            Driver::Runc { bin, root, log } => {
                let mut c = Command::new(bin);
                c.arg(format!("--root={}", root.display()))
                    .arg(format!("--log={}", log.display()))
                    .arg("--log-format=json")
                    .arg(sub);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        cmd
    }

    fn log(&self) -> &Path {
        match &self.driver {
            Driver::Runsc { flags, .. } => &flags.log,
            Driver::Runc { log, .. } => log,
        }
    }

    /// Runs `sub ARGS` to completion; a failure carries the runtime's own
    /// last error line.
    fn call(&self, sub: &str, args: &[&str]) -> Result<(), BenchError> {
        let st = self
            .command(sub)
            .args(args)
            .status()
            .map_err(|e| BenchError::Failed {
                runtime: self.info.label.clone(),
                what: sub.to_string(),
                msg: format!("cannot run {}: {e}", self.info.bin.display()),
            })?;
        if st.success() {
            return Ok(());
        }
        let msg =
            crate::runsc::last_error(self.log()).unwrap_or_else(|| format!("exited with {st}"));
        Err(BenchError::Failed {
            runtime: self.info.label.clone(),
            what: sub.to_string(),
            msg,
        })
    }

    /// `run --bundle B ID`: create, start, wait for the exit, delete.
    pub fn run(&self, bundle: &Path, id: &str) -> Result<(), BenchError> {
        self.call("run", &["--bundle", &bundle.to_string_lossy(), id])
    }

    /// `create --bundle B ID` then `start ID`: a container left running.
    pub fn create_start(&self, bundle: &Path, id: &str) -> Result<(), BenchError> {
        self.call("create", &["--bundle", &bundle.to_string_lossy(), id])?;
        self.call("start", &[id])
    }

    /// `exec ID ARGS...`, waiting for it to exit.
    pub fn exec(&self, id: &str, args: &[&str]) -> Result<(), BenchError> {
        let mut a = vec![id];
        a.extend_from_slice(args);
        self.call("exec", &a)
    }

    /// Networked mode (the `network` workload): runsc with `--network=none`
    /// gets `--network=sandbox` for every call until it is turned off, so a
    /// container sees one set of global flags from create to delete
    /// (DESIGN.md fact 1; the `runsc` module adds fact 3's workaround to
    /// the calls that need it). runc needs nothing: it joins the netns the
    /// spec names.
    pub fn set_networked(&mut self, on: bool) {
        if let Driver::Runsc { flags, network, .. } = &mut self.driver {
            flags.network = if on && network == "none" {
                "sandbox".into()
            } else {
                network.clone()
            };
        }
    }

    /// Whether the `checkpoint` workload can run here: runsc saves and
    /// restores by itself; runc needs CRIU, which gvpod does not drive.
    pub fn can_checkpoint(&self) -> bool {
        matches!(self.driver, Driver::Runsc { .. })
    }

    /// `checkpoint --image-path=DIR ID` (the container stops; the caller
    /// deletes it). DESIGN.md fact 5: a 2022 sandbox and gofer can linger
    /// after it, so this id's are reaped by pid.
    pub fn checkpoint(&self, id: &str, image: &Path) -> Result<(), BenchError> {
        let Driver::Runsc { flags, .. } = &self.driver else {
            return Err(self.no_checkpoint());
        };
        let path = format!("--image-path={}", image.display());
        let res = self.call("checkpoint", &[&path, id]);
        crate::runsc::reap_leftovers(flags, id);
        res
    }

    /// Brings container `id` back from the memory image in `image` with
    /// `bundle`, detached (it keeps running): one `restore` where the
    /// release creates the container itself, else `create` then `restore`
    /// (DESIGN.md fact 5; the choice is the `runsc` module's).
    pub fn restore(&self, bundle: &Path, id: &str, image: &Path) -> Result<(), BenchError> {
        let Driver::Runsc { runsc, .. } = &self.driver else {
            return Err(self.no_checkpoint());
        };
        let b = bundle.to_string_lossy();
        if !runsc.restore_in_one_step() {
            self.call("create", &["--bundle", &b, id])?;
        }
        let path = format!("--image-path={}", image.display());
        self.call("restore", &[&path, "--bundle", &b, "--detach", id])
    }

    fn no_checkpoint(&self) -> BenchError {
        BenchError::Failed {
            runtime: self.info.label.clone(),
            what: "checkpoint".into(),
            msg: "only runsc checkpoints here (runc's needs CRIU)".into(),
        }
    }

    /// The `--overlay2` values of `wanted` this runtime accepts, when its
    /// spec did not fix one: probed by parsing the flag (`runsc
    /// --overlay2=V list` on the runtime's own state root exits 2 on a value
    /// it does not know), not guessed from the version. None for runc.
    pub fn overlay_choices(&self, wanted: &[&str]) -> Vec<String> {
        let Driver::Runsc {
            runsc,
            flags,
            overlay2: None,
            ..
        } = &self.driver
        else {
            return vec![];
        };
        if !runsc.features.has_flag("overlay2") {
            return vec![];
        }
        wanted
            .iter()
            .filter(|v| {
                let mut f = flags.clone();
                f.overlay2 = Some(v.to_string());
                runsc
                    .command(&f, "list")
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .map(|v| v.to_string())
            .collect()
    }

    /// Gives runsc `--overlay2=V` on every call until it is set back with
    /// None (the spec's own); a container sees one value from create to
    /// delete (DESIGN.md fact 1). runc: nothing.
    pub fn set_overlay(&mut self, v: Option<&str>) {
        if let Driver::Runsc {
            flags, overlay2, ..
        } = &mut self.driver
        {
            flags.overlay2 = v.map(str::to_string).or_else(|| overlay2.clone());
        }
    }

    /// `delete --force ID`; a container the runtime does not know is fine.
    pub fn delete(&self, id: &str) {
        let _ = self.command("delete").args(["--force", id]).status();
    }

    /// runsc's sandbox and gofer processes of this runtime (they carry its
    /// `--root`); none for runc.
    pub fn sandbox_pids(&self) -> Vec<i32> {
        match self.driver {
            Driver::Runsc { .. } => crate::runsc::pids_under_root(&self.state),
            Driver::Runc { .. } => vec![],
        }
    }

    /// Force-deletes the containers `ids` (those this runtime was given)
    /// and kills any sandbox process still naming its state root (runsc's
    /// sandbox and gofer run in sessions of their own).
    pub fn delete_all(&self, ids: &[String]) {
        for id in ids {
            self.delete(id);
        }
        if let Driver::Runsc { .. } = self.driver {
            crate::runsc::kill_under_root(&self.state);
        }
    }
}
