//! The one command line gvpod writes for itself, `gvpod --root ROOT
//! __monitor ID [--early | --restore=DIR]` (`pod::start::spawn_monitor`),
//! read without clap.
//!
//! Why: building clap's command tree (every subcommand and its arguments)
//! takes about 1 ms of a process's start, measured with `Instant`s around
//! `Cli::try_parse` (0.8–1.1 ms, up to 2.6 ms on this VM). An early
//! monitor (`run`'s, a named clone's) spends that before it opens the data
//! root, and `perf` timelines
//! (sched exec/fork and the socket's sendmsg/recvmsg events) showed it
//! ready for the client's go a median 0.96 ms after the go was sent, in 25
//! of 29 runs: on the start path of every `run` (issue 8 item 5).
//!
//! Only that exact shape is taken; anything else (another order, an
//! `=` form of `--root`, more arguments) goes to clap as before, so a hand
//! typed `__monitor` behaves as it always did. The unit test checks that
//! clap reads every accepted line the same way.

use std::ffi::OsString;
use std::path::PathBuf;

/// A monitor's arguments, as `Cmd::Monitor` and `Cli::root` hold them.
#[derive(Debug, PartialEq, Eq)]
pub struct MonitorLine {
    pub root: PathBuf,
    pub id: String,
    pub restore: Option<PathBuf>,
    pub early: bool,
}

/// `args` (the program name first) as a monitor's command line, if it is
/// exactly the shape gvpod writes.
pub fn monitor_line(args: &[OsString]) -> Option<MonitorLine> {
    let [_, root_flag, root, sub, id, rest @ ..] = args else {
        return None;
    };
    if root_flag != "--root" || sub != "__monitor" || root.is_empty() {
        return None;
    }
    let id = id.to_str()?.to_string();
    // An id is gvpod's own hex; anything that looks like a flag is clap's.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (restore, early) = match rest {
        [] => (None, false),
        [a] if a == "--early" => (None, true),
        [a] => {
            use std::os::unix::ffi::OsStrExt;
            let dir = a.as_bytes().strip_prefix(b"--restore=")?;
            if dir.is_empty() {
                return None;
            }
            (Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir))), false)
        }
        _ => return None,
    };
    Some(MonitorLine {
        root: PathBuf::from(root),
        id,
        restore,
        early,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Cmd};
    use clap::Parser;

    fn line(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    /// What clap makes of the same line.
    fn by_clap(args: &[OsString]) -> Option<MonitorLine> {
        let cli = Cli::try_parse_from(args).ok()?;
        match cli.cmd {
            Cmd::Monitor { id, restore, early } => Some(MonitorLine {
                root: cli.root,
                id,
                restore,
                early,
            }),
            _ => None,
        }
    }

    #[test]
    fn the_lines_gvpod_writes_read_as_clap_reads_them() {
        for l in [
            line(&[
                "/usr/bin/gvpod",
                "--root",
                "/var/lib/gvpod",
                "__monitor",
                "ab12",
            ]),
            line(&["gvpod", "--root", "/r oot", "__monitor", "ab12", "--early"]),
            line(&[
                "gvpod",
                "--root",
                "/r",
                "__monitor",
                "ab12",
                "--restore=/s/a b",
            ]),
        ] {
            let fast = monitor_line(&l);
            assert!(fast.is_some(), "{l:?}");
            assert_eq!(fast, by_clap(&l), "{l:?}");
        }
    }

    #[test]
    fn any_other_line_is_left_to_clap() {
        for l in [
            line(&["gvpod", "__monitor", "ab12"]),
            line(&["gvpod", "--root=/r", "__monitor", "ab12"]),
            line(&["gvpod", "--root", "/r", "__monitor", "--early", "ab12"]),
            line(&[
                "gvpod",
                "--root",
                "/r",
                "__monitor",
                "ab12",
                "--early",
                "--debug",
            ]),
            line(&["gvpod", "--root", "/r", "__monitor", "ab12", "--restore="]),
            line(&[
                "gvpod",
                "--root",
                "/r",
                "__monitor",
                "ab12",
                "--restore",
                "/d",
            ]),
            line(&["gvpod", "--root", "/r", "__monitor", "-h"]),
            line(&["gvpod", "--root", "/r", "run", "ab12"]),
            line(&["gvpod", "--root", "", "__monitor", "ab12"]),
        ] {
            assert_eq!(monitor_line(&l), None, "{l:?}");
        }
    }
}
