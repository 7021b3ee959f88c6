//! Reaching a sandbox's own loopback (issue 11: dev services bound to
//! 127.0.0.1 inside a pod): the command lines only; `pod::route` runs them
//! per routed connection.
//!
//! `runsc exec ID /.gvpod/gvpod-relay PORT` runs gvpod's own static relay
//! (src/router/relay.c), a read-only layer of every pod's rootfs
//! (`pod::helpers`; /dev/gvpod/gvpod-relay in pods made before it), with
//! the connection on its stdin and stdout. It works on every release.
//!
//! Not `runsc port-forward --stream` (20240729 has it, 20221219 not):
//! measured here on 20240729, a service that answers with more than 16 KiB
//! at once makes the sentry panic in `portforward.(*netstackConn).Read`
//! ("io.Writer.Write succeeded with incomplete write: 16212 != 60000") and
//! the user's pod dies with it. A route must never be able to kill a pod.

use std::process::Command;

use super::{GlobalFlags, Result, Runsc, RunscError};

/// Where a pod sees gvpod's helpers: a read-only top layer of its rootfs
/// overlay (`pod::helpers`), left out of commits.
pub const HELPERS_IN_POD: &str = "/.gvpod";
/// The relay's path inside a pod.
pub const RELAY_IN_POD: &str = "/.gvpod/gvpod-relay";
/// Where pods made before the layer see the helpers: a read-only bind of
/// the data root's `helpers/` (their specs and snapshots keep it).
pub const LEGACY_HELPERS_IN_POD: &str = "/dev/gvpod";
/// The relay's path in those pods.
pub const LEGACY_RELAY_IN_POD: &str = "/dev/gvpod/gvpod-relay";

impl Runsc {
    /// `runsc exec ID RELAY ARGS…` with `relay` the pod's path of it
    /// (`pod::helpers::relay_of`); stdio is the caller's to set.
    pub fn relay(&self, flags: &GlobalFlags, id: &str, relay: &str, args: &[String]) -> Command {
        let mut cmd = self.command(flags, "exec");
        cmd.arg(id).arg(relay).args(args);
        cmd
    }
}

impl Runsc {
    /// The text of files inside the pod (its /proc/net/tcp): read by the
    /// relay, else by the image's `cat` (pods made before the relay).
    pub fn read_in_pod(
        &self,
        flags: &GlobalFlags,
        id: &str,
        relay: &str,
        files: &[&str],
    ) -> Result<String> {
        let mut args = vec!["--cat".to_string()];
        args.extend(files.iter().map(|f| f.to_string()));
        let mut cmd = self.relay(flags, id, relay, &args);
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
