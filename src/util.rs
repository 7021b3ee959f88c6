//! Small helpers shared by the layers: atomic file writes, a copy that tells
//! read errors from write errors, timestamps, random ids, the name rule, the
//! `io()` error adapter.

use std::io::{Read, Write};
use std::path::Path;

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replacing(path, data, true)
}

/// [`write_atomic`] with the fsync left to the caller when `sync` is false:
/// readers still see the old or the new file, never a half-written one, but
/// the new contents reach the disk only with the next writeback or fsync.
/// For files whose durability is ensured off the critical path (a pod's
/// config.json: its monitor fsyncs it while runsc starts).
pub fn write_replacing(path: &Path, data: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", random_hex(6)));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Drops `v` on a short-lived thread. For descriptors whose close blocks:
/// closing an inotify instance waits for an SRCU grace period in the kernel
/// (fsnotify_destroy_group; 10-30 ms measured on the 2-core test VM), time
/// the caller should not spend on a pod's start path.
pub fn drop_in_background<T: Send + 'static>(v: T) {
    if let Err(e) = std::thread::Builder::new()
        .name("gvpod-close".into())
        .spawn(move || drop(v))
    {
        tracing::debug!("no thread to close in the background ({e}); closing in line");
    }
}

#[cfg(host_runtime)] // inotify: Linux only (see lib.rs)
/// A wake-up source for loops that re-check a condition kept in files of
/// one directory (runsc's state files, a pid file): an inotify watch of the
/// directory for files written, closed or renamed in. It only wakes the
/// caller, who reads the files again, so a missed event costs at most one
/// `wait` slice, never a hang; without inotify (limits, old kernels) a
/// wait is a plain sleep of `fallback`. Dropped on a background thread
/// ([`drop_in_background`]): closing an inotify instance waits for an SRCU
/// grace period (10-30 ms), time a pod's start must not spend.
pub struct DirWatch {
    inotify: Option<nix::sys::inotify::Inotify>,
    fallback: std::time::Duration,
}

#[cfg(host_runtime)] // inotify: Linux only (see lib.rs)
impl DirWatch {
    /// Watches `dir` for IN_CLOSE_WRITE, IN_MOVED_TO and, with `modify`, IN_MODIFY.
    pub fn new(dir: &Path, modify: bool, fallback: std::time::Duration) -> DirWatch {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let mut mask = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO;
        if modify {
            mask |= AddWatchFlags::IN_MODIFY;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .and_then(|i| i.add_watch(dir, mask).map(|_| i))
            .ok();
        DirWatch { inotify, fallback }
    }

    /// Sleeps until an event in the directory, one of `also` is readable
    /// (a pidfd whose process exited), or `slice` has passed; the events are
    /// drained and returned as (mask, name) for tracing.
    pub fn wait(
        &self,
        also: &[std::os::fd::BorrowedFd],
        slice: std::time::Duration,
    ) -> Vec<(nix::sys::inotify::AddWatchFlags, Option<std::ffi::OsString>)> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let Some(i) = &self.inotify else {
            std::thread::sleep(self.fallback);
            return vec![];
        };
        let mut fds: Vec<PollFd> = std::iter::once(PollFd::new(i.as_fd(), PollFlags::POLLIN))
            .chain(also.iter().map(|f| PollFd::new(*f, PollFlags::POLLIN)))
            .collect();
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(slice).unwrap_or(PollTimeout::NONE),
        );
        i.read_events()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.mask, e.name))
            .collect()
    }
}

#[cfg(host_runtime)] // inotify: Linux only (see lib.rs)
impl Drop for DirWatch {
    fn drop(&mut self) {
        if let Some(i) = self.inotify.take() {
            drop_in_background(i);
        }
    }
}

/// Whether `name` follows docker's rule for names,
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}` (pods and snapshots). At most 63
/// characters, so a name is never mistaken for a 64-hex id.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Defines `io(what, path)` in a module whose error enum `$err` has an
/// `Io { what, path, source }` variant: the `map_err` adapter that turns an
/// `std::io::Error` met doing `what` to `path` into that variant. One
/// definition for the pod, snapshot and net errors; each module's `io` stays
/// typed, so `.map_err(io(..))?` and match arms infer the error.
macro_rules! io_error_fn {
    ($vis:vis $err:ident) => {
        $vis fn io<'a>(
            what: &'static str,
            path: &'a std::path::Path,
        ) -> impl FnOnce(std::io::Error) -> $err + 'a {
            move |source| $err::Io {
                what,
                path: path.to_owned(),
                source,
            }
        }
    };
}
pub(crate) use io_error_fn;

/// Why a [`copy`] stopped: reading the source failed (a damaged or cut
/// archive: the input's fault) or writing the destination did (our disk).
pub enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// `io::copy` through a buffer of `buf_len` bytes that tells read errors
/// from write errors, so a caller can blame the archive or the disk.
/// Returns the bytes copied; a read interrupted by a signal is retried.
pub fn copy(r: &mut impl Read, w: &mut impl Write, buf_len: usize) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; buf_len];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// Reads into `buf` until it is full or the stream ends (a read
/// interrupted by a signal is retried); returns the bytes read. For magic
/// numbers at the head of a stream that may be shorter than the buffer.
pub fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("kernel random source unavailable");
    hex::encode(buf)
}

/// A temp name `<prefix><pid>-<8 random hex>`: the writer's pid in the
/// name lets a sweeper tell a killed writer's leftovers (swept at once)
/// from a live writer's (kept), with no lock held during the write.
pub fn owned_temp_name(prefix: &str) -> String {
    format!("{prefix}{}-{}", std::process::id(), random_hex(4))
}

/// Whether temp `name` (from [`owned_temp_name`] with `prefix`) belongs to
/// a process that no longer exists. A name without a pid (another naming)
/// is never judged gone; a reused pid only keeps a leftover longer.
pub fn temp_owner_gone(name: &str, prefix: &str) -> bool {
    let Some(pid) = name
        .strip_prefix(prefix)
        .and_then(|r| r.split_once('-'))
        .and_then(|(p, _)| p.parse::<u32>().ok())
        .filter(|p| *p > 0)
    else {
        return false;
    };
    pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
}

/// Current time as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    rfc3339(&chrono::Utc::now())
}

/// How gvpod writes times into its state (RFC 3339, UTC, nanoseconds).
pub fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A time gvpod wrote with [`rfc3339`] (any RFC 3339 time), in UTC.
pub fn parse_rfc3339(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// /proc/self/mountinfo escapes space, tab, newline and backslash as octal.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(n) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or(""), 8)
            {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Puts the controlling terminal in raw mode for the life of the value.
pub struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    /// Raw mode on stdin when it is a terminal (`None` otherwise).
    pub fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        use std::os::fd::AsFd;
        let orig = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::os::fd::AsFd::as_fd(&std::io::stdin()),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

/// Blocks, in the calling thread (and the threads it starts later), the
/// signals a foreground client forwards to its pod instead of dying of them
/// (docker's sig-proxy: INT, TERM, HUP, QUIT, and WINCH for resizes);
/// returns them, for a signalfd or `sigwait`.
pub fn block_forwarded_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    let _ = mask.thread_block();
    mask
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_name_rule() {
        for ok in ["a", "0", "web-1", "A.b_c", &"x".repeat(63)] {
            assert!(super::is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "a b",
            "a/b",
            "ä",
            "a:b",
            &"x".repeat(64),
        ] {
            assert!(!super::is_valid_name(bad), "{bad}");
        }
        // An id is never a valid name.
        assert!(!super::is_valid_name(&super::random_hex(32)));
    }

    #[test]
    fn a_temp_names_its_writer() {
        let mine = super::owned_temp_name(".tmp-");
        assert!(mine.starts_with(&format!(".tmp-{}-", std::process::id())));
        assert!(!super::temp_owner_gone(&mine, ".tmp-"), "we are alive");
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(super::temp_owner_gone(".tmp-99999999-abcd", ".tmp-"));
        // Other namings are never judged gone.
        for other in [".tmp-abcdef12", ".tmp-", ".rm-1-x", ".tmp-0-x", "x"] {
            assert!(!super::temp_owner_gone(other, ".tmp-"), "{other}");
        }
    }
}
