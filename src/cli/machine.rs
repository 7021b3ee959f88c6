//! `gvpod machine …` (a Lima machine that runs gvpod, for macOS) and the
//! choice of where every other verb goes: this host, `--url`, or a machine.
//!
//! Invariants: in a client build (macOS's, or Linux's without feature
//! `host`: no `host_runtime`, see lib.rs) every verb but `machine` and
//! `config` goes to a machine (`GVPOD_MACHINE`, else `gvpod`), as there is
//! no local mode; in the full Linux build only when `GVPOD_MACHINE` names
//! one (how it is tested). A forwarded verb is the
//! remote client's (`super::remote`) after its paths passed the machine's
//! mounts ([`check_paths`]): a path the VM cannot see is refused here with
//! one line, before anything is sent. `--url` (GVPOD_HOST) wins over
//! GVPOD_MACHINE, and a URL that is a machine's socket (what `machine env`
//! prints) gets the same path checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::args::{Cmd, RunArgs};
use super::format;
use crate::machine::lima::{self, Instance, Limactl};
use crate::machine::mounts::Mounts;
use crate::machine::remote::{Remote, RemoteError};
use crate::machine::template::{self, Settings};
use crate::machine::{check_name, MachineError, DEFAULT_NAME};

#[derive(Subcommand)]
pub enum MachineCmd {
    /// Create a machine (a Lima VM with runsc and this gvpod); then `gvpod machine start`.
    Init(InitArgs),
    /// Start a machine (Lima's progress is shown) and check its gvpod answers.
    Start { name: Option<String> },
    /// Stop a machine (its pods stop with it).
    Stop { name: Option<String> },
    /// Remove a machine and its disk.
    Rm {
        /// Stop it first if it runs.
        #[arg(short = 'f', long)]
        force: bool,
        name: Option<String>,
    },
    /// List gvpod machines.
    Ls {
        /// Output format: table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show one machine: status, resources, API socket, its gvpod's version.
    Status {
        /// Output format: table or json.
        #[arg(long, default_value = "table")]
        format: String,
        name: Option<String>,
    },
    /// Open a shell in the machine, or run CMD there: gvpod machine ssh [NAME] [-- CMD…].
    Ssh {
        name: Option<String>,
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Print the shell exports that point Docker clients (and gvpod) at a machine.
    Env { name: Option<String> },
}

#[derive(Args)]
pub struct InitArgs {
    /// CPUs of the VM (default: Lima's).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory of the VM, e.g. 4GiB (default: Lima's).
    #[arg(long)]
    pub memory: Option<String>,
    /// Disk size of the VM, e.g. 50GiB (default: Lima's).
    #[arg(long)]
    pub disk: Option<String>,
    /// A Linux build of this gvpod version for the VM's arch (on Linux:
    /// this binary). It is copied under ~/.local/share/gvpod/machine/NAME.
    #[arg(long, env = "GVPOD_LINUX_BINARY", value_name = "PATH")]
    pub gvpod_binary: Option<PathBuf>,
    /// Machine name (default: GVPOD_MACHINE, else gvpod).
    pub name: Option<String>,
}

/// Where a verb goes when not to this host.
pub(super) struct Target {
    pub url: String,
    /// The machine's mounts, when the target is a machine.
    pub mounts: Option<Mounts>,
}

/// Where the verbs go: `--url`, a machine, or (`None`) this host.
pub(super) fn target(url: Option<&str>) -> Result<Option<Target>, MachineError> {
    if let Some(url) = url {
        return Ok(Some(Target {
            url: url.to_string(),
            mounts: machine_of_url(url),
        }));
    }
    let name = match env_machine() {
        Some(n) => n,
        None if cfg!(not(host_runtime)) => DEFAULT_NAME.to_string(),
        None => return Ok(None),
    };
    check_name(&name)?;
    let dir = lima::instance_dir(&name);
    if !lima::is_gvpod_machine(&dir) {
        return Err(MachineError::NotFound(name));
    }
    let sock = lima::api_socket(&dir);
    if std::os::unix::net::UnixStream::connect(&sock).is_err() {
        return Err(MachineError::Stopped(name));
    }
    let mounts = Mounts::load(&name, &dir.join("lima.yaml"), &lima::home())?;
    Ok(Some(Target {
        url: format!("unix://{}", sock.display()),
        mounts: Some(mounts),
    }))
}

/// The mounts of the machine whose API socket `url` is, if it is one.
fn machine_of_url(url: &str) -> Option<Mounts> {
    let sock = Path::new(url.strip_prefix("unix://")?);
    let dir = sock.parent()?.parent()?;
    if sock.file_name()? != "gvpod.sock" || !lima::is_gvpod_machine(dir) {
        return None;
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    Mounts::load(&name, &dir.join("lima.yaml"), &lima::home()).ok()
}

/// Refuses a verb whose paths the machine cannot see at the same path
/// (outputs must be under a writable mount). Relative paths count from
/// the client's working directory, as the remote client sends them.
pub(super) fn check_paths(cmd: &Cmd, mounts: Option<&Mounts>) -> anyhow::Result<()> {
    use super::snapshot::SnapshotCmd;
    let Some(m) = mounts else {
        return Ok(());
    };
    let mut paths: Vec<(PathBuf, bool)> = vec![];
    match cmd {
        Cmd::Run(a) | Cmd::Create(a) => paths.extend(volume_paths(a)),
        Cmd::Load { input, .. } => paths.push((input.clone(), false)),
        Cmd::Save { output, .. } => paths.push((output.clone(), true)),
        Cmd::Import { file, .. } => paths.push((file.clone(), false)),
        Cmd::Snapshot(SnapshotCmd::Export { output, .. }) => paths.push((output.clone(), true)),
        Cmd::Snapshot(SnapshotCmd::Import { file, .. }) => paths.push((file.clone(), false)),
        // The service reads the spec files, and binds the pods' volumes.
        Cmd::Up(super::project::UpArgs { files, .. }) => paths.extend(spec_paths(files, true)?),
        Cmd::Down(super::project::DownArgs { files, .. }) if !files.is_empty() => {
            paths.extend(spec_paths(files, false)?)
        }
        _ => {}
    }
    for (p, write) in paths {
        // stdin/stdout: the remote client refuses `-` with its own line.
        if p == Path::new("-") {
            continue;
        }
        m.check(&std::path::absolute(&p)?, write)?;
    }
    Ok(())
}

/// A project's spec files (read), and with `volumes` its pods' volumes
/// (writable unless `:ro`), as the service will use them.
fn spec_paths(files: &[PathBuf], volumes: bool) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    let cwd = std::env::current_dir()?;
    let mut out: Vec<(PathBuf, bool)> = crate::pod::project::files::resolve(files, &cwd)?
        .into_iter()
        .map(|f| (f, false))
        .collect();
    if volumes {
        let p = crate::pod::project::files::load(files, &cwd)?;
        for pod in p.pods.values() {
            for v in &pod.volumes {
                let mut parts = v.split(':');
                if let Some(host) = parts.next().filter(|h| !h.is_empty()) {
                    let ro = parts.nth(1) == Some("ro");
                    out.push((PathBuf::from(host), !ro));
                }
            }
        }
    }
    Ok(out)
}

/// The host sides of `-v HOST:POD[:ro]` (writable unless `:ro`).
fn volume_paths(a: &RunArgs) -> Vec<(PathBuf, bool)> {
    a.pod
        .volume
        .iter()
        .filter_map(|v| {
            let mut parts = v.split(':');
            let host = parts.next().filter(|h| !h.is_empty())?;
            let ro = parts.nth(1) == Some("ro");
            Some((PathBuf::from(host), !ro))
        })
        .collect()
}

/// `GVPOD_MACHINE`, when set and not empty.
fn env_machine() -> Option<String> {
    std::env::var("GVPOD_MACHINE")
        .ok()
        .filter(|n| !n.is_empty())
}

/// The machine a `gvpod machine` verb given no name acts on.
fn default_name() -> String {
    env_machine().unwrap_or_else(|| DEFAULT_NAME.to_string())
}

pub(super) fn machine(cmd: MachineCmd) -> anyhow::Result<i32> {
    let name = |n: &Option<String>| -> Result<String, MachineError> {
        let n = n.clone().unwrap_or_else(default_name);
        check_name(&n)?;
        Ok(n)
    };
    match cmd {
        MachineCmd::Init(a) => init(a),
        MachineCmd::Start { name: n } => start(&name(&n)?),
        MachineCmd::Stop { name: n } => {
            let n = name(&n)?;
            let l = Limactl::find()?;
            let inst = gvpod_instance(&l, &n)?;
            if inst.running() {
                l.stop(&n)?;
            } else {
                eprintln!("machine {n:?} is already stopped");
            }
            println!("{n}");
            Ok(0)
        }
        MachineCmd::Rm { force, name: n } => {
            let n = name(&n)?;
            let l = Limactl::find()?;
            let inst = gvpod_instance(&l, &n)?;
            if inst.running() && !force {
                return Err(MachineError::Running(n).into());
            }
            l.delete(&n, force)?;
            // The binary init copied in; gone with the machine.
            let _ = std::fs::remove_dir_all(binary_dir(&n));
            println!("{n}");
            Ok(0)
        }
        MachineCmd::Ls { format: f } => {
            let json = format::check_format(&f)?;
            let l = Limactl::find()?;
            let rows: Vec<MachineView> = l
                .list()?
                .into_iter()
                .filter(|i| lima::is_gvpod_machine(&i.dir))
                .map(MachineView::from)
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|m| {
                        vec![
                            m.name.clone(),
                            m.status.clone(),
                            m.arch.clone(),
                            m.cpus.to_string(),
                            gib(m.memory),
                            gib(m.disk),
                            m.socket.display().to_string(),
                        ]
                    })
                    .collect();
                format::table(
                    &["NAME", "STATUS", "ARCH", "CPUS", "MEMORY", "DISK", "SOCKET"],
                    &cells,
                );
            }
            Ok(0)
        }
        MachineCmd::Status { format: f, name: n } => {
            let json = format::check_format(&f)?;
            let n = name(&n)?;
            let l = Limactl::find()?;
            let mut v = MachineView::from(gvpod_instance(&l, &n)?);
            if v.status == "Running" {
                v.gvpod = Remote::new(&v.url())
                    .and_then(|r| r.json::<serde_json::Value>("GET", "/version", None))
                    .ok()
                    .and_then(|j| {
                        j.get("Version")
                            .and_then(|s| s.as_str())
                            .map(str::to_string)
                    });
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows = [
                    ("Name", v.name.clone()),
                    ("Status", v.status.clone()),
                    ("Arch", v.arch.clone()),
                    ("CPUs", v.cpus.to_string()),
                    ("Memory", gib(v.memory)),
                    ("Disk", gib(v.disk)),
                    ("Dir", v.dir.display().to_string()),
                    ("Socket", v.socket.display().to_string()),
                    ("gvpod", v.gvpod.clone().unwrap_or_else(|| "-".into())),
                ];
                for (k, val) in rows {
                    println!("{:<8} {val}", format!("{k}:"));
                }
            }
            Ok(0)
        }
        MachineCmd::Ssh { name: n, cmd } => {
            let n = name(&n)?;
            let l = Limactl::find()?;
            if !gvpod_instance(&l, &n)?.running() {
                return Err(MachineError::Stopped(n).into());
            }
            Ok(l.shell(&n, &cmd)?)
        }
        MachineCmd::Env { name: n } => {
            let n = name(&n)?;
            let dir = lima::instance_dir(&n);
            if !lima::is_gvpod_machine(&dir) {
                return Err(MachineError::NotFound(n).into());
            }
            let url = format!("unix://{}", lima::api_socket(&dir).display());
            println!("export DOCKER_HOST={}", shell_quote(&url));
            println!("export GVPOD_HOST={}", shell_quote(&url));
            Ok(0)
        }
    }
}

/// One machine as `ls`/`status` show it.
#[derive(Serialize)]
struct MachineView {
    name: String,
    status: String,
    arch: String,
    cpus: u64,
    memory: u64,
    disk: u64,
    dir: PathBuf,
    socket: PathBuf,
    /// The version of gvpod its API reports (status, when running).
    #[serde(skip_serializing_if = "Option::is_none")]
    gvpod: Option<String>,
}

impl MachineView {
    fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl From<Instance> for MachineView {
    fn from(i: Instance) -> MachineView {
        MachineView {
            socket: lima::api_socket(&i.dir),
            name: i.name,
            status: i.status,
            arch: i.arch,
            cpus: i.cpus,
            memory: i.memory,
            disk: i.disk,
            dir: i.dir,
            gvpod: None,
        }
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1}GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:+@%,=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The instance `name` if it is a gvpod machine.
fn gvpod_instance(l: &Limactl, name: &str) -> Result<Instance, MachineError> {
    let inst = l.get(name)?;
    if !lima::is_gvpod_machine(&inst.dir) {
        return Err(MachineError::NotFound(name.to_string()));
    }
    Ok(inst)
}

/// Where init keeps the machine's gvpod binary: under the home directory,
/// which the template mounts at the same path.
fn binary_dir(name: &str) -> PathBuf {
    lima::home().join(".local/share/gvpod/machine").join(name)
}

fn init(a: InitArgs) -> anyhow::Result<i32> {
    let name = a.name.clone().unwrap_or_else(default_name);
    check_name(&name)?;
    let settings = Settings {
        cpus: a.cpus,
        memory: a.memory,
        disk: a.disk,
    };
    let version = env!("CARGO_PKG_VERSION");
    let src = match a.gvpod_binary {
        Some(p) => p,
        None if cfg!(host_runtime) => std::env::current_exe()?,
        None => return Err(MachineError::NoBinary(version.into()).into()),
    };
    if !std::fs::metadata(&src).is_ok_and(|m| m.is_file()) {
        return Err(MachineError::BadBinary(src, "no such file".into()).into());
    }
    let dir = binary_dir(&name);
    let dest = dir.join("gvpod");
    // Checked before anything is made: values, then that the name is free.
    template::render(&dest, &settings)?;
    let l = Limactl::find()?;
    if l.list()?.iter().any(|i| i.name == name) {
        return Err(MachineError::Exists(name).into());
    }
    std::fs::create_dir_all(&dir)?;
    let made = (|| -> anyhow::Result<()> {
        let tmp = dir.join(".gvpod.partial");
        std::fs::copy(&src, &tmp)?;
        std::fs::rename(&tmp, &dest)?;
        let yaml = template::render(&dest, &settings)?;
        l.create(&name, &yaml)?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    println!("{name}");
    eprintln!(
        "machine {:?} created (gvpod {version}): start it with `gvpod machine start {}`",
        name, name
    );
    Ok(0)
}

fn start(name: &str) -> anyhow::Result<i32> {
    let l = Limactl::find()?;
    let inst = gvpod_instance(&l, name)?;
    if inst.running() {
        eprintln!("machine {name:?} is already running");
    } else {
        l.start(name)?;
    }
    let sock = lima::api_socket(&inst.dir);
    let r = Remote::new(&format!("unix://{}", sock.display()))?;
    // Lima's socket forward can lag the probes a moment.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match r.call("GET", "/_ping") {
            Ok(()) => break,
            Err(RemoteError::Version { theirs, ours, .. }) => {
                return Err(MachineError::Version {
                    machine: name.to_string(),
                    theirs,
                    ours,
                }
                .into())
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
            Err(_) => {
                return Err(MachineError::NoApi {
                    machine: name.to_string(),
                    sock,
                }
                .into())
            }
        }
    }
    println!("{name}");
    let how = if cfg!(not(host_runtime)) && name == DEFAULT_NAME {
        String::new()
    } else {
        format!(" with GVPOD_MACHINE={name}")
    };
    eprintln!("machine {name:?} is running: gvpod commands{how} now run in it");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_host_sides_and_their_modes() {
        use clap::Parser;
        let cli = super::super::args::Cli::try_parse_from([
            "gvpod",
            "run",
            "-v",
            "/a:/x",
            "-v",
            "rel:/y:ro",
            "-v",
            "/b:/z:rw",
            "img",
        ])
        .unwrap();
        let Cmd::Run(a) = cli.cmd else { panic!() };
        assert_eq!(
            volume_paths(&a),
            vec![
                (PathBuf::from("/a"), true),
                (PathBuf::from("rel"), false),
                (PathBuf::from("/b"), true)
            ]
        );
    }

    #[test]
    fn exports_are_shell_words() {
        assert_eq!(
            shell_quote("unix:///Users/me/.lima/gvpod/sock/gvpod.sock"),
            "unix:///Users/me/.lima/gvpod/sock/gvpod.sock"
        );
        assert_eq!(shell_quote("unix:///a b/it's"), "'unix:///a b/it'\\''s'");
    }
}
