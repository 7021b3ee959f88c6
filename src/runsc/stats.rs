//! `runsc events --stats ID`: one JSON line of cpu, memory and pids
//! (DESIGN.md fact 9), parsed into [`SandboxStats`].
//!
//! Both releases print `{"type":"stats","id":…,"data":{"cpu":{"usage":
//! {"total":NS}},"memory":{"usage":{"usage":BYTES,…}},"pids":{"current":N}}}`;
//! 20240729 adds `network_interfaces` (the sandbox's own netstack counters),
//! 20221219 has none, so gvpod reads network counters from the pod's netns
//! instead (see `net::link_stats`). `user`/`kernel` cpu times are read when
//! a release gives them and are 0 otherwise; a field that is missing is 0,
//! never an error: only output that is not such an object is.

use serde::Deserialize;

use super::{GlobalFlags, Result, Runsc, RunscError};

/// What runsc reports about a sandbox's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxStats {
    /// CPU time used, nanoseconds.
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_kernel_ns: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Tasks (threads and processes) in the sandbox.
    pub pids: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Data {
    cpu: Cpu,
    memory: Memory,
    pids: Pids,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cpu {
    usage: CpuUsage,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CpuUsage {
    total: u64,
    user: u64,
    kernel: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Memory {
    usage: MemUsage,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemUsage {
    usage: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Pids {
    current: u64,
}

/// Parses the output of `runsc events --stats` (the first stats line).
pub fn parse_stats(out: &str) -> Result<SandboxStats> {
    let bad = |msg: String| RunscError::Parse {
        cmd: "events --stats".into(),
        msg,
    };
    let line = out
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| bad("no output".into()))?;
    let ev: Event = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
    if ev.kind != "stats" {
        return Err(bad(format!("event of type {:?}, not stats", ev.kind)));
    }
    let d = ev.data;
    Ok(SandboxStats {
        cpu_total_ns: d.cpu.usage.total,
        cpu_user_ns: d.cpu.usage.user,
        cpu_kernel_ns: d.cpu.usage.kernel,
        memory_bytes: d.memory.usage.usage,
        pids: d.pids.current,
    })
}

impl Runsc {
    /// `runsc events --stats ID`: one sample of the sandbox's resource use.
    pub fn stats(&self, flags: &GlobalFlags, id: &str) -> Result<SandboxStats> {
        parse_stats(&self.call(flags, "events", &["--stats"], id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from release 20221219 (ptrace), a busy-looping busybox pod run with -m 256m.
    const R20221219: &str = r#"{"type":"stats","id":"dcbc2df9bb09cdc09c07411d7286e07a5bc49d564927dd55e4842bc737897547","data":{"cpu":{"usage":{"total":1900601333}},"memory":{"usage":{"limit":0,"usage":2035712,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"pids":{"current":1}}}
"#;
    /// Captured from release 20240729 (systrap), the same pod.
    const R20240729: &str = r#"{"type":"stats","id":"20edcdf970882c76b4e7580a9d3a5a8978a291c6aa27cd34709340ade942e0a2","data":{"cpu":{"usage":{"total":1880000000}},"memory":{"usage":{"limit":0,"usage":2019328,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"pids":{"current":1},"network_interfaces":[{"Name":"lo","RxBytes":0,"RxPackets":0,"RxErrors":0,"RxDropped":0,"TxBytes":0,"TxPackets":0,"TxErrors":0,"TxDropped":0},{"Name":"eth0","RxBytes":528,"RxPackets":7,"RxErrors":0,"RxDropped":0,"TxBytes":0,"TxPackets":0,"TxErrors":0,"TxDropped":0}]}}
"#;

    #[test]
    fn both_releases_output_parses() {
        assert_eq!(
            parse_stats(R20221219).unwrap(),
            SandboxStats {
                cpu_total_ns: 1_900_601_333,
                memory_bytes: 2_035_712,
                pids: 1,
                ..Default::default()
            }
        );
        let s = parse_stats(R20240729).unwrap();
        assert_eq!(
            (s.cpu_total_ns, s.memory_bytes, s.pids),
            (1_880_000_000, 2_019_328, 1)
        );
    }

    #[test]
    fn user_and_kernel_times_are_read_when_given() {
        let s = parse_stats(
            r#"{"type":"stats","data":{"cpu":{"usage":{"total":30,"user":20,"kernel":10}}}}"#,
        )
        .unwrap();
        assert_eq!(
            (s.cpu_total_ns, s.cpu_user_ns, s.cpu_kernel_ns),
            (30, 20, 10)
        );
        assert_eq!((s.memory_bytes, s.pids), (0, 0));
    }

    #[test]
    fn other_output_is_an_error() {
        for bad in ["", "not json", r#"{"type":"oom","data":{}}"#, "[1]"] {
            assert!(parse_stats(bad).is_err(), "{bad:?}");
        }
    }
}
