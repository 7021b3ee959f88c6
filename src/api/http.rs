//! Just enough HTTP/1.1 for the Docker Engine API on a unix socket, on
//! blocking threads (the pod layer is synchronous): requests parsed with
//! `httparse`, bodies by Content-Length or chunked, keep-alive, responses
//! with a length or chunked (streams), and the raw stream handed over for
//! hijacked endpoints.
//!
//! Invariants: a request head is at most [`MAX_HEAD`] bytes and a body at
//! most [`MAX_BODY`] (bigger: 413, one line); a malformed request is
//! answered 400 and the connection closed; nothing here panics on input.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

/// Longest request head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (a container create is a few KiB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without the query string and without a `/vX.Y` prefix.
    pub path: String,
    /// The API version the path named (`None`: no prefix).
    pub version: Option<String>,
    pub query: BTreeMap<String, String>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query parameter as docker clients send them (`1`, `true`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.query(name), Some("1" | "true" | "True"))
    }

    /// Whether the client wants the connection kept open after the answer.
    pub fn keep_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection between requests.
    Closed,
    /// Not HTTP, or beyond a limit: answer with this status and line, close.
    Bad(u16, String),
    Io(std::io::Error),
}

/// Reads one request from `r`.
pub fn read_request(r: &mut BufReader<UnixStream>) -> Result<Request, ReadError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - head.len()) as u64)
            .read_until(b'\n', &mut head)
            .map_err(ReadError::Io)?;
        if n == 0 {
            return if before == 0 {
                Err(ReadError::Closed)
            } else {
                Err(ReadError::Bad(400, "truncated request head".into()))
            };
        }
        if head.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request head too large".into()));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        // Blank lines before a request are allowed (RFC 9112 2.2).
        if head == b"\r\n" || head == b"\n" {
            head.clear();
        }
    }
    let mut hbuf = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hbuf);
    match req.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ReadError::Bad(400, "incomplete request".into()))
        }
        Err(e) => return Err(ReadError::Bad(400, format!("malformed request: {e}"))),
    }
    let method = req.method.unwrap_or("GET").to_string();
    let target = req.path.unwrap_or("/");
    let mut headers = BTreeMap::new();
    for h in req.headers.iter() {
        headers.insert(
            h.name.to_ascii_lowercase(),
            String::from_utf8_lossy(h.value).into_owned(),
        );
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let (version, path) = split_version(&percent_decode(raw_path));
    let query = parse_query(raw_query);
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(r)?
    } else {
        let len: usize = match headers.get("content-length") {
            None => 0,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ReadError::Bad(400, format!("invalid Content-Length {v:?}")))?,
        };
        if len > MAX_BODY {
            return Err(ReadError::Bad(
                413,
                format!("request body of {len} bytes is too large"),
            ));
        }
        let mut b = vec![0; len];
        r.read_exact(&mut b).map_err(ReadError::Io)?;
        b
    };
    Ok(Request {
        method,
        path,
        version,
        query,
        headers,
        body,
    })
}

fn read_chunked(r: &mut BufReader<UnixStream>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.by_ref()
            .take(1024)
            .read_line(&mut line)
            .map_err(ReadError::Io)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| ReadError::Bad(400, format!("invalid chunk size {:?}", line.trim())))?;
        if body.len() + size > MAX_BODY {
            return Err(ReadError::Bad(413, "request body too large".into()));
        }
        if size == 0 {
            // Trailers, then the final blank line.
            loop {
                let mut t = String::new();
                r.by_ref()
                    .take(8192)
                    .read_line(&mut t)
                    .map_err(ReadError::Io)?;
                if t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).map_err(ReadError::Io)?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).map_err(ReadError::Io)?;
    }
}

/// `/v1.44/containers/json` → (`Some("1.44")`, `/containers/json`).
pub fn split_version(path: &str) -> (Option<String>, String) {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((v, tail)) = rest.split_once('/') {
            let numeric = !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
            if numeric && v.contains('.') {
                return (Some(v.to_string()), format!("/{tail}"));
            }
        }
    }
    (None, path.to_string())
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` and `+` decoding (query strings and paths); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reason phrase of the statuses the API answers with.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "UPGRADED",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// The headers every answer carries (docker's daemon sends the same).
fn common_headers(w: &mut impl Write) -> std::io::Result<()> {
    write!(
        w,
        "Api-Version: {}\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: gvpod/{} (linux)\r\n",
        super::API_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// A whole answer with a body of known length.
pub fn respond(
    w: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(256);
    write!(head, "HTTP/1.1 {status} {}\r\n", reason(status))?;
    common_headers(&mut head)?;
    if !content_type.is_empty() {
        write!(head, "Content-Type: {content_type}\r\n")?;
    }
    write!(head, "Content-Length: {}\r\n", body.len())?;
    if !keep_alive {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    w.write_all(&head)?;
    w.write_all(body)?;
    w.flush()
}

/// A JSON answer.
pub fn json(
    w: &mut impl Write,
    status: u16,
    v: &serde_json::Value,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut body = serde_json::to_vec(v).expect("JSON values serialise");
    body.push(b'\n');
    respond(w, status, "application/json", &body, keep_alive)
}

/// A docker-style error: `{"message": …}`.
pub fn error(w: &mut impl Write, status: u16, msg: &str, keep_alive: bool) -> std::io::Result<()> {
    json(
        w,
        status,
        &serde_json::json!({ "message": msg }),
        keep_alive,
    )
}

/// The head of a hijacked answer (attach, exec start): exactly `101
/// UPGRADED` when the client asked to upgrade (`Upgrade: tcp`), else `200`;
/// the raw stream of `content_type` follows.
pub fn hijack_head(req: &Request, w: &mut impl Write, content_type: &str) -> std::io::Result<()> {
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp"));
    let mut head = Vec::with_capacity(256);
    if upgrade {
        head.extend_from_slice(b"HTTP/1.1 101 UPGRADED\r\n");
    } else {
        head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    }
    common_headers(&mut head)?;
    write!(head, "Content-Type: {content_type}\r\n")?;
    if upgrade {
        head.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: tcp\r\n");
    }
    head.extend_from_slice(b"\r\n");
    w.write_all(&head)?;
    w.flush()
}

/// The head of a streamed (chunked) answer; the body follows through [`Chunked`].
pub fn stream_head(w: &mut impl Write, status: u16, content_type: &str) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(256);
    write!(head, "HTTP/1.1 {status} {}\r\n", reason(status))?;
    common_headers(&mut head)?;
    write!(
        head,
        "Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )?;
    w.write_all(&head)?;
    w.flush()
}

/// The body of a chunked answer: every write is a chunk, sent at once.
pub struct Chunked<'a, W: Write>(pub &'a mut W);

impl<W: Write> Chunked<'_, W> {
    pub fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        write!(self.0, "{:x}\r\n", data.len())?;
        self.0.write_all(data)?;
        self.0.write_all(b"\r\n")?;
        self.0.flush()
    }

    pub fn finish(self) -> std::io::Result<()> {
        self.0.write_all(b"0\r\n\r\n")?;
        self.0.flush()
    }
}

/// Whether the client has closed the connection (or it broke): a blocking
/// answer (`wait`, `logs -f`, an attach) stops instead of outliving its
/// client. A client that only shut its sending side down (the docker CLI
/// does after an attach without stdin) still reads: that is not a hang-up.
pub fn hung_up(s: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(
        s.as_fd(),
        PollFlags::POLLHUP | PollFlags::POLLERR,
    )];
    // Only hang-ups are asked for (POLLHUP and POLLERR are reported even
    // unasked), so any event is one.
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Which pod log lines a stream carries and how: docker's multiplexed
/// frames, or raw text for a pod with a terminal (`logs` and attach).
pub struct LogStream {
    pub tty: bool,
    pub timestamps: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl LogStream {
    /// The content type of such a stream.
    pub fn content_type(tty: bool) -> &'static str {
        if tty {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        }
    }

    /// The bytes to send for `l`; `None` when its stream is not wanted.
    pub fn bytes(&self, l: &crate::pod::LogLine) -> Option<Vec<u8>> {
        let is_err = l.stream == "stderr";
        if (is_err && !self.stderr) || (!is_err && !self.stdout) {
            return None;
        }
        let text = if self.timestamps {
            format!("{} {}\n", l.t, l.line)
        } else {
            format!("{}\n", l.line)
        };
        Some(if self.tty {
            text.into_bytes()
        } else {
            frame(if is_err { 2 } else { 1 }, text.as_bytes())
        })
    }
}

/// One frame of docker's multiplexed stdout/stderr stream (no TTY): a
/// header of the stream (1 stdout, 2 stderr), three zero bytes and the
/// big-endian length, then the payload.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&[stream, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_split_off_the_path() {
        assert_eq!(
            split_version("/v1.44/containers/json"),
            (Some("1.44".into()), "/containers/json".into())
        );
        assert_eq!(split_version("/_ping"), (None, "/_ping".into()));
        assert_eq!(split_version("/volumes/x"), (None, "/volumes/x".into()));
        assert_eq!(split_version("/v1/x"), (None, "/v1/x".into()));
    }

    #[test]
    fn queries_and_paths_are_decoded() {
        let q = parse_query("filters=%7B%22name%22%3A%5B%22web%22%5D%7D&all=1&x");
        assert_eq!(q["filters"], r#"{"name":["web"]}"#);
        assert_eq!(q["all"], "1");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn a_closed_client_is_seen_a_half_closed_one_is_not() {
        let (a, b) = UnixStream::pair().unwrap();
        assert!(!hung_up(&a));
        b.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(!hung_up(&a), "a client that stopped sending still reads");
        drop(b);
        assert!(hung_up(&a));
    }

    #[test]
    fn frames_carry_stream_and_length() {
        assert_eq!(frame(2, b"hi"), [2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    fn parse(raw: &[u8]) -> Result<Request, ReadError> {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(raw).unwrap();
        drop(b);
        read_request(&mut BufReader::new(a))
    }

    #[test]
    fn requests_with_length_and_chunked_bodies() {
        let r = parse(b"POST /v1.44/containers/create?name=web HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/containers/create")
        );
        assert_eq!(
            (r.query("name"), r.body.as_slice()),
            (Some("web"), &b"{}"[..])
        );
        let r = parse(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcd");
        assert!(matches!(parse(b""), Err(ReadError::Closed)));
        assert!(matches!(
            parse(b"NOT HTTP\r\n\r\n"),
            Err(ReadError::Bad(400, _))
        ));
        assert!(matches!(
            parse(b"POST /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"),
            Err(ReadError::Bad(413, _))
        ));
    }
}
