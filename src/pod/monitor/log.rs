//! The monitor's log writer (conmon's `ctr_logging`): the pod's stdout and
//! stderr cut into lines (a 16 KiB cap, as docker's chunks; a trailing CR
//! dropped from terminal output) and appended to `logs/<id>.json` in the one
//! format `pod::logs` defines.

use std::fs::File;
use std::io::Write;

use super::super::logs::LogLine;

/// The pod log, in the format of [`LogLine`].
pub(super) struct Output {
    file: File,
    pub tty: bool,
    partial: [Vec<u8>; 2],
}

/// Longer lines are split, like docker's 16 KiB log chunks.
const MAX_LINE: usize = 16 * 1024;

impl Output {
    pub fn new(file: File, tty: bool) -> Self {
        Output {
            file,
            tty,
            partial: [vec![], vec![]],
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
        let _ = self.file.write_all(s.as_bytes());
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
