//! What a bench killed with SIGKILL leaves behind, found and removed by
//! `gvpod system gc` (`pod::gc` calls [`sweep_dead`]): its work directory
//! (`<root>/bench/<tag>`), the runtimes' processes, the rootfs overlay
//! mount, the `network` and `checkpoint` workloads' namespaces and
//! `gvbn<tag>*` veths, the `network` workload's `inet gvbench-<tag>`
//! nftables table, and its `gvpod-bench-<tag>` cgroups.
//!
//! Invariants:
//! - a bench writes its owner (pid and the process's start time, so a
//!   reused pid is not taken for it) into [`OWNER_FILE`] before it makes
//!   anything else; only work directories whose owner is dead are swept (a
//!   directory without the file is swept once it is older than
//!   [`UNOWNED_GRACE`]: a bench between its mkdir and its owner file is
//!   younger);
//! - the sweep uses only lower modules (`runsc`, `net`, `bundle`, `sys`),
//!   never `pod`, and every step is idempotent: a second gc finds nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::VETH_PREFIX;

/// The file in a bench's work directory that names its process.
pub const OWNER_FILE: &str = "owner";
/// How old an owner-less work directory must be to be swept.
pub const UNOWNED_GRACE: Duration = Duration::from_secs(60);

/// A process as `OWNER_FILE` records it: "PID STARTTIME".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat (clock ticks since boot).
    pub start: u64,
}

impl Owner {
    pub fn parse(text: &str) -> Option<Owner> {
        let mut f = text.split_whitespace();
        let pid = f.next()?.parse().ok()?;
        let start = f.next()?.parse().ok()?;
        (pid > 0).then_some(Owner { pid, start })
    }

    pub fn render(&self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    /// This process.
    pub fn me() -> Option<Owner> {
        let pid = std::process::id() as i32;
        Some(Owner {
            pid,
            start: start_time(pid)?,
        })
    }

    /// Whether the process is still the one recorded.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 (starttime) of a /proc/PID/stat line; the command name in
/// field 2 may hold spaces and parentheses, so fields are counted after
/// its last ')'.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state): starttime is the 20th field after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn start_time(pid: i32) -> Option<u64> {
    parse_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether the work directory `dir` belongs to no live bench.
fn dead(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join(OWNER_FILE)) {
        Ok(t) => Owner::parse(&t).is_none_or(|o| !o.alive()),
        Err(_) => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > UNOWNED_GRACE),
    }
}

/// The cgroup parent of the bench tagged `tag`, in every hierarchy.
pub fn cgroup_parent(tag: &str) -> String {
    format!("gvpod-bench-{tag}")
}

/// The directories of `tag`'s cgroup parent (v2's single hierarchy and
/// each v1 controller's).
fn cgroup_dirs(tag: &str) -> Vec<PathBuf> {
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        bases.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    bases
        .into_iter()
        .map(|b| b.join(cgroup_parent(tag)))
        .filter(|p| p.is_dir())
        .collect()
}

/// SIGKILLs every process left in `tag`'s cgroups (runc's containers; a
/// runsc sandbox's processes are found by their `--root` instead).
fn kill_cgroup_procs(tag: &str) -> usize {
    let mut n = 0;
    for parent in cgroup_dirs(tag) {
        let Ok(rd) = std::fs::read_dir(&parent) else {
            continue;
        };
        for leaf in rd.flatten().filter(|e| e.path().is_dir()) {
            let procs =
                std::fs::read_to_string(leaf.path().join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
                {
                    n += 1;
                }
            }
        }
    }
    n
}

/// Removes `tag`'s cgroups (leaves first); one still holding a process
/// stays.
pub fn remove_cgroups(tag: &str) {
    for p in cgroup_dirs(tag) {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&p);
    }
}

/// Sweeps the work directories under `<root>/bench` of benches that are no
/// longer running; returns what was removed, one line each.
pub fn sweep_dead(root: &Path) -> Vec<String> {
    let mut done = vec![];
    let base = root.join("bench");
    let Ok(rd) = std::fs::read_dir(&base) else {
        return done;
    };
    let links = crate::net::host_links().unwrap_or_default();
    for e in rd.flatten() {
        let dir = e.path();
        let tag = e.file_name().to_string_lossy().into_owned();
        if !dir.is_dir() || !dead(&dir) {
            continue;
        }
        // The runtimes' processes first: they hold the mounts, namespaces
        // and cgroups.
        let killed = crate::runsc::kill_under_root(&dir).len() + kill_cgroup_procs(&tag);
        if killed > 0 {
            done.push(format!("bench {tag}: {killed} processes"));
            std::thread::sleep(Duration::from_millis(200));
        }
        let prefix = format!("{VETH_PREFIX}{tag}");
        for (name, _) in links.iter().filter(|(n, _)| n.starts_with(&prefix)) {
            if crate::net::delete_link(name).unwrap_or(false) {
                done.push(format!("link {name}"));
            }
        }
        if let Ok(files) = std::fs::read_dir(&dir) {
            for f in files.flatten() {
                if f.file_name().to_string_lossy().starts_with("netns") {
                    let _ = crate::net::netns::remove(&f.path());
                    done.push(format!("netns {}", f.path().display()));
                }
            }
        }
        done.extend(super::publish::sweep(&tag));
        let merged = crate::bundle::RootfsPaths::new(&dir.join("bundle")).merged;
        let _ = crate::bundle::unmount(&merged); // not mounted is fine
        remove_cgroups(&tag);
        if crate::sys::remove_path(&dir).is_ok() {
            done.push(format!("bench {tag}: {}", dir.display()));
        }
    }
    let _ = std::fs::remove_dir(&base); // only when empty
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_after_the_last_paren() {
        let stat =
            "4242 (a) b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("1 (x) S 0"), None);
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn owner_round_trip_and_liveness() {
        let me = Owner::me().expect("own /proc/self/stat");
        assert_eq!(Owner::parse(&me.render()), Some(me));
        assert!(me.alive());
        // The same pid with another start time is another process.
        assert!(!Owner {
            start: me.start + 1,
            ..me
        }
        .alive());
        assert_eq!(Owner::parse("0 5"), None);
        assert_eq!(Owner::parse("12"), None);
        assert_eq!(Owner::parse(""), None);
    }

    #[test]
    fn a_live_benchs_directory_is_not_swept() {
        let root = std::env::temp_dir().join(format!("gvpod-bench-gc-{}", std::process::id()));
        let dir = root.join("bench").join("cafe0001");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(OWNER_FILE), Owner::me().unwrap().render()).unwrap();
        assert!(!dead(&dir));
        let young = root.join("bench").join("cafe0002");
        std::fs::create_dir_all(&young).unwrap();
        assert!(!dead(&young), "an owner-less directory gets a grace period");
        std::fs::write(dir.join(OWNER_FILE), "999999999 1\n").unwrap();
        assert!(dead(&dir));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
