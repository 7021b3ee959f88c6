//! The `checkpoint` workload: runsc's save and restore, as its users time
//! them (DESIGN.md's third user group):
//! - `checkpoint-<N>mib` / `restore-<N>mib` (ms) and the memory image's
//!   size `image-<N>mib` (MiB): a container running the memfill helper
//!   (benches/memfill.c, built by build.rs) that has touched N MiB of
//!   incompressible heap is checkpointed, deleted, and restored under a new
//!   id from the same bundle (`restore --detach`: the time until the
//!   restored sandbox runs);
//! - `first-http-after-restore` (ms): busybox httpd in a network
//!   namespace of the bench's own ([`Stage::make_netns`]), checkpointed
//!   once while it had never served a connection, is restored every round
//!   and timed from the restore command to the first HTTP answer the host
//!   gets over the veth.
//!
//! Invariants:
//! - runsc only: runc checkpoints through CRIU, which gvpod does not
//!   drive; it gets no samples and one "n/a" note in the report;
//! - checkpoint and restore use the same args, mounts and rootfs (DESIGN.md
//!   fact 10): the restore's config differs only in its cgroup path;
//! - no TCP connection touches the server before its save (releases before
//!   20251208 refuse to save eth0 endpoints that are open or in TIME_WAIT,
//!   REFERENCES.md "TCP and saves"): its readiness is a file it writes;
//! - memory images live under the bench's work directory and each is
//!   removed after its round (at most one of N MiB exists at a time);
//! - the runtime is networked only around the server's calls and leaves
//!   networked mode on every path; the [`Stage`] guard removes whatever is
//!   left.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::workloads::{Sample, Workload};
use super::{BenchError, Result, Stage, HELPERS_IN_POD, OUT_IN_POD};

/// The memfill helper, built by build.rs.
static MEMFILL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gvpod-bench-memfill"));

/// How long a container may take to say it is ready, or a restored server
/// to answer.
const READY_WITHIN: Duration = Duration::from_secs(30);

pub struct Checkpoint {
    /// Memory sizes (MiB) of the save/restore figures.
    sizes: Vec<u32>,
    /// The checkpointed server of each runsc runtime.
    servers: Vec<Option<Server>>,
    /// Labels of the runtimes that got no samples (runc).
    skipped: Vec<String>,
}

struct Server {
    netns: PathBuf,
    ip: Ipv4Addr,
    /// Its args (a restore must repeat them).
    args: Vec<String>,
    image: PathBuf,
}

impl Checkpoint {
    pub fn new(quick: bool) -> Checkpoint {
        Checkpoint {
            sizes: if quick { vec![16] } else { vec![16, 128] },
            servers: vec![],
            skipped: vec![],
        }
    }

    fn install(stage: &Stage) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = stage
            .rootfs
            .join(HELPERS_IN_POD.trim_start_matches('/'))
            .join("memfill");
        if p.exists() {
            return Ok(());
        }
        let io = |source| BenchError::Io {
            path: p.clone(),
            source,
        };
        std::fs::write(&p, MEMFILL).map_err(io)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(io)
    }
}

/// A shell line that runs `cmd`, then creates `ready` (under the bench's
/// output bind mount) once `cmd`'s first output line says it is ready
/// (memfill prints "ready" after touching its memory), and keeps reading.
pub fn ready_script(cmd: &str, ready: &str) -> String {
    format!("{cmd} | {{ read l; : > {ready}; exec cat > /dev/null; }}")
}

fn failed(stage: &Stage, rt: usize, what: &str, msg: String) -> BenchError {
    BenchError::Failed {
        runtime: stage.runtimes[rt].info.label.clone(),
        what: what.into(),
        msg,
    }
}

/// Waits until the host file `path` exists.
fn wait_file(stage: &Stage, rt: usize, path: &Path, what: &str) -> Result<()> {
    let deadline = Instant::now() + READY_WITHIN;
    while !path.exists() {
        super::check_interrupted()?;
        if Instant::now() > deadline {
            return Err(failed(
                stage,
                rt,
                what,
                format!("the container did not get ready within {READY_WITHIN:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The total size of the files directly in `dir`, in MiB.
fn dir_mib(dir: &Path) -> f64 {
    crate::snapshot::dir_size(dir) as f64 / 1048576.0
}

/// One HTTP/1.0 GET of `/index.html`: whether an HTTP status line came back.
fn http_answers(addr: &SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

impl Checkpoint {
    /// Starts the server in a netns of its own and saves it (the runtime
    /// is networked meanwhile).
    fn save_server(&mut self, stage: &mut Stage, rt: usize) -> Result<()> {
        super::network::Network::install(stage)?;
        let (netns, ip) = stage.make_netns(rt)?;
        let id = stage.new_id(rt);
        let ready = format!("ready-{id}");
        let args = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(
                "httpd -p 80 -h {HELPERS_IN_POD}/www || exit 3; : > {OUT_IN_POD}/{ready}; exec sleep 1000000"
            ),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        stage.configure_in(&id, &argv, Some(&netns))?;
        stage.runtimes[rt].create_start(&stage.bundle, &id)?;
        wait_file(stage, rt, &stage.out.join(&ready), "checkpoint (server)")?;
        let image = stage.work.join(format!("server-image{rt}"));
        let res = stage.runtimes[rt].checkpoint(&id, &image);
        stage.runtimes[rt].delete(&id);
        res?;
        self.servers[rt] = Some(Server {
            netns,
            ip,
            args,
            image,
        });
        Ok(())
    }

    /// Restores the server under a new id and times the first answer.
    fn restore_server(&self, stage: &mut Stage, rt: usize) -> Result<f64> {
        let Some(Some(s)) = self.servers.get(rt) else {
            return Err(failed(stage, rt, "checkpoint", "no saved server".into()));
        };
        // DESIGN.md fact 4: the previous restore's runsc stripped eth0.
        stage.readdress_netns(rt, &s.netns, s.ip)?;
        let id = stage.new_id(rt);
        let argv: Vec<&str> = s.args.iter().map(String::as_str).collect();
        stage.configure_in(&id, &argv, Some(&s.netns))?;
        let addr = SocketAddr::from((s.ip, 80));
        let t = Instant::now();
        let res = (|| {
            stage.runtimes[rt].restore(&stage.bundle, &id, &s.image)?;
            loop {
                if http_answers(&addr) {
                    return Ok(ms(t));
                }
                super::check_interrupted()?;
                if t.elapsed() > READY_WITHIN {
                    return Err(failed(
                        stage,
                        rt,
                        "checkpoint (server)",
                        format!(
                            "the restored server did not answer on {addr} within {READY_WITHIN:?}"
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })();
        stage.runtimes[rt].delete(&id);
        res
    }

    /// Saves and restores a container that touched `mib` MiB.
    fn save_restore(&self, stage: &mut Stage, rt: usize, mib: u32) -> Result<Vec<Sample>> {
        let id = stage.new_id(rt);
        let ready = format!("{OUT_IN_POD}/ready-{id}");
        let script = ready_script(&format!("{HELPERS_IN_POD}/memfill {mib}"), &ready);
        let argv = ["/bin/sh", "-c", &script];
        stage.configure(&id, &argv)?;
        let image = stage.work.join(format!("image-{id}"));
        let res = (|| {
            stage.runtimes[rt].create_start(&stage.bundle, &id)?;
            wait_file(
                stage,
                rt,
                &stage.out.join(format!("ready-{id}")),
                "checkpoint",
            )?;
            let t = Instant::now();
            stage.runtimes[rt].checkpoint(&id, &image)?;
            let save = ms(t);
            let size = dir_mib(&image);
            stage.runtimes[rt].delete(&id);
            let id2 = stage.new_id(rt);
            stage.configure(&id2, &argv)?;
            let t = Instant::now();
            let r = stage.runtimes[rt].restore(&stage.bundle, &id2, &image);
            let restore = ms(t);
            stage.runtimes[rt].delete(&id2);
            r?;
            Ok(vec![
                Sample {
                    figure: format!("checkpoint-{mib}mib"),
                    unit: "ms",
                    value: save,
                },
                Sample {
                    figure: format!("restore-{mib}mib"),
                    unit: "ms",
                    value: restore,
                },
                Sample {
                    figure: format!("image-{mib}mib"),
                    unit: "MiB",
                    value: size,
                },
            ])
        })();
        stage.runtimes[rt].delete(&id);
        let _ = crate::sys::remove_path(&image);
        res
    }
}

impl Workload for Checkpoint {
    fn prepare(&mut self, stage: &mut Stage, rt: usize) -> Result<()> {
        if self.servers.len() <= rt {
            self.servers.resize_with(rt + 1, || None);
        }
        if !stage.runtimes[rt].can_checkpoint() {
            self.skipped.push(stage.runtimes[rt].info.label.clone());
            return Ok(());
        }
        Checkpoint::install(stage)?;
        stage.runtimes[rt].set_networked(true);
        let res = self.save_server(stage, rt);
        stage.runtimes[rt].set_networked(false);
        res
    }

    /// `prepare` started, saved and deleted a container on this runtime
    /// already (the restore path is the only one not yet taken: runsc's
    /// binary and the bundle are in the page cache).
    fn warm_up(&self) -> bool {
        false
    }

    fn sample(&mut self, stage: &mut Stage, rt: usize) -> Result<Vec<Sample>> {
        if !stage.runtimes[rt].can_checkpoint() {
            return Ok(vec![]);
        }
        let mut v = vec![];
        for mib in self.sizes.clone() {
            super::check_interrupted()?;
            v.extend(self.save_restore(stage, rt, mib)?);
        }
        super::check_interrupted()?;
        stage.runtimes[rt].set_networked(true);
        let first = self.restore_server(stage, rt);
        stage.runtimes[rt].set_networked(false);
        v.push(Sample {
            figure: "first-http-after-restore".into(),
            unit: "ms",
            value: first?,
        });
        Ok(v)
    }

    fn finish(&mut self, stage: &mut Stage, rt: usize) {
        if let Some(Some(s)) = self.servers.get_mut(rt).map(Option::take) {
            let _ = crate::sys::remove_path(&s.image);
        }
        if rt + 1 == stage.runtimes.len() {
            stage.remove_nets();
        }
    }

    fn notes(&self) -> Vec<String> {
        let criu = if super::runtime::on_path("criu").is_some() {
            "which gvpod bench does not drive"
        } else {
            "not installed"
        };
        self.skipped
            .iter()
            .map(|l| format!("checkpoint: n/a for {l}: runc checkpoints through CRIU ({criu}); only runsc is measured"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_script_reads_one_line_then_drains() {
        assert_eq!(
            super::ready_script("/h/memfill 16", "/o/ready-x"),
            "/h/memfill 16 | { read l; : > /o/ready-x; exec cat > /dev/null; }"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(super::Checkpoint::new(true).sizes, [16]);
        assert_eq!(super::Checkpoint::new(false).sizes, [16, 128]);
    }
}
