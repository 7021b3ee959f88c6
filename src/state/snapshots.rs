//! Snapshot rows and the checkpoint a pod is going through.
//!
//! A snapshot is registered (row inserted) only after its directory is
//! complete and in place, so a row always names a whole snapshot. The
//! `pod_checkpoints` row is how `gvpod checkpoint` and the pod's monitor talk:
//! runsc's sandbox exits when it is checkpointed (`runsc run` returns 0), and
//! the monitor must tell that from a normal exit and wait for the outcome.

use super::{sql, Db, Result, StateError};
use rusqlite::{params, OptionalExtension, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: String,
    pub name: String,
    pub pod_id: String,
    pub pod_name: String,
    pub image_id: String,
    pub image_ref: String,
    pub runsc_version: String,
    pub platform: String,
    pub created: String,
    pub size: i64,
    pub meta_json: String,
}

/// Where a checkpoint is. `Saving` → `Saved` (runsc wrote the memory image)
/// → `Done` (snapshot registered) or `Failed`; the monitor answers a failure
/// or a 20221219-style `--leave-running` by restoring and setting `Resumed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointState {
    Saving,
    Saved,
    Done,
    Failed,
    Resumed,
}

/// What happens to a checkpoint; [`CheckpointState::next`] says where each
/// leads. Every write of the state goes through it, in the transaction that
/// reads the current state, so the client (`gvpod checkpoint`) and the pod's
/// monitor cannot both win a race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointEvent {
    /// runsc wrote the memory image.
    ImageWritten,
    /// The snapshot was registered (`insert_snapshot_finishing`).
    Registered,
    /// The save failed after the sandbox stopped, or its gvpod died: the
    /// monitor restores the pod from the image.
    SaveFailed,
    /// The pod runs again after a `--leave-running` save or a failure.
    Resumed,
}

impl CheckpointState {
    /// The state `event` leads to from `self`; `None` when it cannot happen
    /// there (the checkpoint moved on meanwhile: the caller lost a race).
    pub fn next(self, event: CheckpointEvent) -> Option<CheckpointState> {
        use CheckpointEvent as E;
        use CheckpointState as S;
        match (self, event) {
            (S::Saving, E::ImageWritten) => Some(S::Saved),
            (S::Saved, E::Registered) => Some(S::Done),
            (S::Saving | S::Saved, E::SaveFailed) => Some(S::Failed),
            (S::Failed | S::Done, E::Resumed) => Some(S::Resumed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointState::Saving => "saving",
            CheckpointState::Saved => "saved",
            CheckpointState::Done => "done",
            CheckpointState::Failed => "failed",
            CheckpointState::Resumed => "resumed",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "saving" => CheckpointState::Saving,
            "saved" => CheckpointState::Saved,
            "done" => CheckpointState::Done,
            "failed" => CheckpointState::Failed,
            "resumed" => CheckpointState::Resumed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub pod_id: String,
    pub snapshot_id: String,
    pub snapshot_name: String,
    /// The directory holding the memory image (temporary until `Done`).
    pub dir: String,
    pub leave_running: bool,
    pub state: CheckpointState,
    /// When the checkpoint began: it explains a sandbox exit only of a
    /// launch that started before it.
    pub at: chrono::DateTime<chrono::Utc>,
}

const SNAP_COLS: &str = "id, name, pod_id, pod_name, image_id, image_ref, runsc_version, platform, created, size, meta_json";

fn snap_from_row(r: &Row) -> rusqlite::Result<SnapshotRow> {
    Ok(SnapshotRow {
        id: r.get(0)?,
        name: r.get(1)?,
        pod_id: r.get(2)?,
        pod_name: r.get(3)?,
        image_id: r.get(4)?,
        image_ref: r.get(5)?,
        runsc_version: r.get(6)?,
        platform: r.get(7)?,
        created: r.get(8)?,
        size: r.get(9)?,
        meta_json: r.get(10)?,
    })
}

/// [`Db::advance_checkpoint`] inside a transaction.
fn advance(
    tx: &rusqlite::Transaction,
    pod_id: &str,
    event: CheckpointEvent,
    dir: Option<&str>,
) -> Result<CheckpointState> {
    let now: Option<String> = tx
        .query_row(
            "SELECT state FROM pod_checkpoints WHERE pod_id=?1",
            [pod_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    let from = now.as_deref().and_then(CheckpointState::parse);
    let Some(to) = from.and_then(|f| f.next(event)) else {
        return Err(StateError::Corrupt(format!(
            "checkpoint of pod {pod_id}: {event:?} cannot happen in state {}",
            now.as_deref().unwrap_or("(none)")
        )));
    };
    tx.execute(
        "UPDATE pod_checkpoints SET state=?2, dir=coalesce(?3, dir) WHERE pod_id=?1",
        params![pod_id, to.as_str(), dir],
    )
    .map_err(sql)?;
    Ok(to)
}

impl Db {
    /// Registers a snapshot (a taken name is `SnapshotNameInUse`) and,
    /// with `finishing`, in the same transaction marks the
    /// checkpoint of pod `finishing.0` done with its image now in
    /// `finishing.1`, so no crash can leave one without the other.
    pub fn insert_snapshot_finishing(
        &mut self,
        s: &SnapshotRow,
        finishing: Option<(&str, &str)>,
    ) -> Result<()> {
        self.write(|tx| {
            if let Some((pod, dir)) = finishing {
                advance(tx, pod, CheckpointEvent::Registered, Some(dir))?;
            }
            let res = tx.execute(
                &format!("INSERT INTO snapshots ({SNAP_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"),
                params![
                    s.id, s.name, s.pod_id, s.pod_name, s.image_id, s.image_ref,
                    s.runsc_version, s.platform, s.created, s.size, s.meta_json
                ],
            );
            match res {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation
                        && msg.contains("snapshots.name") =>
                {
                    Err(StateError::SnapshotNameInUse(s.name.clone()))
                }
                Err(e) => Err(sql(e)),
            }
        })
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotRow>> {
        self.query_all(
            &format!("SELECT {SNAP_COLS} FROM snapshots ORDER BY created"),
            [],
            snap_from_row,
        )
    }

    /// Snapshots whose name equals `key` or whose id starts with `key`.
    pub fn find_snapshots(&self, key: &str) -> Result<Vec<SnapshotRow>> {
        self.query_all(
            &format!(
                "SELECT {SNAP_COLS} FROM snapshots WHERE name = ?1 OR substr(id, 1, length(?1)) = ?1"
            ),
            [key],
            snap_from_row,
        )
    }

    pub fn snapshot_name_taken(&self, name: &str) -> Result<bool> {
        self.conn()
            .query_row("SELECT 1 FROM snapshots WHERE name=?1", [name], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    pub fn delete_snapshot(&mut self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM snapshots WHERE id=?1", [id])
                .map_err(sql)?;
            Ok(())
        })
    }

    /// Starts a checkpoint of a pod; fails if one is already under way.
    pub fn begin_checkpoint(&mut self, c: &CheckpointRow) -> Result<bool> {
        self.write(|tx| {
            let busy: Option<String> = tx
                .query_row(
                    "SELECT state FROM pod_checkpoints WHERE pod_id=?1",
                    [&c.pod_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if matches!(busy.as_deref(), Some("saving" | "saved" | "failed")) {
                return Ok(false);
            }
            tx.execute(
                "INSERT OR REPLACE INTO pod_checkpoints (pod_id, snapshot_id, snapshot_name, dir, leave_running, state, at) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![c.pod_id, c.snapshot_id, c.snapshot_name, c.dir, c.leave_running, c.state.as_str(), crate::util::rfc3339(&c.at)],
            )
            .map_err(sql)?;
            Ok(true)
        })
    }

    pub fn checkpoint_of(&self, pod_id: &str) -> Result<Option<CheckpointRow>> {
        let row = self
            .conn()
            .query_row(
                "SELECT pod_id, snapshot_id, snapshot_name, dir, leave_running, state, at FROM pod_checkpoints WHERE pod_id=?1",
                [pod_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, bool>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(
            |(pod_id, snapshot_id, snapshot_name, dir, leave_running, state, at)| {
                let at = crate::util::parse_rfc3339(&at).ok_or_else(|| {
                    StateError::Corrupt(format!(
                        "checkpoint of pod {pod_id}: column at is not a time ({at:?})"
                    ))
                })?;
                Ok(CheckpointRow {
                    pod_id,
                    snapshot_id,
                    snapshot_name,
                    dir,
                    leave_running,
                    state: CheckpointState::parse(&state).ok_or_else(|| {
                        StateError::Corrupt(format!("unknown checkpoint state {state:?}"))
                    })?,
                    at,
                })
            },
        )
        .transpose()
    }

    /// Moves a pod's checkpoint on by `event` (and its image to `dir` when
    /// given). Fails when the checkpoint is gone or `event` cannot happen in
    /// its current state ([`CheckpointState::next`]): someone else moved it.
    pub fn advance_checkpoint(
        &mut self,
        pod_id: &str,
        event: CheckpointEvent,
        dir: Option<&str>,
    ) -> Result<CheckpointState> {
        self.write(|tx| advance(tx, pod_id, event, dir))
    }

    pub fn clear_checkpoint(&mut self, pod_id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM pod_checkpoints WHERE pod_id=?1", [pod_id])
                .map_err(sql)?;
            Ok(())
        })
    }

    /// Checkpoint records whose pod is gone (for `system gc`).
    pub fn clear_orphan_checkpoints(&mut self) -> Result<usize> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM pod_checkpoints WHERE pod_id NOT IN (SELECT id FROM pods)",
                [],
            )
            .map_err(sql)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, name: &str) -> SnapshotRow {
        SnapshotRow {
            id: id.into(),
            name: name.into(),
            pod_id: "p".into(),
            pod_name: "web".into(),
            image_id: "sha256:x".into(),
            image_ref: "busybox".into(),
            runsc_version: "v".into(),
            platform: "ptrace".into(),
            created: "2026".into(),
            size: 1,
            meta_json: "{}".into(),
        }
    }

    #[test]
    fn snapshot_names_are_unique_and_prefixes_resolve() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        db.insert_snapshot_finishing(&snap("abc1", "s1"), None)
            .unwrap();
        let e = db
            .insert_snapshot_finishing(&snap("abc2", "s1"), None)
            .unwrap_err();
        assert!(
            matches!(e, StateError::SnapshotNameInUse(ref n) if n == "s1"),
            "{e}"
        );
        db.insert_snapshot_finishing(&snap("abd3", "s2"), None)
            .unwrap();
        assert_eq!(db.find_snapshots("ab").unwrap().len(), 2);
        assert_eq!(db.find_snapshots("s2").unwrap()[0].id, "abd3");
        assert!(db.snapshot_name_taken("s1").unwrap());
        db.delete_snapshot("abc1").unwrap();
        assert!(!db.snapshot_name_taken("s1").unwrap());
    }

    #[test]
    fn one_checkpoint_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        let c = CheckpointRow {
            pod_id: "p".into(),
            snapshot_id: "s".into(),
            snapshot_name: "n".into(),
            dir: "/tmp/x".into(),
            leave_running: false,
            state: CheckpointState::Saving,
            at: chrono::Utc::now(),
        };
        assert!(db.begin_checkpoint(&c).unwrap());
        assert!(!db.begin_checkpoint(&c).unwrap());
        assert_eq!(db.checkpoint_of("p").unwrap().unwrap().at, c.at);
        db.advance_checkpoint("p", CheckpointEvent::ImageWritten, None)
            .unwrap();
        db.advance_checkpoint("p", CheckpointEvent::Registered, Some("/final"))
            .unwrap();
        let got = db.checkpoint_of("p").unwrap().unwrap();
        assert_eq!(
            (got.state, got.dir.as_str()),
            (CheckpointState::Done, "/final")
        );
        // Registered twice: the second writer lost a race and is told so.
        assert!(db
            .advance_checkpoint("p", CheckpointEvent::Registered, None)
            .is_err());
        assert!(db.begin_checkpoint(&c).unwrap());
        assert_eq!(db.clear_orphan_checkpoints().unwrap(), 1);
        assert!(db.checkpoint_of("p").unwrap().is_none());
    }

    #[test]
    fn checkpoint_transitions() {
        use CheckpointEvent as E;
        use CheckpointState as S;
        let all_s = [S::Saving, S::Saved, S::Done, S::Failed, S::Resumed];
        let all_e = [E::ImageWritten, E::Registered, E::SaveFailed, E::Resumed];
        let legal = [
            (S::Saving, E::ImageWritten, S::Saved),
            (S::Saved, E::Registered, S::Done),
            (S::Saving, E::SaveFailed, S::Failed),
            (S::Saved, E::SaveFailed, S::Failed),
            (S::Failed, E::Resumed, S::Resumed),
            (S::Done, E::Resumed, S::Resumed),
        ];
        for s in all_s {
            for e in all_e {
                let want = legal.iter().find(|l| l.0 == s && l.1 == e).map(|l| l.2);
                assert_eq!(s.next(e), want, "{s:?} + {e:?}");
            }
        }
        // Nothing leaves Resumed; a new checkpoint starts a new row.
        assert!(all_e.iter().all(|e| S::Resumed.next(*e).is_none()));
    }

    #[test]
    fn a_corrupt_checkpoint_time_is_named() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        db.conn()
            .execute(
                "INSERT INTO pod_checkpoints (pod_id, snapshot_id, snapshot_name, dir, leave_running, state, at) VALUES ('p','s','n','/d',0,'saving','yesterday')",
                [],
            )
            .unwrap();
        let e = db.checkpoint_of("p").unwrap_err().to_string();
        assert!(e.contains("pod p") && e.contains("yesterday"), "{e}");
        let _ = &mut db;
    }
}
