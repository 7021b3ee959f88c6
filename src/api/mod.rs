//! `gvpod system service`: the Docker Engine API on a unix socket, daemon-
//! less in spirit as `podman system service` is. It is one more front end
//! over `pod` and `image`, equal to the CLI: every request opens the data
//! root like a CLI command (same state database, same per-pod monitors), so
//! `docker ps` and `gvpod ps` always agree, and the service exiting (idle
//! for `--time` seconds) never touches a pod: pods belong to their monitors.
//!
//! One thread per connection (the pod layer is synchronous and requests
//! such as `wait` or `logs -f` block); [`http`] holds the wire format,
//! [`system`] the ping, version and info, [`containers`] the containers,
//! [`native`] gvpod's own endpoints for the remote CLI (`gvpod --url`).
//! Errors are docker's `{"message": …}` with the status of the error's
//! [`crate::error::Kind`].

mod attach;
mod config;
mod containers;
mod events;
mod exec;
mod execs;
mod http;
mod images;
mod native;
mod networks;
mod pull;
mod relay;
mod shapes;
mod stats;
mod system;

use std::io::BufReader;
use std::os::fd::{AsFd, FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{ReadError, Request};

/// The API version gvpod speaks (what `/version` and every answer's
/// `Api-Version` header say); clients negotiate down to it.
pub const API_VERSION: &str = "1.47";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// Where the service listens.
#[derive(Debug, Clone)]
pub enum Listen {
    /// A unix socket at this path (created mode 0660, removed on exit).
    Path(PathBuf),
    /// A listening socket passed by systemd (`LISTEN_FDS`), fd 3.
    Inherited(RawFd),
}

/// Errors of the service itself (not of a request).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid address {0:?}: use unix:///PATH")]
    BadAddress(String),
    #[error("cannot listen on {path}: {source}; is another gvpod service running there? (remove the file if not)")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ApiError {
    /// See [`crate::error::Kind`].
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            ApiError::BadAddress(_) => crate::error::Kind::User,
            ApiError::Listen { .. } => crate::error::Kind::Conflict,
            ApiError::Io(_) => crate::error::Kind::Internal,
        }
    }
}

/// `unix:///run/x.sock` → the path; anything else is refused.
pub fn parse_address(s: &str) -> Result<PathBuf, ApiError> {
    match s.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') && p.len() > 1 => Ok(PathBuf::from(p)),
        _ => Err(ApiError::BadAddress(s.to_string())),
    }
}

/// The socket systemd passed, if this process was socket-activated
/// (`LISTEN_PID` is ours and `LISTEN_FDS` ≥ 1: the first is fd 3).
pub fn systemd_socket() -> Option<RawFd> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    (pid == std::process::id() && n >= 1).then_some(3)
}

/// Serves until idle for `idle` (no connection open and none accepted for
/// that long; `None`: forever).
pub fn serve(root: &Path, listen: Listen, idle: Option<Duration>) -> Result<(), ApiError> {
    let (listener, owned_path) = match listen {
        Listen::Path(p) => (bind(&p)?, Some(p)),
        // SAFETY: systemd hands the listening socket over as fd 3 and
        // nothing else in this process owns it.
        Listen::Inherited(fd) => (unsafe { UnixListener::from_raw_fd(fd) }, None),
    };
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let root = Arc::new(root.to_owned());
    tracing::info!("serving the Docker API (version {API_VERSION})");
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                active.fetch_add(1, Ordering::SeqCst);
                let (active, last, root) = (active.clone(), last.clone(), root.clone());
                std::thread::spawn(move || {
                    connection(&root, stream);
                    if let Ok(mut l) = last.lock() {
                        *l = Instant::now();
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                });
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        if let Some(idle) = idle {
            let mut quiet = last.lock().map(|l| l.elapsed()).unwrap_or_default();
            // A detached exec is activity too, while it runs and after.
            let (exec_running, exec_end) = execs::all().busy();
            if let Some(t) = exec_end {
                quiet = quiet.min(t.elapsed());
            }
            if active.load(Ordering::SeqCst) == 0 && !exec_running && quiet >= idle {
                break;
            }
        }
        let mut fds = [nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16));
    }
    if let Some(p) = owned_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Binds the socket at `path`: a stale socket file (nobody accepts on it)
/// is replaced; a live one is refused. Mode 0660: root and its group.
fn bind(path: &Path) -> Result<UnixListener, ApiError> {
    let err = |source| ApiError::Listen {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if UnixStream::connect(path).is_ok() {
        return Err(err(std::io::Error::from(std::io::ErrorKind::AddrInUse)));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(path).map_err(err)?;
        }
        _ => {}
    }
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(l)
}

/// What a handler did with the connection.
pub(crate) enum After {
    /// Answered; the next request may follow (or the client closes).
    Next,
    /// Answered and the connection must close (a stream ended, an error).
    Close,
}

/// Serves one connection's requests in turn.
fn connection(root: &Path, stream: UnixStream) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut w = stream;
    loop {
        let req = match http::read_request(&mut reader) {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status, msg)) => {
                let _ = http::error(&mut w, status, &msg, false);
                return;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!("connection dropped: {e}");
                return;
            }
        };
        let keep = req.keep_alive();
        let after = route(root, &req, &mut w);
        if matches!(after, After::Close) || !keep {
            return;
        }
    }
}

/// Compares dotted versions numerically (`1.9` < `1.44`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b))
}

/// The status of an error from the pod layer (see [`crate::error::Kind`]).
pub(crate) fn status_of(kind: crate::error::Kind) -> u16 {
    use crate::error::Kind;
    match kind {
        Kind::User => 400,
        Kind::NotFound => 404,
        Kind::Conflict => 409,
        Kind::Internal => 500,
    }
}

fn route(root: &Path, req: &Request, w: &mut UnixStream) -> After {
    let keep = req.keep_alive();
    if let Some(v) = &req.version {
        if version_cmp(v, API_VERSION).is_gt() {
            let msg = format!(
                "client version {v} is too new. Maximum supported API version is {API_VERSION}"
            );
            let _ = http::error(w, 400, &msg, keep);
            return After::Next;
        }
        if version_cmp(v, MIN_API_VERSION).is_lt() {
            let msg = format!(
                "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            );
            let _ = http::error(w, 400, &msg, keep);
            return After::Next;
        }
    }
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let m = req.method.as_str();
    let res = match (m, parts.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => system::ping(req, w),
        ("GET", ["version"]) => system::version(root, req, w),
        ("GET", ["info"]) => system::info(root, req, w),
        ("GET", ["containers", "json"]) => containers::list(root, req, w),
        ("POST", ["containers", "create"]) => containers::create(root, req, w),
        ("GET", ["containers", id, "json"]) => containers::inspect(root, id, req, w),
        ("POST", ["containers", id, "start"]) => containers::start(root, id, req, w),
        ("POST", ["containers", id, "stop"]) => containers::stop(root, id, req, w),
        ("POST", ["containers", id, "restart"]) => containers::restart(root, id, req, w),
        ("POST", ["containers", id, "kill"]) => containers::kill(root, id, req, w),
        ("POST", ["containers", id, "wait"]) => containers::wait(root, id, req, w),
        ("DELETE", ["containers", id]) => containers::remove(root, id, req, w),
        ("GET", ["containers", id, "logs"]) => containers::logs(root, id, req, w),
        ("POST", ["containers", id, "attach"]) => attach::attach(root, id, req, w),
        ("POST", ["containers", id, "resize"]) => attach::resize(root, id, req, w),
        ("GET", ["containers", id, "stats"]) => stats::stats(root, id, req, w),
        ("GET", ["containers", id, "top"]) => stats::top(root, id, req, w),
        ("GET", ["events"]) => events::events(root, req, w),
        ("GET", ["networks"]) => networks::list(root, req, w),
        ("POST", ["networks", "create"]) => networks::create(root, req, w),
        ("GET", ["networks", id]) => networks::inspect(root, id, req, w),
        ("DELETE", ["networks", id]) => networks::remove(root, id, req, w),
        ("POST", ["containers", id, "exec"]) => exec::create(root, id, req, w),
        ("POST", ["exec", id, "start"]) => exec::start(root, id, req, w),
        ("POST", ["exec", id, "resize"]) => exec::resize(id, req, w),
        ("GET", ["exec", id, "json"]) => exec::inspect(id, req, w),
        ("GET", ["images", "json"]) => images::list(root, req, w),
        ("POST", ["images", "create"]) => pull::create(root, req, w),
        ("POST", ["images", name @ .., "tag"]) if !name.is_empty() => {
            images::tag(root, &name.join("/"), req, w)
        }
        ("DELETE", ["images", name @ ..]) if !name.is_empty() => {
            images::remove(root, &name.join("/"), req, w)
        }
        ("GET", ["images", name @ .., "json"]) if !name.is_empty() => {
            images::inspect(root, &name.join("/"), req, w)
        }
        (_, ["gvpod", "v1", rest @ ..]) => native_route(root, m, rest, req, w),
        _ => {
            let msg = format!("page not found: {m} {}", req.path);
            Reply::Error(404, msg).send(w, keep)
        }
    };
    match res {
        Ok(a) => a,
        Err(_) => After::Close,
    }
}

/// gvpod's own endpoints (`/gvpod/v1/…`, see [`native`]).
fn native_route(
    root: &Path,
    m: &str,
    parts: &[&str],
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    use native as n;
    match (m, parts) {
        ("GET", ["info"]) => n::info(root, req, w),
        ("POST", ["system", "gc"]) => n::gc(root, req, w),
        ("GET", ["pods"]) => n::list_pods(root, req, w),
        ("POST", ["pods"]) => n::create_pod(root, req, w),
        ("GET", ["pods", key]) => n::inspect_pod(root, key, req, w),
        ("GET", ["pods", key, "listening"]) => n::listening(root, key, req, w),
        ("POST", ["pods", key, "services", action]) => n::services(root, key, action, req, w),
        ("POST", ["projects", "up"]) => n::project_up(root, req, w),
        ("POST", ["projects", "down"]) => n::project_down(root, req, w),
        ("GET", ["pods", key, "top"]) => n::top(root, key, req, w),
        ("POST", ["checkpoint"]) => n::checkpoint(root, req, w),
        ("POST", ["restore"]) => n::restore(root, req, w),
        ("POST", ["commit"]) => n::commit(root, req, w),
        ("GET", ["snapshots"]) => n::list_snapshots(root, req, w),
        ("POST", ["snapshots", "import"]) => n::import_snapshot(root, req, w),
        ("GET", ["snapshots", key]) => n::inspect_snapshot(root, key, req, w),
        ("DELETE", ["snapshots", key]) => n::remove_snapshot(root, key, req, w),
        ("POST", ["snapshots", key, "export"]) => n::export_snapshot(root, key, req, w),
        ("GET", ["stats"]) => n::stats(root, req, w),
        ("GET", ["kube"]) => n::kube(root, req, w),
        ("GET", ["networks"]) => n::list_networks(root, req, w),
        ("POST", ["networks"]) => n::create_network(root, req, w),
        ("GET", ["networks", name]) => n::inspect_network(root, name, req, w),
        ("DELETE", ["networks", name]) => n::remove_network(root, name, req, w),
        ("GET", ["images"]) => n::list_images(root, req, w),
        ("POST", ["images", "load"]) => n::load(root, req, w),
        ("POST", ["images", "save"]) => n::save(root, req, w),
        ("POST", ["images", "import"]) => n::import(root, req, w),
        ("POST", ["images", "tag"]) => n::tag(root, req, w),
        ("POST", ["images", "prune"]) => n::prune(root, req, w),
        // Image names hold slashes: the rest of the path is the name.
        ("GET", ["images", name @ ..]) if !name.is_empty() => {
            n::inspect_image(root, &name.join("/"), req, w)
        }
        ("DELETE", ["images", name @ ..]) if !name.is_empty() => {
            n::remove(root, &name.join("/"), req, w)
        }
        _ => {
            let msg = format!("page not found: {m} {}", req.path);
            Reply::Error(404, msg).send(w, req.keep_alive())
        }
    }
}

/// A whole answer a handler gives back.
pub(crate) enum Reply {
    Json(u16, serde_json::Value),
    Empty(u16),
    Error(u16, String),
}

impl Reply {
    pub(crate) fn send(self, w: &mut UnixStream, keep: bool) -> std::io::Result<After> {
        match self {
            Reply::Json(s, v) => http::json(w, s, &v, keep)?,
            Reply::Empty(s) => http::respond(w, s, "", b"", keep)?,
            Reply::Error(s, m) => http::error(w, s, &m, keep)?,
        }
        Ok(After::Next)
    }

    /// The answer for an error of the pod layer (or anything with a kind).
    pub(crate) fn from_err(kind: crate::error::Kind, msg: impl std::fmt::Display) -> Reply {
        Reply::Error(status_of(kind), msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version_cmp("1.9", "1.44").is_lt());
        assert!(version_cmp("1.50", "1.47").is_gt());
        assert!(version_cmp("1.47", "1.47").is_eq());
    }

    #[test]
    fn addresses_are_unix_urls() {
        assert_eq!(
            parse_address("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        for bad in ["tcp://1.2.3.4:2375", "unix://", "/run/x.sock", "unix://rel"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_follow_the_kind() {
        use crate::error::Kind;
        let all = [Kind::User, Kind::NotFound, Kind::Conflict, Kind::Internal];
        let s: Vec<u16> = all.iter().map(|k| status_of(*k)).collect();
        assert_eq!(s, [400, 404, 409, 500]);
    }
}
