//! `POST /containers/{id}/attach`: the hijacked stream a `docker run`
//! without `-d` reads the pod's output from. The client attaches before it
//! starts the pod; the answer (`101 UPGRADED` when the client asked for an
//! upgrade, else `200`) goes out at once, then the connection carries the
//! output of the next launch, framed as docker's multiplexed stream (raw
//! for a TTY pod), and is closed when the pod stops or, with a restart
//! policy, when that launch ends (as docker closes it at each exit).
//!
//! The output is read from the pod's log, which its monitor writes as the
//! pod prints; the log is opened before the answer goes out, so nothing the
//! launch prints is missed, even by a `--rm` pod that is gone before this
//! thread looks. With `stdin=1` (an interactive pod: `docker run -i`,
//! `docker attach`) the connection's input goes to the pod through its
//! monitor's attach socket (`pod::attach_input`) once the launch runs; the
//! client's EOF closes the pod's stdin (StdinOnce), and the connection is
//! shut down when the launch ends so the copier ends with it.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::http::{self, Request};
use super::{After, Reply};
use crate::pod::{self, Ctx};
use crate::state::PodStatus;

pub fn attach(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = match Ctx::open(root) {
        Ok(c) => c,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    let pod = match ctx.lookup(key) {
        Ok(p) => p,
        Err(pod::PodError::NotFound(_)) => {
            return Reply::Error(404, format!("No such container: {key}")).send(w, keep)
        }
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    if !req.flag("stream") {
        // Only past output was asked for: what `logs` gives.
        return Reply::Error(
            400,
            "attach without stream=1 is not supported: use logs".into(),
        )
        .send(w, keep);
    }
    let tty = pod.options().map(|o| o.tty).unwrap_or(false);
    let (want_out, want_err) = (req.flag("stdout"), req.flag("stderr"));
    // Opened before the client hears it is attached, so that nothing of
    // the launch it then starts can be missed.
    let output = match pod::open_launch_output(&ctx, &pod) {
        Ok(o) => o,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    http::hijack_head(req, w, http::LogStream::content_type(tty))?;
    let interactive = pod.options().map(|o| o.interactive).unwrap_or(false);
    let copier = (req.flag("stdin") && interactive)
        .then(|| input_copier(root, &pod, w.try_clone()))
        .flatten();
    let sel = http::LogStream {
        tty,
        timestamps: false,
        stdout: want_out,
        stderr: want_err,
    };
    let probe = w.try_clone()?;
    let mut failed = None;
    // The hijacked stream is raw: no chunked framing.
    let mut out = RawOut(w);
    let mut emit = |l: Option<&pod::LogLine>| {
        let Some(l) = l else {
            return !http::hung_up(&probe);
        };
        let Some(data) = sel.bytes(l) else {
            return true;
        };
        match out.send(&data) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    };
    let res = pod::follow_launch(&mut ctx, output, &mut emit);
    if let Err(e) = res {
        tracing::warn!("attach to {key}: {e}");
    }
    if let Some(e) = failed {
        tracing::debug!("attach to {key}: the client went away: {e}");
    }
    if let Some(t) = copier {
        // Ends the copier's read of the client (or its wait for the launch).
        let _ = probe.shutdown(std::net::Shutdown::Both);
        let _ = t.join();
    }
    Ok(After::Close)
}

/// `POST /containers/{id}/resize?h=ROWS&w=COLS`: the pod's terminal (a
/// pod without one: nothing to do, as docker answers).
pub fn resize(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let size = |n: &str| req.query(n).and_then(|v| v.parse::<u16>().ok());
    let (Some(rows), Some(cols)) = (size("h"), size("w")) else {
        let msg = "resize needs h and w, the terminal's rows and columns (0-65535)";
        return Reply::Error(400, msg.into()).send(w, keep);
    };
    let mut ctx = match Ctx::open(root) {
        Ok(c) => c,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    let res = ctx
        .lookup(key)
        .and_then(|p| ctx.refresh(p))
        .and_then(|p| match p.status {
            PodStatus::Running => pod::resize(&ctx, &p, rows, cols),
            _ => Err(pod::PodError::BadState {
                name: p.name.clone(),
                status: p.status.as_str(),
                hint: "only a running pod's terminal can be resized",
            }),
        });
    match res {
        Ok(()) => Reply::Empty(200),
        Err(pod::PodError::NotFound(_)) => Reply::Error(404, format!("No such container: {key}")),
        Err(e) => Reply::from_err(e.kind(), e),
    }
    .send(w, keep)
}

/// A thread that carries the client's input to the pod once its launch
/// runs (the monitor listens on the attach socket from then on; docker
/// sends input from the start, and it waits in the connection meanwhile).
/// It gives up when the pod is removed or its next launch has come and
/// gone, or when the connection is shut down.
fn input_copier(
    root: &Path,
    pod: &crate::state::PodRow,
    from_client: std::io::Result<UnixStream>,
) -> Option<std::thread::JoinHandle<()>> {
    let mut from_client = from_client.ok()?;
    let ctx = Ctx::open(root).ok()?;
    let pod = pod.clone();
    Some(std::thread::spawn(move || loop {
        if let Ok(mut to_pod) = pod::attach_input(&ctx, &pod) {
            let _ = std::io::copy(&mut from_client, &mut to_pod);
            let _ = to_pod.shutdown(std::net::Shutdown::Write);
            return;
        }
        let over = match ctx.db.pod(&pod.id) {
            Ok(Some(r)) => r.status != PodStatus::Running && r.started != pod.started,
            _ => true,
        };
        if over || http::hung_up(&from_client) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }))
}

/// Writes to a hijacked connection as is.
struct RawOut<'a>(&'a mut UnixStream);

impl RawOut<'_> {
    fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data)?;
        self.0.flush()
    }
}
