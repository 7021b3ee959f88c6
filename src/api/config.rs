//! A docker container config (the body of `POST /containers/create`) as
//! pod options. Unknown fields are ignored, never fatal; what gvpod cannot
//! honour (another runtime, an unknown restart policy) is refused with one
//! line, before anything is made.

use serde_json::{json, Value};

use crate::bundle::PodOptions;

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
    let restart = crate::bundle::RestartPolicy::from_docker(
        hc.pointer("/RestartPolicy/Name")
            .and_then(Value::as_str)
            .unwrap_or(""),
        hc.pointer("/RestartPolicy/MaximumRetryCount")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    )
    .map_err(|e| e.to_string())?;
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
        restart,
        labels: match body.get("Labels") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            _ => Default::default(),
        },
        expose: match body.get("ExposedPorts") {
            Some(Value::Object(m)) => m
                .keys()
                .map(|k| crate::bundle::parse_expose(k).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            _ => vec![],
        },
        log: log_limits(hc.get("LogConfig"))?,
        storage_size: match hc.get("StorageOpt") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    crate::bundle::parse_storage_opt(&format!("{k}={}", v.as_str().unwrap_or("")))
                        .map_err(|e| e.to_string())
                })
                .next_back()
                .transpose()?,
            _ => None,
        },
        ..Default::default()
    };
    let auto_remove = hc
        .get("AutoRemove")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((opts, auto_remove))
}

/// `HostConfig.LogConfig` of the json-file (or default) driver:
/// `Config.max-size` and `Config.max-file`, as strings (docker's form).
fn log_limits(lc: Option<&Value>) -> Result<crate::bundle::LogLimits, String> {
    let cfg = lc.and_then(|l| l.get("Config"));
    let get = |k: &str| cfg.and_then(|c| c.get(k)).and_then(Value::as_str);
    Ok(crate::bundle::LogLimits {
        max_size: get("max-size")
            .map(crate::bundle::parse_log_max_size)
            .transpose()
            .map_err(|e| e.to_string())?,
        max_file: get("max-file")
            .map(|n| {
                n.parse::<u32>()
                    .map_err(|_| format!("invalid LogConfig max-file {n:?}: use a count such as 3"))
                    .and_then(|n| crate::bundle::parse_log_max_file(n).map_err(|e| e.to_string()))
            })
            .transpose()?,
    })
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
        let e = options_of(&json!({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}))
            .unwrap_err();
        assert!(e.contains("\"sometimes\""), "{e}");
        let e = options_of(
            &json!({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}}),
        )
        .unwrap_err();
        assert!(e.contains("on-failure"), "{e}");
    }

    #[test]
    fn restart_policies_from_the_body() {
        use crate::bundle::RestartPolicy;
        let policy = |rp: Value| {
            options_of(&json!({"HostConfig": {"RestartPolicy": rp}}))
                .unwrap()
                .0
                .restart
        };
        assert_eq!(
            policy(json!({"Name": "unless-stopped"})),
            RestartPolicy::UnlessStopped
        );
        assert_eq!(
            policy(json!({"Name": "always", "MaximumRetryCount": 0})),
            RestartPolicy::Always
        );
        assert_eq!(
            policy(json!({"Name": "on-failure", "MaximumRetryCount": 2})),
            RestartPolicy::OnFailure { max_retries: 2 }
        );
        assert_eq!(policy(json!({"Name": ""})), RestartPolicy::No);
        assert_eq!(options_of(&json!({})).unwrap().0.restart, RestartPolicy::No);
    }
}
