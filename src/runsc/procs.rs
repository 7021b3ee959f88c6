//! Finding runsc's own processes by their command line. runsc starts its
//! sandbox and gofer in sessions of their own (so a process-group kill of
//! the runsc that started them misses them), but passes every global flag
//! on, `--root` included. A process is ours only when its arguments hold
//! `--root=<the runsc root we gave>` or a root inside it (`runsc do` makes
//! its own root in `$TMPDIR`, which the probe points into its own
//! directory): never a match on a broad name.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Every live process whose arguments contain `--root=ROOT` (or a root
/// under ROOT).
pub(crate) fn under_root(root: &Path) -> Vec<i32> {
    let root_arg = format!("--root={}", root.display());
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            cmdline
                .split(|b| *b == 0)
                .any(|a| {
                    a.strip_prefix(root_arg.as_bytes())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
                })
                .then_some(pid)
        })
        .collect()
}

/// SIGKILLs every live process whose arguments contain `--root=ROOT` (or a
/// root under ROOT) and for which `also(args)` holds. Returns the pids
/// signalled.
pub(crate) fn kill_under_root(root: &Path, also: impl Fn(&[&[u8]]) -> bool) -> Vec<i32> {
    let root_arg = format!("--root={}", root.display());
    let mut killed = vec![];
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // A zombie's cmdline is empty, so only live processes match.
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let under = |a: &&[u8]| {
            a.strip_prefix(root_arg.as_bytes())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
        };
        if args.iter().any(under)
            && also(&args)
            && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed.push(pid);
        }
    }
    killed
}
