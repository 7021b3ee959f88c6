//! Reading a runsc `--root` state directory without runsc: each container
//! is a `<sandbox id>_sandbox:<id>.state` JSON file (20221219 and the
//! 2024 releases alike) naming its bundle directory and the pids of its
//! sandbox and gofer. `system gc --orphans` uses it to tell which data root
//! a state directory belongs to (the bundle lives under the data root) and
//! to kill what runsc itself can no longer be asked about.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One container recorded in a runsc state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    pub id: String,
    pub bundle: PathBuf,
    /// Sandbox and gofer pids (0 when not recorded).
    pub pids: Vec<i32>,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    #[serde(rename = "bundleDir", default)]
    bundle_dir: String,
    #[serde(rename = "goferPid", default)]
    gofer_pid: i32,
    #[serde(default)]
    sandbox: Option<RawSandbox>,
}

#[derive(Deserialize)]
struct RawSandbox {
    #[serde(default)]
    pid: i32,
}

/// Parses one state file's JSON; `None` when it is not one.
pub fn parse_state(text: &str) -> Option<StateFile> {
    let raw: Raw = serde_json::from_str(text).ok()?;
    let mut pids = vec![];
    if let Some(s) = raw.sandbox {
        pids.push(s.pid);
    }
    pids.push(raw.gofer_pid);
    pids.retain(|p| *p > 1);
    Some(StateFile {
        id: raw.id,
        bundle: PathBuf::from(raw.bundle_dir),
        pids,
    })
}

/// The containers of state directory `dir` (unreadable files are skipped:
/// a container being created has no complete file yet).
pub fn read_state_dir(dir: &Path) -> Vec<StateFile> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut v: Vec<StateFile> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".state"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| parse_state(&t))
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_gc_needs() {
        let s = parse_state(
            r#"{"id":"abc","bundleDir":"/r/bundles/abc","goferPid":12,
                "sandbox":{"id":"abc","pid":13,"uid":65534},"status":"running"}"#,
        )
        .unwrap();
        assert_eq!(s.id, "abc");
        assert_eq!(s.bundle, Path::new("/r/bundles/abc"));
        assert_eq!(s.pids, vec![13, 12]);
        // A stopped container records no pids; junk is no container.
        let s = parse_state(r#"{"id":"x","bundleDir":"/b","goferPid":0}"#).unwrap();
        assert!(s.pids.is_empty());
        assert!(parse_state("{not json").is_none());
        assert!(parse_state(r#"{"bundleDir":"/b"}"#).is_none());
    }
}
