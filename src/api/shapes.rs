//! Pods in docker's JSON shapes: the summary `ps` lists, the object
//! `inspect` shows, docker's status text, ports, networks, mounts, and the
//! list filters. Fields gvpod has no notion of get docker's empty values.

use serde_json::{json, Value};

use super::images::short_ref;
use crate::pod::PodView;

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
    match v.status.as_str() {
        "running" if v.restarting => format!(
            "Restarting ({}) {} ago",
            v.exit_code.unwrap_or(0),
            ago(&v.finished)
        ),
        // Docker's words for a container with a health check.
        "running" => match &v.health {
            Some(h) if h == "starting" => format!("Up {} (health: starting)", ago(&v.started)),
            Some(h) => format!("Up {} ({h})", ago(&v.started)),
            None => format!("Up {}", ago(&v.started)),
        },
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

/// Docker's `State.Health` of a pod whose services have health checks
/// (null otherwise, as docker omits it).
fn health(v: &PodView) -> Value {
    let Some(status) = &v.health else {
        return Value::Null;
    };
    let checked: Vec<_> = v.services.iter().filter(|s| s.health != "none").collect();
    json!({
        "Status": status,
        "FailingStreak": checked.iter().map(|s| s.failing).max().unwrap_or(0),
        "Log": checked.iter().filter_map(|s| s.last_check.as_ref().map(|at| json!({
            "Start": at, "End": at,
            "ExitCode": if s.health == "unhealthy" { 1 } else { 0 },
            "Output": format!("{}: {}", s.name, s.check_output),
        }))).collect::<Vec<_>>(),
    })
}

pub(crate) fn summary(v: &PodView) -> Value {
    json!({
        "Id": v.id,
        "Names": [format!("/{}", v.name)],
        "Image": short_ref(&v.image),
        "ImageID": v.image_id,
        "Command": v.command.join(" "),
        "Created": unix_time(&v.created),
        "Ports": v.ports.iter().filter_map(|m| port_entry(m)).collect::<Vec<_>>(),
        "Labels": v.config.labels,
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
pub(crate) fn matches(v: &PodView, filters: &serde_json::Map<String, Value>) -> bool {
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
                // `KEY` (any value) or `KEY=VALUE`.
                "label" => match w.split_once('=') {
                    Some((k, val)) => v.config.labels.get(k).is_some_and(|x| x == val),
                    None => v.config.labels.contains_key(*w),
                },
                _ => false,
            })
    })
}

/// `GET /containers/{id}/json`: a pod as docker's inspect shows a container.
pub(crate) fn inspect(v: &PodView) -> Value {
    let running = v.status == "running";
    let zero = "0001-01-01T00:00:00Z".to_string();
    let (path, args) = v
        .command
        .split_first()
        .map_or((String::new(), vec![]), |(p, a)| (p.clone(), a.to_vec()));
    let c = &v.config;
    json!({
        "Id": v.id,
        "Created": v.created,
        "Path": path,
        "Args": args,
        "State": {
            "Status": if v.restarting { "restarting" } else { v.status.as_str() },
            "Running": running, "Paused": false, "Restarting": v.restarting,
            "OOMKilled": false, "Dead": false, "Pid": if running { v.pid.unwrap_or(0) } else { 0 },
            "ExitCode": if running { 0 } else { v.exit_code.unwrap_or(0) }, "Error": "",
            "StartedAt": v.started.clone().unwrap_or_else(|| zero.clone()),
            "FinishedAt": v.finished.clone().unwrap_or(zero),
            // Docker's State.Health: the pod's services' health, their
            // failing streak and last checks (one entry per checked service).
            "Health": health(v),
        },
        "Image": v.image_id,
        "Name": format!("/{}", v.name),
        "RestartCount": v.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "LogPath": v.log_path,
        "HostConfig": {
            "Runtime": "runsc",
            "NetworkMode": network_mode(v),
            "AutoRemove": v.auto_remove,
            "Memory": c.memory.unwrap_or(0),
            "NanoCpus": c.cpus.map_or(0, |n| (n * 1e9) as i64),
            "PidsLimit": c.pids_limit,
            "Binds": c.volumes.iter().map(|m| format!("{}:{}{}", m.host.display(), m.pod, if m.readonly {":ro"} else {""})).collect::<Vec<_>>(),
            "RestartPolicy": {"Name": c.restart.name(), "MaximumRetryCount": c.restart.max_retries()},
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
            "Labels": c.labels,
            "ExposedPorts": c.expose.iter().map(|p| (p.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
        },
        "NetworkSettings": {
            "IPAddress": v.ip.clone().unwrap_or_default(),
            "Networks": networks(v),
            "Ports": ports_map(v),
        },
        "Mounts": mounts(v),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
