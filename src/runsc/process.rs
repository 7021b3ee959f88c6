//! One process inside a sandbox, as `runsc ps` shows it ([`super::ps`]
//! parses it): portable, `gvpod top`'s wire type (see lib.rs).

use serde::{Deserialize, Serialize};

/// One process inside a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub uid: String,
    pub pid: u32,
    pub ppid: u32,
    /// CPU utilisation, percent (ps's `C`).
    pub c: String,
    pub tty: String,
    /// Start time (`HH:MM` today, else a date).
    pub stime: String,
    /// CPU time used (`10ms`, `1.5s`, …, as runsc prints it).
    pub time: String,
    pub cmd: String,
}
