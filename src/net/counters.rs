//! [`IfStats`], an interface's traffic counters: portable (a pod's stats
//! carry them to the client, see lib.rs).

use serde::{Deserialize, Serialize};

/// Traffic counters of an interface, as the kernel keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}
