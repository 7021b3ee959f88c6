//! Opening a connection to port N of a pod (see the parent module): its
//! address first, then its loopback through gvpod's relay under `runsc
//! exec`. Every relay process is reaped on a thread of its own whatever
//! the proxy does with the connection.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::super::{Ctx, Result};
use crate::router::{Refusal, UpWrite, Upstream};
use crate::runsc::{GlobalFlags, Runsc};
use crate::state::PodRow;

/// How long a connection to a pod's address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What reaching a pod's ports takes, read once from the DB.
pub struct PodTarget {
    id: String,
    name: String,
    /// Its address on its network, 127.0.0.1 with the host's network,
    /// none without a network (then only its loopback is reachable).
    addr: Option<Ipv4Addr>,
    runsc: Runsc,
    flags: GlobalFlags,
    /// The relay's path in the pod (`pod::helpers::relay_of`).
    relay: &'static str,
}

impl PodTarget {
    pub fn of(ctx: &Ctx, pod: &PodRow) -> Result<PodTarget> {
        let flags = ctx.flags_of(pod)?;
        let addr = match ctx.db.lease_of(&pod.id)? {
            Some((_, ip)) => Some(ip),
            None if flags.network == "host" => Some(Ipv4Addr::LOCALHOST),
            None => None,
        };
        Ok(PodTarget {
            id: pod.id.clone(),
            name: pod.name.clone(),
            addr,
            runsc: ctx.runsc_for(&flags)?,
            flags,
            relay: super::super::helpers::relay_of(&ctx.bundle_dir(&pod.id)),
        })
    }

    fn nothing(&self, port: u16) -> Refusal {
        Refusal::new(
            502,
            format!("nothing listens on port {port} of pod {}", self.name),
            format!(
                "pod {} runs, but no process in it listens on port {port} (on its address or its loopback); start the service, or see `gvpod port {} --listening`",
                self.name, self.name
            ),
        )
    }

    /// Opens a connection to port `port` of the pod.
    pub fn open(&self, port: u16) -> std::result::Result<Upstream, Refusal> {
        if let Some(ip) = self.addr {
            match TcpStream::connect_timeout(&SocketAddrV4::new(ip, port).into(), CONNECT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let r = s
                        .try_clone()
                        .map_err(|e| self.failed(port, e.to_string()))?;
                    return Ok(Upstream {
                        read: Box::new(r),
                        write: Box::new(s),
                        refused: None,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    if self.flags.network == "host" {
                        return Err(self.nothing(port));
                    }
                }
                Err(e) => return Err(self.failed(port, format!("{ip}:{port}: {e}"))),
            }
        }
        self.relay(port)
    }

    fn failed(&self, port: u16, why: String) -> Refusal {
        Refusal::new(
            502,
            format!("port {port} of pod {} cannot be reached", self.name),
            why,
        )
    }

    /// Through gvpod's relay, run in the pod by `runsc exec`.
    fn relay(&self, port: u16) -> std::result::Result<Upstream, Refusal> {
        let mut child = self
            .runsc
            .relay(&self.flags, &self.id, self.relay, &[port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.failed(port, e.to_string()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = finish(child);
            return Err(self.failed(port, "no pipes to runsc exec".into()));
        };
        let done = wait_in_background(child);
        Ok(Upstream {
            read: Box::new(stdout),
            write: Box::new(PipeWrite(Some(stdin))),
            refused: Some(self.refused_by(port, done)),
        })
    }

    /// What a relay that ended without a byte says, as the client's 502.
    fn refused_by(
        &self,
        port: u16,
        done: mpsc::Receiver<(bool, String)>,
    ) -> Box<dyn FnOnce() -> Option<Refusal> + Send> {
        let nothing = self.nothing(port);
        let failed = self.failed(port, String::new());
        Box::new(move || match done.recv_timeout(Duration::from_secs(5)) {
            Ok((false, why)) if why.contains("refused") => Some(nothing),
            Ok((false, why)) => Some(Refusal {
                detail: why,
                ..failed
            }),
            _ => None,
        })
    }
}

/// Reads a relay's stderr and reaps it: (succeeded, its last error line).
fn finish(mut child: Child) -> (bool, String) {
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    let line = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string();
    (ok, line)
}

/// Reaps the relay on a thread of its own (no zombie, whatever the proxy does).
fn wait_in_background(child: Child) -> mpsc::Receiver<(bool, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(finish(child));
    });
    rx
}

/// The relay's stdin as the write half of a connection.
struct PipeWrite(Option<std::process::ChildStdin>);

impl std::io::Write for PipeWrite {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(p) => p.write(b),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl UpWrite for PipeWrite {
    fn close(&mut self) {
        self.0 = None;
    }
}
