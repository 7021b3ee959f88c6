//! Exec through the API: `POST /containers/{id}/exec` (make an instance),
//! `POST /exec/{id}/start` (run it: a hijacked stream, or `Detach` in the
//! background), `GET /exec/{id}/json`, `POST /exec/{id}/resize`. The process
//! is `pod::exec_spawn` with stdio this module provides: pipes, or a pty
//! (`sys::openpty`) with a terminal; [`relay`] moves the bytes.
//!
//! Invariants: the process runs before the answer goes out (a failure to
//! start it is the stream's last words and its exit code, 126 or 127 as
//! docker gives, never a hang); the exit code is recorded before the stream
//! closes ([`execs`]); a start answers exactly `101 UPGRADED` when the
//! client sent `Upgrade: tcp`.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::execs::{self, ExecConfig, StartError};
use super::http::{self, Request};
use super::relay::Relay;
use super::{After, Reply};
use crate::pod::{self, Ctx, ExecStdio, PodError};
use crate::state::PodStatus;

/// `No such container: x` (docker's words) or the error's own answer.
fn pod_err(key: &str, e: PodError) -> Reply {
    match e {
        PodError::NotFound(_) => Reply::Error(404, format!("No such container: {key}")),
        e => Reply::from_err(e.kind(), e),
    }
}

fn no_such_exec(id: &str) -> Reply {
    Reply::Error(404, format!("No such exec instance: {id}"))
}

/// Looks up running pod `key`, or the answer why not.
fn running_pod(root: &Path, key: &str) -> Result<(Ctx, crate::state::PodRow), Reply> {
    let mut ctx = Ctx::open(root).map_err(|e| Reply::from_err(e.kind(), e))?;
    let pod = ctx
        .lookup(key)
        .and_then(|p| ctx.refresh(p))
        .map_err(|e| pod_err(key, e))?;
    if pod.restarting() {
        return Err(Reply::Error(
            409,
            format!("container {key} is restarting: wait until it is running again"),
        ));
    }
    if pod.status != PodStatus::Running {
        return Err(Reply::Error(
            409,
            format!("container {key} is not running: start it first"),
        ));
    }
    Ok((ctx, pod))
}

/// `POST /containers/{id}/exec`.
pub fn create(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return Reply::Error(400, format!("invalid exec config: {e}")).send(w, keep),
    };
    let pod = match running_pod(root, key) {
        Ok((_, p)) => p,
        Err(r) => return r.send(w, keep),
    };
    let config = match ExecConfig::from_body(&pod.id, &body) {
        Ok(c) => c,
        Err(m) => return Reply::Error(400, m).send(w, keep),
    };
    let id = execs::all().create(config, Instant::now());
    Reply::Json(201, json!({ "Id": id })).send(w, keep)
}

/// `GET /exec/{id}/json`.
pub fn inspect(id: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    match execs::all().view(id) {
        Some(v) => Reply::Json(200, v),
        None => no_such_exec(id),
    }
    .send(w, keep)
}

/// `POST /exec/{id}/resize?h=&w=`: resizes the process's terminal. A
/// process without one, or one that has ended, has nothing to resize:
/// answered 200 as the clients' resize after a short process races its end.
pub fn resize(id: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let Some((h, wd)) = size_of(req) else {
        return Reply::Error(
            400,
            "resize needs h and w: numbers of rows and columns".into(),
        )
        .send(w, keep);
    };
    match execs::all().pty(id) {
        Err(_) => no_such_exec(id),
        Ok(None) => Reply::Empty(200),
        Ok(Some(master)) => {
            match crate::sys::set_winsize(std::os::fd::AsFd::as_fd(&*master), h, wd) {
                Ok(()) => Reply::Empty(200),
                Err(e) => {
                    Reply::Error(500, format!("cannot resize the terminal of exec {id}: {e}"))
                }
            }
        }
    }
    .send(w, keep)
}

/// `h` and `w` of a resize request.
pub(crate) fn size_of(req: &Request) -> Option<(u16, u16)> {
    let h = req.query("h")?.parse().ok()?;
    let w = req.query("w")?.parse().ok()?;
    Some((h, w))
}

/// The process's stdio as this side holds it, and what the process gets.
struct Plumbing {
    relay: Relay,
    theirs: ExecStdio,
    pty: Option<Arc<OwnedFd>>,
}

fn plumbing(c: &ExecConfig, attach_stdin: bool) -> std::io::Result<Plumbing> {
    if c.tty {
        let (master, slave) = crate::sys::openpty()?;
        if let Some((h, w)) = c.console {
            crate::sys::set_winsize(std::os::fd::AsFd::as_fd(&master), h, w)?;
        }
        let input = if attach_stdin {
            Some(master.try_clone()?)
        } else {
            None
        };
        let relay = Relay {
            outputs: vec![(master.try_clone()?, 1)],
            input,
            tty: true,
        };
        let theirs = ExecStdio::Fds {
            stdin: Some(slave.try_clone()?),
            stdout: slave.try_clone()?,
            stderr: slave,
        };
        return Ok(Plumbing {
            relay,
            theirs,
            pty: Some(Arc::new(master)),
        });
    }
    let (out_r, out_w) = super::relay::pipe()?;
    let (err_r, err_w) = super::relay::pipe()?;
    let (stdin, input) = if attach_stdin {
        let (r, w) = super::relay::pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    Ok(Plumbing {
        relay: Relay {
            outputs: vec![(out_r, 1), (err_r, 2)],
            input,
            tty: false,
        },
        theirs: ExecStdio::Fds {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
        pty: None,
    })
}

/// `POST /exec/{id}/start`.
pub fn start(root: &Path, id: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => {
                return Reply::Error(400, format!("invalid exec start config: {e}")).send(w, keep)
            }
        }
    };
    let detach = body.get("Detach").and_then(Value::as_bool).unwrap_or(false);
    let all = execs::all();
    let config = match all.begin(id) {
        Ok(c) => c,
        Err(StartError::NotFound) => return no_such_exec(id).send(w, keep),
        Err(StartError::Started) => {
            return Reply::Error(409, format!("exec {id} has already been started")).send(w, keep)
        }
    };
    let (mut ctx, pod) = match running_pod(root, &config.container_id) {
        Ok(x) => x,
        Err(r) => {
            all.finished(id, 126, Instant::now());
            return r.send(w, keep);
        }
    };
    let attach_stdin = config.stdin && !detach;
    let plumbing = match plumbing(&config, attach_stdin) {
        Ok(p) => p,
        Err(e) => {
            all.finished(id, 126, Instant::now());
            let msg = format!("cannot set up the stdio of exec {id}: {e}");
            return Reply::Error(500, msg).send(w, keep);
        }
    };
    let Plumbing { relay, theirs, pty } = plumbing;
    let spawned = pod::exec_spawn(
        &mut ctx,
        &pod,
        pod::ExecRequest {
            cmd: config.cmd.clone(),
            env: config.env.clone(),
            user: config.user.clone(),
            workdir: config.workdir.clone(),
            interactive: attach_stdin,
            tty: config.tty,
        },
        theirs,
    );
    drop(ctx);
    if let Ok(p) = &spawned {
        // Before the answer: a resize that follows it finds the terminal.
        all.started(id, p.pid(), pty);
    }
    if !detach {
        http::hijack_head(req, w, http::LogStream::content_type(config.tty))?;
    }
    let process = match spawned {
        Ok(p) => p,
        Err(e) => {
            // docker's way: the reason on the stream, 126 (or 127 for a
            // missing command) as the exit code.
            let code = match &e {
                PodError::Command { code, .. } => *code,
                _ => 126,
            };
            all.finished(id, code, Instant::now());
            if detach {
                return Reply::from_err(e.kind(), e).send(w, keep);
            }
            let msg = format!("{e}\n");
            let data = if config.tty {
                msg.into_bytes()
            } else {
                http::frame(2, msg.as_bytes())
            };
            let _ = w.write_all(&data);
            return Ok(After::Close);
        }
    };
    let (done_r, done_w) = super::relay::pipe()?;
    let mut done_w = std::fs::File::from(done_w);
    let exec_id = id.to_string();
    let waiter = std::thread::spawn(move || {
        let code = match process.wait() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("exec {exec_id}: {e}");
                126
            }
        };
        // Recorded before the relay may close the stream.
        execs::all().finished(&exec_id, code, Instant::now());
        let _ = done_w.write_all(b"x");
    });
    if detach {
        let r = Reply::Empty(200).send(w, keep);
        std::thread::spawn(move || {
            relay.run(None, &done_r);
            let _ = waiter.join();
        });
        return r;
    }
    relay.run(Some(&*w), &done_r);
    let _ = waiter.join();
    Ok(After::Close)
}
