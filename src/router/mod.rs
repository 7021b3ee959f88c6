//! The host-side router of dev access (issue 11): HTTP and WebSocket
//! requests for `localhost-PORT.pod-NAME.localhost` reach port PORT of pod
//! NAME with no proxy or agent inside the pod and no daemon.
//!
//! Two entries, one proxy: a pod's own route port (`--route`, served by the
//! pod's monitor for the pod's life, as its published ports are) and the
//! shared router (`gvpod router`), which finds pods in the state DB per
//! connection, so pods come and go without a restart. This module knows
//! HTTP, hosts and bytes; it does not know runsc, bundles or the DB: the
//! pod layer hands it a [`Resolver`] that turns a route into an open
//! connection (`pod::route`).
//!
//! Invariants of a routed connection ([`proxy`]):
//! - only reading a request head has a timeout ([`HEAD_TIMEOUT`] from its
//!   first byte); a body, a response, server-sent events and an upgraded
//!   (WebSocket) stream are copied as they come, unbuffered, for as long as
//!   both ends keep them open — no idle timeout cuts a quiet WebSocket,
//!   the complaint users of Coder and Codespaces keep filing;
//! - the service sees `Host: localhost:PORT` (the platform's nginx sends
//!   that, so dev servers that check Host accept it), the original in
//!   `X-Forwarded-Host`, plus `X-Forwarded-For` and `-Proto`;
//! - responses are never parsed: the service's bytes go to the client as
//!   they are; only the request side is framed, to rewrite each head of a
//!   keep-alive connection;
//! - a route that cannot be served gets a small page naming what is
//!   missing (404: no such pod or no route in the host; 502: nothing
//!   listens on the port), never a hang.

pub mod host;
pub mod http;
mod page;
mod proxy;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

pub use host::{is_dns_label, Route};

/// How long a started request head may take to arrive in full.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a keep-alive connection may wait for its next request: the
/// platform's nginx keeps them 7 days.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which entry a listener is: it decides how a Host header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A pod's own route port: `localhost-N.…` or the pod's default port.
    Pod,
    /// The shared router: `localhost-N.pod-NAME.localhost`, `N--NAME.localhost`.
    Shared,
}

impl Entry {
    pub fn route_of(self, host: &str) -> Route {
        match self {
            Entry::Pod => host::pod_entry(host),
            Entry::Shared => host::shared_entry(host),
        }
    }
}

/// The write half of a connection to a service.
pub trait UpWrite: Write + Send {
    /// Ends the stream towards the service (TCP half-close).
    fn close(&mut self);
}

impl UpWrite for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl UpWrite for std::os::unix::net::UnixStream {
    fn close(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// An open connection to a service in a pod: straight to its address, or
/// through a relay into its loopback (gvpod's relay under `runsc exec`).
pub struct Upstream {
    pub read: Box<dyn Read + Send>,
    pub write: Box<dyn UpWrite>,
    /// Asked when the service's side ended before sending a byte: why the
    /// connection never reached a service (the page the client gets), or
    /// `None` when it did and closed. Relays learn a refusal only after
    /// they started; a direct connection never needs this.
    pub refused: Option<Box<dyn FnOnce() -> Option<Refusal> + Send>>,
}

/// A connection opened for a route.
pub struct Connected {
    /// The port in the pod (the rewritten Host says it).
    pub port: u16,
    pub upstream: Upstream,
}

/// Why a route cannot be served: the page the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub title: String,
    pub detail: String,
}

impl Refusal {
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Refusal {
        Refusal {
            status,
            title: title.into(),
            detail: detail.into(),
        }
    }
}

/// Turns routes into connections (the pod layer implements it).
pub trait Resolver: Send + Sync {
    fn connect(&self, route: &Route) -> Result<Connected, Refusal>;
}

/// Serves `listener` on a thread of its own until the returned handle is
/// dropped, which closes the listener (`sys::Served`); the
/// connections being served go on to their end.
pub fn spawn(
    listener: TcpListener,
    entry: Entry,
    resolver: Arc<dyn Resolver>,
) -> std::io::Result<crate::sys::Served> {
    crate::sys::serve(listener, connections(entry, resolver))
}

/// Serves `listener` on the calling thread for as long as the process lives.
pub fn serve(listener: TcpListener, entry: Entry, resolver: Arc<dyn Resolver>) {
    crate::sys::serve_forever(listener, connections(entry, resolver));
}

/// Each accepted connection served to its end on a thread of its own.
fn connections(entry: Entry, resolver: Arc<dyn Resolver>) -> impl Fn(TcpStream) + Send + 'static {
    move |stream| {
        let r = resolver.clone();
        std::thread::spawn(move || proxy::handle(stream, entry, &*r));
    }
}
