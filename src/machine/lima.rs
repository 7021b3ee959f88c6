//! `limactl`, the one way gvpod acts on a Lima machine: `create --name N
//! --tty=false -` (the rendered template on stdin), `start` (its progress
//! on the user's terminal), `stop`, `delete [--force]`, `list --json` (JSON
//! Lines, one instance a line) and `shell N -- CMD` (its exit status passed
//! through).
//!
//! Invariants: every limactl call goes through [`Limactl`], found on PATH
//! once (missing: [`MachineError::NoLimactl`], "brew install lima");
//! `--tty=false` on the calls that could prompt; where a machine lives is
//! computed without running limactl (`$LIMA_HOME`, else `~/.lima`, then
//! the instance name), so a forwarded verb costs no limactl process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{MachineError, Result};

/// One line of `limactl list --json` (the fields gvpod reads).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Instance {
    pub name: String,
    /// Running, Stopped, Broken.
    pub status: String,
    pub dir: PathBuf,
    pub arch: String,
    pub cpus: u64,
    /// Bytes.
    pub memory: u64,
    /// Bytes.
    pub disk: u64,
    pub ssh_local_port: u64,
}

impl Instance {
    pub fn running(&self) -> bool {
        self.status == "Running"
    }
}

/// Where Lima keeps its instances: `$LIMA_HOME`, else `~/.lima`.
pub fn lima_home() -> PathBuf {
    match std::env::var_os("LIMA_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => home().join(".lima"),
    }
}

/// The client's home directory (`$HOME`).
pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The instance directory of machine `name` (it may not exist).
pub fn instance_dir(name: &str) -> PathBuf {
    lima_home().join(name)
}

/// The gvpod API socket Lima forwards for the machine in `dir`.
pub fn api_socket(dir: &Path) -> PathBuf {
    dir.join("sock").join("gvpod.sock")
}

/// Whether `dir` holds a gvpod machine (a Lima instance made from the
/// gvpod template), without running limactl.
pub fn is_gvpod_machine(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("lima.yaml")).is_ok_and(|t| {
        t.lines()
            .any(|l| l.trim_start().starts_with("gvpodBinary:"))
    })
}

/// The `limactl` on PATH.
#[derive(Debug, Clone)]
pub struct Limactl {
    bin: PathBuf,
}

impl Limactl {
    pub fn find() -> Result<Limactl> {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join("limactl"))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .map(|bin| Limactl { bin })
            .ok_or(MachineError::NoLimactl)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.stdin(Stdio::null());
        c
    }

    /// Runs a limactl call whose output is not the user's; its failure
    /// carries limactl's last line of stderr.
    fn quiet(&self, verb: &'static str, name: &str, mut c: Command) -> Result<Vec<u8>> {
        let o = c.stderr(Stdio::piped()).stdout(Stdio::piped()).output()?;
        if o.status.success() {
            return Ok(o.stdout);
        }
        Err(failed(verb, name, &o.status, &o.stderr))
    }

    /// Every instance, in limactl's order.
    pub fn list(&self) -> Result<Vec<Instance>> {
        let mut c = self.cmd();
        c.args(["list", "--json"]);
        let out = self.quiet("list", "--json", c)?;
        parse_list(&out)
    }

    /// The instance `name`, or [`MachineError::NotFound`].
    pub fn get(&self, name: &str) -> Result<Instance> {
        self.list()?
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| MachineError::NotFound(name.to_string()))
    }

    /// `limactl create --name NAME --tty=false -` with `yaml` on stdin.
    pub fn create(&self, name: &str, yaml: &str) -> Result<()> {
        let mut c = self.cmd();
        c.args(["create", "--name", name, "--tty=false", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        // A limactl that exits early closes the pipe: its status says why.
        let _ = stdin.write_all(yaml.as_bytes());
        drop(stdin);
        let o = child.wait_with_output()?;
        if o.status.success() {
            Ok(())
        } else {
            Err(failed("create", name, &o.status, &o.stderr))
        }
    }

    /// `limactl start --tty=false NAME`, its progress on our stderr.
    pub fn start(&self, name: &str) -> Result<()> {
        self.loud("start", name, &["start", "--tty=false", name])
    }

    /// `limactl stop NAME`, its progress on our stderr.
    pub fn stop(&self, name: &str) -> Result<()> {
        self.loud("stop", name, &["stop", name])
    }

    /// `limactl delete [--force] NAME`.
    pub fn delete(&self, name: &str, force: bool) -> Result<()> {
        let mut c = self.cmd();
        c.arg("delete");
        if force {
            c.arg("--force");
        }
        c.arg(name);
        self.quiet("delete", name, c).map(|_| ())
    }

    /// `limactl shell NAME [-- CMD…]` on the user's terminal; its exit code.
    pub fn shell(&self, name: &str, cmd: &[String]) -> Result<i32> {
        let mut c = Command::new(&self.bin);
        c.args(["shell", name]);
        if !cmd.is_empty() {
            c.arg("--").args(cmd);
        }
        let st = c.status()?;
        Ok(exit_code(&st))
    }

    fn loud(&self, verb: &'static str, name: &str, args: &[&str]) -> Result<()> {
        let st = self
            .cmd()
            .args(args)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()?;
        if st.success() {
            Ok(())
        } else {
            Err(failed(verb, name, &st, b""))
        }
    }
}

/// The exit code of a finished process as a shell reports it (128+N for
/// a signal).
fn exit_code(st: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(125)
}

fn failed(
    verb: &'static str,
    name: &str,
    st: &std::process::ExitStatus,
    stderr: &[u8],
) -> MachineError {
    let text = String::from_utf8_lossy(stderr);
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    MachineError::Limactl {
        verb,
        name: name.to_string(),
        status: match st.code() {
            Some(c) => format!("exit status {c}"),
            None => format!("exit code {}", exit_code(st)),
        },
        detail: last.map(|l| format!(": {}", l.trim())).unwrap_or_default(),
    }
}

/// `limactl list --json`: one JSON object a line (older Lima printed an
/// array: both are read).
pub fn parse_list(out: &[u8]) -> Result<Vec<Instance>> {
    let bad = |e: serde_json::Error| {
        MachineError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected output of limactl list --json: {e}"),
        ))
    };
    let text = String::from_utf8_lossy(out);
    let t = text.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t).map_err(bad);
    }
    t.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(bad))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_json_is_json_lines() {
        let out = br#"{"name":"gvpod","status":"Running","dir":"/Users/me/.lima/gvpod","vmType":"vz","arch":"aarch64","cpus":4,"memory":4294967296,"disk":107374182400,"sshLocalPort":60022,"config":{"mounts":[]}}
{"name":"default","status":"Stopped","dir":"/Users/me/.lima/default","arch":"aarch64"}
"#;
        let l = parse_list(out).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].running() && !l[1].running());
        assert_eq!(
            (l[0].cpus, l[0].memory, l[0].ssh_local_port),
            (4, 4 << 30, 60022)
        );
        assert_eq!(l[1].dir, Path::new("/Users/me/.lima/default"));
        assert!(parse_list(b"").unwrap().is_empty());
        assert_eq!(parse_list(br#"[{"name":"a"}]"#).unwrap()[0].name, "a");
        assert!(parse_list(b"not json\n").is_err());
    }

    #[test]
    fn a_missing_limactl_says_how_to_install_lima() {
        assert!(MachineError::NoLimactl
            .to_string()
            .contains("brew install lima"));
        assert_eq!(MachineError::NoLimactl.kind(), crate::error::Kind::User);
    }
}
