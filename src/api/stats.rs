//! `GET /containers/{id}/stats`: samples of [`pod::stats`] in docker's
//! shape (`cpu_stats`, `precpu_stats`, `memory_stats`, `pids_stats`,
//! `blkio_stats`, `networks`); `GET /containers/{id}/top`: [`pod::top`] as
//! docker's `{"Titles", "Processes"}` (`ps_args` is not supported: the
//! columns are always `runsc ps`'s).
//!
//! Invariant: every object but a `one-shot` one carries a real
//! `precpu_stats`, a sample taken about a second before (podman #24730 sent
//! zeros, so clients computed a nonsense CPU %): `stream=false` samples
//! twice a second apart, and a stream sends its first object a second after
//! it starts, then one a second, until the pod stops or is removed or the
//! client goes away.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{self, Chunked, Request};
use super::{After, Reply};
use crate::pod::{self, Ctx, PodStats};

/// Failed samples in a row a stream skips before it ends.
const MAX_FAILURES: u32 = 3;

/// docker's zero time, for the `preread` of a one-shot sample.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn cpu(s: Option<&PodStats>) -> Value {
    let z = PodStats::default();
    let s = s.unwrap_or(&z);
    let mut v = json!({
        "cpu_usage": {
            "total_usage": s.cpu_total_ns,
            "usage_in_kernelmode": s.cpu_kernel_ns,
            "usage_in_usermode": s.cpu_user_ns
        },
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
    });
    // Docker leaves these out of an empty sample.
    if s.system_cpu_ns > 0 {
        v["system_cpu_usage"] = json!(s.system_cpu_ns);
        v["online_cpus"] = json!(s.online_cpus);
    }
    v
}

/// Docker's `io_service_bytes_recursive`: `Read` and `Write` entries (the
/// CLI's BLOCK I/O sums them per op); `null` for a pod that is not
/// running, as docker sends for a stopped container.
fn blkio(s: &PodStats) -> Value {
    if !s.running {
        return Value::Null;
    }
    json!([
        {"major": 0, "minor": 0, "op": "read", "value": s.block_read_bytes},
        {"major": 0, "minor": 0, "op": "write", "value": s.block_write_bytes}
    ])
}

/// One sample (and the one before it, if any) as docker's stats object.
pub(crate) fn shape(cur: &PodStats, prev: Option<&PodStats>) -> Value {
    let mut v = json!({
        "read": cur.read,
        "preread": prev.map_or(ZERO_TIME, |p| p.read.as_str()),
        "id": cur.id,
        "name": format!("/{}", cur.name),
        "num_procs": 0,
        "pids_stats": {"current": cur.pids},
        "blkio_stats": {
            "io_service_bytes_recursive": blkio(cur),
            "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null
        },
        "storage_stats": {},
        "cpu_stats": cpu(Some(cur)),
        "precpu_stats": cpu(prev),
        "memory_stats": if cur.running {
            json!({"usage": cur.memory_bytes, "limit": cur.memory_limit, "stats": {}})
        } else {
            json!({})
        }
    });
    if let Some(n) = &cur.network {
        v["networks"] = json!({ "eth0": {
            "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
            "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
            "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
            "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped
        }});
    }
    v
}

/// Sleeps `d`, waking early (false) when the client hangs up.
fn pause(w: &UnixStream, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if http::hung_up(w) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// A sample of pod `id` as it is now; `None` once it is removed.
fn sample(ctx: &mut Ctx, id: &str) -> pod::Result<Option<PodStats>> {
    match ctx.lookup(id) {
        Ok(row) => pod::stats(ctx, &row).map(Some),
        Err(pod::PodError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn stats(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
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
    let stream = !matches!(req.query("stream"), Some("0" | "false" | "False"));
    let first = match pod::stats(&mut ctx, &pod) {
        Ok(s) => s,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    if !stream {
        if req.flag("one-shot") || !first.running {
            return Reply::Json(200, shape(&first, None)).send(w, keep);
        }
        if !pause(w, Duration::from_secs(1)) {
            return Ok(After::Close);
        }
        return match sample(&mut ctx, &pod.id) {
            Ok(Some(cur)) => Reply::Json(200, shape(&cur, Some(&first))),
            Ok(None) => Reply::Error(404, format!("No such container: {key}")),
            Err(e) => Reply::from_err(e.kind(), e),
        }
        .send(w, keep);
    }
    http::stream_head(w, 200, "application/json")?;
    let probe = w.try_clone()?;
    let mut c = Chunked(w);
    let mut prev = first;
    let mut failures = 0;
    while prev.running {
        if !pause(&probe, Duration::from_secs(1)) {
            return Ok(After::Close);
        }
        let cur = match sample(&mut ctx, &pod.id) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            // One failed sample is skipped; a run of them ends the stream.
            Err(e) if failures < MAX_FAILURES => {
                failures += 1;
                tracing::debug!("stats of {key}: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!("stats of {key}: {e}");
                break;
            }
        };
        failures = 0;
        if !cur.running {
            prev = cur;
            break;
        }
        let mut line = serde_json::to_vec(&shape(&cur, Some(&prev))).expect("JSON serialises");
        line.push(b'\n');
        c.send(&line)?;
        prev = cur;
    }
    if !prev.running {
        // A pod that is (or just got) stopped: one zero object, as docker sends.
        let mut line = serde_json::to_vec(&shape(&prev, None)).expect("JSON serialises");
        line.push(b'\n');
        c.send(&line)?;
    }
    c.finish()?;
    Ok(After::Next)
}

/// The answer to `GET /containers/{id}/top`.
fn top_shape(t: &pod::Top) -> Value {
    let rows: Vec<Vec<String>> = t
        .processes
        .iter()
        .map(|p| {
            vec![
                p.uid.clone(),
                p.pid.to_string(),
                p.ppid.to_string(),
                p.c.clone(),
                p.stime.clone(),
                p.time.clone(),
                p.cmd.clone(),
            ]
        })
        .collect();
    json!({
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TIME", "CMD"],
        "Processes": rows
    })
}

pub fn top(root: &Path, key: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let reply = match Ctx::open(root).and_then(|mut ctx| pod::top(&mut ctx, key)) {
        Ok(t) => Reply::Json(200, top_shape(&t)),
        Err(pod::PodError::NotFound(_)) => Reply::Error(404, format!("No such container: {key}")),
        Err(e) => Reply::from_err(e.kind(), e),
    };
    reply.send(w, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_dockers_with_a_real_precpu() {
        let prev = PodStats {
            id: "abc".into(),
            name: "web".into(),
            read: "2026-01-01T00:00:00.000000000Z".into(),
            running: true,
            cpu_total_ns: 10,
            system_cpu_ns: 100,
            online_cpus: 2,
            ..Default::default()
        };
        let cur = PodStats {
            read: "2026-01-01T00:00:01.000000000Z".into(),
            cpu_total_ns: 20,
            system_cpu_ns: 200,
            memory_bytes: 5,
            memory_limit: 256 << 20,
            pids: 3,
            network: Some(crate::net::IfStats {
                rx_bytes: 7,
                tx_packets: 1,
                ..Default::default()
            }),
            ..prev.clone()
        };
        let v = shape(&cur, Some(&prev));
        assert_eq!(v["name"], "/web");
        assert_eq!(v["preread"], prev.read.as_str());
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 20);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 10);
        assert_eq!(v["precpu_stats"]["system_cpu_usage"], 100);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["memory_stats"]["limit"], 256 << 20);
        assert_eq!(v["pids_stats"]["current"], 3);
        assert_eq!(v["networks"]["eth0"]["rx_bytes"], 7);
        assert_eq!(v["networks"]["eth0"]["tx_packets"], 1);
        let io = &v["blkio_stats"]["io_service_bytes_recursive"];
        assert_eq!(
            (io[0]["op"].as_str(), io[0]["value"].as_u64()),
            (Some("read"), Some(0))
        );
        assert_eq!(io[1]["op"], "write");
        // One-shot: docker's empty precpu and zero preread; no network, no key.
        let v = shape(
            &PodStats {
                network: None,
                ..cur
            },
            None,
        );
        assert_eq!(v["preread"], ZERO_TIME);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert!(v.get("networks").is_none());
    }

    #[test]
    fn top_is_dockers_titles_and_rows() {
        let t = pod::Top {
            id: "abc".into(),
            name: "web".into(),
            processes: vec![crate::runsc::Process {
                uid: "0".into(),
                pid: 1,
                ppid: 0,
                c: "0".into(),
                tty: "?".into(),
                stime: "12:04".into(),
                time: "10ms".into(),
                cmd: "sh".into(),
            }],
        };
        let v = top_shape(&t);
        assert_eq!(v["Titles"][1], "PID");
        assert_eq!(v["Titles"][6], "CMD");
        assert_eq!(
            v["Processes"],
            json!([["0", "1", "0", "0", "12:04", "10ms", "sh"]])
        );
    }
}
