//! Progress of a pull or push, on stderr: indicatif bars on a terminal (one
//! per blob plus a total, with bytes and rate), one plain line per blob when
//! stderr is not a terminal (`3f4a1b2c9d8e: downloaded 2.1 MiB in 0.12s`),
//! nothing at all with `-q`, or events handed to a [`ProgressSink`] (the
//! API turns them into docker's JSON-lines progress).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::short_digest;

/// What a pull reports to a [`ProgressSink`] (digests in full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// A blob the store already has.
    Exists { digest: String },
    /// A blob's transfer starts.
    Start { digest: String, size: u64 },
    /// Bytes of a blob transferred so far (at most every [`SINK_EVERY`]).
    Bytes {
        digest: String,
        current: u64,
        total: u64,
    },
    /// A blob is complete and verified.
    Done { digest: String },
    /// An informational line (`Digest: …`).
    Line(String),
}

/// How often a blob in transfer reports its bytes to a sink.
pub const SINK_EVERY: Duration = Duration::from_millis(100);

/// Where a pull's progress goes instead of stderr.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(PullEvent) + Send + Sync>);

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

enum Mode {
    Quiet,
    Plain,
    Sink(ProgressSink),
    Bars {
        multi: MultiProgress,
        total: ProgressBar,
    },
}

/// The progress display of one pull or push.
pub struct Progress {
    mode: Mode,
    /// Past participle for a finished blob: "downloaded", "pushed".
    done_verb: &'static str,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool, done_verb: &'static str) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            total.set_prefix("total");
            Mode::Bars { multi, total }
        } else {
            Mode::Plain
        };
        Progress { mode, done_verb }
    }

    /// Progress reported as events to `sink`.
    pub fn to_sink(sink: ProgressSink, done_verb: &'static str) -> Progress {
        Progress {
            mode: Mode::Sink(sink),
            done_verb,
        }
    }

    /// Adds `bytes` to the total still to transfer.
    pub fn add_total(&self, bytes: u64) {
        if let Mode::Bars { total, .. } = &self.mode {
            total.inc_length(bytes);
        }
    }

    /// A blob that needs no transfer.
    pub fn exists(&self, digest: &str) {
        if let Mode::Sink(s) = &self.mode {
            return (s.0)(PullEvent::Exists {
                digest: digest.to_string(),
            });
        }
        self.line(&format!("{}: already exists", short_digest(digest)));
    }

    /// An informational line (`Digest: …`), printed above the bars.
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Sink(s) => (s.0)(PullEvent::Line(text.to_string())),
            Mode::Plain => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
            Mode::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
        }
    }

    /// Starts the display of one blob of `size` bytes.
    pub fn start(&self, digest: &str, size: u64) -> BlobProgress {
        let label = short_digest(digest).to_string();
        let (bar, total) = match &self.mode {
            Mode::Bars { multi, total } => {
                let bar = multi.insert_before(total, ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(label.clone());
                (Some(bar), Some(total.clone()))
            }
            _ => (None, None),
        };
        let sink = match &self.mode {
            Mode::Sink(s) => {
                (s.0)(PullEvent::Start {
                    digest: digest.to_string(),
                    size,
                });
                Some((s.clone(), digest.to_string(), size))
            }
            _ => None,
        };
        BlobProgress {
            bar,
            total,
            sink,
            last_sent: Instant::now(),
            plain: matches!(self.mode, Mode::Plain),
            label,
            done_verb: self.done_verb,
            bytes: 0,
            started: Instant::now(),
        }
    }

    /// Removes the bars (the total stays, finished, when anything was transferred).
    pub fn finish(&self) {
        if let Mode::Bars { total, .. } = &self.mode {
            if total.length().unwrap_or(0) == 0 {
                total.finish_and_clear();
            } else {
                total.finish();
            }
        }
    }

    /// A spinner with `msg` on a terminal while a step without byte counts
    /// runs (unpacking); it goes away when the returned guard is dropped.
    pub fn busy(&self, msg: &str) -> Busy {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let sp = multi.add(ProgressBar::new_spinner());
                sp.set_message(msg.to_string());
                sp.enable_steady_tick(std::time::Duration::from_millis(120));
                Busy(Some(sp))
            }
            _ => Busy(None),
        }
    }
}

/// See [`Progress::busy`].
pub struct Busy(Option<ProgressBar>);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(sp) = &self.0 {
            sp.finish_and_clear();
        }
    }
}

/// The display of one blob in transfer.
pub struct BlobProgress {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    /// The sink, the blob's digest and size.
    sink: Option<(ProgressSink, String, u64)>,
    last_sent: Instant,
    plain: bool,
    label: String,
    done_verb: &'static str,
    bytes: u64,
    started: Instant,
}

impl BlobProgress {
    /// `n` more bytes transferred.
    pub fn inc(&mut self, n: u64) {
        self.bytes += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(t) = &self.total {
            t.inc(n);
        }
        if let Some((s, digest, size)) = &self.sink {
            if self.last_sent.elapsed() >= SINK_EVERY || self.bytes >= *size {
                self.last_sent = Instant::now();
                (s.0)(PullEvent::Bytes {
                    digest: digest.clone(),
                    current: self.bytes,
                    total: *size,
                });
            }
        }
    }

    /// The blob is complete (and verified).
    pub fn finish(self) {
        if let Some((s, digest, _)) = &self.sink {
            (s.0)(PullEvent::Done {
                digest: digest.clone(),
            });
        }
        let text = format!(
            "{}: {} {} in {:.2}s",
            self.label,
            self.done_verb,
            HumanBytes(self.bytes),
            self.started.elapsed().as_secs_f64()
        );
        if let Some(b) = &self.bar {
            b.finish_and_clear();
            if let Some(t) = &self.total {
                t.println(text);
            }
        } else if self.plain {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// The transfer failed: the bar goes away, the error is reported by the caller.
    pub fn abandon(self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
