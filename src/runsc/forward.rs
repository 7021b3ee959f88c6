//! Reaching a sandbox's own loopback (issue 11: dev services bound to
//! 127.0.0.1 inside a pod): the command lines only; `pod::route` runs them
//! per routed connection.
//!
//! - `runsc port-forward --stream SOCK ID PORT` (20240729 has it; REFERENCES.md)
//!   dials the unix socket SOCK, then connects to 127.0.0.1:PORT in the
//!   sandbox's netstack and copies between the two. It dials before it
//!   connects: a refused port shows as an empty stream and a failed exit
//!   ("connection was refused" on stderr).
//! - Elsewhere `runsc exec ID /dev/gvpod/gvpod-relay PORT` runs gvpod's own
//!   static relay (src/router/relay.c), bound read-only into every pod, with
//!   the connection on its stdin and stdout.

use std::path::Path;
use std::process::Command;

use super::{GlobalFlags, Result, Runsc, RunscError};

/// Where the pod sees gvpod's helpers (a read-only bind of the data root's
/// `helpers/`; outside the rootfs, so a commit never picks it up).
pub const HELPERS_IN_POD: &str = "/dev/gvpod";
/// The relay's path inside a pod.
pub const RELAY_IN_POD: &str = "/dev/gvpod/gvpod-relay";

impl Runsc {
    /// `runsc port-forward --stream SOCK ID PORT`; stdio is the caller's to set.
    pub fn port_forward(&self, flags: &GlobalFlags, id: &str, sock: &Path, port: u16) -> Command {
        let mut cmd = self.command(flags, "port-forward");
        cmd.arg("--stream").arg(sock).arg(id).arg(port.to_string());
        cmd
    }

    /// `runsc exec ID /dev/gvpod/gvpod-relay ARGS…`; stdio is the caller's to set.
    pub fn relay(&self, flags: &GlobalFlags, id: &str, args: &[String]) -> Command {
        let mut cmd = self.command(flags, "exec");
        cmd.arg(id).arg(RELAY_IN_POD).args(args);
        cmd
    }
}

impl Runsc {
    /// The text of files inside the pod (its /proc/net/tcp): read by the
    /// relay, else by the image's `cat` (pods made before the relay).
    pub fn read_in_pod(&self, flags: &GlobalFlags, id: &str, files: &[&str]) -> Result<String> {
        let mut args = vec!["--cat".to_string()];
        args.extend(files.iter().map(|f| f.to_string()));
        let mut cmd = self.relay(flags, id, &args);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = self.output(&mut cmd)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let mut cmd = self.command(flags, "exec");
        cmd.arg(id).arg("cat").args(files);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = self.output(&mut cmd)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        Err(RunscError::Failed {
            cmd: format!("exec (cat {})", files.join(" ")),
            id: id.to_string(),
            msg: err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("it failed")
                .trim()
                .to_string(),
            log: flags.log.clone(),
        })
    }
}
