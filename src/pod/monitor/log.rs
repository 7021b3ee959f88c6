//! The monitor's log writer (conmon's `ctr_logging`): the pod's stdout and
//! stderr cut into lines (a 16 KiB cap, as docker's chunks; a trailing CR
//! dropped from terminal output) and appended to `logs/<id>.json` in the one
//! format `pod::logs` defines, rotated as docker's json-file driver does
//! (`--log-max-size`, `--log-max-file`; `bundle::LogLimits`): once the file
//! passes the size it becomes `<id>.json.1` (`.1` becomes `.2`, …, the
//! oldest beyond the count goes) and a new `<id>.json` is begun. Readers
//! (`pod::logs`) read the rotated files oldest first, and a follower that
//! reaches the end of a renamed file goes on with the new one. A pod's
//! supervised services write their own logs with it too (`pod::service`),
//! under the pod's bounds.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use super::super::logs::{rotated_path, LogLine};

/// The pod log, in the format of [`LogLine`].
pub(crate) struct Output {
    file: File,
    pub tty: bool,
    partial: [Vec<u8>; 2],
    /// The log's path and (size, files kept) when it is rotated.
    rotate: Option<(PathBuf, u64, u32)>,
    /// Bytes in the current file.
    written: u64,
}

/// Longer lines are split, like docker's 16 KiB log chunks.
const MAX_LINE: usize = 16 * 1024;

impl Output {
    pub fn new(file: File, tty: bool, path: PathBuf, limits: Option<(u64, u32)>) -> Self {
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Output {
            file,
            tty,
            partial: [vec![], vec![]],
            rotate: limits.map(|(size, files)| (path, size, files)),
            written,
        }
    }

    pub fn write(&mut self, stream: &'static str, data: &[u8]) {
        let i = usize::from(stream == "stderr");
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let mut line = &buf[start..start + pos];
            if self.tty && line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            self.line(stream, line);
            start += pos + 1;
        }
        let mut rest = buf[start..].to_vec();
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.line(stream, &rest);
            rest = tail;
        }
        self.partial[i] = rest;
    }

    pub fn line(&mut self, stream: &str, line: &[u8]) {
        let s = LogLine::encode(stream, line);
        if self.file.write_all(s.as_bytes()).is_ok() {
            self.written += s.len() as u64;
        }
        if self.rotate.as_ref().is_some_and(|r| self.written >= r.1) {
            self.rotate_now();
        }
    }

    /// Shifts `.N` to `.N+1` (the oldest kept is overwritten), the current
    /// file to `.1`, and begins a new one; with one file kept, truncates.
    /// A failure leaves the current file in use (logged once per try).
    fn rotate_now(&mut self) {
        let Some((path, _, files)) = self.rotate.clone() else {
            return;
        };
        if files <= 1 {
            if let Err(e) = self.file.set_len(0) {
                tracing::warn!("cannot truncate {}: {e}", path.display());
            }
            self.written = 0;
            return;
        }
        for n in (1..files - 1).rev() {
            let _ = std::fs::rename(rotated_path(&path, n), rotated_path(&path, n + 1));
        }
        if let Err(e) = std::fs::rename(&path, rotated_path(&path, 1)) {
            tracing::warn!("cannot rotate {}: {e}", path.display());
            return;
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(f) => {
                self.file = f;
                self.written = 0;
            }
            Err(e) => tracing::warn!("cannot open {}: {e}", path.display()),
        }
    }

    pub fn flush(&mut self) {
        for (i, stream) in ["stdout", "stderr"].iter().enumerate() {
            if !self.partial[i].is_empty() {
                let p = std::mem::take(&mut self.partial[i]);
                self.line(stream, &p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::logs::rotated_logs;

    fn lines_of(p: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| LogLine::decode(l).unwrap().line)
            .collect()
    }

    #[test]
    fn the_log_rotates_past_its_size_and_keeps_max_file_files() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x.json");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap()
        };
        // Each line is ~80 bytes of JSON: 1000 bytes hold about 12.
        let mut out = Output::new(open(), false, path.clone(), Some((1000, 3)));
        for i in 0..100 {
            out.line("stdout", format!("line {i:03}").as_bytes());
        }
        let rotated = rotated_logs(&path);
        assert_eq!(
            rotated,
            vec![d.path().join("x.json.2"), d.path().join("x.json.1")]
        );
        let mut all: Vec<String> = rotated.iter().flat_map(|p| lines_of(p)).collect();
        all.extend(lines_of(&path));
        // The newest lines, in order, with no gap; older ones are gone.
        assert_eq!(all.last().unwrap(), "line 099");
        let first: usize = all[0][5..].parse().unwrap();
        let want: Vec<String> = (first..100).map(|i| format!("line {i:03}")).collect();
        assert_eq!(all, want);
        assert!(first > 50, "nothing was dropped: {first}");
        for p in rotated.iter().chain([&path]) {
            assert!(std::fs::metadata(p).unwrap().len() < 1000 + 100, "{p:?}");
        }
        // One file kept: truncated in place, never renamed.
        let path1 = d.path().join("y.json");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path1)
            .unwrap();
        let mut out = Output::new(f, false, path1.clone(), Some((1000, 1)));
        for i in 0..100 {
            out.line("stdout", format!("line {i:03}").as_bytes());
        }
        assert!(rotated_logs(&path1).is_empty());
        assert!(std::fs::metadata(&path1).unwrap().len() < 1000);
        assert_eq!(lines_of(&path1).last().unwrap(), "line 099");
    }
}
