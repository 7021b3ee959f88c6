//! Published ports: `-p` as given ([`PortSpec`], [`parse_port`]) and once
//! its host port is known ([`PortMapping`]). Pure and portable (the client
//! build checks `-p` and spec files with it, see lib.rs).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{NetError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A published port as asked for on the command line (`-p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// None: all host addresses.
    pub host_ip: Option<Ipv4Addr>,
    /// None: pick a free port.
    pub host_port: Option<u16>,
    pub pod_port: u16,
    pub proto: Proto,
}

/// A published port once its host port is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub pod_port: u16,
    pub proto: Proto,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.pod_port, self.proto, self.host_ip, self.host_port
        )
    }
}

/// Parses `-p [HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp]` or `-p PODPORT[/proto]`.
pub fn parse_port(s: &str) -> Result<PortSpec> {
    let bad = |hint: &str| NetError::BadValue {
        what: "-p",
        value: s.to_string(),
        hint: hint.to_string(),
    };
    let (rest, proto) = match s.rsplit_once('/') {
        Some((r, p)) => (
            r,
            Proto::parse(p).ok_or_else(|| bad("the protocol after '/' must be tcp or udp"))?,
        ),
        None => (s, Proto::Tcp),
    };
    let port = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("ports are numbers from 1 to 65535"))
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host_port, pod_port) = match parts.as_slice() {
        [p] => (None, None, port(p)?),
        [h, p] => (None, Some(port(h)?), port(p)?),
        [ip, h, p] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| bad("the host address must be an IPv4 address"))?;
            let hp = if h.is_empty() { None } else { Some(port(h)?) };
            (Some(ip).filter(|i| !i.is_unspecified()), hp, port(p)?)
        }
        _ => return Err(bad("use [HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp] or PODPORT")),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        pod_port,
        proto,
    })
}
