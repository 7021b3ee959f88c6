//! Progress of long snapshot operations on stderr: the size of the file
//! being written, its rate and the elapsed time, refreshed in place on a
//! terminal. Silent for the first second (short operations print nothing)
//! and when stderr is not a terminal, unless `GVPOD_PROGRESS=1`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running progress reporter; stops (and ends its line) when dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Reports `what` while `file` grows.
    pub fn watch(what: String, file: PathBuf) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let tty = nix::unistd::isatty(2).unwrap_or(false);
        let forced = std::env::var("GVPOD_PROGRESS").is_ok_and(|v| v == "1");
        if !tty && !forced {
            return Progress { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut printed = false;
            let mut last_line = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                // Parked, not slept: the drop unparks it, so stopping costs nothing.
                std::thread::park_timeout(Duration::from_millis(100));
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let t = start.elapsed();
                if t < Duration::from_secs(1) {
                    continue;
                }
                let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                let mb = bytes as f64 / 1e6;
                let line = format!(
                    "{what}: {mb:.0} MB written, {:.0} MB/s, {:.1} s",
                    mb / t.as_secs_f64(),
                    t.as_secs_f64()
                );
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r\x1b[K{line}");
                    printed = true;
                } else if last_line.elapsed() >= Duration::from_secs(1) {
                    let _ = writeln!(err, "{line}");
                    last_line = Instant::now();
                }
            }
            if printed {
                let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            }
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
