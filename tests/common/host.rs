//! The host's real objects of one data root, read from the kernel and the
//! filesystem (never from gvpod's database), so a test can take a picture
//! before a fault and compare after the clean-up: links carrying the
//! root's alias, its nftables table, mounts under it, its runsc state
//! entries, processes naming it, cgroups of its pods, and its files.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Every host object of data root `root` (see the module docs).
pub fn objects(r: &super::Root) -> BTreeSet<String> {
    let mut v = BTreeSet::new();
    let root = std::fs::canonicalize(r.path()).unwrap_or(r.path().to_owned());
    let rs = root.to_string_lossy().into_owned();
    if let Ok(o) = Command::new("ip")
        .args(["-d", "-j", "link", "show"])
        .output()
    {
        let links: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
        for l in links {
            if l["ifalias"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("gvpod root={rs} ")))
            {
                v.insert(format!("link {} ({})", l["ifname"], l["ifalias"]));
            }
        }
    }
    let t = super::table_name(&root);
    if Command::new("nft")
        .args(["list", "table", "inet", &t])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        v.insert(format!("nftables table inet {t}"));
    }
    for l in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        if let Some(m) = l.split(' ').nth(4).filter(|m| m.starts_with(&rs)) {
            v.insert(format!("mount {m}"));
        }
    }
    let runsc = r.run_dir().join("runsc");
    for e in std::fs::read_dir(&runsc).into_iter().flatten().flatten() {
        v.insert(format!("runsc state {}", e.file_name().to_string_lossy()));
    }
    let needle = runsc.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid == me {
            continue;
        }
        let Ok(c) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let c = String::from_utf8_lossy(&c).replace('\0', " ");
        if c.contains(&needle) || (c.contains("__monitor") && c.contains(&rs)) {
            v.insert(format!("process {pid}: {c}"));
        }
    }
    for id in pod_ids(&root) {
        v.extend(super::pod_cgroups(&id).map(|p| format!("cgroup {}", p.display())));
    }
    v
}

/// Ids of pods this root has files for (bundles, logs, netns, runsc state).
fn pod_ids(root: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for d in ["bundles", "logs", "netns"] {
        for e in std::fs::read_dir(root.join(d))
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            let n = n.trim_end_matches(".json");
            if n.len() == 64 {
                ids.insert(n.to_string());
            }
        }
    }
    ids
}

/// Relative paths of the files and directories under `dir` (symlinks not
/// followed, unpacked layers not entered: their content is an image's).
pub fn files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            let in_layers = d.file_name().is_some_and(|n| n == "layers");
            if e.file_type().is_ok_and(|t| t.is_dir()) && !in_layers {
                stack.push(p);
            }
        }
    }
    out
}

/// `files(dir)` without what a command may legitimately add or rotate:
/// logs, the database's WAL files, lock files.
pub fn state_files(dir: &Path) -> BTreeSet<String> {
    files(dir)
        .into_iter()
        .filter(|f| {
            !f.starts_with("logs")
                && !f.starts_with("gvpod.db")
                && !f.ends_with(".lock")
                && !f.ends_with("lock")
        })
        .collect()
}
