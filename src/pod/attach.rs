//! Input to a pod's main process from a client that attaches later (the
//! API's `attach?stdin=1`, conmon's attach socket): the monitor of a pod
//! made with `interactive` holds the pod's stdin (a pipe, or the pty
//! master) and listens on `attach.sock` in the pod's run directory; what a
//! client writes there goes to the pod. Invariants: one client feeds the
//! pod at a time (the next is accepted when it leaves); a client's EOF
//! closes a pipe stdin (docker's StdinOnce) and leaves a terminal open;
//! the socket exists only while the monitor runs (it removes it).

use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use super::{Ctx, PodError, Result};
use crate::state::PodRow;

/// Where the monitor of pod `id` listens for input.
pub(crate) fn socket_path(ctx: &Ctx, id: &str) -> PathBuf {
    ctx.pod_run_dir(id).join("attach.sock")
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
