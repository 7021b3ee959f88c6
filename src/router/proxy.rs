//! One routed connection: a thread per direction. The request side reads
//! each head, rewrites it and copies its body by its framing; after an
//! upgrade it copies bytes as they are. The response side copies the
//! service's bytes to the client as they come and is never parsed.
//!
//! Ends: when the service closes, the client's socket is shut down both
//! ways (which wakes the request side); when the client's side ends, the
//! service's is half-closed and the response side has [`DRAIN`] to finish
//! before the connection is dropped (a client that is gone would otherwise
//! pin a quiet service's connection forever).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use super::http::{ClientConn, HeadError};
use super::{page, Connected, Entry, Refusal, Resolver, Upstream, HEAD_TIMEOUT, IDLE_TIMEOUT};

/// How long the response side may go on after the client's side ended.
const DRAIN: Duration = Duration::from_secs(60);

fn head_error_page(e: &HeadError) -> Option<Refusal> {
    match e {
        HeadError::Gone => None,
        HeadError::Timeout => Some(Refusal::new(
            408,
            "request head timed out",
            format!(
                "the request head did not arrive within {} s",
                HEAD_TIMEOUT.as_secs()
            ),
        )),
        HeadError::Bad(status, why) => Some(Refusal::new(*status, "bad request", why.clone())),
    }
}

/// Serves one client connection to its end.
pub fn handle(stream: TcpStream, entry: Entry, resolver: &dyn Resolver) {
    let client_ip = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let _ = stream.set_nodelay(true);
    let Ok(mut client_w) = stream.try_clone() else {
        return;
    };
    let mut conn = ClientConn::new(stream);
    let refuse = |w: &mut TcpStream, r: &Refusal| {
        let _ = w.write_all(&page::render(r));
        let _ = w.shutdown(Shutdown::Both);
    };
    let mut head = match conn.read_head(IDLE_TIMEOUT, HEAD_TIMEOUT) {
        Ok(h) => h,
        Err(e) => {
            if let Some(r) = head_error_page(&e) {
                refuse(&mut client_w, &r);
            }
            return;
        }
    };
    if let Err(e) = head.body() {
        if let Some(r) = head_error_page(&e) {
            refuse(&mut client_w, &r);
        }
        return;
    }
    let route = entry.route_of(&head.host());
    let Connected {
        port,
        upstream: Upstream {
            read,
            mut write,
            refused,
        },
    } = match resolver.connect(&route) {
        Ok(c) => c,
        Err(r) => return refuse(&mut client_w, &r),
    };

    let Ok(waker) = client_w.try_clone() else {
        return;
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let responses = std::thread::spawn(move || {
        copy_responses(read, client_w, refused);
        let _ = done_tx.send(());
    });

    while let Ok(body) = head.body() {
        if write.write_all(&head.rewrite(port, &client_ip)).is_err() {
            break;
        }
        if conn.copy_body(&body, &mut *write).is_err() || write.flush().is_err() {
            break;
        }
        if head.is_upgrade() {
            // Whether or not the service switches, what follows is its business.
            let _ = conn.copy_rest(&mut *write);
            break;
        }
        head = match conn.read_head(IDLE_TIMEOUT, HEAD_TIMEOUT) {
            Ok(h) => h,
            Err(_) => break,
        };
        // Keep-alive requests of one connection go to one service; a client
        // that switches hosts on it gets the connection closed and retries.
        if entry.route_of(&head.host()) != route {
            break;
        }
    }
    write.close();
    if done_rx.recv_timeout(DRAIN).is_err() {
        // The client is gone and the service says nothing: drop both.
        let _ = waker.shutdown(Shutdown::Both);
        drop(write);
    }
    drop(conn);
    let _ = responses.join();
}

/// Copies the service's bytes to the client until either side ends, then
/// shuts the client's socket down (ending the request side too).
fn copy_responses(
    mut read: Box<dyn Read + Send>,
    mut client: TcpStream,
    refused: Option<Box<dyn FnOnce() -> Option<Refusal> + Send>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        match read.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if total == 0 {
        if let Some(r) = refused.and_then(|f| f()) {
            let _ = client.write_all(&page::render(&r));
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::super::Route;
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A resolver over a map of ports to local listeners.
    struct Local {
        ports: Vec<(u16, std::net::SocketAddr)>,
        seen: Mutex<Vec<Route>>,
    }

    impl Resolver for Local {
        fn connect(&self, route: &Route) -> Result<Connected, Refusal> {
            self.seen.lock().unwrap().push(route.clone());
            let port = match route {
                Route::Port(p) => *p,
                Route::PodPort { port, .. } => *port,
                Route::Default => 80,
            };
            let Some((_, addr)) = self.ports.iter().find(|(p, _)| *p == port) else {
                return Err(Refusal::new(502, "nothing listens", format!("port {port}")));
            };
            let s = TcpStream::connect(addr).map_err(|e| Refusal::new(502, "x", e.to_string()))?;
            Ok(Connected {
                port,
                upstream: Upstream {
                    read: Box::new(s.try_clone().unwrap()),
                    write: Box::new(s),
                    refused: None,
                },
            })
        }
    }

    /// A service that answers each request with its head, as a body.
    fn echo_heads() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    loop {
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            head.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map(|v| v.parse::<usize>().unwrap())
                            .unwrap_or(0);
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        head.push_str(&String::from_utf8_lossy(&body));
                        let _ = write!(
                            w,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{head}",
                            head.len()
                        );
                    }
                });
            }
        });
        addr
    }

    fn router(entry: Entry, ports: Vec<(u16, std::net::SocketAddr)>) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let r: Arc<dyn Resolver> = Arc::new(Local {
            ports,
            seen: Mutex::new(vec![]),
        });
        std::thread::spawn(move || super::super::serve(l, entry, r));
        addr
    }

    fn read_response(r: &mut std::io::BufReader<TcpStream>) -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "closed early: {head}");
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        head + &String::from_utf8(body).unwrap()
    }

    #[test]
    fn keep_alive_requests_are_each_rewritten_and_answered_in_order() {
        let svc = echo_heads();
        let addr = router(Entry::Pod, vec![(3000, svc)]);
        let c = TcpStream::connect(addr).unwrap();
        let mut r = std::io::BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        w.write_all(
            b"POST /one HTTP/1.1\r\nHost: localhost-3000.pod-a.localhost:9\r\nContent-Length: 3\r\n\r\nabc\
              GET /two HTTP/1.1\r\nHost: localhost-3000.pod-a.localhost:9\r\n\r\n",
        )
        .unwrap();
        let one = read_response(&mut r);
        assert!(
            one.contains("POST /one HTTP/1.1\r\n") && one.ends_with("\r\n\r\nabc"),
            "{one}"
        );
        assert!(one.contains("Host: localhost:3000\r\n"), "{one}");
        assert!(
            one.contains("X-Forwarded-Host: localhost-3000.pod-a.localhost:9\r\n"),
            "{one}"
        );
        assert!(one.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{one}");
        let two = read_response(&mut r);
        assert!(two.contains("GET /two HTTP/1.1\r\n"), "{two}");
        // A request for another service on the same connection closes it.
        w.write_all(b"GET /x HTTP/1.1\r\nHost: localhost-4000.x\r\n\r\n")
            .unwrap();
        let mut rest = String::new();
        let _ = r.read_to_string(&mut rest);
        assert_eq!(rest, "");
    }

    #[test]
    fn refusals_and_bad_heads_get_a_page() {
        let addr = router(Entry::Pod, vec![]);
        for (req, status) in [
            ("GET / HTTP/1.1\r\nHost: localhost-5.x\r\n\r\n", "502"),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "400"),
            ("NOT HTTP\r\n\r\n", "400"),
        ] {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{req:?}: {out}");
            assert!(out.contains("gvpod router"), "{out}");
        }
    }

    #[test]
    fn an_upgraded_stream_is_copied_both_ways_after_the_head() {
        // A service that switches protocols, then echoes bytes.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let svc = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
            w.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
            )
            .unwrap();
            let mut b = [0u8; 5];
            r.read_exact(&mut b).unwrap();
            w.write_all(&b).unwrap();
        });
        let addr = router(Entry::Shared, vec![(7681, svc)]);
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /ws HTTP/1.1\r\nHost: 7681--t.localhost\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
            .unwrap();
        let mut r = std::io::BufReader::new(c.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "HTTP/1.1 101 Switching Protocols\r\n");
        while line != "\r\n" {
            line.clear();
            r.read_line(&mut line).unwrap();
        }
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        r.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
    }

    #[test]
    fn a_relay_that_reached_nothing_becomes_a_502() {
        struct Refusing;
        impl Resolver for Refusing {
            fn connect(&self, _: &Route) -> Result<Connected, Refusal> {
                Ok(Connected {
                    port: 1,
                    upstream: Upstream {
                        read: Box::new(std::io::empty()),
                        write: Box::new(TcpStream::connect(echo_heads()).unwrap()),
                        refused: Some(Box::new(|| {
                            Some(Refusal::new(502, "x", "port 1 of pod p: refused"))
                        })),
                    },
                })
            }
        }
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || super::super::serve(l, Entry::Pod, Arc::new(Refusing)));
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 502 "), "{out}");
        assert!(out.contains("port 1 of pod p: refused"), "{out}");
    }
}
