//! The environment a bench ran in, recorded with its results so that two
//! result files can be told apart (kernel, CPU, cgroup version, load), and
//! the readings behind the "busy machine" warnings: load average and CPU
//! frequencies where /sys shows them (most VMs show none).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub gvpod_version: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    /// 1 or 2.
    pub cgroup_version: u8,
    pub mem_total_kb: u64,
    /// 1-minute load average before and after the run.
    pub load_before: f64,
    pub load_after: f64,
    /// Current frequency (kHz) of each CPU before and after; empty when
    /// not visible.
    pub cpu_khz_before: Vec<u64>,
    pub cpu_khz_after: Vec<u64>,
}

impl Environment {
    /// Reads everything but the "after" readings.
    pub fn read() -> Environment {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let kernel = nix::sys::utsname::uname()
            .map(|u| {
                format!(
                    "{} {}",
                    u.release().to_string_lossy(),
                    u.machine().to_string_lossy()
                )
            })
            .unwrap_or_else(|_| "unknown".into());
        let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            2
        } else {
            1
        };
        let mem_total_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| meminfo_kb(&m, "MemTotal"))
            .unwrap_or(0);
        Environment {
            gvpod_version: env!("CARGO_PKG_VERSION").to_string(),
            kernel,
            cpu_model,
            cpus,
            cgroup_version,
            mem_total_kb,
            load_before: load1(),
            load_after: 0.0,
            cpu_khz_before: cpu_khz(),
            cpu_khz_after: vec![],
        }
    }

    /// Takes the "after" readings.
    pub fn finish(&mut self) {
        self.load_after = load1();
        self.cpu_khz_after = cpu_khz();
    }
}

/// The 1-minute load average (0 when unreadable).
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn cpu_khz() -> Vec<u64> {
    let mut v = vec![];
    for i in 0.. {
        let p = format!("/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq");
        match std::fs::read_to_string(&p) {
            Ok(s) => v.push(s.trim().parse().unwrap_or(0)),
            Err(_) => break,
        }
    }
    v
}

/// A `KEY: N kB` value of /proc/meminfo text.
pub fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn meminfo_lines() {
        let t =
            "MemTotal:        4026512 kB\nMemFree:          123 kB\nMemAvailable:    2000000 kB\n";
        assert_eq!(super::meminfo_kb(t, "MemTotal"), Some(4026512));
        assert_eq!(super::meminfo_kb(t, "MemAvailable"), Some(2000000));
        assert_eq!(super::meminfo_kb(t, "Mem"), None);
    }
}
