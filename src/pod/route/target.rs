//! Opening a connection to port N of a pod (see the parent module): its
//! address first, then its loopback through `runsc port-forward --stream`
//! or gvpod's relay under `runsc exec`. Every relay process is reaped on a
//! thread of its own whatever the proxy does with the connection.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::super::{Ctx, Result};
use crate::router::{Refusal, UpWrite, Upstream};
use crate::runsc::{GlobalFlags, Runsc};
use crate::state::PodRow;

/// How long a connection to a pod's address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a relay may take to start (runsc dials back, or execs).
const RELAY_START: Duration = Duration::from_secs(10);

/// What reaching a pod's ports takes, read once from the DB.
pub struct PodTarget {
    id: String,
    name: String,
    /// Its address on its network, 127.0.0.1 with the host's network,
    /// none without a network (then only its loopback is reachable).
    addr: Option<Ipv4Addr>,
    runsc: Runsc,
    flags: GlobalFlags,
    /// Where relay sockets are made (short: a unix socket path has 108 bytes).
    sock_dir: PathBuf,
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
            sock_dir: ctx.run_dir.clone(),
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
        // runsc's port-forward works on a sandbox netstack only ("unsupported
        // network type none" otherwise): a pod with no network gets the relay.
        if self.runsc.features.port_forward_stream && self.flags.network == "sandbox" {
            self.port_forward(port)
        } else {
            self.relay(port)
        }
    }

    fn failed(&self, port: u16, why: String) -> Refusal {
        Refusal::new(
            502,
            format!("port {port} of pod {} cannot be reached", self.name),
            why,
        )
    }

    /// Through `runsc port-forward --stream`: runsc dials a socket of ours.
    fn port_forward(&self, port: u16) -> std::result::Result<Upstream, Refusal> {
        let sock = self
            .sock_dir
            .join(format!("pf-{}.sock", crate::util::random_hex(6)));
        let listener = std::os::unix::net::UnixListener::bind(&sock)
            .map_err(|e| self.failed(port, format!("{}: {e}", sock.display())))?;
        let child = self
            .runsc
            .port_forward(&self.flags, &self.id, &sock, port)
            .stderr(Stdio::piped())
            .spawn();
        let accepted = child.map_err(|e| e.to_string()).and_then(|mut c| {
            match accept_within(&listener, &mut c, RELAY_START) {
                Ok(s) => Ok((s, c)),
                Err(e) => {
                    let _ = c.kill();
                    let why = finish(c).1;
                    Err(if why.is_empty() { e } else { why })
                }
            }
        });
        let _ = std::fs::remove_file(&sock);
        let (stream, child) = accepted.map_err(|why| self.relay_failed(port, &why))?;
        let done = wait_in_background(child);
        let read = stream
            .try_clone()
            .map_err(|e| self.failed(port, e.to_string()))?;
        Ok(Upstream {
            read: Box::new(read),
            write: Box::new(stream),
            refused: Some(self.refused_by(port, done)),
        })
    }

    /// Through gvpod's relay, run in the pod by `runsc exec`.
    fn relay(&self, port: u16) -> std::result::Result<Upstream, Refusal> {
        let mut child = self
            .runsc
            .relay(&self.flags, &self.id, &[port.to_string()])
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

    fn relay_failed(&self, port: u16, why: &str) -> Refusal {
        if why.contains("refused") {
            return self.nothing(port);
        }
        self.failed(port, why.to_string())
    }
}

/// Accepts runsc's connection on `l`, unless runsc ends or `limit` passes.
fn accept_within(
    l: &std::os::unix::net::UnixListener,
    child: &mut Child,
    limit: Duration,
) -> std::result::Result<std::os::unix::net::UnixStream, String> {
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let until = Instant::now() + limit;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("runsc port-forward ended ({st}) before connecting"));
        }
        if Instant::now() > until {
            return Err(format!(
                "runsc port-forward did not connect within {limit:?}"
            ));
        }
        // runsc dials within a few ms: wait on the listener briefly.
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let _ = poll(
            &mut [PollFd::new(l.as_fd(), PollFlags::POLLIN)],
            PollTimeout::from(20u8),
        );
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
