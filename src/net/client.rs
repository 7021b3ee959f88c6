//! `net` in the client build (see lib.rs): only [`NetError`] and the
//! published-port values (`-p`), which the client checks as the host does;
//! netns, links, bridges and nftables are `mod.rs`, compiled only with
//! `host_runtime`.

pub mod cidr;
mod counters;
mod error;
mod port;

pub use cidr::Cidr;
pub use counters::IfStats;
pub use error::{NetError, Result};
pub use port::{parse_port, PortSpec, Proto};
