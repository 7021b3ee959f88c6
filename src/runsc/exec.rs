//! The seam between gvpod and the runsc process: every short runsc
//! subcommand whose output gvpod reads (`state`, `kill`, `delete`, `list`,
//! `pause`, `resume`, `checkpoint`, `exec cat`) goes through [`Exec`].
//! Production runs the command ([`System`]); unit tests plug in an
//! in-memory runsc (`runsc::fake`) that keeps a table of containers and
//! answers as runsc does, so the orchestrator's status, rollback and
//! checkpoint paths run without root or runsc (the role youki's `Syscall`
//! trait and netavark's fake netlink client play there).
//!
//! Long-lived children (`runsc run`/`restore`, which the pod monitor owns
//! with their stdio) are not behind this seam: the monitor's decisions
//! about them are pure functions tested on their own.

use std::process::{Command, Output};

/// Runs a runsc command to completion and returns what it printed.
pub trait Exec: Send + Sync + std::fmt::Debug {
    fn output(&self, cmd: &mut Command) -> std::io::Result<Output>;
}

/// The real thing: spawns the command.
#[derive(Debug, Default)]
pub struct System;

impl Exec for System {
    fn output(&self, cmd: &mut Command) -> std::io::Result<Output> {
        cmd.output()
    }
}
