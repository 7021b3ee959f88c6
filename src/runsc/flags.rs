//! Global runsc flags of one container, fixed when it is created and replayed
//! on every later call (DESIGN.md fact 1: `runsc --network=none create`
//! followed by a plain `runsc start` fails), and the runsc binary itself:
//! a container is driven by the runsc that created it, whatever
//! `GVPOD_RUNSC` or `$PATH` say later (podman records its OCI runtime per
//! container for the same reason).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalFlags {
    /// runsc state directory (`--root`), one per gvpod data root.
    pub root: PathBuf,
    pub platform: String,
    /// `none`, `sandbox` or `host`.
    pub network: String,
    /// `--overlay2` value, when this runsc has the flag.
    pub overlay2: Option<String>,
    /// JSON error log (`--log`), read back to report runsc's own error line.
    pub log: PathBuf,
    /// Debug log directory (`--debug-log`, with a trailing slash so runsc names files per command).
    pub debug_log: Option<PathBuf>,
    /// Extra `--runsc-flag K=V` from the user, passed verbatim as `--K=V`.
    #[serde(default)]
    pub extra: Vec<(String, String)>,
    /// `--net-disconnect-ok`: the sandbox's NIC may drop its TCP
    /// connections on a save (read when the network is built, so given at
    /// create and restore; REFERENCES.md "TCP and saves"). Set for every
    /// pod on a network whose runsc has the flag, so that `checkpoint
    /// --tcp-close` can reset connections; without it a save refuses them.
    #[serde(default)]
    pub net_disconnect_ok: bool,
    /// The runsc binary that created the container (not a flag; `None` for
    /// pods recorded before gvpod kept it: the current runsc).
    #[serde(default)]
    pub bin: Option<PathBuf>,
}

impl GlobalFlags {
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--root={}", self.root.display()),
            format!("--platform={}", self.platform),
            format!("--network={}", self.network),
            format!("--log={}", self.log.display()),
            "--log-format=json".to_string(),
        ];
        if let Some(o) = &self.overlay2 {
            a.push(format!("--overlay2={o}"));
        }
        if let Some(d) = &self.debug_log {
            a.push("--debug".to_string());
            a.push(format!("--debug-log={}/", d.display()));
        }
        if self.net_disconnect_ok {
            a.push("--net-disconnect-ok=true".to_string());
        }
        for (k, v) in &self.extra {
            a.push(format!("--{k}={v}"));
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_gets_the_same_flags_in_the_same_order() {
        let f = GlobalFlags {
            root: "/run/gvpod/x/runsc".into(),
            platform: "ptrace".into(),
            network: "none".into(),
            overlay2: Some("none".into()),
            log: "/d/runsc.log".into(),
            debug_log: None,
            extra: vec![("strace".into(), "true".into())],
            net_disconnect_ok: true,
            bin: Some("/opt/runsc".into()),
        };
        assert_eq!(
            f.to_args(),
            [
                "--root=/run/gvpod/x/runsc",
                "--platform=ptrace",
                "--network=none",
                "--log=/d/runsc.log",
                "--log-format=json",
                "--overlay2=none",
                "--net-disconnect-ok=true",
                "--strace=true"
            ]
        );
        let back: GlobalFlags = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        // Pods recorded before these fields existed.
        let old: GlobalFlags = serde_json::from_str(
            r#"{"root":"/r","platform":"ptrace","network":"none","overlay2":null,"log":"/l","debug_log":null}"#,
        )
        .unwrap();
        assert!(!old.net_disconnect_ok && old.bin.is_none() && old.extra.is_empty());
    }
}
