//! `runsc ps ID`: the processes inside a sandbox, parsed into [`Process`]
//! rows for `gvpod top` and the API's `/containers/{id}/top`.
//!
//! What each release prints (both checked here): `--format=json` is only
//! the list of pids (`[1,2,4]`) on 20221219 and on 20240729 alike, so the
//! table is what gvpod reads on every release: a header `UID PID PPID C
//! TTY STIME TIME CMD` and one row per process, columns separated by
//! spaces, CMD last (the task's name as the sandbox knows it, which may
//! itself hold spaces: everything after TIME). PIDs are the sandbox's own
//! (the pod's init is 1), not host pids. Columns are found by the header's
//! names, so a release that reorders or adds columns still parses; a header
//! without PID or CMD is an error, never a panic.

pub use super::process::Process;

use super::{GlobalFlags, Result, Runsc, RunscError};

/// Parses `runsc ps` table output.
pub fn parse_ps(out: &str) -> Result<Vec<Process>> {
    let bad = |msg: String| RunscError::Parse {
        cmd: "ps".into(),
        msg,
    };
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| bad("no output".into()))?
        .split_whitespace()
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(pid_at), Some(cmd_at)) = (col("PID"), col("CMD")) else {
        return Err(bad(format!(
            "header {:?} has no PID or CMD column",
            header.join(" ")
        )));
    };
    if cmd_at + 1 != header.len() {
        return Err(bad("CMD is not the last column".into()));
    }
    let mut procs = vec![];
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < header.len() {
            return Err(bad(format!("short row {l:?}")));
        }
        let field = |name: &str| col(name).map(|i| f[i].to_string()).unwrap_or_default();
        let num = |i: Option<usize>| -> Result<u32> {
            match i {
                Some(i) => f[i]
                    .parse()
                    .map_err(|_| bad(format!("bad number {:?} in row {l:?}", f[i]))),
                None => Ok(0),
            }
        };
        procs.push(Process {
            uid: field("UID"),
            pid: num(Some(pid_at))?,
            ppid: num(col("PPID"))?,
            c: field("C"),
            tty: field("TTY"),
            stime: field("STIME"),
            time: field("TIME"),
            cmd: f[cmd_at..].join(" "),
        });
    }
    Ok(procs)
}

impl Runsc {
    /// `runsc ps ID`: the processes in the sandbox.
    pub fn ps(&self, flags: &GlobalFlags, id: &str) -> Result<Vec<Process>> {
        parse_ps(&self.call(flags, "ps", &[], id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from release 20221219 (ptrace): busybox `sh -c 'sleep 1000 &
    /// while true; do sleep 1; done'`.
    const R20221219: &str =
        "UID       PID       PPID      C         TTY       STIME     TIME      CMD
0         1         0         0         ?         12:04     0s        sh
0         2         1         0         ?         12:04     10ms      sleep
0         4         1         1         ?         12:04     0s        sleep
";
    /// Captured from release 20240729 (systrap), the same pod.
    const R20240729: &str =
        "UID       PID       PPID      C         TTY       STIME     TIME      CMD
0         1         0         1         ?         12:04     0s        sh
0         2         1         1         ?         12:04     20ms      sleep
0         4         1         2         ?         12:04     10ms      sleep
";

    #[test]
    fn both_releases_tables_parse() {
        let p = parse_ps(R20221219).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[1],
            Process {
                uid: "0".into(),
                pid: 2,
                ppid: 1,
                c: "0".into(),
                tty: "?".into(),
                stime: "12:04".into(),
                time: "10ms".into(),
                cmd: "sleep".into(),
            }
        );
        let p = parse_ps(R20240729).unwrap();
        let rows: Vec<(u32, u32, &str, &str)> = p
            .iter()
            .map(|p| (p.pid, p.ppid, p.time.as_str(), p.cmd.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                (1, 0, "0s", "sh"),
                (2, 1, "20ms", "sleep"),
                (4, 1, "10ms", "sleep")
            ]
        );
    }

    #[test]
    fn a_command_with_spaces_keeps_them() {
        let p =
            parse_ps("UID PID PPID C TTY STIME TIME CMD\n1000 7 1 0 pts/0 Nov25 1.5s my worker\n")
                .unwrap();
        assert_eq!(
            (p[0].uid.as_str(), p[0].cmd.as_str()),
            ("1000", "my worker")
        );
        assert_eq!(p[0].stime, "Nov25");
    }

    #[test]
    fn an_empty_sandbox_is_no_rows() {
        assert_eq!(
            parse_ps("UID PID PPID C TTY STIME TIME CMD\n").unwrap(),
            vec![]
        );
    }

    #[test]
    fn other_output_is_an_error() {
        for bad in [
            "",
            "[1,2,4]",
            "UID PID\n0 1\n",
            "UID PID PPID C TTY STIME TIME CMD\n0 x 0 0 ? 12:04 0s sh\n",
            "UID PID PPID C TTY STIME TIME CMD\n0 1 0\n",
        ] {
            assert!(parse_ps(bad).is_err(), "{bad:?}");
        }
    }
}
