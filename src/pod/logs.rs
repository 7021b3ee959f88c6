//! `logs`: reads the monitor's JSON-lines log, with `--tail`, `--since` and
//! `-f`. The log's line format is defined here once ([`LogLine`]): the
//! monitor writes with [`LogLine::encode`], readers parse with
//! [`LogLine::decode`]. A log rotated by the monitor (`<id>.json.N`, see
//! `monitor::log`) is read oldest file first; a follower that reaches the
//! end of a file the monitor renamed (or truncated) goes on with the new one.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, PodError, Result};
use crate::state::{PodRow, PodStatus};

pub struct LogsRequest {
    pub follow: bool,
    pub tail: Option<usize>,
    /// RFC 3339 time or a duration back from now (`10m`, `1h30m`, `45s`).
    pub since: Option<String>,
    /// A supervised service's log instead of the pod's (`--service`).
    pub service: Option<String>,
}

/// One line of a pod's log file: `{"t":…,"stream":…,"line":…}` and a newline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the monitor read it (RFC 3339, UTC, ns).
    pub t: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its newline (invalid UTF-8 replaced).
    pub line: String,
}

impl LogLine {
    /// The log file's line for `line` read now from `stream`, newline included.
    pub(crate) fn encode(stream: &str, line: &[u8]) -> String {
        let rec = LogLine {
            t: crate::util::now_rfc3339(),
            stream: stream.to_string(),
            line: String::from_utf8_lossy(line).into_owned(),
        };
        let mut s = serde_json::to_string(&rec).expect("a log line serialises");
        s.push('\n');
        s
    }

    /// A line of the log file (with or without its newline); `None` when
    /// it is not one (a torn last line while the monitor writes).
    pub(crate) fn decode(text: &str) -> Option<LogLine> {
        serde_json::from_str(text).ok()
    }
}

/// `<id>.json.N`: the Nth newest rotated file of log `path`.
pub(crate) fn rotated_path(path: &std::path::Path, n: u32) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    s.into()
}

/// The rotated files of log `path` that exist, oldest first.
pub(crate) fn rotated_logs(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return vec![];
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut v: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_string_lossy()
                .strip_prefix(&prefix)?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v.into_iter().map(|(_, p)| p).collect()
}

/// Calls `emit` for each selected line; with `follow`, keeps going until the
/// pod stops, calling `emit(None)` every 100 ms while no line comes. `emit`
/// returning false ends it (the reader has gone away).
pub fn logs(
    ctx: &mut Ctx,
    pod: &PodRow,
    req: LogsRequest,
    emit: &mut dyn FnMut(Option<&LogLine>) -> bool,
) -> Result<()> {
    let since = req.since.as_deref().map(parse_since).transpose()?;
    let path = match &req.service {
        None => ctx.log_path(&pod.id),
        Some(s) => {
            let opts = pod.options()?;
            if !opts.services.contains_key(s) {
                return Err(PodError::Usage(format!(
                    "pod {} has no service {s:?} (see `gvpod service ls {}`)",
                    pod.name, pod.name
                )));
            }
            super::service::log_path(&ctx.root, &pod.id, s)
        }
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !req.follow => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Not started yet: wait for the monitor to create it.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(super::io("cannot open", &path))?
        }
        Err(e) => {
            return Err(PodError::Io {
                what: "cannot open",
                path,
                source: e,
            })
        }
    };
    let mut reader = BufReader::new(file);
    let keep = |l: &LogLine| {
        since.is_none_or(|s| DateTime::parse_from_rfc3339(&l.t).is_ok_and(|t| t >= s))
    };
    let mut lines: Vec<LogLine> = vec![];
    // The rotated files first, oldest first (one the monitor shifts away
    // meanwhile is skipped: its lines are in the next one or gone).
    for old in rotated_logs(&path) {
        if let Ok(text) = std::fs::read_to_string(&old) {
            lines.extend(text.lines().filter_map(LogLine::decode).filter(|l| keep(l)));
        }
    }
    let mut buf = String::new();
    loop {
        buf.clear();
        if reader
            .read_line(&mut buf)
            .map_err(super::io("cannot read", &path))?
            == 0
        {
            break;
        }
        if let Some(l) = LogLine::decode(&buf) {
            if keep(&l) {
                lines.push(l);
            }
        }
    }
    let start = req.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for l in &lines[start..] {
        if !emit(Some(l)) {
            return Ok(());
        }
    }
    if !req.follow {
        return Ok(());
    }
    let pos = reader
        .stream_position()
        .map_err(super::io("cannot read", &path))?;
    // Every launch, restarts included, until the pod stops for good.
    let mut stopped = |row: Option<&PodRow>| row.is_none_or(|r| r.status != PodStatus::Running);
    follow(ctx, pod, (reader, pos, &path), &keep, emit, &mut stopped)
}

/// The output of a pod's launch for an attaching client (docker's attach
/// before start): the log is opened at its end when this is made, so every
/// line of the launch that follows is read, even when a `--rm` pod runs,
/// exits and is removed (its log with it) before the client looks.
pub struct LaunchOutput {
    reader: BufReader<std::fs::File>,
    pos: u64,
    path: std::path::PathBuf,
    /// The pod as it was: a launch is a start after this one.
    before: PodRow,
}

/// Opens `pod`'s log for [`follow_launch`]: call it before the client is
/// told it is attached.
pub fn open_launch_output(ctx: &Ctx, pod: &PodRow) -> Result<LaunchOutput> {
    let path = ctx.log_path(&pod.id);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(super::io("cannot open", &path))?;
    let pos = file
        .seek(SeekFrom::End(0))
        .map_err(super::io("cannot read", &path))?;
    Ok(LaunchOutput {
        reader: BufReader::new(file),
        pos,
        path,
        before: pod.clone(),
    })
}

/// Streams what the pod prints from [`open_launch_output`] on, through its
/// current launch (if it runs) or its next one, until that launch ends.
/// `emit(None)` comes every 100 ms while no line does; false ends it.
pub fn follow_launch(
    ctx: &mut Ctx,
    out: LaunchOutput,
    emit: &mut dyn FnMut(Option<&LogLine>) -> bool,
) -> Result<()> {
    let LaunchOutput {
        reader,
        pos,
        path,
        before,
    } = out;
    // The launch followed: the current one if the pod runs, else the next
    // start, which is the user's (a start by the user resets the restart
    // count to 0). It ends when the pod stops or its restart policy counts
    // one more restart; the count tells it even when a short launch ran and
    // ended between two looks.
    let running_now = before.status == PodStatus::Running;
    let count = if running_now { before.restart_count } else { 0 };
    let mut launched = running_now;
    let started_before = before.started.clone();
    let mut ended = move |row: Option<&PodRow>| {
        let Some(r) = row else {
            return true;
        };
        let running = r.status == PodStatus::Running;
        launched = launched || running || r.started != started_before;
        launched && (!running || r.restart_count != count)
    };
    follow(
        ctx,
        &before,
        (reader, pos, &path),
        &|_| true,
        emit,
        &mut ended,
    )
}

/// The log file now at `path` when it is no longer the one `reader` reads
/// (the monitor rotated it) and `reader` is at its end.
fn rotated_away(
    reader: &BufReader<std::fs::File>,
    path: &std::path::Path,
) -> Option<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let ours = reader.get_ref().metadata().ok()?;
    let now = std::fs::metadata(path).ok()?;
    if (ours.dev(), ours.ino()) == (now.dev(), now.ino()) {
        return None;
    }
    std::fs::File::open(path).ok()
}

/// Follows the log from `pos` until `ended` says what is followed has ended
/// (given the pod's row, `None` once it is removed), reading what is left
/// before it returns.
fn follow(
    ctx: &mut Ctx,
    pod: &PodRow,
    (mut reader, mut pos, path): (BufReader<std::fs::File>, u64, &std::path::Path),
    keep: &dyn Fn(&LogLine) -> bool,
    emit: &mut dyn FnMut(Option<&LogLine>) -> bool,
    ended: &mut dyn FnMut(Option<&PodRow>) -> bool,
) -> Result<()> {
    let mut buf = String::new();
    let mut partial = String::new();
    loop {
        // A pod removed meanwhile (a `--rm` pod's monitor removes it, and
        // its log, right after its last line): what is left in the open
        // file is read before the end.
        let (running, monitor, done) = match ctx.db.pod(&pod.id)? {
            Some(r) => {
                let r = ctx.refresh(r)?;
                let done = ended(Some(&r));
                (r.status == PodStatus::Running, r.monitor_pid, done)
            }
            None => (false, None, ended(None)),
        };
        reader
            .seek(SeekFrom::Start(pos))
            .map_err(super::io("cannot read", path))?;
        loop {
            buf.clear();
            let n = reader
                .read_line(&mut buf)
                .map_err(super::io("cannot read", path))?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            partial.push_str(&buf);
            if !partial.ends_with('\n') {
                continue;
            }
            if let Some(l) = LogLine::decode(&partial) {
                if keep(&l) && !emit(Some(&l)) {
                    return Ok(());
                }
            }
            partial.clear();
        }
        // At the end of this file: the monitor may have begun a new one
        // (the old one, renamed, was read to its end above) or truncated it.
        if let Some(f) = rotated_away(&reader, path) {
            reader = BufReader::new(f);
            pos = 0;
            partial.clear();
            continue;
        }
        if reader.get_ref().metadata().is_ok_and(|m| m.len() < pos) {
            pos = 0;
            partial.clear();
            continue;
        }
        if done || !emit(None) {
            return Ok(());
        }
        // New lines are looked for every 100 ms, and at once when the
        // monitor ends (the pod has stopped: its last lines are written).
        let wait = if running || monitor.is_some() {
            Duration::from_millis(100)
        } else {
            // Not launched yet: the start comes through another request.
            Duration::from_millis(5)
        };
        super::monitor::sleep_until_exit(monitor, wait);
    }
}

/// `--since`: an RFC 3339 time, or a duration such as `90s`, `10m`, `1h30m` before now.
pub fn parse_since(s: &str) -> Result<DateTime<chrono::FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let bad = || {
        PodError::Usage(format!(
            "invalid --since {s:?}: use an RFC 3339 time or a duration such as 10m or 1h30m"
        ))
    };
    let mut total = 0i64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok((Utc::now() - chrono::Duration::seconds(total)).fixed_offset())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_log_format_round_trips() {
        let text = LogLine::encode("stderr", b"caf\xc3\xa9 \"quoted\" \xff");
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text}"
        );
        let l = LogLine::decode(&text).unwrap();
        assert_eq!(
            (l.stream.as_str(), l.line.as_str()),
            ("stderr", "café \"quoted\" \u{fffd}")
        );
        assert!(crate::util::parse_rfc3339(&l.t).is_some());
        assert_eq!(LogLine::decode("{\"t\":\"x\",\"stream\":"), None);
    }

    use super::*;

    #[test]
    fn since_forms() {
        let t = parse_since("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let d = parse_since("1h30m").unwrap();
        let diff = Utc::now().fixed_offset() - d;
        assert!((diff.num_seconds() - 5400).abs() <= 2);
        for bad in ["", "10", "5x", "yesterday"] {
            assert!(parse_since(bad)
                .unwrap_err()
                .to_string()
                .contains(&format!("{bad:?}")));
        }
    }
}
