//! The typed walk of a pod's `services.<name>` and its health check
//! (the rest of a pod is `decode`'s). A service has a `start` command; a
//! health check has exactly one probe (`http` needs the service's `port`)
//! and durations that `units::parse_duration` reads.

use super::decode::{bad_value, fields, port_number, restart, text, texts};
use super::tree::{Node, Val};
use super::types::*;
use super::units::parse_duration;
use super::SpecError;

type Result<T> = std::result::Result<T, SpecError>;

pub fn service(n: &Node, path: &str) -> Result<Service> {
    let f = fields(
        n,
        path,
        &[
            "install",
            "start",
            "port",
            "health",
            "restart",
            "depends_on",
        ],
    )?;
    let Some(start) = f.get("start") else {
        return Err(SpecError::at(
            f.at,
            format!("{path}: no start command; expected `start:` with the command that runs the service"),
        ));
    };
    let mut s = Service {
        start: text(start, &f.path("start"), "a shell command")?,
        ..Service::default()
    };
    if let Some(i) = f.get("install") {
        s.install = Some(text(i, &f.path("install"), "a shell command")?);
    }
    if let Some(p) = f.get("port") {
        s.port = Some(port_number(p, &f.path("port"))?);
    }
    if let Some(r) = f.get("restart") {
        s.restart = Some(restart(r, &f.path("restart"))?);
    }
    if let Some(d) = f.get("depends_on") {
        s.depends_on = texts(d, &f.path("depends_on"), "service names", false)?
            .into_iter()
            .map(|x| x.0)
            .collect();
    }
    if let Some(h) = f.get("health") {
        s.health = Some(health(h, &f.path("health"), s.port)?);
    }
    Ok(s)
}

fn health(n: &Node, path: &str, port: Option<u16>) -> Result<Health> {
    let f = fields(
        n,
        path,
        &[
            "http",
            "tcp",
            "cmd",
            "interval",
            "timeout",
            "retries",
            "start_period",
        ],
    )?;
    let probes: Vec<&str> = ["http", "tcp", "cmd"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    let probe = match probes.as_slice() {
        ["http"] => {
            let h = f.get("http").expect("checked");
            let p = f.path("http");
            let t = text(h, &p, "a URL path such as /")?;
            if !t.starts_with('/') {
                return Err(bad_value(
                    &h.at,
                    &p,
                    &t,
                    "expected a URL path starting with /",
                ));
            }
            if port.is_none() {
                return Err(SpecError::at(
                    &h.at,
                    format!("{p}: no port to probe; expected `port:` on the service"),
                ));
            }
            Probe::Http(t)
        }
        ["tcp"] => Probe::Tcp(port_number(f.get("tcp").expect("checked"), &f.path("tcp"))?),
        ["cmd"] => Probe::Cmd(text(
            f.get("cmd").expect("checked"),
            &f.path("cmd"),
            "a shell command",
        )?),
        [] => {
            return Err(SpecError::at(
                f.at,
                format!("{path}: no probe; expected one of http, tcp or cmd"),
            ))
        }
        _ => {
            return Err(SpecError::at(
                f.at,
                format!(
                    "{path}: {} probes; expected only one of http, tcp or cmd",
                    probes.join(" and ")
                ),
            ))
        }
    };
    let dur = |key: &str, default: u64| -> Result<u64> {
        let Some(d) = f.get(key) else {
            return Ok(default);
        };
        let p = f.path(key);
        let t = text(d, &p, "a duration such as 5s")?;
        parse_duration(&t).ok_or_else(|| {
            bad_value(
                &d.at,
                &p,
                &t,
                "expected a duration such as 500ms, 5s or 1m30s",
            )
        })
    };
    let retries = match f.get("retries") {
        None => HEALTH_RETRIES,
        Some(r) => match r.val {
            Val::Int(i) if (1..=1000).contains(&i) => i as u32,
            Val::Int(i) => {
                return Err(bad_value(
                    &r.at,
                    &f.path("retries"),
                    &i.to_string(),
                    "expected a number from 1 to 1000",
                ))
            }
            _ => {
                return Err(SpecError::at(
                    &r.at,
                    format!(
                        "{}: found {}; expected a number from 1 to 1000",
                        f.path("retries"),
                        r.val.what()
                    ),
                ))
            }
        },
    };
    Ok(Health {
        probe,
        interval_ms: dur("interval", HEALTH_INTERVAL_MS)?,
        timeout_ms: dur("timeout", HEALTH_TIMEOUT_MS)?,
        retries,
        start_period_ms: dur("start_period", 0)?,
    })
}
