//! Input to a pod's main process from a client that attaches later (the
//! API's `attach?stdin=1`, conmon's attach socket): the monitor of a pod
//! made with `interactive` holds the pod's stdin (a pipe, or the pty
//! master) and listens on `attach.sock` in the pod's run directory; what a
//! client writes there goes to the pod. Invariants: one client feeds the
//! pod at a time (the next is accepted when it leaves); a client's EOF
//! closes a pipe stdin (docker's StdinOnce) and leaves a terminal open;
//! the socket exists only while the monitor runs (it removes it).
//!
//! A pod with a terminal also gets `ctl.sock` (conmon's ctl FIFO): one
//! short connection per message, `ROWS COLS\n`, which the monitor applies
//! to the pty it holds ([`resize`]).

use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use super::{Ctx, PodError, Result};
use crate::state::PodRow;

/// Where the monitor of pod `id` listens for input.
pub(crate) fn socket_path(ctx: &Ctx, id: &str) -> PathBuf {
    ctx.pod_run_dir(id).join("attach.sock")
}

/// Where the monitor of pod `id` takes control messages (terminal pods).
pub(crate) fn ctl_path(ctx: &Ctx, id: &str) -> PathBuf {
    ctx.pod_run_dir(id).join("ctl.sock")
}

/// Binds a monitor's socket at `path` (replacing a stale one), or `None`
/// with a warning: input or resizes are then not carried, the pod runs.
pub(crate) fn listen(path: &std::path::Path) -> Option<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(path);
    std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| tracing::warn!("cannot listen on {}: {e}", path.display()))
        .ok()
}

/// Resizes the terminal of running pod `pod` (docker's container resize);
/// nothing to do for a pod without one.
pub fn resize(ctx: &Ctx, pod: &PodRow, rows: u16, cols: u16) -> Result<()> {
    if !pod.options()?.tty {
        return Ok(());
    }
    let path = ctl_path(ctx, &pod.id);
    let mut s = UnixStream::connect(&path).map_err(|e| {
        PodError::Monitor(format!(
            "cannot resize the terminal of pod {}: {e}; is it running?",
            pod.name
        ))
    })?;
    std::io::Write::write_all(&mut s, format!("{rows} {cols}\n").as_bytes())
        .map_err(|e| PodError::Monitor(format!("resizing pod {}: {e}", pod.name)))
}

/// The `ROWS COLS` of a control message; `None` for anything else.
pub(crate) fn parse_size(msg: &[u8]) -> Option<(u16, u16)> {
    let text = std::str::from_utf8(msg).ok()?;
    let mut it = text.split_whitespace();
    let rows = it.next()?.parse().ok()?;
    let cols = it.next()?.parse().ok()?;
    it.next().is_none().then_some((rows, cols))
}

/// A connection whose bytes become the input of running pod `pod`.
pub fn attach_input(ctx: &Ctx, pod: &PodRow) -> Result<UnixStream> {
    let path = socket_path(ctx, &pod.id);
    UnixStream::connect(&path).map_err(|e| {
        PodError::Usage(format!(
            "cannot attach to the input of pod {}: {e}; was it made interactive (-i, OpenStdin)?",
            pod.name
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn control_messages_are_two_sizes() {
        assert_eq!(parse_size(b"37 91\n"), Some((37, 91)));
        for bad in [&b""[..], b"37", b"37 91 3", b"-1 5", b"x y", b"\xff"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
