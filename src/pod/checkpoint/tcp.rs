//! Which TCP connections keep a pod from being checkpointed.
//!
//! REFERENCES.md "TCP and saves": before 20251208 a save fails while any
//! eth0 TCP endpoint is connected or lingering (TIME_WAIT for 60 s when the
//! pod closed first, with no socket its own /proc/net/tcp would list; the
//! host's conntrack still sees it). A sandbox whose NIC was built with
//! `--net-disconnect-ok` (gvpod gives it to every networked pod whose runsc
//! has the flag, see `provision::flags`) resets them instead; one whose
//! runsc migrates TCP (`--allow-live-tcp-migration`) carries them over.
//!
//! Policy, the same on every release:
//! - connections a client would notice (established, half-closed, being
//!   opened) refuse the checkpoint, naming them, unless `--tcp-close` asks
//!   to reset them (refused, with one line, where the NIC cannot);
//! - connections that are only lingering (TIME_WAIT, LAST_ACK, CLOSING)
//!   are harmless to reset: they refuse the checkpoint only where runsc
//!   would fail the save on them (no `--net-disconnect-ok`).
//!
//! This check is advice, not the guarantee: a connection opened after it
//! is reset (NIC with the capability), or fails the save, which with
//! `--leave-running` leaves the pod running (see `paused`); only runsc
//! releases without an in-place `--leave-running` (20221219) depend on it.

use super::super::{Ctx, PodError, Result};
use crate::runsc::{GlobalFlags, Runsc};
use crate::state::PodRow;

/// States in which a connection is over for its client.
const LINGERING: [&str; 4] = ["TIME_WAIT", "LAST_ACK", "CLOSING", "CLOSE"];

/// Refuses the checkpoint of `pod` (one line, exit 2) when its TCP
/// connections would fail the save or be reset without `--tcp-close`.
pub(super) fn check(
    ctx: &Ctx,
    runsc: &Runsc,
    flags: &GlobalFlags,
    pod: &PodRow,
    tcp_close: bool,
) -> Result<()> {
    let sandbox_net = flags.network == "sandbox";
    if tcp_close {
        if !sandbox_net {
            return Ok(());
        }
        if runsc.features.migrates_tcp() || flags.net_disconnect_ok {
            return Ok(());
        }
        let why = if runsc.features.can_reset_tcp() {
            "it was created without --net-disconnect-ok (by an older gvpod); recreate it, or checkpoint it once its connections are closed".to_string()
        } else {
            format!(
                "runsc {} cannot reset connections on a save (it has no --net-disconnect-ok); checkpoint it once its connections are closed, or use a runsc from 20240520 or later",
                runsc.version.release
            )
        };
        return Err(PodError::Usage(format!(
            "invalid --tcp-close for pod {}: {why}",
            pod.name
        )));
    }
    if !sandbox_net || runsc.features.migrates_tcp() {
        return Ok(());
    }
    // The pod's own sockets (`runsc exec cat /proc/net/tcp`; none known
    // when the image has no cat), and what conntrack still sees of its
    // address since this sandbox started.
    let mut open = runsc.open_tcp(flags, &pod.id).unwrap_or_default();
    if let Some((_, ip)) = ctx.db.lease_of(&pod.id)? {
        let age = pod
            .started
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            })
            .unwrap_or(std::time::Duration::MAX);
        open.extend(crate::net::conntrack::busy(ip, age).unwrap_or_default());
    }
    let resets = flags.net_disconnect_ok;
    let open = refusing(open, resets);
    if open.is_empty() {
        return Ok(());
    }
    let why = if resets {
        "a checkpoint would reset; retry once they are closed, or checkpoint with --tcp-close to reset them (their clients see a reset)".to_string()
    } else {
        format!(
            "runsc {} cannot save; retry once they are closed (a connection the pod closed lingers in TIME_WAIT for 60 s)",
            runsc.version.release
        )
    };
    Err(PodError::Usage(format!(
        "pod {} has {} open TCP connection(s) ({}) that {why}",
        pod.name,
        open.len(),
        open.join(", ")
    )))
}

/// The connections ("STATE a -> b") that refuse a checkpoint, sorted and
/// without repeats: all of them, or, where the NIC resets connections on a
/// save, those a client would still notice.
fn refusing(mut open: Vec<String>, nic_resets: bool) -> Vec<String> {
    if nic_resets {
        open.retain(|c| {
            let state = c.split_whitespace().next().unwrap_or("");
            !LINGERING.contains(&state)
        });
    }
    open.sort();
    open.dedup();
    open
}

#[cfg(test)]
mod tests {
    use super::refusing;

    #[test]
    fn lingering_connections_refuse_only_where_the_save_would_fail() {
        let seen = vec![
            "TIME_WAIT 198.18.0.2:80 -> 198.18.0.1:5000".to_string(),
            "ESTABLISHED 198.18.0.2:80 -> 198.18.0.1:5001".to_string(),
            "LAST_ACK 198.18.0.2:80 -> 198.18.0.1:5002".to_string(),
            "ESTABLISHED 198.18.0.2:80 -> 198.18.0.1:5001".to_string(),
        ];
        assert_eq!(refusing(seen.clone(), false).len(), 3);
        assert_eq!(
            refusing(seen, true),
            ["ESTABLISHED 198.18.0.2:80 -> 198.18.0.1:5001"]
        );
        assert!(refusing(vec!["TIME_WAIT a -> b".into()], true).is_empty());
    }
}
