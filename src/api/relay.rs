//! Moves bytes between a process's stdio and a hijacked connection (conmon's
//! `ctr_stdio` for the API): the process's output to the client, as docker's
//! multiplexed frames or raw with a terminal, and the client's input to the
//! process.
//!
//! Invariants: the relay ends only after the process has ended (the `done`
//! descriptor turns readable) and its output has drained (EOF, or half a
//! second after the end, whichever comes first), so whoever closes the
//! connection after [`Relay::run`] closes it after the end was recorded; a
//! client that half-closes its sending side still gets everything (its EOF
//! closes a pipe stdin, a terminal's input stays open); a client that goes
//! away does not stop the process, whose output is then drained and
//! dropped; input never blocks output (the process's stdin is written
//! without blocking, and the client is read only when what it sent before
//! has gone through).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::http;

/// How long output may still come once the process has ended.
const DRAIN: Duration = Duration::from_millis(500);

pub struct Relay {
    /// The process's output: descriptor and docker stream (1 stdout, 2 stderr).
    pub outputs: Vec<(OwnedFd, u8)>,
    /// The process's input (a pipe's write end, or the pty master), when
    /// the client's input is carried.
    pub input: Option<OwnedFd>,
    /// Raw bytes instead of frames (a terminal merges the streams).
    pub tty: bool,
}

impl Relay {
    /// Relays until the process has ended (`done` readable) and its output
    /// drained; `conn` is the client (`None`: output is dropped).
    pub fn run(self, mut conn: Option<&UnixStream>, done: &impl AsFd) {
        let Relay {
            mut outputs,
            mut input,
            tty,
        } = self;
        if let Some(i) = &input {
            let _ = set_nonblocking(i);
        }
        let mut reading_client = input.is_some() && conn.is_some();
        let mut pending: Vec<u8> = vec![];
        let mut ended: Option<Instant> = None;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            if let Some(t) = ended {
                if outputs.is_empty() || t.elapsed() > DRAIN {
                    return;
                }
            }
            let mut fds: Vec<PollFd> = outputs
                .iter()
                .map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            let n_out = fds.len();
            let client_slot = match conn.filter(|_| reading_client && pending.is_empty()) {
                Some(c) => {
                    fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
                    Some(fds.len() - 1)
                }
                None => None,
            };
            let input_slot = match input.as_ref().filter(|_| !pending.is_empty()) {
                Some(i) => {
                    fds.push(PollFd::new(i.as_fd(), PollFlags::POLLOUT));
                    Some(fds.len() - 1)
                }
                None => None,
            };
            let done_slot = if ended.is_none() {
                fds.push(PollFd::new(done.as_fd(), PollFlags::POLLIN));
                Some(fds.len() - 1)
            } else {
                None
            };
            let timeout = if ended.is_some() {
                PollTimeout::from(50u16)
            } else {
                PollTimeout::NONE
            };
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("relay: poll: {e}");
                    return;
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            // The process's output.
            let mut closed = vec![];
            for (i, (fd, stream)) in outputs.iter().enumerate().take(n_out) {
                if !ready[i] {
                    continue;
                }
                match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                    // EIO: a pty whose other side is all closed.
                    Ok(0) | Err(Errno::EIO) => closed.push(i),
                    Ok(n) => {
                        if let Some(c) = conn {
                            let data = if tty {
                                buf[..n].to_vec()
                            } else {
                                http::frame(*stream, &buf[..n])
                            };
                            if send(c, &data).is_err() {
                                tracing::debug!("relay: the client went away");
                                conn = None;
                                reading_client = false;
                            }
                        }
                    }
                    Err(Errno::EINTR | Errno::EAGAIN) => {}
                    Err(_) => closed.push(i),
                }
            }
            for i in closed.into_iter().rev() {
                outputs.remove(i);
            }
            // The client's input.
            if let (Some(slot), Some(mut c)) = (client_slot, conn) {
                if ready[slot] {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => {
                            reading_client = false;
                            // EOF closes a pipe; a terminal stays open.
                            if !tty {
                                input = None;
                            }
                        }
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            }
            if let (Some(slot), Some(i)) = (input_slot, input.as_ref()) {
                if ready[slot] {
                    match nix::unistd::write(i, &pending) {
                        Ok(n) => {
                            pending.drain(..n);
                        }
                        Err(Errno::EINTR | Errno::EAGAIN) => {}
                        Err(_) => {
                            // The process closed its stdin: drop what is left.
                            pending.clear();
                            input = None;
                            reading_client = false;
                        }
                    }
                }
            }
            if !pending.is_empty() && input.is_none() {
                pending.clear();
            }
            if done_slot.is_some_and(|s| ready[s]) {
                ended = Some(Instant::now());
                // Nobody reads the input any more.
                input = None;
                reading_client = false;
            }
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

fn send(mut c: &UnixStream, data: &[u8]) -> std::io::Result<()> {
    c.write_all(data)?;
    c.flush()
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fl = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process stand-in: `sh -c` with pipes, relayed to one end of a
    /// socket pair the test reads as the client.
    fn relay_sh(script: &str, input: &[u8]) -> Vec<u8> {
        let (out_r, out_w) = pipe().unwrap();
        let (err_r, err_w) = pipe().unwrap();
        let (in_r, in_w) = pipe().unwrap();
        let (done_r, done_w) = pipe().unwrap();
        let mut done_w = std::fs::File::from(done_w);
        let mut child = std::process::Command::new("sh")
            .args(["-c", script])
            .stdin(in_r)
            .stdout(out_w)
            .stderr(err_w)
            .spawn()
            .unwrap();
        let waiter = std::thread::spawn(move || {
            let _ = child.wait();
            let _ = done_w.write_all(b"x");
        });
        let (server, mut client) = UnixStream::pair().unwrap();
        let mut sender = client.try_clone().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            sender.write_all(&input).unwrap();
            sender.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let relay = Relay {
            outputs: vec![(out_r, 1), (err_r, 2)],
            input: Some(in_w),
            tty: false,
        };
        let t = std::thread::spawn(move || {
            relay.run(Some(&server), &done_r);
        });
        let mut got = vec![];
        client.read_to_end(&mut got).unwrap();
        feeder.join().unwrap();
        t.join().unwrap();
        waiter.join().unwrap();
        got
    }

    #[test]
    fn output_is_framed_by_stream_and_input_reaches_the_process() {
        let got = relay_sh("cat; echo oops >&2", b"hi\n");
        let mut want = http::frame(1, b"hi\n");
        want.extend(http::frame(2, b"oops\n"));
        assert_eq!(got, want);
    }

    #[test]
    fn big_input_does_not_block_output() {
        let input = vec![b'a'; 1 << 20];
        let got = relay_sh("cat", &input);
        // Strip the frames: the payloads are the input again.
        let mut payload = vec![];
        let mut rest = &got[..];
        while rest.len() >= 8 {
            assert_eq!(rest[0], 1);
            let n = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            payload.extend_from_slice(&rest[8..8 + n]);
            rest = &rest[8 + n..];
        }
        assert!(rest.is_empty());
        assert_eq!(payload.len(), input.len());
    }
}
