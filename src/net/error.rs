//! [`NetError`], the network layer's error: portable (the client build
//! has it, see lib.rs; `-p` values are checked on the client too).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::{Cidr, Proto};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid {what} {value:?}: {hint}")]
    BadValue {
        what: &'static str,
        value: String,
        hint: String,
    },
    #[error("netlink: {what}: {msg}")]
    Netlink { what: String, msg: String },
    #[error("nftables: {0}")]
    Nft(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("subnet {subnet} overlaps {other} (on {dev}); choose another with --subnet")]
    Overlap {
        subnet: Cidr,
        other: Cidr,
        dev: String,
    },
    #[error("host port {port}/{proto} on {ip} is already in use: {why}")]
    PortInUse {
        ip: Ipv4Addr,
        port: u16,
        proto: Proto,
        why: String,
    },
    #[error("{0}")]
    Other(String),
}

impl NetError {
    /// See [`crate::error::Kind`].
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            NetError::BadValue { .. } => Kind::User,
            NetError::PortInUse { .. } | NetError::Overlap { .. } => Kind::Conflict,
            NetError::Netlink { .. }
            | NetError::Nft(_)
            | NetError::Io { .. }
            | NetError::Other(_) => Kind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, NetError>;
