//! What a pod's restart policy needs recorded (migration 9): the restarts
//! of its monitor since the user last started it, and whether the user
//! stopped or killed it. The user's stop is written before its signal is
//! sent, so the monitor, which reads it when the pod's process ends, never
//! undoes it; a start by the user forgets both.

use super::{sql, Db, Result};
use rusqlite::params;

impl Db {
    /// The user starts the pod: its restart count and any stop by the
    /// user are forgotten (docker resets both on a start).
    pub fn set_pod_start_by_user(&mut self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                // A fresh pod's row already says so: no page to write (a
                // write of the same values would still append to the WAL).
                "UPDATE pods SET restart_count=0, stopped_by_user=0
                 WHERE id=?1 AND (restart_count != 0 OR stopped_by_user != 0)",
                [id],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    /// The user stops or kills the pod: its monitor must not restart it.
    /// Written before the signal is sent, so the monitor sees it when the
    /// pod ends.
    pub fn set_pod_stopped_by_user(&mut self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE pods SET stopped_by_user=1 WHERE id=?1", [id])
                .map_err(sql)?;
            Ok(())
        })
    }

    /// The pod's process ended and its monitor restarts it (after a
    /// back-off): the pod stays `running` with no process, its last exit
    /// and restart number recorded. Nothing happens to a pod no longer
    /// running (or no longer there); returns whether the row was updated.
    pub fn set_pod_restarting(
        &mut self,
        id: &str,
        finished: &str,
        exit_code: Option<i32>,
        restart_count: u32,
    ) -> Result<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE pods SET finished=?2, exit_code=?3, pid=NULL, restart_count=?4 \
                     WHERE id=?1 AND status='running'",
                    params![id, finished, exit_code, restart_count],
                )
                .map_err(sql)?;
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PodStatus;

    fn add_pod(db: &Db, id: &str) {
        db.conn()
            .execute(
                "INSERT INTO pods (id, name, image_id, image_ref, status, config_json, runsc_json, created) \
                 VALUES (?1, ?1, 'sha256:x', 'busybox', 'created', '{}', '{}', 't')",
                [id],
            )
            .unwrap();
    }

    #[test]
    fn a_restart_keeps_the_last_exit_and_a_start_by_the_user_forgets_it() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        db.conn().execute_batch("PRAGMA foreign_keys=OFF").unwrap();
        add_pod(&db, "a");
        db.set_pod_started("a", "t1", Some(5), 6).unwrap();
        assert!(db.set_pod_restarting("a", "t2", Some(3), 1).unwrap());
        let p = db.pod("a").unwrap().unwrap();
        assert_eq!(
            (p.status, p.pid, p.exit_code, p.restart_count),
            (PodStatus::Running, None, Some(3), 1),
            "running, between two launches"
        );
        db.set_pod_started("a", "t3", Some(7), 6).unwrap();
        let p = db.pod("a").unwrap().unwrap();
        assert_eq!(
            (p.pid, p.exit_code, p.finished.as_deref()),
            (Some(7), Some(3), Some("t2"))
        );
        db.set_pod_stopped_by_user("a").unwrap();
        db.set_pod_exited("a", "t4", Some(143)).unwrap();
        let p = db.pod("a").unwrap().unwrap();
        assert!(p.stopped_by_user && p.restart_count == 1);
        assert!(
            !db.set_pod_restarting("a", "t5", Some(1), 2).unwrap(),
            "an exited pod is not restarting"
        );
        db.set_pod_start_by_user("a").unwrap();
        db.set_pod_started("a", "t6", Some(8), 9).unwrap();
        let p = db.pod("a").unwrap().unwrap();
        assert_eq!(
            (p.exit_code, p.finished, p.restart_count, p.stopped_by_user),
            (None, None, 0, false)
        );
    }
}
