//! The workloads. Each takes samples from one runtime at a time (the
//! caller interleaves runtimes round by round) through the [`Stage`]'s
//! bundle and the runtime seam:
//! - `startup`: `run` of `/bin/true` (create, start, exit, delete), and
//!   `run` of a container that starts busybox httpd and fetches `/` over
//!   its loopback until the server answers (no host networking needed, so
//!   every runtime gets the same: `--network=none`), in ms;
//! - `exec`: `exec /bin/true` into a running container, in ms;
//! - `syscall`: the static helper of src/bench/syscall.c, timing getpid,
//!   open+close, stat and a pipe round trip inside the container, in ns
//!   per operation (gVisor's syscall benchmark measures getpid alone);
//! - `fileio`: the same helper, dd-style: sequential and 4 KiB random
//!   write/read in MiB/s (higher is better) on the rootfs, a bind mount
//!   and a tmpfs (gVisor's fs benchmarks use fio on the same three), and on
//!   runsc (when its spec fixed no `overlay2=`) the rootfs again under
//!   `--overlay2=root:memory` and `--overlay2=none`, each value probed
//!   first ([`OVERLAYS`]: `rootfs-overlay-memory-*`, `rootfs-overlay-none-*`);
//! - `network`: see [`super::network`] (wrk against httpd through a netns
//!   of the bench's own; req/s and MiB/s);
//! - `checkpoint`: see [`super::checkpoint`] (runsc's save and restore
//!   time vs memory size, first HTTP answer after a restore);
//! - `density`: memory per idle container, as gVisor's suite measures it
//!   (the drop in MemAvailable over N `sleep` containers, divided by N) and
//!   the PSS of each container's host processes (its cgroup's, plus runsc's
//!   sandbox and gofer found by their `--root`), in MiB.

use std::time::Instant;

use super::{BenchError, Result, Stage, HELPERS_IN_POD, OUT_IN_POD};

pub const ALL: [&str; 7] = [
    "startup",
    "exec",
    "syscall",
    "fileio",
    "density",
    "network",
    "checkpoint",
];

/// The syscall helper, built by build.rs.
static SYSCALL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gvpod-bench-syscall"));

/// One measured value of one figure.
pub struct Sample {
    pub figure: String,
    pub unit: &'static str,
    pub value: f64,
}

pub trait Workload {
    /// Readies runtime `rt` (e.g. a container to exec into).
    fn prepare(&mut self, _stage: &mut Stage, _rt: usize) -> Result<()> {
        Ok(())
    }
    /// One round's samples on runtime `rt`.
    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>>;
    /// Undoes `prepare` (the stage's guard is the backstop).
    fn finish(&mut self, _stage: &mut Stage, _rt: usize) {}
    /// Whether one untimed sample precedes the rounds (first-run costs:
    /// page cache, lazy setup); a workload whose `prepare` already did all
    /// its steps once says no.
    fn warm_up(&self) -> bool {
        true
    }
    /// Lines for the report's warnings once every runtime is done (e.g.
    /// a runtime the workload does not apply to).
    fn notes(&self) -> Vec<String> {
        vec![]
    }
}

pub fn make(name: &str, quick: bool) -> Box<dyn Workload> {
    match name {
        "exec" => Box::new(Exec {
            per_round: if quick { 3 } else { 5 },
            ids: vec![],
        }),
        "network" => Box::new(super::network::Network::new(quick)),
        "checkpoint" => Box::new(super::checkpoint::Checkpoint::new(quick)),
        "density" => Box::new(Density {
            pods: if quick { 3 } else { 5 },
        }),
        "fileio" => Box::new(FileIo {
            mib: if quick { 8 } else { 64 },
            overlays: vec![],
        }),
        "syscall" => Box::new(Syscall {
            budget_ms: if quick { 30 } else { 200 },
        }),
        _ => Box::new(Startup),
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

struct Startup;

/// Starts httpd and polls it over loopback (at most ~10 s, then fails).
const FIRST_HTTP: &str = "ip link set lo up 2>/dev/null; httpd -p 127.0.0.1:8080 -h /gvpod-bench/www || exit 3; \
i=0; until wget -q -O /dev/null http://127.0.0.1:8080/ 2>/dev/null; do i=$((i+1)); [ $i -gt 1000 ] && exit 4; usleep 10000; done";

impl Workload for Startup {
    fn prepare(&mut self, stage: &mut Stage, _rt: usize) -> Result<()> {
        let www = stage
            .rootfs
            .join(HELPERS_IN_POD.trim_start_matches('/'))
            .join("www");
        let io = |source| BenchError::Io {
            path: www.clone(),
            source,
        };
        std::fs::create_dir_all(&www).map_err(io)?;
        std::fs::write(www.join("index.html"), b"gvpod bench\n").map_err(io)
    }

    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>> {
        let id = stage.new_id(rt);
        stage.configure(&id, &["/bin/true"])?;
        let t = Instant::now();
        stage.runtimes[rt].run(&stage.bundle, &id)?;
        let v = ms(t);
        super::check_interrupted()?;
        let id = stage.new_id(rt);
        stage.configure(&id, &["/bin/sh", "-c", FIRST_HTTP])?;
        let t = Instant::now();
        stage.runtimes[rt].run(&stage.bundle, &id)?;
        let h = ms(t);
        Ok(vec![
            Sample {
                figure: "run-true".into(),
                unit: "ms",
                value: v,
            },
            Sample {
                figure: "first-http".into(),
                unit: "ms",
                value: h,
            },
        ])
    }
}

struct Exec {
    per_round: usize,
    /// The running container of each runtime.
    ids: Vec<Option<String>>,
}

impl Workload for Exec {
    fn prepare(&mut self, stage: &mut Stage, rt: usize) -> Result<()> {
        let id = stage.new_id(rt);
        stage.configure(&id, &["/bin/sleep", "1000000"])?;
        stage.runtimes[rt].create_start(&stage.bundle, &id)?;
        if self.ids.len() <= rt {
            self.ids.resize(rt + 1, None);
        }
        self.ids[rt] = Some(id);
        Ok(())
    }

    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>> {
        let id = self
            .ids
            .get(rt)
            .cloned()
            .flatten()
            .ok_or(BenchError::Failed {
                runtime: stage.runtimes[rt].info.label.clone(),
                what: "exec".into(),
                msg: "no running container".into(),
            })?;
        let mut v = vec![];
        for _ in 0..self.per_round {
            super::check_interrupted()?;
            let t = Instant::now();
            stage.runtimes[rt].exec(&id, &["/bin/true"])?;
            v.push(Sample {
                figure: "exec-true".into(),
                unit: "ms",
                value: ms(t),
            });
        }
        Ok(v)
    }

    fn finish(&mut self, stage: &mut Stage, rt: usize) {
        if let Some(Some(id)) = self.ids.get(rt) {
            stage.runtimes[rt].delete(id);
        }
    }
}

struct Syscall {
    budget_ms: u32,
}

impl Syscall {
    fn install(stage: &Stage) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = stage
            .rootfs
            .join(HELPERS_IN_POD.trim_start_matches('/'))
            .join("syscall");
        if p.exists() {
            return Ok(());
        }
        let io = |source| BenchError::Io {
            path: p.clone(),
            source,
        };
        std::fs::write(&p, SYSCALL).map_err(io)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(io)
    }
}

/// Parses the helper's "NAME NS_PER_OP ITERATIONS" lines.
pub fn parse_syscall_output(text: &str) -> Option<Vec<(String, f64)>> {
    let mut v = vec![];
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = l.split_whitespace();
        let name = f.next()?.to_string();
        let ns: f64 = f.next()?.parse().ok()?;
        let _iters: u64 = f.next()?.parse().ok()?;
        if !ns.is_finite() || ns <= 0.0 {
            return None;
        }
        v.push((name, ns));
    }
    (!v.is_empty()).then_some(v)
}

impl Workload for Syscall {
    fn prepare(&mut self, stage: &mut Stage, _rt: usize) -> Result<()> {
        Syscall::install(stage)
    }

    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>> {
        let budget = self.budget_ms.to_string();
        helper_run(stage, rt, "syscall", &[&budget], "ns")
    }
}

/// Runs the helper (`MODE_ARGS...`, output file inserted where the helper
/// wants it) in a fresh container of runtime `rt` and reads its lines.
fn helper_run(
    stage: &mut Stage,
    rt: usize,
    what: &str,
    args: &[&str],
    unit: &'static str,
) -> Result<Vec<Sample>> {
    let id = stage.new_id(rt);
    let host_out = stage.out.join(format!("{what}.txt"));
    let _ = std::fs::remove_file(&host_out);
    let pod_out = format!("{OUT_IN_POD}/{what}.txt");
    let helper = format!("{HELPERS_IN_POD}/syscall");
    let mut argv: Vec<&str> = vec![&helper];
    if what == "syscall" {
        argv.extend_from_slice(args);
        argv.push(&pod_out);
    } else {
        argv.push(what);
        argv.push(&pod_out);
        argv.extend_from_slice(args);
    }
    stage.configure(&id, &argv)?;
    stage.runtimes[rt].run(&stage.bundle, &id)?;
    let label = &stage.runtimes[rt].info.label;
    let text = std::fs::read_to_string(&host_out).map_err(|e| BenchError::Failed {
        runtime: label.clone(),
        what: what.into(),
        msg: format!("no results from the helper ({}): {e}", host_out.display()),
    })?;
    let parsed = parse_syscall_output(&text).ok_or_else(|| BenchError::Failed {
        runtime: label.clone(),
        what: what.into(),
        msg: format!("unreadable helper output {text:?}"),
    })?;
    Ok(parsed
        .into_iter()
        .map(|(figure, value)| Sample {
            figure,
            unit,
            value,
        })
        .collect())
}

struct FileIo {
    mib: u32,
    /// The `--overlay2` values each runtime runs the rootfs figures under
    /// too (runsc whose spec fixed none; probed in `prepare`).
    overlays: Vec<Vec<String>>,
}

/// The rootfs overlay settings the `fileio` workload compares, with the
/// name each gives its figures (`rootfs-<name>-seq-write`, ...).
pub const OVERLAYS: [(&str, &str); 2] =
    [("root:memory", "overlay-memory"), ("none", "overlay-none")];

impl Workload for FileIo {
    fn prepare(&mut self, stage: &mut Stage, rt: usize) -> Result<()> {
        if self.overlays.len() <= rt {
            self.overlays.resize(rt + 1, vec![]);
        }
        let wanted: Vec<&str> = OVERLAYS.iter().map(|(v, _)| *v).collect();
        self.overlays[rt] = stage.runtimes[rt].overlay_choices(&wanted);
        Syscall::install(stage)
    }

    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>> {
        let mib = self.mib.to_string();
        let rootfs = format!("rootfs={HELPERS_IN_POD}");
        let bind = format!("bind={OUT_IN_POD}");
        let tmpfs = format!("tmpfs={}", super::TMPFS_IN_POD);
        let mut v = helper_run(
            stage,
            rt,
            "fileio",
            &[&mib, &rootfs, &bind, &tmpfs],
            "MiB/s",
        )?;
        // The rootfs again with and without runsc's overlay (DESIGN.md
        // fact 8), each in a container of its own.
        for value in self.overlays.get(rt).cloned().unwrap_or_default() {
            super::check_interrupted()?;
            let name = OVERLAYS
                .iter()
                .find(|(o, _)| *o == value)
                .map_or("overlay", |(_, n)| *n);
            let target = format!("rootfs-{name}={HELPERS_IN_POD}");
            stage.runtimes[rt].set_overlay(Some(&value));
            let r = helper_run(stage, rt, "fileio", &[&mib, &target], "MiB/s");
            stage.runtimes[rt].set_overlay(None);
            v.extend(r?);
        }
        Ok(v)
    }
}

struct Density {
    pods: usize,
}

fn mem_available_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| super::env::meminfo_kb(&m, "MemAvailable"))
        .unwrap_or(0)
}

/// The `Pss:` of a process (smaps_rollup), in kB.
fn pss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| super::env::meminfo_kb(&t, "Pss"))
        .unwrap_or(0)
}

impl Workload for Density {
    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>> {
        let before = mem_available_kb();
        let mut ids = vec![];
        let res = (|| -> Result<Vec<Sample>> {
            for _ in 0..self.pods {
                super::check_interrupted()?;
                let id = stage.new_id(rt);
                stage.configure(&id, &["/bin/sleep", "1000000"])?;
                ids.push(id.clone());
                stage.runtimes[rt].create_start(&stage.bundle, &id)?;
            }
            // Let the sandboxes settle (lazy allocations, the gofer's start).
            std::thread::sleep(std::time::Duration::from_millis(500));
            let after = mem_available_kb();
            let mut pids = std::collections::BTreeSet::new();
            for id in &ids {
                pids.extend(stage.pids_of(id));
            }
            pids.extend(stage.runtimes[rt].sandbox_pids());
            let pss: u64 = pids.iter().map(|p| pss_kb(*p)).sum();
            let n = self.pods as f64;
            Ok(vec![
                Sample {
                    figure: "memavailable-drop-per-pod".into(),
                    unit: "MiB",
                    value: (before.saturating_sub(after)) as f64 / 1024.0 / n,
                },
                Sample {
                    figure: "pss-per-pod".into(),
                    unit: "MiB",
                    value: pss as f64 / 1024.0 / n,
                },
            ])
        })();
        for id in &ids {
            stage.runtimes[rt].delete(id);
        }
        let v: Vec<Sample> = res?;
        // A drop of 0 (memory freed elsewhere meanwhile) is no measurement.
        Ok(v.into_iter().filter(|s| s.value > 0.0).collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn helper_output() {
        let v = super::parse_syscall_output("getpid 277.8 180208\nstat 1631.7 32752\n").unwrap();
        assert_eq!(v, [("getpid".into(), 277.8), ("stat".into(), 1631.7)]);
        assert!(super::parse_syscall_output("").is_none());
        assert!(super::parse_syscall_output("getpid x 1").is_none());
        assert!(super::parse_syscall_output("getpid 0 1").is_none());
        assert!(super::parse_syscall_output("getpid 12").is_none());
    }
}
