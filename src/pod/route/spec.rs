//! `--route` parsing: portable (the client build checks spec files with
//! it, see lib.rs).

use std::net::Ipv4Addr;

use crate::pod::{PodError, Result};

fn usage(msg: String) -> PodError {
    PodError::Usage(msg)
}

/// Parses `--route`: `auto`, `PORT`, `IP:PORT` or `IP:auto`; the address
/// defaults to 127.0.0.1 (a dev pod's services are the developer's own).
pub fn parse_spec(s: &str) -> Result<(Ipv4Addr, Option<u16>)> {
    let bad = || {
        usage(format!(
            "invalid --route {s:?}: use auto, HOSTPORT or HOSTIP:HOSTPORT (e.g. --route auto, --route 127.0.0.1:30001)"
        ))
    };
    let (ip, port) = match s.rsplit_once(':') {
        Some((ip, port)) => (ip.parse::<Ipv4Addr>().map_err(|_| bad())?, port),
        None => (Ipv4Addr::LOCALHOST, s),
    };
    match port {
        "auto" => Ok((ip, None)),
        p => match crate::router::host::port_number(p) {
            Some(p) => Ok((ip, Some(p))),
            None => Err(bad()),
        },
    }
}
