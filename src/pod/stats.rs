//! `stats`: one typed sample of a pod's resource use, for `gvpod stats` and
//! the API's `/containers/{id}/stats`.
//!
//! Where each number comes from: cpu, memory and pids from `runsc events
//! --stats` (DESIGN.md fact 9); the memory limit from the pod's `-m`, else
//! the host's MemTotal (docker shows the host's memory for an unlimited
//! container); the host's cpu time from /proc/stat (docker's
//! `system_cpu_usage`, the denominator of CPU %); network counters of the
//! pod's eth0 read inside its namespace (runsc has none on older releases;
//! `None` for `--network none` and `host`); block I/O from the storage
//! counters of the host processes in the pod's cgroup (see `blkio`). A pod
//! that is not running
//! gives an all-zero sample, as docker's does; a sample never fails on a
//! pod that stops while it is taken (runsc no longer runs its sandbox: it
//! is then zero too).

pub use super::views::PodStats;

use super::{Ctx, Result};
use crate::state::{PodRow, PodStatus};

/// The host's cpu time in nanoseconds (the sum of every state of the
/// aggregate `cpu` line, as docker sums it) and the online cpus (the
/// `cpuN` lines), from the text of /proc/stat with `hz` ticks a second.
pub fn parse_proc_stat(text: &str, hz: u64) -> Option<(u64, u32)> {
    let mut total = None;
    let mut cpus = 0u32;
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq steal (guest
                // time is already in user): the first eight.
                let ticks: u64 = f.take(8).filter_map(|v| v.parse::<u64>().ok()).sum();
                total = Some(ticks.saturating_mul(1_000_000_000 / hz.max(1)));
            }
            Some(c) if c.starts_with("cpu") && c[3..].parse::<u32>().is_ok() => cpus += 1,
            _ => {}
        }
    }
    total.map(|t| (t, cpus.max(1)))
}

/// `MemTotal` of /proc/meminfo's text, in bytes.
pub fn parse_mem_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The host's memory in bytes (0 if /proc/meminfo cannot be read).
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(parse_mem_total)
        .unwrap_or(0)
}

fn host_cpu() -> (u64, u32) {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(|t| parse_proc_stat(t, hz))
        .unwrap_or((0, 1))
}

/// One sample of pod `pod` (looked up and refreshed by the caller or not:
/// its status is re-read here).
pub fn stats(ctx: &mut Ctx, pod: &PodRow) -> Result<PodStats> {
    let pod = ctx.refresh(pod.clone())?;
    let opts = pod.options()?;
    let memory_limit = opts.memory.unwrap_or_else(host_memory);
    let mut s = PodStats {
        id: pod.id.clone(),
        name: pod.name.clone(),
        memory_limit,
        ..Default::default()
    };
    if pod.status == PodStatus::Running {
        let flags = ctx.flags_of(&pod)?;
        let runsc = ctx.runsc_for(&flags)?;
        match runsc.stats(&flags, &pod.id) {
            Ok(r) => {
                s.running = true;
                s.cpu_total_ns = r.cpu_total_ns;
                s.cpu_user_ns = r.cpu_user_ns;
                s.cpu_kernel_ns = r.cpu_kernel_ns;
                s.memory_bytes = r.memory_bytes;
                s.pids = r.pids;
                let io = super::blkio::of_cgroup(&super::blkio::cgroup_of(&pod.id));
                s.block_read_bytes = io.read_bytes;
                s.block_write_bytes = io.write_bytes;
            }
            Err(e) => {
                // Stopping while asked (its monitor has not recorded the
                // exit yet): a zero sample, as for any stopped pod.
                let sandbox_runs = runsc
                    .state(&flags, &pod.id)?
                    .is_some_and(|st| st.status == "running");
                if sandbox_runs {
                    return Err(e.into());
                }
            }
        }
        if s.running && ctx.db.lease_of(&pod.id)?.is_some() {
            let ns = super::network::netns_path(ctx, &pod.id);
            s.network = crate::net::pod_if_stats(&ns)?;
        }
    }
    (s.system_cpu_ns, s.online_cpus) = host_cpu();
    s.read = crate::util::now_rfc3339();
    Ok(s)
}

/// The pods `stats` shows: the named ones, else the running ones (every
/// pod with `all`).
/// One sample of each pod [`stats_targets`] picks; a pod removed meanwhile
/// is left out (unless it was named).
pub fn samples(ctx: &mut Ctx, keys: &[String], all: bool) -> Result<Vec<PodStats>> {
    let mut out = vec![];
    for p in stats_targets(ctx, keys, all)? {
        match stats(ctx, &p) {
            Ok(s) => out.push(s),
            Err(super::PodError::NotFound(_)) if keys.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

pub fn stats_targets(ctx: &mut Ctx, keys: &[String], all: bool) -> Result<Vec<PodRow>> {
    if !keys.is_empty() {
        return keys.iter().map(|k| ctx.lookup(k)).collect();
    }
    let mut out = vec![];
    for p in ctx.db.pods()? {
        let p = ctx.refresh(p)?;
        if all || p.status == PodStatus::Running {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_STAT: &str = "cpu  100 5 50 1000 10 1 2 3 7 0\ncpu0 50 2 25 500 5 0 1 1 0 0\ncpu1 50 3 25 500 5 1 1 2 7 0\nintr 1 2 3\nctxt 99\n";

    #[test]
    fn host_cpu_time_sums_every_state() {
        // 100+5+50+1000+10+1+2+3 ticks at 100 Hz, guest (7) not counted twice.
        assert_eq!(
            parse_proc_stat(PROC_STAT, 100),
            Some((1171 * 10_000_000, 2))
        );
        assert_eq!(parse_proc_stat("intr 1\n", 100), None);
    }

    #[test]
    fn mem_total_is_bytes() {
        let m = "MemTotal:        8029912 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total(m), Some(8_029_912 * 1024));
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn cpu_percent_is_dockers() {
        let prev = PodStats {
            cpu_total_ns: 1_000,
            system_cpu_ns: 10_000,
            online_cpus: 2,
            ..Default::default()
        };
        let cur = PodStats {
            cpu_total_ns: 2_000,
            system_cpu_ns: 20_000,
            online_cpus: 2,
            ..Default::default()
        };
        // 1000 of 10000 host ns on 2 cpus: 20 % (of one cpu).
        assert!((cur.cpu_percent(&prev) - 20.0).abs() < 1e-9);
        // The host clock did not move, or the pod restarted: 0.
        assert_eq!(cur.cpu_percent(&cur), 0.0);
        assert_eq!(prev.cpu_percent(&cur), 0.0);
    }

    #[test]
    fn memory_percent_of_the_limit() {
        let s = PodStats {
            memory_bytes: 64 << 20,
            memory_limit: 256 << 20,
            ..Default::default()
        };
        assert!((s.memory_percent() - 25.0).abs() < 1e-9);
        assert_eq!(PodStats::default().memory_percent(), 0.0);
    }
}
