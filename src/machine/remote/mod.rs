//! The remote client mode (`gvpod --url unix:///PATH`, or `GVPOD_HOST`):
//! every verb goes to a `gvpod system service` instead of the local data
//! root. It speaks the service's own endpoints (`/gvpod/v1/…`, whose bodies
//! are the pod layer's types) where the output must match the host's byte
//! for byte, and the Docker endpoints for the rest (start, stop, kill, rm,
//! wait, logs, attach). The macOS client (issue 13) rides on this.
//!
//! Invariants: every answer's `Server` header must name this gvpod
//! version (checked on each answer, no extra round trip); one connection per request (streams and hijacked
//! connections are never shared); an error the service sends comes back as
//! [`RemoteError::Api`] with its status, message and, when the service
//! says it, the exit code the host's CLI would have ended with, so remote
//! and local exit codes agree.

pub mod http;

use std::io::{BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// Errors of the remote client.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid --url {0:?}: use unix:///PATH (the socket of `gvpod system service`)")]
    BadUrl(String),
    #[error("cannot reach the gvpod service at {url}: {source}; start it with `gvpod system service {url}` (or `systemctl start gvpod.socket`)")]
    Unreachable {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// The service answered with an error.
    #[error("{message}")]
    Api {
        status: u16,
        message: String,
        exit_code: Option<i32>,
    },
    #[error("the gvpod service at {url} is version {theirs}, this client is {ours}: use the same version on both ends")]
    Version {
        url: String,
        theirs: String,
        ours: String,
    },
    #[error(
        "`gvpod {0}` does not work through --url (GVPOD_HOST) yet: run it on the service's host"
    )]
    Unsupported(&'static str),
    #[error("talking to the gvpod service: {0}")]
    Io(#[from] std::io::Error),
}

impl RemoteError {
    /// See [`crate::error::Kind`]: the service's status says it.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            RemoteError::BadUrl(_) | RemoteError::Unsupported(_) | RemoteError::Version { .. } => {
                Kind::User
            }
            RemoteError::Api { status, .. } => match status {
                404 => Kind::NotFound,
                409 => Kind::Conflict,
                400..=499 => Kind::User,
                _ => Kind::Internal,
            },
            RemoteError::Unreachable { .. } | RemoteError::Io(_) => Kind::Internal,
        }
    }

    /// The exit code: the one the service named, else the kind's.
    pub fn exit_code(&self) -> i32 {
        match self {
            RemoteError::Api {
                exit_code: Some(c), ..
            } => *c,
            e => e.kind().exit_code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, RemoteError>;

/// A gvpod service to talk to.
#[derive(Debug, Clone)]
pub struct Remote {
    url: String,
    sock: PathBuf,
}

impl Remote {
    /// `unix:///PATH` → a client (nothing is connected yet).
    pub fn new(url: &str) -> Result<Remote> {
        match url.strip_prefix("unix://") {
            Some(p) if p.starts_with('/') && p.len() > 1 => Ok(Remote {
                url: url.to_string(),
                sock: PathBuf::from(p),
            }),
            _ => Err(RemoteError::BadUrl(url.to_string())),
        }
    }

    fn connect(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.sock).map_err(|source| RemoteError::Unreachable {
            url: self.url.clone(),
            source,
        })
    }

    /// Sends a request; a non-2xx answer is turned into [`RemoteError::Api`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<http::Response> {
        self.request_with(method, path, body, false)
    }

    fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        upgrade: bool,
    ) -> Result<http::Response> {
        let mut s = self.connect()?;
        let data = body.map(|b| serde_json::to_vec(b).expect("JSON serialises"));
        http::send(&mut s, method, path, data.as_deref(), upgrade)?;
        let resp = http::read_response(BufReader::new(s))?;
        // Every answer names the service (`Server: gvpod/VERSION (linux)`):
        // one of another version is refused before its answer is used.
        let ours = env!("CARGO_PKG_VERSION");
        let theirs = resp
            .header("server")
            .and_then(|s| s.strip_prefix("gvpod/"))
            .and_then(|s| s.split_whitespace().next());
        if theirs != Some(ours) {
            return Err(RemoteError::Version {
                url: self.url.clone(),
                theirs: theirs.unwrap_or("not gvpod").to_string(),
                ours: ours.to_string(),
            });
        }
        if resp.status >= 400 {
            let status = resp.status;
            let raw = resp.read_all().unwrap_or_default();
            return Err(api_error(status, &raw));
        }
        Ok(resp)
    }

    /// A request whose answer is JSON of type `T`.
    pub fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let raw = self.request(method, path, body)?.read_all()?;
        serde_json::from_slice(&raw).map_err(|e| {
            RemoteError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected answer to {method} {path}: {e}"),
            ))
        })
    }

    /// A request whose answer carries no body the caller needs.
    pub fn call(&self, method: &str, path: &str) -> Result<()> {
        self.request(method, path, None)?.read_all()?;
        Ok(())
    }

    /// A hijacked connection (`attach`, `exec` start): the raw stream after
    /// the `101`/`200` head, with what was read ahead of it, and whether it
    /// carries multiplexed frames (no TTY) or raw bytes.
    pub fn hijack(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(BufReader<UnixStream>, bool)> {
        let resp = self.request_with(method, path, body, true)?;
        let mux = resp.multiplexed();
        Ok((resp.body.into_inner(), mux))
    }
}

/// The error of a non-2xx answer: docker's `{"message"}`, with gvpod's
/// `exitCode` when the service sent one.
fn api_error(status: u16, raw: &[u8]) -> RemoteError {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_default();
    let message = v
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(raw).trim().to_string();
            if text.is_empty() {
                format!("the gvpod service answered {status}")
            } else {
                text
            }
        });
    let exit_code = v
        .get("exitCode")
        .and_then(|c| c.as_i64())
        .and_then(|c| i32::try_from(c).ok());
    RemoteError::Api {
        status,
        message,
        exit_code,
    }
}

/// Percent-encodes a query value or path segment.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads `r` to its end, ignoring what it says (a stream's tail).
pub fn drain(mut r: impl Read) {
    let _ = std::io::copy(&mut r, &mut std::io::sink());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_unix_sockets() {
        assert!(Remote::new("unix:///run/gvpod/gvpod.sock").is_ok());
        for bad in [
            "tcp://127.0.0.1:2375",
            "unix://",
            "unix://rel",
            "/run/x.sock",
            "",
        ] {
            let e = Remote::new(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn errors_keep_the_services_status_and_exit_code() {
        let e = api_error(400, br#"{"message":"no such command","exitCode":127}"#);
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("no such command", 127)
        );
        let e = api_error(404, br#"{"message":"No such container: x"}"#);
        assert_eq!((e.kind(), e.exit_code()), (crate::error::Kind::NotFound, 2));
        let e = api_error(500, b"");
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().contains("500"));
    }

    /// A one-answer server on a socket in a temp dir; the client for it.
    fn serving(answer: &'static str) -> (Remote, tempfile::TempDir) {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(answer.as_bytes());
        });
        (
            Remote::new(&format!("unix://{}", path.display())).unwrap(),
            dir,
        )
    }

    #[test]
    fn a_service_of_another_version_or_not_gvpod_is_refused() {
        let ours = env!("CARGO_PKG_VERSION");
        let ok = format!(
            "HTTP/1.1 200 OK\r\nServer: gvpod/{ours} (linux)\r\nContent-Length: 2\r\n\r\n[]"
        );
        let (r, _d) = serving(Box::leak(ok.into_boxed_str()));
        assert_eq!(
            r.json::<Vec<u8>>("GET", "/x", None).unwrap(),
            Vec::<u8>::new()
        );
        for (answer, theirs) in [
            (
                "HTTP/1.1 200 OK\r\nServer: gvpod/0.0.0 (linux)\r\nContent-Length: 2\r\n\r\n[]",
                "0.0.0",
            ),
            (
                "HTTP/1.1 200 OK\r\nServer: Docker/28.2.2 (linux)\r\nContent-Length: 2\r\n\r\n[]",
                "not gvpod",
            ),
        ] {
            let (r, _d) = serving(answer);
            let e = r.call("GET", "/x").unwrap_err();
            assert!(e.to_string().contains(&format!("version {theirs},")), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(enc("a b/c&d=é"), "a%20b%2Fc%26d%3D%C3%A9");
    }
}
