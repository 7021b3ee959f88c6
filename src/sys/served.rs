//! A TCP listener served on a thread of its own until its owner stops it.
//!
//! Why stopping matters: a pod's monitor serves its published ports and its
//! route port, and the next holder of those ports (the same pod restored in
//! place, or restarted) binds them as soon as the monitor says it is done.
//! A listener left to die with the monitor's process stays bound through
//! the monitor's last chores, and that bind failed with "port already in
//! use" (seen once in a soak: checkpoint, then an in-place restore at once).
//!
//! Invariant: once a [`Served`] is dropped, no listening
//! socket of this port is open in this process. Connections already
//! accepted go on (their sockets share the port but, not listening and
//! with `SO_REUSEADDR` as std sets it, do not block a new listener).
//!
//! How: closing a descriptor another thread is blocked in `accept(2)` on
//! does not wake it on Linux; `shutdown(2)` of a listening socket does
//! (the socket leaves the LISTEN state and `accept` fails with EINVAL). So
//! the drop sets a flag, shuts the socket down, and joins the thread, which
//! drops its listener on the way out.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A listener being served; dropping it stops the thread and closes the
/// listener.
pub struct Served {
    /// The same socket as the thread's listener, to shut it down with.
    socket: Option<OwnedFd>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Accepts connections on `listener` and hands each to `on_conn` (which
/// should not block: spawn a thread for the connection) until stopped.
pub fn serve<F>(listener: TcpListener, on_conn: F) -> std::io::Result<Served>
where
    F: Fn(TcpStream) + Send + 'static,
{
    let socket = OwnedFd::from(listener.try_clone()?);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_loop(&listener, &stopped, &on_conn))?;
    Ok(Served {
        socket: Some(socket),
        stop,
        thread: Some(thread),
    })
}

/// [`serve`] on the calling thread, for as long as the process lives (the
/// shared router of `gvpod router` and of the API service).
pub fn serve_forever<F: Fn(TcpStream)>(listener: TcpListener, on_conn: F) {
    accept_loop(&listener, &AtomicBool::new(false), &on_conn);
}

/// Accepts until `stop` is set (seen when `accept` returns: see the module
/// docs for what wakes it).
fn accept_loop(listener: &TcpListener, stop: &AtomicBool, on_conn: &impl Fn(TcpStream)) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        match conn {
            Ok(stream) => on_conn(stream),
            // EMFILE and friends: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

impl Served {
    fn halt(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // Wakes the thread's accept (EINVAL from then on); a connection
        // accepted meanwhile is served or dropped by the thread as usual.
        let woken =
            nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        drop(socket);
        // Never joined unwoken (that would hang its owner for good): the
        // listener then closes with the process, as it did before.
        if let (Ok(()), Some(t)) = (woken, self.thread.take()) {
            let _ = t.join();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Ipv4Addr;

    #[test]
    fn stop_frees_the_port_while_a_connection_goes_on() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = l.local_addr().unwrap();
        let served = serve(l, |mut s| {
            std::thread::spawn(move || {
                let mut b = [0u8; 4];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        })
        .unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        // Bound and listening: a second listener is refused.
        assert!(TcpListener::bind(addr).is_err());
        drop(served);
        // Free at once, with the accepted connection still open and served.
        let again = TcpListener::bind(addr).expect("port free after stop");
        c.write_all(b"pong").unwrap();
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"pong");
        drop(again);
    }

    #[test]
    fn drop_stops_too() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = l.local_addr().unwrap();
        drop(serve(l, drop).unwrap());
        assert!(TcpListener::bind(addr).is_ok());
        assert!(TcpStream::connect(addr).is_err());
    }
}
