//! The little of HTTP/1.1 the router needs on the client's side: read a
//! request head (with the only timeout a route has), rewrite it for the
//! service, and copy its body by its framing so the next head of a
//! keep-alive connection is found. Bodies are copied as they arrive,
//! chunk by chunk, never gathered (an upload or a long poll streams).
//!
//! Framing follows RFC 9112 section 6: `Transfer-Encoding` (chunked last)
//! wins; else `Content-Length`; else a request has no body. A request with
//! both, with an unknown transfer coding, or with two different lengths is
//! refused with 400: a proxy and the service reading such a request
//! differently is request smuggling (CVE-2019-18277 and kin).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Longest request head accepted (nginx's large_client_header_buffers
/// default is 4 × 8 KiB; browsers with many cookies stay well below).
pub const MAX_HEAD: usize = 64 * 1024;

/// A request head as the client sent it.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// How the body after a head is delimited.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Why no head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The client closed or reset the connection, or went idle too long
    /// between requests: end quietly.
    Gone,
    /// A head that started did not finish in time (408).
    Timeout,
    /// Not HTTP/1.x, too long, or ambiguous framing (400 / 431).
    Bad(u16, String),
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn host(&self) -> String {
        self.header("host")
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_default()
    }

    /// Comma-separated tokens of every header `name`, lowercased.
    fn tokens(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// A protocol switch (WebSocket): after it, bytes go both ways as they are.
    pub fn is_upgrade(&self) -> bool {
        self.header("upgrade").is_some() && self.tokens("connection").iter().any(|t| t == "upgrade")
    }

    /// The body framing, or 400 for an ambiguous one.
    pub fn body(&self) -> Result<Body, HeadError> {
        let te = self.tokens("transfer-encoding");
        let lengths: Vec<&[u8]> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_slice())
            .collect();
        let bad = |why: &str| Err(HeadError::Bad(400, why.to_string()));
        if !te.is_empty() {
            if !lengths.is_empty() {
                return bad("both Transfer-Encoding and Content-Length");
            }
            if te.last().map(String::as_str) != Some("chunked") {
                return bad("a transfer coding other than chunked last");
            }
            return Ok(Body::Chunked);
        }
        let mut n: Option<u64> = None;
        for l in lengths {
            let s = std::str::from_utf8(l).unwrap_or("").trim();
            let v = match s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
                true => s.parse::<u64>().ok(),
                false => None,
            };
            match (v, n) {
                (None, _) => return bad("an invalid Content-Length"),
                (Some(v), Some(old)) if v != old => return bad("two different Content-Lengths"),
                (Some(v), _) => n = Some(v),
            }
        }
        Ok(match n {
            Some(0) | None => Body::None,
            Some(n) => Body::Length(n),
        })
    }

    /// The head as the service gets it: Host rewritten to `localhost:PORT`
    /// (what the platform's nginx sends, so dev servers that check Host
    /// accept it), the original kept in `X-Forwarded-Host`, the client's
    /// address added to `X-Forwarded-For`, `X-Forwarded-Proto` set. Values
    /// a proxy in front of the router already set for Host and Proto are
    /// kept: they describe the client's view better than this hop.
    pub fn rewrite(&self, port: u16, client: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let _ = write!(
            out,
            "{} {} HTTP/1.{}\r\n",
            self.method, self.target, self.minor
        );
        let mut forwarded_for: Option<Vec<u8>> = None;
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("host") {
                continue;
            }
            if n.eq_ignore_ascii_case("x-forwarded-for") {
                let f = forwarded_for.get_or_insert_with(Vec::new);
                if !f.is_empty() {
                    f.extend_from_slice(b", ");
                }
                f.extend_from_slice(v);
                continue;
            }
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        let _ = write!(out, "Host: localhost:{port}\r\n");
        if self.header("x-forwarded-host").is_none() {
            out.extend_from_slice(b"X-Forwarded-Host: ");
            out.extend_from_slice(self.header("host").unwrap_or_default());
            out.extend_from_slice(b"\r\n");
        }
        if self.header("x-forwarded-proto").is_none() {
            out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
        }
        out.extend_from_slice(b"X-Forwarded-For: ");
        if let Some(f) = forwarded_for {
            out.extend_from_slice(&f);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out
    }
}

/// The client's side of a connection, with what was read past the last head.
pub struct ClientConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ClientConn {
    pub fn new(stream: TcpStream) -> ClientConn {
        ClientConn {
            stream,
            buf: vec![0; MAX_HEAD],
            start: 0,
            end: 0,
        }
    }

    /// Reads the next request head. Waiting for its first byte may last
    /// `idle` (an idle keep-alive connection); once it has started, the
    /// whole head must arrive within `head_timeout`.
    pub fn read_head(&mut self, idle: Duration, head_timeout: Duration) -> Result<Head, HeadError> {
        let mut deadline: Option<Instant> = None;
        loop {
            if self.end > self.start {
                // A stray CRLF between requests is allowed (RFC 9112 2.2).
                while self.end > self.start && matches!(self.buf[self.start], b'\r' | b'\n') {
                    self.start += 1;
                }
            }
            if self.end > self.start {
                deadline.get_or_insert_with(|| Instant::now() + head_timeout);
                let mut headers = [httparse::EMPTY_HEADER; 128];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = Head {
                            method: req.method.unwrap_or("GET").to_string(),
                            target: req.path.unwrap_or("/").to_string(),
                            minor: req.version.unwrap_or(1),
                            headers: req
                                .headers
                                .iter()
                                .map(|h| (h.name.to_string(), h.value.to_vec()))
                                .collect(),
                        };
                        self.start += n;
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(HeadError::Bad(431, "more than 128 header fields".into()))
                    }
                    Err(e) => {
                        return Err(HeadError::Bad(
                            400,
                            format!("not an HTTP/1.x request ({e})"),
                        ))
                    }
                }
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                return Err(HeadError::Bad(
                    431,
                    format!("a request head over {} KiB", MAX_HEAD / 1024),
                ));
            }
            let wait = match deadline {
                None => idle,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(HeadError::Timeout),
                },
            };
            let _ = self.stream.set_read_timeout(Some(wait));
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(HeadError::Gone),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(match deadline {
                        Some(_) => HeadError::Timeout,
                        None => HeadError::Gone,
                    })
                }
                Err(_) => return Err(HeadError::Gone),
            }
        }
    }

    /// Reads more from the socket after what is buffered (blocking, no
    /// timeout: a body or an upgraded stream may pause). Returns the count.
    fn fill(&mut self) -> io::Result<usize> {
        let _ = self.stream.set_read_timeout(None);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
            }
        }
    }

    /// Takes up to `max` bytes: what is buffered, else what the socket gives.
    fn read_some(&mut self, max: usize) -> io::Result<&[u8]> {
        if self.end == self.start {
            self.fill()?;
        }
        let n = (self.end - self.start).min(max);
        let s = &self.buf[self.start..self.start + n];
        self.start += n;
        Ok(s)
    }

    /// Takes one line (up to and including LF) of a chunked body, at most 4 KiB.
    fn read_line(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .iter()
                .position(|b| *b == b'\n')
            {
                out.extend_from_slice(&self.buf[self.start..self.start + i + 1]);
                self.start += i + 1;
                return Ok(());
            }
            if self.end - self.start > 4096 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk line too long",
                ));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Copies `n` body bytes to `to`.
    fn copy_exact(&mut self, mut n: u64, to: &mut dyn Write) -> io::Result<()> {
        while n > 0 {
            let s = self.read_some(n.min(usize::MAX as u64) as usize)?;
            if s.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            n -= s.len() as u64;
            to.write_all(s)?;
        }
        Ok(())
    }

    /// Copies a request body to `to` as it arrives, bytes unchanged.
    pub fn copy_body(&mut self, body: &Body, to: &mut dyn Write) -> io::Result<()> {
        match body {
            Body::None => Ok(()),
            Body::Length(n) => self.copy_exact(*n, to),
            Body::Chunked => loop {
                let mut line = vec![];
                self.read_line(&mut line)?;
                let size_text = String::from_utf8_lossy(&line);
                let size_text = size_text.trim_end().split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_text, 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                to.write_all(&line)?;
                if size == 0 {
                    // Trailer fields, then the empty line.
                    loop {
                        let mut t = vec![];
                        self.read_line(&mut t)?;
                        to.write_all(&t)?;
                        if t == b"\r\n" || t == b"\n" {
                            return Ok(());
                        }
                    }
                }
                self.copy_exact(size, to)?;
                let mut crlf = vec![];
                self.read_line(&mut crlf)?;
                to.write_all(&crlf)?;
            },
        }
    }

    /// Copies everything the client sends from now on (an upgraded stream).
    pub fn copy_rest(&mut self, to: &mut dyn Write) -> io::Result<()> {
        loop {
            let s = self.read_some(usize::MAX)?;
            if s.is_empty() {
                return Ok(());
            }
            to.write_all(s)?;
            to.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, ClientConn) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, ClientConn::new(s))
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn heads_bodies_and_the_next_head_of_a_keep_alive_connection() {
        let (mut c, mut conn) = pair();
        c.write_all(
            b"POST /a HTTP/1.1\r\nHost: localhost-3000.pod-w.localhost:8080\r\nContent-Length: 5\r\n\r\nhello\
              POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n\
              GET /c HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .unwrap();
        let h = conn.read_head(T, T).unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str()), ("POST", "/a"));
        assert_eq!(h.body().unwrap(), Body::Length(5));
        let mut out = vec![];
        conn.copy_body(&h.body().unwrap(), &mut out).unwrap();
        assert_eq!(out, b"hello");
        let h = conn.read_head(T, T).unwrap();
        assert_eq!(h.body().unwrap(), Body::Chunked);
        let mut out = vec![];
        conn.copy_body(&Body::Chunked, &mut out).unwrap();
        assert_eq!(out, b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n");
        let h = conn.read_head(T, T).unwrap();
        assert_eq!(h.target, "/c");
        assert_eq!(h.body().unwrap(), Body::None);
        drop(c);
        assert!(matches!(conn.read_head(T, T), Err(HeadError::Gone)));
    }

    #[test]
    fn a_head_that_stalls_times_out_and_an_idle_connection_just_ends() {
        let (mut c, mut conn) = pair();
        let short = Duration::from_millis(200);
        assert!(matches!(conn.read_head(short, T), Err(HeadError::Gone)));
        c.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        assert!(matches!(conn.read_head(T, short), Err(HeadError::Timeout)));
    }

    #[test]
    fn ambiguous_framing_and_oversized_heads_are_refused() {
        let head = |extra: &str| {
            let (mut c, mut conn) = pair();
            c.write_all(format!("POST / HTTP/1.1\r\nHost: h\r\n{extra}\r\n").as_bytes())
                .unwrap();
            conn.read_head(T, T).unwrap()
        };
        for bad in [
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Content-Length: 3\r\nContent-Length: 4\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
        ] {
            assert!(
                matches!(head(bad).body(), Err(HeadError::Bad(400, _))),
                "{bad}"
            );
        }
        assert_eq!(
            head("Content-Length: 2\r\nContent-Length: 2\r\n")
                .body()
                .unwrap(),
            Body::Length(2)
        );
        let (mut c, mut conn) = pair();
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        std::thread::spawn(move || {
            let _ = c.write_all(big.as_bytes());
        });
        assert!(matches!(conn.read_head(T, T), Err(HeadError::Bad(431, _))));
        let (mut c, mut conn) = pair();
        c.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
            .unwrap();
        assert!(matches!(conn.read_head(T, T), Err(HeadError::Bad(400, _))));
    }

    #[test]
    fn the_rewritten_head_carries_the_forwarding_headers() {
        let (mut c, mut conn) = pair();
        c.write_all(
            b"GET /x?y=1 HTTP/1.1\r\nHost: localhost-8726.pod-web.localhost:8080\r\nX-Forwarded-For: 198.18.0.9\r\n\
              Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap();
        let h = conn.read_head(T, T).unwrap();
        assert!(h.is_upgrade());
        let out = String::from_utf8(h.rewrite(8726, "127.0.0.1")).unwrap();
        assert!(out.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{out}");
        assert!(out.contains("\r\nHost: localhost:8726\r\n"), "{out}");
        assert!(!out.contains("\r\nHost: localhost-8726"), "{out}");
        assert!(
            out.contains("X-Forwarded-Host: localhost-8726.pod-web.localhost:8080\r\n"),
            "{out}"
        );
        assert!(
            out.contains("X-Forwarded-For: 198.18.0.9, 127.0.0.1\r\n"),
            "{out}"
        );
        assert!(out.contains("X-Forwarded-Proto: http\r\n"), "{out}");
        assert!(
            out.contains("Upgrade: websocket\r\n") && out.ends_with("\r\n\r\n"),
            "{out}"
        );
        let (mut c, mut conn) = pair();
        c.write_all(b"GET / HTTP/1.0\r\nX-Forwarded-Proto: https\r\n\r\n")
            .unwrap();
        let h = conn.read_head(T, T).unwrap();
        assert!(!h.is_upgrade());
        let out = String::from_utf8(h.rewrite(80, "127.0.0.1")).unwrap();
        assert!(
            out.starts_with("GET / HTTP/1.0\r\n") && out.contains("X-Forwarded-Proto: https\r\n"),
            "{out}"
        );
        assert!(!out.contains("X-Forwarded-Proto: http\r\n"), "{out}");
    }
}
