//! `/containers/…`: list, create, inspect, start, stop, restart, kill,
//! wait, remove and logs, in docker's shapes, over `pod`. A container is a
//! pod; its id, name or a unique id prefix names it, as on the CLI.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::http::{self, Chunked, Request};
use super::images::short_ref;
use super::{After, Reply};
use crate::bundle::PodOptions;
use crate::pod::{self, Attach, Ctx, PodError, PodView, StartOutcome};

/// Opens the data root for one request, or answers why not.
macro_rules! ctx_or_answer {
    ($root:expr, $w:expr, $keep:expr) => {
        match Ctx::open($root) {
            Ok(c) => c,
            Err(e) => return Reply::from_err(e.kind(), e).send($w, $keep),
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

fn unix_time(t: &str) -> i64 {
    crate::util::parse_rfc3339(t).map_or(0, |t| t.timestamp())
}

/// Docker's "Up 3 seconds" / "Exited (0) 2 minutes ago" / "Created".
fn status_text(v: &PodView) -> String {
    let ago = |t: &Option<String>| {
        let secs = t
            .as_deref()
            .and_then(crate::util::parse_rfc3339)
            .map_or(0, |t| (chrono::Utc::now() - t).num_seconds().max(0));
        match secs {
            0..=1 => "Less than a second".to_string(),
            2..=59 => format!("{secs} seconds"),
            60..=3599 => format!("{} minutes", secs / 60),
            _ => format!("{} hours", secs / 3600),
        }
    };
    match v.status {
        "running" => format!("Up {}", ago(&v.started)),
        "created" => "Created".into(),
        _ => match v.exit_code {
            Some(c) => format!("Exited ({c}) {} ago", ago(&v.finished)),
            None => format!("Exited {} ago", ago(&v.finished)),
        },
    }
}

/// `80/tcp -> 127.0.0.1:8080` (gvpod's mapping text) → docker's port entry.
fn port_entry(m: &str) -> Option<Value> {
    let (inner, outer) = m.split_once(" -> ")?;
    let (pport, proto) = inner.split_once('/')?;
    let (ip, hport) = outer.rsplit_once(':')?;
    Some(json!({
        "IP": ip, "PrivatePort": pport.parse::<u16>().ok()?,
        "PublicPort": hport.parse::<u16>().ok()?, "Type": proto
    }))
}

fn summary(v: &PodView) -> Value {
    json!({
        "Id": v.id,
        "Names": [format!("/{}", v.name)],
        "Image": short_ref(&v.image),
        "ImageID": v.image_id,
        "Command": v.command.join(" "),
        "Created": unix_time(&v.created),
        "Ports": v.ports.iter().filter_map(|m| port_entry(m)).collect::<Vec<_>>(),
        "Labels": {},
        "State": v.status,
        "Status": status_text(v),
        "HostConfig": {"NetworkMode": network_mode(v)},
        "NetworkSettings": {"Networks": networks(v)},
        "Mounts": mounts(v)
    })
}

fn network_mode(v: &PodView) -> String {
    v.config.network.clone()
}

fn networks(v: &PodView) -> Value {
    match (&v.network, &v.ip) {
        (Some(n), Some(ip)) => json!({ n: {"IPAddress": ip, "IPPrefixLen": 24, "NetworkID": n} }),
        _ => json!({}),
    }
}

fn mounts(v: &PodView) -> Vec<Value> {
    v.config
        .volumes
        .iter()
        .map(|m| {
            json!({"Type": "bind", "Source": m.host, "Destination": m.pod,
                   "Mode": if m.readonly {"ro"} else {""}, "RW": !m.readonly})
        })
        .collect()
}

/// Docker's `filters` (JSON: `{"name": ["web"], "status": ["running"]}`).
fn matches(v: &PodView, filters: &serde_json::Map<String, Value>) -> bool {
    filters.iter().all(|(k, vals)| {
        let wanted: Vec<&str> = match vals {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            // The old form: {"name": {"web": true}}.
            Value::Object(o) => o.keys().map(String::as_str).collect(),
            _ => vec![],
        };
        wanted.is_empty()
            || wanted.iter().any(|w| match k.as_str() {
                "name" => v.name.contains(w.trim_start_matches('/')),
                "id" => v.id.starts_with(w),
                "status" => v.status == *w,
                "ancestor" => {
                    short_ref(&v.image) == *w || v.image == *w || v.image_id.starts_with(w)
                }
                // Labels are not kept: a label filter matches nothing.
                _ => false,
            })
    })
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
        .filter(|v| matches(v, &filters))
        .map(summary)
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
    let running = v.status == "running";
    let zero = "0001-01-01T00:00:00Z".to_string();
    let (path, args) = v
        .command
        .split_first()
        .map_or((String::new(), vec![]), |(p, a)| (p.clone(), a.to_vec()));
    let c = &v.config;
    let body = json!({
        "Id": v.id,
        "Created": v.created,
        "Path": path,
        "Args": args,
        "State": {
            "Status": v.status, "Running": running, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": if running { v.pid.unwrap_or(0) } else { 0 },
            "ExitCode": v.exit_code.unwrap_or(0), "Error": "",
            "StartedAt": v.started.clone().unwrap_or_else(|| zero.clone()),
            "FinishedAt": v.finished.clone().unwrap_or(zero),
        },
        "Image": v.image_id,
        "Name": format!("/{}", v.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "LogPath": v.log_path,
        "HostConfig": {
            "Runtime": "runsc",
            "NetworkMode": network_mode(&v),
            "AutoRemove": v.auto_remove,
            "Memory": c.memory.unwrap_or(0),
            "NanoCpus": c.cpus.map_or(0, |n| (n * 1e9) as i64),
            "PidsLimit": c.pids_limit,
            "Binds": c.volumes.iter().map(|m| format!("{}:{}{}", m.host.display(), m.pod, if m.readonly {":ro"} else {""})).collect::<Vec<_>>(),
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        },
        "Config": {
            "Hostname": c.hostname.clone().unwrap_or_else(|| v.id[..12].to_string()),
            "User": c.user.clone().unwrap_or_default(),
            "Env": c.env,
            "Cmd": c.cmd,
            "Entrypoint": c.entrypoint.as_ref().map(|e| vec![e.clone()]),
            "WorkingDir": c.workdir.clone().unwrap_or_default(),
            "Image": short_ref(&v.image),
            "Tty": c.tty,
            "OpenStdin": c.interactive,
            "Labels": {},
        },
        "NetworkSettings": {
            "IPAddress": v.ip.clone().unwrap_or_default(),
            "Networks": networks(&v),
            "Ports": ports_map(&v),
        },
        "Mounts": mounts(&v),
    });
    Reply::Json(200, body).send(w, keep)
}

fn ports_map(v: &PodView) -> Value {
    let mut m = serde_json::Map::new();
    for p in v.ports.iter().filter_map(|m| port_entry(m)) {
        let key = format!(
            "{}/{}",
            p["PrivatePort"],
            p["Type"].as_str().unwrap_or("tcp")
        );
        let entry = m.entry(key).or_insert_with(|| json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({"HostIp": p["IP"], "HostPort": p["PublicPort"].to_string()}));
        }
    }
    Value::Object(m)
}

/// What a create body asks for, as pod options (unknown fields are ignored).
pub(crate) fn options_of(body: &Value) -> Result<(PodOptions, bool), String> {
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => vec![],
        }
    };
    let hc = body.get("HostConfig").cloned().unwrap_or(json!({}));
    match hc.get("Runtime").and_then(Value::as_str) {
        None | Some("") | Some("runsc") => {}
        Some(r) => {
            return Err(format!(
                "unknown runtime {r:?}: gvpod runs every container with runsc"
            ))
        }
    }
    match hc.pointer("/RestartPolicy/Name").and_then(Value::as_str) {
        None | Some("") | Some("no") => {}
        Some(p) => {
            return Err(format!(
                "restart policy {p:?} is not supported yet: use \"no\""
            ))
        }
    }
    let mut cmd = strings(body.get("Cmd").unwrap_or(&Value::Null));
    let mut entrypoint = None;
    let ep = strings(body.get("Entrypoint").unwrap_or(&Value::Null));
    if let Some((first, rest)) = ep.split_first() {
        entrypoint = Some(first.clone());
        cmd = rest.iter().cloned().chain(cmd).collect();
    } else if body
        .get("Entrypoint")
        .is_some_and(|e| e.as_array().is_some_and(|a| a.is_empty()) || e == "")
    {
        entrypoint = Some(String::new());
    }
    let str_of = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut publish = vec![];
    if let Some(Value::Object(pb)) = hc.get("PortBindings") {
        for (port, binds) in pb {
            for b in binds.as_array().into_iter().flatten() {
                let ip = b.get("HostIp").and_then(Value::as_str).unwrap_or("");
                let hp = b.get("HostPort").and_then(Value::as_str).unwrap_or("");
                publish.push(match (ip.is_empty(), hp.is_empty()) {
                    (true, true) => port.clone(),
                    (true, false) => format!("{hp}:{port}"),
                    (false, _) => format!("{ip}:{hp}:{port}"),
                });
            }
        }
    }
    let mut volumes = vec![];
    for b in strings(hc.get("Binds").unwrap_or(&Value::Null)) {
        // Docker creates a missing host directory of a bind.
        if let Some(host) = b.split(':').next().filter(|h| h.starts_with('/')) {
            let _ = std::fs::create_dir_all(host);
        }
        volumes.push(crate::bundle::parse_volume(&b).map_err(|e| e.to_string())?);
    }
    let cpus = match (
        hc.get("NanoCpus")
            .and_then(Value::as_i64)
            .filter(|n| *n > 0),
        hc.get("CpuQuota")
            .and_then(Value::as_i64)
            .filter(|n| *n > 0),
        hc.get("CpuPeriod")
            .and_then(Value::as_i64)
            .filter(|n| *n > 0),
    ) {
        (Some(n), _, _) => Some(n as f64 / 1e9),
        (None, Some(q), p) => Some(q as f64 / p.unwrap_or(100_000) as f64),
        _ => None,
    };
    let network = match hc.get("NetworkMode").and_then(Value::as_str) {
        None | Some("") | Some("default") | Some("bridge") => "gvpod".to_string(),
        Some(n) => n.to_string(),
    };
    let opts = PodOptions {
        cmd,
        entrypoint,
        env: strings(body.get("Env").unwrap_or(&Value::Null)),
        workdir: str_of("WorkingDir"),
        user: str_of("User"),
        hostname: str_of("Hostname"),
        volumes,
        memory: hc.get("Memory").and_then(Value::as_u64).filter(|m| *m > 0),
        cpus,
        pids_limit: hc
            .get("PidsLimit")
            .and_then(Value::as_i64)
            .filter(|p| *p > 0),
        read_only: hc
            .get("ReadonlyRootfs")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        network,
        publish,
        tty: body.get("Tty").and_then(Value::as_bool).unwrap_or(false),
        interactive: body
            .get("OpenStdin")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..Default::default()
    };
    let auto_remove = hc
        .get("AutoRemove")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((opts, auto_remove))
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
    let pod = match ctx.lookup(key) {
        Ok(p) => p,
        Err(e) => return pod_err(key, e).send(w, keep),
    };
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

/// `logs`: docker's multiplexed frames (or raw text for a TTY pod), with
/// `follow` until the pod stops, `timestamps`, `tail` and `since`.
pub fn logs(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let mut ctx = ctx_or_answer!(root, w, keep);
    let pod = match ctx.lookup(key) {
        Ok(p) => p,
        Err(e) => return pod_err(key, e).send(w, keep),
    };
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
        .and_then(|s| s.split('.').next()?.parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| crate::util::rfc3339(&t));
    let ctype = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    http::stream_head(w, 200, ctype)?;
    let timestamps = req.flag("timestamps");
    let probe = w.try_clone()?;
    let mut c = Chunked(w);
    let mut failed = None;
    let mut emit = |l: Option<&pod::LogLine>| {
        let Some(l) = l else {
            return !http::hung_up(&probe);
        };
        let is_err = l.stream == "stderr";
        if (is_err && !want_err) || (!is_err && !want_out) {
            return true;
        }
        let text = if timestamps {
            format!("{} {}\n", l.t, l.line)
        } else {
            format!("{}\n", l.line)
        };
        let data = if tty {
            text.into_bytes()
        } else {
            http::frame(if is_err { 2 } else { 1 }, text.as_bytes())
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
    use super::*;

    #[test]
    fn a_dockerode_create_body_becomes_pod_options() {
        let body = json!({
            "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Env": ["A=1"],
            "WorkingDir": "/workspace", "Tty": false, "OpenStdin": true,
            "ExposedPorts": {"80/tcp": {}}, "Labels": {"x": "y"}, "Unknown": 1,
            "HostConfig": {
                "Runtime": "runsc", "Memory": 268435456, "CpuQuota": 150000, "CpuPeriod": 100000,
                "PidsLimit": 128, "AutoRemove": true, "NetworkMode": "default",
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "81/tcp": [{"HostPort": "8081"}]},
                "RestartPolicy": {"Name": "no"}
            }
        });
        let (o, rm) = options_of(&body).unwrap();
        assert!(rm);
        assert_eq!(o.cmd, ["sh", "-c", "echo hi"]);
        assert_eq!(
            (o.env.as_slice(), o.workdir.as_deref()),
            (&["A=1".to_string()][..], Some("/workspace"))
        );
        assert_eq!(
            (o.memory, o.cpus, o.pids_limit),
            (Some(268435456), Some(1.5), Some(128))
        );
        assert_eq!(o.network, "gvpod");
        let mut p = o.publish.clone();
        p.sort();
        assert_eq!(p, ["127.0.0.1:8080:80/tcp", "8081:81/tcp"]);
        assert!(o.interactive && !o.tty);
    }

    #[test]
    fn entrypoints_and_refusals() {
        let (o, _) =
            options_of(&json!({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["true"]})).unwrap();
        assert_eq!(
            (o.entrypoint.as_deref(), o.cmd.as_slice()),
            (Some("/bin/sh"), &["-c".to_string(), "true".to_string()][..])
        );
        let (o, _) = options_of(
            &json!({"NanoCpus": 0, "HostConfig": {"NanoCpus": 500000000, "NetworkMode": "none"}}),
        )
        .unwrap();
        assert_eq!((o.cpus, o.network.as_str()), (Some(0.5), "none"));
        let e = options_of(&json!({"HostConfig": {"Runtime": "runc"}})).unwrap_err();
        assert!(e.contains("\"runc\""), "{e}");
        let e =
            options_of(&json!({"HostConfig": {"RestartPolicy": {"Name": "always"}}})).unwrap_err();
        assert!(e.contains("always"), "{e}");
    }

    #[test]
    fn port_mappings_become_docker_entries() {
        let p = port_entry("80/tcp -> 127.0.0.1:8080").unwrap();
        assert_eq!(
            p,
            json!({"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"})
        );
        assert!(port_entry("nonsense").is_none());
    }
}
