//! `gvpod system gc --orphans`: the host objects of data roots that no
//! longer exist. DESIGN: every host object gvpod makes is recorded in its
//! data root; a root deleted behind gvpod's back (`rm -rf` of a test root)
//! takes the records with it, and its bridges, firewall table, runsc state,
//! mounts, cgroups and processes would stay on the host until reboot.
//!
//! How each object names its data root (so the judgement needs no record
//! from the deleted root itself):
//! - runsc state directories `/run/gvpod/<12 hex of sha256(root)>` hold a
//!   [`MARKER`] file with the root's path, written by `Ctx::open` after the
//!   database exists. Directories made before the marker existed are judged
//!   by their containers' bundle directories (`<root>/bundles/<id>`, read
//!   from runsc's state files);
//! - links carry the alias `gvpod root=<root> …` (`net`);
//! - mounts lie under `<root>/bundles/<id>/` or are `<root>/netns/<id>`
//!   (counted only when `<root>`'s state directory exists, so a stranger's
//!   path that looks alike is never judged);
//! - monitors run as `gvpod --root <root> __monitor <id>`;
//! - cgroups are `gvpod/<pod id>`, removed for the pod ids found above;
//! - the firewall table's name hashes the root (`net::table_name`). A table
//!   whose name hashes no root found above is judged by its `bridges` set:
//!   with none of them on the host no root uses it (tables and bridges are
//!   made under the host network lock, which the judgement holds too).
//!
//! Invariants: a root is gone when `<root>/gvpod.db` is not there; nothing
//! of a root whose database exists, nor of the caller's own root, is ever
//! touched. An unmarked state directory whose root cannot be named is
//! removed only when it holds nothing but empty directories and has not
//! changed for [`IDLE`] (an idle root of an older gvpod recreates it on its
//! next command). Every removal is idempotent; a dry run only plans.

pub use super::views::{OrphanReport, OrphanRoot};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Ctx, Result};
use crate::runsc::{read_state_dir, StateFile};

/// The file in a root's state directory that names the root.
pub const MARKER: &str = "root";
/// How long an unmarked, empty state directory must be unchanged.
const IDLE: Duration = Duration::from_secs(600);
/// What names a root that cannot be named.
const UNKNOWN: &str = "(unknown)";

/// Records which data root `run_dir` belongs to (rewritten only when
/// missing or different).
pub(crate) fn mark_run_dir(run_dir: &Path, root: &Path) -> Result<()> {
    let p = run_dir.join(MARKER);
    let want = root.as_os_str().as_encoded_bytes();
    if std::fs::read(&p).is_ok_and(|have| have == want) {
        return Ok(());
    }
    // /run is a tmpfs: no fsync to wait for.
    crate::util::write_replacing(&p, want, false).map_err(super::io("cannot write", &p))
}

/// One runsc state directory under /run/gvpod.
#[derive(Debug, Default, Clone)]
struct RunDir {
    path: PathBuf,
    marker: Option<PathBuf>,
    containers: Vec<StateFile>,
    /// Holds nothing but (nested) empty directories.
    only_dirs: bool,
    /// No directory in it changed for [`IDLE`].
    idle: bool,
}

/// What is on the host, as read by [`scan`].
#[derive(Debug, Default)]
struct Scan {
    run_dirs: Vec<RunDir>,
    /// (name, alias) of every link.
    links: Vec<(String, Option<String>)>,
    mounts: Vec<PathBuf>,
    /// (pid, data root, pod id) of every pod monitor.
    monitors: Vec<(i32, PathBuf, String)>,
    /// Pod ids with a `gvpod/<id>` cgroup in some hierarchy.
    cgroups: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Kill { pid: i32, id: String },
    DeleteContainer { run_dir: PathBuf, state: StateFile },
    Unmount(PathBuf),
    DeleteLink(String),
    RemoveCgroup(String),
    RemoveRunDir(PathBuf),
    RemoveEmptyDirs(PathBuf),
}

impl Action {
    fn describe(&self) -> String {
        match self {
            Action::Kill { pid, id } => format!("monitor {pid} of pod {id}"),
            Action::DeleteContainer { state, .. } => format!("runsc container {}", state.id),
            Action::Unmount(p) => format!("mount {}", p.display()),
            Action::DeleteLink(n) => format!("link {n}"),
            Action::RemoveCgroup(id) => format!("cgroup gvpod/{id}"),
            Action::RemoveRunDir(p) | Action::RemoveEmptyDirs(p) => {
                format!("state dir {}", p.display())
            }
        }
    }
}

/// The data root of a bundle directory `<root>/bundles/<id>`.
fn root_of_bundle(bundle: &Path) -> Option<PathBuf> {
    let parent = bundle.parent()?;
    (parent.file_name()? == "bundles").then(|| parent.parent().map(Path::to_owned))?
}

fn is_pod_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// (data root, pod id) of a mount point `<root>/bundles/<id>/…` or
/// `<root>/netns/<id>`.
fn root_of_mount(mp: &Path) -> Option<(PathBuf, String)> {
    let comps: Vec<_> = mp.components().collect();
    for i in 1..comps.len().saturating_sub(1) {
        let dir = comps[i].as_os_str();
        let id = comps[i + 1].as_os_str().to_string_lossy();
        let fits = (dir == "bundles" || (dir == "netns" && i + 2 == comps.len())) && is_pod_id(&id);
        if fits {
            let root: PathBuf = comps[..i].iter().collect();
            return Some((root, id.into_owned()));
        }
    }
    None
}

/// (data root, pod id) of a monitor's command line.
fn monitor_of(args: &[String]) -> Option<(PathBuf, String)> {
    let m = args.iter().position(|a| a == "__monitor")?;
    let id = args.get(m + 1)?.clone();
    let root = args[..m].iter().enumerate().find_map(|(i, a)| {
        if a == "--root" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--root=").map(str::to_string)
        }
    })?;
    Some((PathBuf::from(root), id))
}

/// Everything to remove, per deleted root (`UNKNOWN` for unnamed ones), in
/// the order it must go: monitors (they would restart their pods), runsc
/// containers (their sandboxes), mounts (deepest first), links, cgroups and
/// last the state directory. `alive(root)` tells a root with a database.
fn plan(scan: &Scan, own: &Path, alive: impl Fn(&Path) -> bool) -> BTreeMap<String, Vec<Action>> {
    let run_dir_paths: BTreeSet<&Path> = scan.run_dirs.iter().map(|d| d.path.as_path()).collect();
    let mut candidates: BTreeSet<PathBuf> = BTreeSet::new();
    for d in &scan.run_dirs {
        match &d.marker {
            Some(m) if super::run_dir_for(m) == d.path => {
                candidates.insert(m.clone());
            }
            Some(_) => {}
            None => candidates.extend(
                d.containers
                    .iter()
                    .filter_map(|c| root_of_bundle(&c.bundle)),
            ),
        }
    }
    for (_, alias) in &scan.links {
        if let Some((r, _, _)) = alias.as_deref().and_then(crate::net::parse_any_alias) {
            candidates.insert(r);
        }
    }
    for mp in &scan.mounts {
        if let Some((r, _)) = root_of_mount(mp) {
            if run_dir_paths.contains(super::run_dir_for(&r).as_path()) {
                candidates.insert(r);
            }
        }
    }
    candidates.extend(scan.monitors.iter().map(|(_, r, _)| r.clone()));
    let mut out: BTreeMap<String, Vec<Action>> = BTreeMap::new();
    for root in candidates {
        if root == own || !root.is_absolute() || alive(&root) {
            continue;
        }
        let run_dir = super::run_dir_for(&root);
        let mut ids: BTreeSet<String> = BTreeSet::new();
        let mut acts = vec![];
        for (pid, r, id) in &scan.monitors {
            if *r == root {
                acts.push(Action::Kill {
                    pid: *pid,
                    id: id.clone(),
                });
                ids.insert(id.clone());
            }
        }
        let dir = scan.run_dirs.iter().find(|d| d.path == run_dir);
        for c in dir.map(|d| d.containers.as_slice()).unwrap_or_default() {
            acts.push(Action::DeleteContainer {
                run_dir: run_dir.clone(),
                state: c.clone(),
            });
            ids.insert(c.id.clone());
        }
        let mut mounts: Vec<&PathBuf> = vec![];
        for mp in &scan.mounts {
            if let Some((r, id)) = root_of_mount(mp) {
                if r == root {
                    mounts.push(mp);
                    ids.insert(id);
                }
            }
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        mounts.dedup();
        acts.extend(mounts.into_iter().map(|m| Action::Unmount(m.clone())));
        for (name, alias) in &scan.links {
            if let Some((r, kind, v)) = alias.as_deref().and_then(crate::net::parse_any_alias) {
                if r == root {
                    acts.push(Action::DeleteLink(name.clone()));
                    if kind == "pod" {
                        ids.insert(v.to_string());
                    }
                }
            }
        }
        acts.extend(
            ids.iter()
                .filter(|id| scan.cgroups.contains(*id))
                .map(|id| Action::RemoveCgroup(id.clone())),
        );
        if dir.is_some() {
            acts.push(Action::RemoveRunDir(run_dir));
        }
        out.insert(root.display().to_string(), acts);
    }
    let unnamed: Vec<Action> = scan
        .run_dirs
        .iter()
        .filter(|d| d.marker.is_none() && d.containers.is_empty() && d.only_dirs && d.idle)
        .map(|d| Action::RemoveEmptyDirs(d.path.clone()))
        .collect();
    if !unnamed.is_empty() {
        out.insert(UNKNOWN.to_string(), unnamed);
    }
    out
}

/// Finds the objects of deleted data roots and removes them (with
/// `dry_run`, only lists them).
pub fn gc_orphans(ctx: &Ctx, dry_run: bool) -> Result<OrphanReport> {
    let scan = scan()?;
    let alive = |r: &Path| r.join("gvpod.db").exists();
    let plans = plan(&scan, &ctx.root, alive);
    let mut rep = OrphanReport {
        dry_run,
        ..Default::default()
    };
    let mut by_root: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (root, acts) in &plans {
        let objects = by_root.entry(root.clone()).or_default();
        for a in acts {
            if dry_run {
                objects.push(a.describe());
                continue;
            }
            match apply(ctx, a) {
                Ok(true) => objects.push(a.describe()),
                Ok(false) => {}
                Err(e) => rep.failed.push(format!("{}: {e}", a.describe())),
            }
        }
    }
    // Tables last: a table of a deleted root is named by the roots above;
    // one no root names is judged by its bridges, under the lock that
    // makes tables and bridges together.
    let mut known: BTreeSet<PathBuf> = plans
        .keys()
        .filter(|r| *r != UNKNOWN)
        .map(PathBuf::from)
        .collect();
    let deleted: BTreeMap<String, String> = known
        .iter()
        .map(|r| (crate::net::table_name(r), r.display().to_string()))
        .collect();
    known.insert(ctx.root.clone());
    known.insert(PathBuf::from(crate::net::DEFAULT_ROOT));
    known.extend(scan.run_dirs.iter().filter_map(|d| d.marker.clone()));
    for (_, alias) in &scan.links {
        if let Some((r, _, _)) = alias.as_deref().and_then(crate::net::parse_any_alias) {
            known.insert(r);
        }
    }
    let named: BTreeSet<String> = known.iter().map(|r| crate::net::table_name(r)).collect();
    let _lock = crate::net::host_lock()?;
    let links: BTreeSet<String> = crate::net::host_links()
        .map(|l| l.into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    for t in crate::net::nft::list_tables()? {
        let fw = crate::net::Firewall::new(t.clone());
        let root = match deleted.get(&t) {
            Some(r) => r.clone(),
            None if named.contains(&t) => continue,
            None => {
                if fw.bridges()?.iter().any(|b| links.contains(b)) {
                    continue;
                }
                UNKNOWN.to_string()
            }
        };
        let what = format!("nftables table inet {t}");
        if !dry_run {
            if let Err(e) = fw.delete_table() {
                rep.failed.push(format!("{what}: {e}"));
                continue;
            }
        }
        by_root.entry(root).or_default().push(what);
    }
    rep.roots = by_root
        .into_iter()
        .filter(|(_, objects)| !objects.is_empty())
        .map(|(root, objects)| OrphanRoot { root, objects })
        .collect();
    Ok(rep)
}

/// Removes one object; `Ok(false)` when it was already gone.
fn apply(ctx: &Ctx, a: &Action) -> Result<bool> {
    match a {
        Action::Kill { pid, id } => {
            if !super::monitor_alive(*pid, id) {
                return Ok(false);
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        Action::DeleteContainer { run_dir, state } => {
            let mut flags = super::cleanup::default_flags(ctx);
            flags.root = run_dir.join("runsc");
            let deleted = ctx
                .runsc()
                .and_then(|r| Ok(r.delete_force(&flags, &state.id)?));
            if let Err(e) = deleted {
                // A state runsc cannot read (another release's, or torn):
                // its processes go by pid, the files with the directory.
                tracing::debug!("runsc delete {}: {e}", state.id);
                for pid in &state.pids {
                    if is_runsc(*pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(*pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        Action::Unmount(p) => {
            if p.parent().and_then(Path::file_name) == Some("netns".as_ref()) {
                crate::net::netns::remove(p)?;
            } else {
                ctx.host().unmount(p)?;
            }
        }
        Action::DeleteLink(n) => return Ok(crate::net::delete_link(n)?),
        Action::RemoveCgroup(id) => ctx.host().remove_cgroup(&format!("gvpod/{id}"))?,
        Action::RemoveRunDir(p) => ctx.host().remove_path(p)?,
        Action::RemoveEmptyDirs(p) => return Ok(remove_empty_dirs(p)),
    }
    Ok(true)
}

/// Whether `pid` is a runsc process (a sandbox or gofer: guards pid reuse).
fn is_runsc(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|b| *b == 0)
            .next()
            .is_some_and(|a| a.ends_with(b"runsc") || a.starts_with(b"runsc-"))
    })
}

/// Removes a tree of empty directories bottom-up with rmdir, so a file
/// that appears meanwhile keeps its directory; whether `dir` went.
fn remove_empty_dirs(dir: &Path) -> bool {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

/// (only empty directories, none changed within [`IDLE`]) of a tree.
fn empty_and_idle(dir: &Path) -> (bool, bool) {
    let idle = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= IDLE));
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (false, false);
    };
    let (mut only, mut all_idle) = (true, idle);
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let (o, i) = empty_and_idle(&e.path());
            only &= o;
            all_idle &= i;
        } else {
            only = false;
        }
    }
    (only, all_idle)
}

/// Reads the host: state directories, links, mounts, monitors, cgroups.
fn scan() -> Result<Scan> {
    let mut s = Scan::default();
    if let Ok(rd) = std::fs::read_dir("/run/gvpod") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.len() != 12 || !name.bytes().all(|b| b.is_ascii_hexdigit()) || !path.is_dir() {
                continue;
            }
            let marker = std::fs::read(path.join(MARKER))
                .ok()
                .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()));
            let containers = read_state_dir(&path.join("runsc"));
            let (only_dirs, idle) = empty_and_idle(&path);
            s.run_dirs.push(RunDir {
                path,
                marker,
                containers,
                only_dirs,
                idle,
            });
        }
    }
    s.links = crate::net::host_links().unwrap_or_default();
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        s.mounts = mi
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| PathBuf::from(crate::util::unescape_mountinfo(m)))
            .collect();
    }
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(c) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = c
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if let Some((root, id)) = monitor_of(&args) {
                s.monitors.push((pid, root, id));
            }
        }
    }
    for base in super::cleanup::cgroup_parents() {
        if let Ok(rd) = std::fs::read_dir(base) {
            s.cgroups.extend(
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| is_pod_id(n)),
            );
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn state(root: &str, id: &str) -> StateFile {
        StateFile {
            id: id.into(),
            bundle: Path::new(root).join("bundles").join(id),
            pids: vec![],
        }
    }

    fn run_dir(root: &str, marked: bool, containers: Vec<StateFile>) -> RunDir {
        RunDir {
            path: super::super::run_dir_for(Path::new(root)),
            marker: marked.then(|| PathBuf::from(root)),
            containers,
            only_dirs: false,
            idle: false,
        }
    }

    /// One deleted root (/gone, marked) and one live root (/live, unmarked,
    /// an older gvpod's) with a pod each, every kind of object.
    fn host() -> Scan {
        let mut s = Scan {
            run_dirs: vec![
                run_dir("/gone", true, vec![state("/gone", A)]),
                run_dir("/live", false, vec![state("/live", B)]),
            ],
            ..Default::default()
        };
        for (root, id, n) in [("/gone", A, "1"), ("/live", B, "2")] {
            s.links.push((
                format!("gvv{n}"),
                Some(crate::net::pod_alias(Path::new(root), id)),
            ));
            s.links.push((
                format!("gvbr-{n}"),
                Some(crate::net::net_alias(Path::new(root), "n")),
            ));
            s.mounts
                .push(Path::new(root).join("bundles").join(id).join("rootfs"));
            s.mounts.push(Path::new(root).join("netns").join(id));
            s.monitors
                .push((n.parse().unwrap(), PathBuf::from(root), id.into()));
            s.cgroups.insert(id.into());
        }
        s.links.push(("eth0".into(), None));
        s
    }

    #[test]
    fn a_deleted_roots_objects_go_in_order_and_a_live_roots_stay() {
        let p = plan(&host(), Path::new("/own"), |r| r == Path::new("/live"));
        assert_eq!(p.keys().collect::<Vec<_>>(), ["/gone"]);
        let run = super::super::run_dir_for(Path::new("/gone"));
        assert_eq!(
            p["/gone"],
            vec![
                Action::Kill {
                    pid: 1,
                    id: A.into()
                },
                Action::DeleteContainer {
                    run_dir: run.clone(),
                    state: state("/gone", A)
                },
                Action::Unmount(PathBuf::from(format!("/gone/bundles/{A}/rootfs"))),
                Action::Unmount(PathBuf::from(format!("/gone/netns/{A}"))),
                Action::DeleteLink("gvv1".into()),
                Action::DeleteLink("gvbr-1".into()),
                Action::RemoveCgroup(A.into()),
                Action::RemoveRunDir(run),
            ]
        );
        // The caller's own root is never judged, even without a database.
        let p = plan(&host(), Path::new("/gone"), |r| r == Path::new("/live"));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn an_unmarked_dir_is_judged_by_its_bundles_and_look_alikes_are_not() {
        // /live is unmarked: its bundle names it, and once its database is
        // gone it is an orphan like any other.
        let p = plan(&host(), Path::new("/own"), |_| false);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["/gone", "/live"]);
        // A mount that looks like a pod's under a path with no state
        // directory is a stranger's.
        let s = Scan {
            mounts: vec![PathBuf::from(format!("/srv/x/netns/{A}"))],
            ..Default::default()
        };
        assert!(plan(&s, Path::new("/own"), |_| false).is_empty());
        // A marker that does not hash to its directory is not believed.
        let mut s = host();
        s.run_dirs[0].marker = Some(PathBuf::from("/elsewhere"));
        s.links.clear();
        s.mounts.clear();
        s.monitors.clear();
        let p = plan(&s, Path::new("/own"), |r| r == Path::new("/live"));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn unnamed_dirs_go_only_when_empty_and_idle() {
        let dir = |only_dirs, idle| RunDir {
            path: PathBuf::from("/run/gvpod/0123456789ab"),
            only_dirs,
            idle,
            ..Default::default()
        };
        for (only, idle, gone) in [
            (true, true, true),
            (true, false, false),
            (false, true, false),
        ] {
            let s = Scan {
                run_dirs: vec![dir(only, idle)],
                ..Default::default()
            };
            let p = plan(&s, Path::new("/own"), |_| false);
            assert_eq!(p.contains_key(UNKNOWN), gone, "{only} {idle}");
        }
    }

    #[test]
    fn names_of_roots() {
        assert_eq!(
            root_of_bundle(Path::new("/r/x/bundles/id")),
            Some(PathBuf::from("/r/x"))
        );
        assert_eq!(root_of_bundle(Path::new("/r/x/other/id")), None);
        assert_eq!(
            root_of_mount(&Path::new("/r/bundles").join(A).join("rootfs/proc")),
            Some((PathBuf::from("/r"), A.into()))
        );
        assert_eq!(
            root_of_mount(&Path::new("/r/netns").join(A).join("x")),
            None
        );
        assert_eq!(root_of_mount(Path::new("/r/netns/short")), None);
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            monitor_of(&args("gvpod --root /r __monitor id --restore=/x")),
            Some((PathBuf::from("/r"), "id".into()))
        );
        assert_eq!(
            monitor_of(&args("gvpod --root=/r __monitor id")),
            Some((PathBuf::from("/r"), "id".into()))
        );
        assert_eq!(monitor_of(&args("gvpod __monitor id")), None);
        assert_eq!(monitor_of(&args("gvpod --root /r ps")), None);
    }

    #[test]
    fn the_marker_is_written_once_and_names_the_root() {
        let d = tempfile::tempdir().unwrap();
        mark_run_dir(d.path(), Path::new("/some/root")).unwrap();
        assert_eq!(std::fs::read(d.path().join(MARKER)).unwrap(), b"/some/root");
        let t = std::fs::metadata(d.path().join(MARKER))
            .unwrap()
            .modified()
            .unwrap();
        mark_run_dir(d.path(), Path::new("/some/root")).unwrap();
        assert_eq!(
            std::fs::metadata(d.path().join(MARKER))
                .unwrap()
                .modified()
                .unwrap(),
            t
        );
        mark_run_dir(d.path(), Path::new("/other")).unwrap();
        assert_eq!(std::fs::read(d.path().join(MARKER)).unwrap(), b"/other");
    }
}
