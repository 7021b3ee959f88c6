//! A pod's block I/O: the bytes its host processes read from and wrote to
//! storage, for `gvpod stats` (BLOCK I/O) and the API's
//! `blkio_stats.io_service_bytes_recursive`.
//!
//! Where it is observable (measured on this host's kernel 6.18, cgroup v1
//! and v2): runsc puts the sandbox, the gofer and their helper processes in
//! the pod's cgroup (`gvpod/<id>`, the spec's `cgroupsPath`), and those
//! host processes do the pod's file I/O (the gofer serves bind mounts and
//! the rootfs; with directfs the sandbox opens host files itself). The
//! cgroup's own blkio counters stayed at 0 after an 8 MiB `dd
//! conv=fsync` into a bind mount (v1 throttle statistics count only
//! throttled bios), while the processes' `/proc/PID/io` `read_bytes` /
//! `write_bytes` (bytes fetched from or sent to the storage layer, writes
//! counted when the page is dirtied) showed the 8 MiB. So the pod's block
//! I/O is the sum of those counters over the processes in its cgroup. They
//! live as long as the pod, so nothing is lost to an exited process; a
//! write to `--overlay2 …:memory` never reaches storage and is not counted.
//! Reading never fails: a process that exits while it is read, or a cgroup
//! that is gone, counts 0.

use std::path::{Path, PathBuf};

/// Bytes read from and written to storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockIo {
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// The cgroup (relative to a hierarchy's root) runsc puts pod `id` in.
pub fn cgroup_of(id: &str) -> String {
    format!("gvpod/{id}")
}

/// `read_bytes` and `write_bytes` of a `/proc/PID/io` text.
pub fn parse_proc_io(text: &str) -> Option<BlockIo> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(BlockIo {
        read_bytes: get("read_bytes:")?,
        write_bytes: get("write_bytes:")?,
    })
}

/// The `cgroup.procs` file of cgroup `rel`: the unified hierarchy's on
/// cgroup v2, else the first v1 hierarchy (one directory under `base` per
/// controller) that has it.
fn procs_file(base: &Path, rel: &str) -> Option<PathBuf> {
    let v2 = base.join(rel).join("cgroup.procs");
    if v2.exists() {
        return Some(v2);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(base)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| d.join(rel).join("cgroup.procs"))
        .find(|p| p.exists())
}

/// The block I/O of the processes in cgroup `rel`.
pub fn of_cgroup(rel: &str) -> BlockIo {
    let Some(file) = procs_file(Path::new("/sys/fs/cgroup"), rel) else {
        return BlockIo::default();
    };
    let procs = std::fs::read_to_string(file).unwrap_or_default();
    let mut sum = BlockIo::default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .as_deref()
            .and_then(parse_proc_io)
            .unwrap_or_default();
        sum.read_bytes += io.read_bytes;
        sum.write_bytes += io.write_bytes;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_io_gives_storage_bytes() {
        let t = "rchar: 100\nwchar: 200\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 16777216\ncancelled_write_bytes: 0\n";
        assert_eq!(
            parse_proc_io(t),
            Some(BlockIo {
                read_bytes: 4096,
                write_bytes: 16_777_216
            })
        );
        assert_eq!(parse_proc_io("rchar: 1\n"), None);
        assert_eq!(parse_proc_io(""), None);
    }

    #[test]
    fn the_procs_file_is_found_on_v1_and_v2() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(procs_file(d.path(), "gvpod/x"), None);
        // v1: one hierarchy per controller, the pod's cgroup in some.
        std::fs::create_dir_all(d.path().join("pids/gvpod/x")).unwrap();
        std::fs::write(d.path().join("pids/gvpod/x/cgroup.procs"), "1\n").unwrap();
        assert_eq!(
            procs_file(d.path(), "gvpod/x"),
            Some(d.path().join("pids/gvpod/x/cgroup.procs"))
        );
        // v2: the unified hierarchy at the root wins.
        std::fs::create_dir_all(d.path().join("gvpod/x")).unwrap();
        std::fs::write(d.path().join("gvpod/x/cgroup.procs"), "1\n").unwrap();
        assert_eq!(
            procs_file(d.path(), "gvpod/x"),
            Some(d.path().join("gvpod/x/cgroup.procs"))
        );
    }

    #[test]
    fn a_missing_cgroup_is_zero() {
        assert_eq!(of_cgroup("gvpod/no-such-pod-here"), BlockIo::default());
    }
}
