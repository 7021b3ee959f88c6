//! Global runsc flags of one container, fixed when it is created and replayed
//! on every later call (DESIGN.md fact 1: `runsc --network=none create`
//! followed by a plain `runsc start` fails).

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
                "--strace=true"
            ]
        );
        let back: GlobalFlags = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
