//! `/containers/…`: list, create, inspect, start, stop, restart, kill,
//! wait, remove and logs over `pod` (docker's JSON shapes are in
//! [`shapes`], the create body in `config`). A container is a
//! pod; its id, name or a unique id prefix names it, as on the CLI.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::config::options_of;
use super::http::{self, Chunked, Request};
use super::shapes;
use super::{After, Reply};
use crate::pod::{self, Attach, Ctx, PodError, StartOutcome};

/// Opens the data root for one request, or answers why not.
macro_rules! ctx_or_answer {
    ($root:expr, $w:expr, $keep:expr) => {
        match Ctx::open($root) {
            Ok(c) => c,
            Err(e) => return Reply::from_err(e.kind(), e).send($w, $keep),
        }
    };
}

/// Looks up pod `key` (id, name or unique id prefix), or answers why not.
macro_rules! pod_or_answer {
    ($ctx:expr, $key:expr, $w:expr, $keep:expr) => {
        match $ctx.lookup($key) {
            Ok(p) => p,
            Err(e) => return pod_err($key, e).send($w, $keep),
        }
    };
}

/// `No such container: x` (docker's words) for a pod that is not there.
fn not_found(key: &str) -> Reply {
    Reply::Error(404, format!("No such container: {key}"))
}

fn pod_err(key: &str, e: PodError) -> Reply {
    match e {
        PodError::NotFound(_) => not_found(key),
        e => Reply::from_err(e.kind(), e),
    }
}

pub fn list(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let filters: serde_json::Map<String, Value> = match req.query("filters") {
        None | Some("") => Default::default(),
        Some(f) => match serde_json::from_str(f) {
            Ok(m) => m,
            Err(e) => {
                return Reply::Error(400, format!("invalid filters {f:?}: {e}")).send(w, keep)
            }
        },
    };
    let mut ctx = ctx_or_answer!(root, w, keep);
    let views = match pod::list(&mut ctx, req.flag("all")) {
        Ok(v) => v,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    let mut out: Vec<Value> = views
        .iter()
        .filter(|v| shapes::matches(v, &filters))
        .map(shapes::summary)
        .collect();
    // Newest first, as docker lists them.
    out.reverse();
    if let Some(n) = req.query("limit").and_then(|l| l.parse::<usize>().ok()) {
        out.truncate(n);
    }
    Reply::Json(200, json!(out)).send(w, keep)
}

pub fn inspect(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let v = match pod::inspect(&mut ctx, key) {
        Ok(v) => v,
        Err(e) => return pod_err(key, e).send(w, keep),
    };
    Reply::Json(200, shapes::inspect(&v)).send(w, keep)
}

pub fn create(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return Reply::Error(400, format!("invalid container config: {e}")).send(w, keep),
    };
    let Some(image) = body
        .get("Image")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
    else {
        return Reply::Error(400, "config has no Image: name the image to run".into())
            .send(w, keep);
    };
    let (opts, auto_remove) = match options_of(&body) {
        Ok(x) => x,
        Err(m) => return Reply::Error(400, m).send(w, keep),
    };
    let mut ctx = ctx_or_answer!(root, w, keep);
    let res = pod::create(
        &mut ctx,
        pod::CreateRequest {
            image: image.to_string(),
            name: req
                .query("name")
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            opts,
            auto_remove,
            debug: false,
            starting: false,
        },
    );
    match res {
        Ok(p) => Reply::Json(201, json!({"Id": p.id, "Warnings": []})).send(w, keep),
        // The docker CLI pulls on this exact answer, then creates again.
        Err(PodError::Image(crate::image::ImageError::NotFound(_))) => {
            Reply::Error(404, format!("No such image: {image}")).send(w, keep)
        }
        Err(e) => Reply::from_err(e.kind(), e).send(w, keep),
    }
}

pub fn start(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let pod = match ctx.lookup(key).and_then(|p| ctx.refresh(p)) {
        Ok(p) => p,
        Err(e) => return pod_err(key, e).send(w, keep),
    };
    if pod.status == crate::state::PodStatus::Running {
        return Reply::Empty(304).send(w, keep);
    }
    match pod::start(&mut ctx, &pod, Attach::Detached) {
        Ok(StartOutcome::Started { .. }) => Reply::Empty(204),
        // Ran and exited at once: it started (docker answers 204 too).
        Ok(StartOutcome::Exited { code: Some(c) }) if c != 125 => Reply::Empty(204),
        Ok(StartOutcome::Exited { .. }) => Reply::Error(
            500,
            format!(
                "pod {} failed to start; see `gvpod logs {}`",
                pod.name, pod.name
            ),
        ),
        Err(e) => pod_err(key, e),
    }
    .send(w, keep)
}

fn timeout_of(req: &Request) -> Duration {
    let secs = req
        .query("t")
        .or(req.query("timeout"))
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(10);
    // A negative timeout waits forever in docker; a day is forever enough.
    Duration::from_secs(if secs < 0 { 86_400 } else { secs as u64 })
}

pub fn stop(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let pod = match ctx.lookup(key).and_then(|p| ctx.refresh(p)) {
        Ok(p) => p,
        Err(e) => return pod_err(key, e).send(w, keep),
    };
    if !pod.status.can_stop() {
        return Reply::Empty(304).send(w, keep);
    }
    match pod::stop(&mut ctx, &pod, timeout_of(req)) {
        Ok(_) => Reply::Empty(204),
        Err(e) => pod_err(key, e),
    }
    .send(w, keep)
}

pub fn restart(
    root: &Path,
    key: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let res = ctx
        .lookup(key)
        .and_then(|p| pod::stop(&mut ctx, &p, timeout_of(req)))
        .and_then(|p| pod::start(&mut ctx, &p, Attach::Detached));
    match res {
        Ok(_) => Reply::Empty(204),
        Err(e) => pod_err(key, e),
    }
    .send(w, keep)
}

pub fn kill(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let signal = req
        .query("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL");
    let res = ctx
        .lookup(key)
        .and_then(|p| pod::kill(&mut ctx, &p, signal));
    match res {
        Ok(()) => Reply::Empty(204),
        Err(e) => pod_err(key, e),
    }
    .send(w, keep)
}

/// `wait`: the answer's head goes out at once (the docker CLI waits for it
/// before it starts a container it runs attached), the body once the
/// condition holds: `not-running` (default), `next-exit`, `removed`.
pub fn wait(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let pod = pod_or_answer!(ctx, key, w, keep);
    let condition = req.query("condition").unwrap_or("not-running").to_string();
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Reply::Error(
            400,
            format!("invalid condition {condition:?}: use not-running, next-exit or removed"),
        )
        .send(w, keep);
    }
    http::stream_head(w, 200, "application/json")?;
    let first_start = pod.started.clone();
    let code = loop {
        let row = match ctx.db.pod(&pod.id) {
            Ok(Some(r)) => ctx.refresh(r).ok(),
            Ok(None) => None,
            Err(_) => None,
        };
        let Some(row) = row else {
            // Removed: its exit as kept at removal.
            let code = ctx.db.exit_of_removed(&pod.id).ok().flatten().flatten();
            break code.unwrap_or(0);
        };
        use crate::state::PodStatus;
        // An exit its restart policy followed with a restart (the pod counts
        // as running): docker's next-exit ends there too, with that exit's
        // code (kept while the pod runs again).
        if condition == "next-exit"
            && row.status == PodStatus::Running
            && row.restart_count > pod.restart_count
        {
            break row.exit_code.unwrap_or(0);
        }
        let done = match condition.as_str() {
            "not-running" => row.status != PodStatus::Running,
            // An exit after a start the client had not seen yet.
            "next-exit" => {
                row.status == PodStatus::Exited
                    && (row.started != first_start || pod.status == PodStatus::Running)
            }
            _ => false,
        };
        if done {
            match pod::wait(&mut ctx, &row) {
                Ok(r) => break r.exit_code.unwrap_or(0),
                Err(_) => break row.exit_code.unwrap_or(0),
            }
        }
        if http::hung_up(w) {
            return Ok(After::Close);
        }
        pod::sleep_until_exit(row.monitor_pid, Duration::from_millis(100));
    };
    let mut c = Chunked(w);
    let body =
        serde_json::to_vec(&json!({"StatusCode": code, "Error": null})).expect("JSON serialises");
    c.send(&body)?;
    c.finish()?;
    Ok(After::Next)
}

pub fn remove(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    match pod::remove(&mut ctx, key, req.flag("force")) {
        Ok(_) => Reply::Empty(204),
        Err(e @ PodError::BadState { .. }) => {
            Reply::Error(409, format!("cannot remove container {key:?}: {e}"))
        }
        Err(e) => pod_err(key, e),
    }
    .send(w, keep)
}

/// A `since` as docker's CLI sends it (`SECONDS[.NANOS]` since the epoch)
/// as the RFC 3339 time the pod layer takes; anything else (an RFC 3339
/// time or a duration, as the remote CLI sends them) is passed on as is.
fn since_of(s: &str) -> String {
    let (secs, nanos) = s.split_once('.').unwrap_or((s, "0"));
    let nanos = format!("{nanos:0<9}");
    match (secs.parse::<i64>(), nanos.get(..9).map(str::parse::<u32>)) {
        (Ok(secs), Some(Ok(ns))) => match chrono::DateTime::from_timestamp(secs, ns) {
            Some(t) => crate::util::rfc3339(&t),
            None => s.to_string(),
        },
        _ => s.to_string(),
    }
}

/// `logs`: docker's multiplexed frames (or raw text for a TTY pod), with
/// `follow` until the pod stops, `timestamps`, `tail` and `since`.
pub fn logs(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let pod = pod_or_answer!(ctx, key, w, keep);
    let tty = pod.options().map(|o| o.tty).unwrap_or(false);
    let (want_out, want_err) = (req.flag("stdout"), req.flag("stderr"));
    if !want_out && !want_err {
        return Reply::Error(
            400,
            "you must choose at least one stream (stdout=1 or stderr=1)".into(),
        )
        .send(w, keep);
    }
    let tail = match req.query("tail") {
        None | Some("") | Some("all") => None,
        Some(n) => match n.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Reply::Error(400, format!("invalid tail {n:?}: a number or all"))
                    .send(w, keep)
            }
        },
    };
    let since = req
        .query("since")
        .filter(|s| !s.is_empty() && *s != "0")
        .map(since_of);
    let ctype = http::LogStream::content_type(tty);
    http::stream_head(w, 200, ctype)?;
    let sel = http::LogStream {
        tty,
        timestamps: req.flag("timestamps"),
        stdout: want_out,
        stderr: want_err,
    };
    let probe = w.try_clone()?;
    let mut c = Chunked(w);
    let mut failed = None;
    let mut emit = |l: Option<&pod::LogLine>| {
        let Some(l) = l else {
            return !http::hung_up(&probe);
        };
        let Some(data) = sel.bytes(l) else {
            return true;
        };
        match c.send(&data) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    };
    let res = pod::logs(
        &mut ctx,
        &pod,
        pod::LogsRequest {
            follow: req.flag("follow"),
            tail,
            since,
            // gvpod's own parameter: a supervised service's log.
            service: req.query("service").map(str::to_string),
        },
        &mut emit,
    );
    if let Some(e) = failed {
        return Err(e);
    }
    if let Err(e) = res {
        tracing::warn!("logs of {key}: {e}");
    }
    c.finish()?;
    Ok(After::Next)
}

#[cfg(test)]
mod tests {
    use super::since_of;

    #[test]
    fn since_takes_epoch_seconds_and_passes_the_rest_on() {
        assert_eq!(since_of("1700000000"), "2023-11-14T22:13:20.000000000Z");
        assert_eq!(since_of("1700000000.5"), "2023-11-14T22:13:20.500000000Z");
        for other in ["10m", "2024-01-02T03:04:05Z", "junk"] {
            assert_eq!(since_of(other), other);
        }
    }
}
