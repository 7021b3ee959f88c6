//! The disk-space estimate a checkpoint is refused on before runsc starts.

use std::path::Path;

use super::super::{PodError, Result};
use crate::snapshot::SnapshotStore;
use crate::state::PodRow;

/// Refuses a checkpoint that cannot fit: runsc 20221219 ends the sandbox
/// when a save fails half-way (e.g. "no space left on device"), so a full
/// disk must be caught before runsc starts. The memory image is at most the
/// sandbox's allocated memory (runsc compresses it); the diff at most the
/// upper directory.
pub(super) fn check_space(store: &SnapshotStore, pod: &PodRow, upper: &Path) -> Result<()> {
    let need = pod.pid.map(memory_file_bytes).unwrap_or(0) + tree_size(upper) + (16 << 20);
    let st = nix::sys::statvfs::statvfs(store.dir()).map_err(|e| PodError::Io {
        what: "cannot check free space of",
        path: store.dir().to_owned(),
        source: e.into(),
    })?;
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    if free < need {
        return Err(PodError::Usage(format!(
            "not enough space for a snapshot of pod {} in {}: up to {} MB needed, {} MB free",
            pod.name,
            store.dir().display(),
            need.div_ceil(1 << 20),
            free >> 20
        )));
    }
    Ok(())
}

/// Allocated bytes of the sandbox's memory file (the memfd named
/// `runsc-memory` that backs all pod memory), found among the open files of
/// sandbox process `pid`.
fn memory_file_bytes(pid: i32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains("runsc-memory"))
        })
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .map(|m| m.blocks() * 512)
        .max()
        .unwrap_or(0)
}

/// Bytes of the regular files under `dir`.
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
