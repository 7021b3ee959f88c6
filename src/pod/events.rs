//! Pod lifecycle events (docker's container `create`, `start`, `die`,
//! `destroy`) found by watching the state database, for the API's
//! `/events`: gvpod has no daemon that could announce them, so a watcher
//! compares successive snapshots of the pods table ([`EventWatch`]) and
//! past events are rebuilt from the times recorded on each pod
//! ([`past_events`]).
//!
//! Invariant: a watcher reports each change once, in time order within
//! one poll; a pod created and removed between two polls is not seen (the
//! stream is best effort, as the brief of `/events` allows).

use std::collections::BTreeMap;

use super::{Ctx, Result};
use crate::state::{PodRow, PodStatus};

/// One lifecycle event of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    /// `create`, `start`, `die` or `destroy`.
    pub action: &'static str,
    pub id: String,
    pub name: String,
    pub image: String,
    /// The exit code, for `die`.
    pub exit_code: Option<i32>,
    /// When it happened, nanoseconds since the epoch.
    pub time_nanos: i64,
}

fn nanos(t: Option<&str>) -> Option<i64> {
    crate::util::parse_rfc3339(t?)?.timestamp_nanos_opt()
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// What a watcher remembers of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    name: String,
    created: String,
    image: String,
    status: PodStatus,
    started: Option<String>,
    finished: Option<String>,
    exit_code: Option<i32>,
}

impl Seen {
    fn of(p: &PodRow) -> Seen {
        Seen {
            name: p.name.clone(),
            created: p.created.clone(),
            image: p.image_ref.clone(),
            status: p.status,
            started: p.started.clone(),
            finished: p.finished.clone(),
            exit_code: p.exit_code,
        }
    }

    fn event(&self, id: &str, action: &'static str, time_nanos: i64) -> PodEvent {
        PodEvent {
            action,
            id: id.to_string(),
            name: self.name.clone(),
            image: self.image.clone(),
            exit_code: (action == "die").then_some(self.exit_code.unwrap_or(-1)),
            time_nanos,
        }
    }
}

/// The events that turn snapshot `old` into `new` (pure: the watcher's logic).
fn diff(old: &BTreeMap<String, Seen>, new: &BTreeMap<String, Seen>) -> Vec<PodEvent> {
    let now = now_nanos();
    let mut out = vec![];
    for (id, n) in new {
        let o = old.get(id);
        if o.is_none() {
            out.push(n.event(id, "create", nanos(Some(&n.created)).unwrap_or(now)));
        }
        let started_again = n.started.is_some() && o.is_none_or(|o| o.started != n.started);
        if started_again {
            out.push(n.event(id, "start", nanos(n.started.as_deref()).unwrap_or(now)));
        }
        let ended = n.status == PodStatus::Exited
            && n.finished.is_some()
            && o.is_none_or(|o| o.finished != n.finished || o.status != PodStatus::Exited);
        if ended {
            out.push(n.event(id, "die", nanos(n.finished.as_deref()).unwrap_or(now)));
        }
    }
    for (id, o) in old {
        if !new.contains_key(id) {
            out.push(o.event(id, "destroy", now));
        }
    }
    out.sort_by_key(|e| e.time_nanos);
    out
}

/// Watches the pods table for lifecycle changes.
pub struct EventWatch {
    seen: BTreeMap<String, Seen>,
}

impl EventWatch {
    /// A watcher that reports changes from now on.
    pub fn new(ctx: &Ctx) -> Result<EventWatch> {
        Ok(EventWatch {
            seen: snapshot(ctx)?,
        })
    }

    /// The events since the last poll. A pod removed before its start or
    /// exit was seen (a quick `run --rm`) gets them from the exit kept for
    /// removed pods, just before its `destroy`.
    pub fn poll(&mut self, ctx: &Ctx) -> Result<Vec<PodEvent>> {
        let now = snapshot(ctx)?;
        let mut out = vec![];
        for e in diff(&self.seen, &now) {
            let old = self.seen.get(&e.id).filter(|_| e.action == "destroy");
            if let Some(o) = old.filter(|o| o.status != PodStatus::Exited) {
                if let Some(code) = ctx.db.exit_of_removed(&e.id)? {
                    if o.status == PodStatus::Created {
                        out.push(o.event(&e.id, "start", e.time_nanos));
                    }
                    let mut die = o.event(&e.id, "die", e.time_nanos);
                    die.exit_code = Some(code.unwrap_or(-1));
                    out.push(die);
                }
            }
            out.push(e);
        }
        self.seen = now;
        Ok(out)
    }
}

fn snapshot(ctx: &Ctx) -> Result<BTreeMap<String, Seen>> {
    Ok(ctx
        .db
        .pods()?
        .iter()
        .map(|p| (p.id.clone(), Seen::of(p)))
        .collect())
}

/// The events of the pods that still exist, rebuilt from their recorded
/// times, from `since` (nanoseconds) on, oldest first (each pod's last
/// start and exit only: earlier ones are not kept).
pub fn past_events(ctx: &Ctx, since: i64) -> Result<Vec<PodEvent>> {
    let mut out = vec![];
    for p in ctx.db.pods()? {
        let s = Seen::of(&p);
        let times = [
            ("create", nanos(Some(&p.created))),
            ("start", nanos(p.started.as_deref())),
            (
                "die",
                nanos(p.finished.as_deref()).filter(|_| p.status == PodStatus::Exited),
            ),
        ];
        for (action, t) in times {
            if let Some(t) = t.filter(|t| *t >= since) {
                out.push(s.event(&p.id, action, t));
            }
        }
    }
    out.sort_by_key(|e| e.time_nanos);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: PodStatus, started: Option<&str>, finished: Option<&str>) -> Seen {
        Seen {
            name: "web".into(),
            created: "2026-01-01T00:00:00Z".into(),
            image: "busybox".into(),
            status,
            started: started.map(str::to_string),
            finished: finished.map(str::to_string),
            exit_code: Some(3),
        }
    }

    fn actions(old: &[(&str, Seen)], new: &[(&str, Seen)]) -> Vec<&'static str> {
        let m = |v: &[(&str, Seen)]| {
            v.iter()
                .map(|(k, s)| (k.to_string(), s.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        diff(&m(old), &m(new)).iter().map(|e| e.action).collect()
    }

    const T1: &str = "2026-01-01T00:00:01Z";
    const T2: &str = "2026-01-01T00:00:02Z";

    #[test]
    fn a_life_is_seen_step_by_step() {
        let created = seen(PodStatus::Created, None, None);
        let running = seen(PodStatus::Running, Some(T1), None);
        let exited = seen(PodStatus::Exited, Some(T1), Some(T2));
        assert_eq!(actions(&[], &[("a", created.clone())]), ["create"]);
        assert_eq!(
            actions(&[("a", created.clone())], &[("a", running.clone())]),
            ["start"]
        );
        assert_eq!(
            actions(&[("a", running.clone())], &[("a", exited.clone())]),
            ["die"]
        );
        assert_eq!(actions(&[("a", exited.clone())], &[]), ["destroy"]);
        assert!(actions(&[("a", exited.clone())], &[("a", exited.clone())]).is_empty());
        // All at once (a `run --rm` between two polls, but not yet removed).
        assert_eq!(actions(&[], &[("a", exited)]), ["create", "start", "die"]);
    }

    #[test]
    fn a_die_carries_the_exit_code() {
        let old = BTreeMap::from([("a".to_string(), seen(PodStatus::Running, Some(T1), None))]);
        let new = BTreeMap::from([("a".to_string(), seen(PodStatus::Exited, Some(T1), Some(T2)))]);
        let ev = diff(&old, &new);
        assert_eq!(ev[0].exit_code, Some(3));
        assert_eq!(ev[0].time_nanos, nanos(Some(T2)).unwrap());
    }
}
