//! The client half of HTTP/1.1 on a unix socket, as much as the remote CLI
//! needs: one request per connection (`Connection: close` unless the
//! request upgrades), a response head parsed with `httparse`, a body by
//! Content-Length, chunked or until close, and a hijacked connection handed
//! over whole (with whatever the head's read already took from it).
//!
//! Invariants: a response head is at most [`MAX_HEAD`] bytes; nothing here
//! panics on what a server sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

/// Longest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// A response whose body is still to be read.
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body is docker's multiplexed stream (8-byte frame
    /// headers) rather than raw bytes (a TTY's), by its content type.
    pub fn multiplexed(&self) -> bool {
        self.header("content-type")
            .is_some_and(|t| t.contains("multiplexed-stream"))
    }

    /// The whole body (for answers that are not streams).
    pub fn read_all(mut self) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.body.read_to_end(&mut v)?;
        Ok(v)
    }
}

/// Sends one request on a new connection.
pub fn send(
    stream: &mut UnixStream,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    upgrade: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: gvpod\r\nUser-Agent: gvpod/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if upgrade {
        head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
    } else {
        head.push_str("Connection: close\r\n");
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&msg)?;
    stream.flush()
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Reads a response head from `r`; the body reader takes over `r`.
pub fn read_response(mut r: BufReader<UnixStream>) -> std::io::Result<Response> {
    let mut head = Vec::new();
    loop {
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - head.len()) as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            return Err(bad(
                "the gvpod service closed the connection without answering",
            ));
        }
        if head.len() > MAX_HEAD {
            return Err(bad("the gvpod service's answer head is too long"));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut hs);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(bad("the gvpod service's answer is not HTTP")),
    }
    let status = resp.code.unwrap_or(0);
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if status == 101 || status == 204 || status == 304 {
        Body::Length(r.take(0))
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        Body::Chunked {
            r,
            left: 0,
            done: false,
        }
    } else if let Some(n) = get("content-length") {
        let n: u64 = n
            .parse()
            .map_err(|_| bad(format!("bad content-length {n:?}")))?;
        Body::Length(r.take(n))
    } else {
        Body::Close(r)
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A response body as the head framed it.
pub enum Body {
    Length(std::io::Take<BufReader<UnixStream>>),
    Chunked {
        r: BufReader<UnixStream>,
        /// Bytes left in the current chunk.
        left: u64,
        done: bool,
    },
    Close(BufReader<UnixStream>),
}

impl Body {
    /// The connection underneath, with what was read ahead of it (a
    /// hijacked stream starts right after the head).
    pub fn into_inner(self) -> BufReader<UnixStream> {
        match self {
            Body::Length(t) => t.into_inner(),
            Body::Chunked { r, .. } | Body::Close(r) => r,
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Body::Length(t) => t.read(buf),
            Body::Close(r) => r.read(buf),
            Body::Chunked { r, left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    r.read_line(&mut line)?;
                    let size = line.trim().split(';').next().unwrap_or("");
                    if line.is_empty() {
                        // The server went away mid-stream: the end.
                        *done = true;
                        return Ok(0);
                    }
                    *left = u64::from_str_radix(size, 16)
                        .map_err(|_| bad(format!("bad chunk size {size:?}")))?;
                    if *left == 0 {
                        // Trailers until the empty line.
                        loop {
                            line.clear();
                            if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                }
                let want = buf.len().min(*left as usize);
                let n = r.read(&mut buf[..want])?;
                if n == 0 {
                    *done = true;
                    return Ok(0);
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = String::new();
                    r.read_line(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// Copies docker's multiplexed stream (8-byte headers: stream, 0, 0, 0,
/// length as u32 big-endian) to `out` (stream 1) and `err` (stream 2)
/// until it ends; a raw stream (a TTY) goes to `out` as is.
pub fn demux(
    r: &mut impl Read,
    tty: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<()> {
    if tty {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
    let mut head = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        payload.resize(len, 0);
        r.read_exact(&mut payload)?;
        let w: &mut dyn Write = if head[0] == 2 { err } else { out };
        w.write_all(&payload)?;
        w.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair_with(answer: &[u8]) -> BufReader<UnixStream> {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(answer).unwrap();
        drop(b);
        BufReader::new(a)
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let r = pair_with(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        );
        let resp = read_response(r).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.read_all().unwrap(), b"hello world");
    }

    #[test]
    fn lengths_bound_the_body() {
        let r = pair_with(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnopeEXTRA");
        let resp = read_response(r).unwrap();
        assert_eq!(resp.status, 404);
        assert_eq!(resp.read_all().unwrap(), b"nope");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ] {
            assert!(read_response(pair_with(junk)).is_err());
        }
        let r = pair_with(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert!(read_response(r).unwrap().read_all().is_err());
    }

    #[test]
    fn frames_are_split_by_stream() {
        let mut data = vec![];
        for (s, p) in [(1u8, &b"out\n"[..]), (2, b"err\n"), (1, b"more\n")] {
            data.extend_from_slice(&[s, 0, 0, 0]);
            data.extend_from_slice(&(p.len() as u32).to_be_bytes());
            data.extend_from_slice(p);
        }
        let (mut out, mut err) = (vec![], vec![]);
        demux(&mut &data[..], false, &mut out, &mut err).unwrap();
        assert_eq!(out, b"out\nmore\n");
        assert_eq!(err, b"err\n");
        // A cut frame is an error, not a silent truncation.
        let cut = &data[..data.len() - 2];
        assert!(demux(&mut &cut[..], false, &mut vec![], &mut vec![]).is_err());
    }
}
