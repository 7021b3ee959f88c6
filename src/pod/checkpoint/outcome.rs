//! The checkpoint's decisions as pure functions of what is recorded, so
//! that every outcome is unit-tested without runsc: what a sandbox exit
//! means to the pod's monitor ([`after_exit`]) and whether a checkpoint ends
//! the pod's current launch ([`stops_launch`]). The row's own transitions
//! are [`CheckpointState::next`] (in `state`). Times are compared as times,
//! never as text.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::state::{CheckpointRow, CheckpointState};

/// What the monitor knows when its sandbox has exited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SandboxExit<'a> {
    /// This runsc keeps a `--leave-running` sandbox in place (20240415+):
    /// the only checkpoint that ends a sandbox there is gvpod's own stop
    /// after a registered snapshot (`paused`).
    pub in_place: bool,
    /// runsc exited with status 0 (a checkpoint on 20221219 looks like that).
    pub clean: bool,
    /// When the monitor launched this sandbox.
    pub launched: DateTime<Utc>,
    /// The pod's checkpoint row, if it has one.
    pub checkpoint: Option<&'a CheckpointRow>,
}

/// What the monitor does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// A normal exit: record it.
    Exit,
    /// The pod was checkpointed to this snapshot: record it as such.
    Checkpointed(String),
    /// Restore the pod in place from the memory image in this directory
    /// (an emulated `--leave-running`, or a save that failed after the
    /// sandbox stopped).
    Resume(PathBuf),
    /// The save is under way and its gvpod may have died: take over one of
    /// these image directories (its lock is free) and resume from it, or
    /// look again.
    Claim([PathBuf; 2]),
    /// A save under way left nothing behind: forget the checkpoint, exit.
    Forget,
}

/// Decides what a sandbox exit means. `snapshot_dir` is where the
/// checkpoint's snapshot goes once complete; `exists` tells whether a
/// directory is there.
pub(crate) fn after_exit(
    e: SandboxExit,
    snapshot_dir: impl Fn(&str) -> PathBuf,
    exists: impl Fn(&Path) -> bool,
) -> Next {
    // A checkpoint begun before this launch explains nothing about it.
    let Some(c) = e.checkpoint.filter(|c| c.at >= e.launched) else {
        return Next::Exit;
    };
    if e.in_place {
        return if c.state == CheckpointState::Done && !c.leave_running {
            Next::Checkpointed(c.snapshot_name.clone())
        } else {
            Next::Exit
        };
    }
    if !e.clean {
        return Next::Exit;
    }
    match c.state {
        CheckpointState::Resumed => Next::Exit,
        CheckpointState::Done if c.leave_running => Next::Resume(PathBuf::from(&c.dir)),
        CheckpointState::Done => Next::Checkpointed(c.snapshot_name.clone()),
        CheckpointState::Failed => Next::Resume(PathBuf::from(&c.dir)),
        CheckpointState::Saving | CheckpointState::Saved => {
            let dirs = [PathBuf::from(&c.dir), snapshot_dir(&c.snapshot_id)];
            if dirs.iter().all(|d| !exists(d)) {
                Next::Forget
            } else {
                Next::Claim(dirs)
            }
        }
    }
}

/// Whether checkpoint `c` (done, without `--leave-running`) ends the launch
/// of the pod that started at `started`.
pub(crate) fn stops_launch(started: Option<DateTime<Utc>>, c: &CheckpointRow) -> bool {
    c.state == CheckpointState::Done && !c.leave_running && started.is_none_or(|s| c.at >= s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn row(state: CheckpointState, leave_running: bool, at: DateTime<Utc>) -> CheckpointRow {
        CheckpointRow {
            pod_id: "p".into(),
            snapshot_id: "sid".into(),
            snapshot_name: "snap".into(),
            dir: "/tmp-image".into(),
            leave_running,
            state,
            at,
        }
    }

    fn decide(in_place: bool, clean: bool, c: Option<&CheckpointRow>, dirs: &[&str]) -> Next {
        let launched = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = SandboxExit {
            in_place,
            clean,
            launched,
            checkpoint: c,
        };
        after_exit(
            e,
            |id| PathBuf::from(format!("/snapshots/{id}")),
            |p| dirs.iter().any(|d| Path::new(d) == p),
        )
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_outcome_of_a_sandbox_exit() {
        use CheckpointState as S;
        let after = t0() + Duration::nanoseconds(1);
        let before = t0() - Duration::seconds(1);
        let img = || PathBuf::from("/tmp-image");
        let claim = || Next::Claim([img(), PathBuf::from("/snapshots/sid")]);
        let snap = || Next::Checkpointed("snap".into());
        // (in_place, clean, state, leave_running, at, dirs present, expected)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(bool, bool, Option<(S, bool, DateTime<Utc>)>, &[&str], Next)> = vec![
            // No checkpoint, or one from an earlier launch: a plain exit.
            (false, true, None, &[], Next::Exit),
            (true, true, None, &[], Next::Exit),
            (false, true, Some((S::Done, false, before)), &[], Next::Exit),
            (true, false, Some((S::Done, false, before)), &[], Next::Exit),
            // The same instant counts as this launch's checkpoint.
            (false, true, Some((S::Done, false, t0())), &[], snap()),
            // In place: only a registered stop-checkpoint ends the pod.
            (true, false, Some((S::Done, false, after)), &[], snap()),
            (true, true, Some((S::Done, true, after)), &[], Next::Exit),
            (
                true,
                true,
                Some((S::Saving, false, after)),
                &["/tmp-image"],
                Next::Exit,
            ),
            (true, true, Some((S::Failed, false, after)), &[], Next::Exit),
            // 20221219 style: a crash or kill is never a checkpoint.
            (false, false, Some((S::Done, false, after)), &[], Next::Exit),
            (
                false,
                false,
                Some((S::Failed, false, after)),
                &[],
                Next::Exit,
            ),
            (false, true, Some((S::Done, false, after)), &[], snap()),
            (
                false,
                true,
                Some((S::Done, true, after)),
                &[],
                Next::Resume(img()),
            ),
            (
                false,
                true,
                Some((S::Failed, false, after)),
                &[],
                Next::Resume(img()),
            ),
            (
                false,
                true,
                Some((S::Failed, true, after)),
                &[],
                Next::Resume(img()),
            ),
            (
                false,
                true,
                Some((S::Resumed, true, after)),
                &[],
                Next::Exit,
            ),
            (
                false,
                true,
                Some((S::Saving, false, after)),
                &["/tmp-image"],
                claim(),
            ),
            (
                false,
                true,
                Some((S::Saved, false, after)),
                &["/snapshots/sid"],
                claim(),
            ),
            (
                false,
                true,
                Some((S::Saved, true, after)),
                &[],
                Next::Forget,
            ),
            (
                false,
                true,
                Some((S::Saving, false, after)),
                &[],
                Next::Forget,
            ),
        ];
        for (i, (in_place, clean, c, dirs, want)) in cases.into_iter().enumerate() {
            let r = c.map(|(s, lr, at)| row(s, lr, at));
            assert_eq!(
                decide(in_place, clean, r.as_ref(), dirs),
                want,
                "case {i}: in_place={in_place} clean={clean} {r:?} dirs={dirs:?}"
            );
        }
    }

    #[test]
    fn a_checkpoint_ends_only_the_launch_it_saw() {
        use CheckpointState as S;
        let c = row(S::Done, false, t0());
        assert!(stops_launch(Some(t0() - Duration::seconds(5)), &c));
        assert!(stops_launch(Some(t0()), &c));
        assert!(stops_launch(None, &c));
        // Restarted after the checkpoint: this launch is not its.
        assert!(!stops_launch(Some(t0() + Duration::milliseconds(1)), &c));
        assert!(!stops_launch(Some(t0()), &row(S::Done, true, t0())));
        for s in [S::Saving, S::Saved, S::Failed, S::Resumed] {
            assert!(!stops_launch(Some(t0()), &row(s, false, t0())), "{s:?}");
        }
    }

    #[test]
    fn times_compare_as_times_not_text() {
        // Same instant, two spellings: text order would say otherwise.
        let a = crate::util::parse_rfc3339("2026-01-01T01:00:00+01:00").unwrap();
        let b = crate::util::parse_rfc3339("2026-01-01T00:00:00.5Z").unwrap();
        assert!(a < b);
        assert!("2026-01-01T01:00:00+01:00" > "2026-01-01T00:00:00.5Z");
    }
}
