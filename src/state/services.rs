//! Supervised services (migration 11), written by the pod's monitor
//! (`pod::service`) and read by `ps`, `inspect` and `service ls`. One row
//! per service of a pod, made when the monitor first supervises it and
//! removed with the pod (ON DELETE CASCADE). `installed` and the pod's
//! `setup_done` say that a once-per-pod step ran to success: they outlive
//! the pod's launches (a restart or a stop/start never repeats them).

use rusqlite::{params, OptionalExtension};

use super::{sql, Db, Result};

/// A service as last recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub name: String,
    /// `waiting` (for its dependencies or the pod), `installing`,
    /// `running`, `restarting`, `exited`, `failed` (its install failed or
    /// its restarts ran out), `stopped` (by the user).
    pub state: String,
    /// `none` (no health check), `starting`, `healthy`, `unhealthy`.
    pub health: String,
    pub installed: bool,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    /// Consecutive failed checks.
    pub failing: u32,
    pub checked_at: Option<String>,
    /// The last check's output (or error), at most a few hundred bytes.
    pub check_output: String,
}

/// One change the monitor records.
#[derive(Debug, Clone)]
pub enum ServiceUpdate<'a> {
    /// A new state; `started_at` is set when it is `Some`, `exit_code`
    /// always (None clears it).
    State {
        state: &'a str,
        exit_code: Option<i32>,
        started_at: Option<&'a str>,
    },
    Installed,
    Restarts(u32),
    Health {
        health: &'a str,
        failing: u32,
        at: &'a str,
        output: &'a str,
    },
}

impl Db {
    /// Makes the rows of a pod's services (in state `waiting`, health
    /// `none` or `starting` per `checked`), keeping what existing rows
    /// record of installs and restarts, and drops rows of services the pod
    /// no longer has. Every service's state is reset for a new launch.
    pub fn reset_services(&mut self, pod_id: &str, services: &[(String, bool)]) -> Result<()> {
        self.write(|tx| {
            let names: Vec<String> = services.iter().map(|(n, _)| n.clone()).collect();
            let mut stmt = tx
                .prepare("SELECT name FROM services WHERE pod_id=?1")
                .map_err(sql)?;
            let old: Vec<String> = stmt
                .query_map([pod_id], |r| r.get(0))
                .map_err(sql)?
                .collect::<std::result::Result<_, _>>()
                .map_err(sql)?;
            for n in old.iter().filter(|n| !names.contains(n)) {
                tx.execute(
                    "DELETE FROM services WHERE pod_id=?1 AND name=?2",
                    params![pod_id, n],
                )
                .map_err(sql)?;
            }
            for (name, checked) in services {
                let health = if *checked { "starting" } else { "none" };
                tx.execute(
                    "INSERT INTO services (pod_id, name, health) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (pod_id, name) DO UPDATE SET state='waiting', health=?3, \
                     exit_code=NULL, failing=0, checked_at=NULL, check_output=''",
                    params![pod_id, name, health],
                )
                .map_err(sql)?;
            }
            Ok(())
        })
    }

    pub fn update_service(&mut self, pod_id: &str, name: &str, u: ServiceUpdate) -> Result<()> {
        self.write(|tx| {
            match u {
                ServiceUpdate::State {
                    state,
                    exit_code,
                    started_at,
                } => tx.execute(
                    "UPDATE services SET state=?3, exit_code=?4, \
                     started_at=COALESCE(?5, started_at) WHERE pod_id=?1 AND name=?2",
                    params![pod_id, name, state, exit_code, started_at],
                ),
                ServiceUpdate::Installed => tx.execute(
                    "UPDATE services SET installed=1 WHERE pod_id=?1 AND name=?2",
                    params![pod_id, name],
                ),
                ServiceUpdate::Restarts(n) => tx.execute(
                    "UPDATE services SET restarts=?3 WHERE pod_id=?1 AND name=?2",
                    params![pod_id, name, n],
                ),
                ServiceUpdate::Health {
                    health,
                    failing,
                    at,
                    output,
                } => tx.execute(
                    "UPDATE services SET health=?3, failing=?4, checked_at=?5, check_output=?6 \
                     WHERE pod_id=?1 AND name=?2",
                    params![pod_id, name, health, failing, at, output],
                ),
            }
            .map_err(sql)?;
            Ok(())
        })
    }

    /// A pod's services, by name.
    pub fn services(&self, pod_id: &str) -> Result<Vec<ServiceRow>> {
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT name, state, health, installed, restarts, exit_code, started_at, \
                 failing, checked_at, check_output FROM services WHERE pod_id=?1 ORDER BY name",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([pod_id], |r| {
                Ok(ServiceRow {
                    name: r.get(0)?,
                    state: r.get(1)?,
                    health: r.get(2)?,
                    installed: r.get(3)?,
                    restarts: r.get(4)?,
                    exit_code: r.get(5)?,
                    started_at: r.get(6)?,
                    failing: r.get(7)?,
                    checked_at: r.get(8)?,
                    check_output: r.get(9)?,
                })
            })
            .map_err(sql)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sql)?;
        Ok(rows)
    }

    /// Whether the pod's setup commands ran to success.
    pub fn setup_done(&self, pod_id: &str) -> Result<bool> {
        let v: Option<bool> = self
            .conn()
            .query_row("SELECT setup_done FROM pods WHERE id=?1", [pod_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        Ok(v.unwrap_or(false))
    }

    pub fn set_setup_done(&mut self, pod_id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("UPDATE pods SET setup_done=1 WHERE id=?1", [pod_id])
                .map_err(sql)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceUpdate;
    use crate::state::Db;

    #[test]
    fn rows_keep_installs_across_launches_and_follow_the_spec() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        // A pod row with no image row behind it: checked again before the delete.
        db.conn().execute_batch("PRAGMA foreign_keys=OFF").unwrap();
        db.conn()
            .execute(
                "INSERT INTO pods (id, name, image_id, image_ref, status, config_json, runsc_json, created) \
                 VALUES ('p1', 'p1', 'sha256:x', 'busybox', 'created', '{}', '{}', 't')",
                [],
            )
            .unwrap();
        db.conn().execute_batch("PRAGMA foreign_keys=ON").unwrap();
        let svcs = |v: &[(&str, bool)]| -> Vec<(String, bool)> {
            v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
        };
        db.reset_services("p1", &svcs(&[("app", true), ("db", false)]))
            .unwrap();
        db.update_service("p1", "app", ServiceUpdate::Installed)
            .unwrap();
        db.update_service(
            "p1",
            "app",
            ServiceUpdate::State {
                state: "running",
                exit_code: None,
                started_at: Some("t1"),
            },
        )
        .unwrap();
        db.update_service(
            "p1",
            "app",
            ServiceUpdate::Health {
                health: "healthy",
                failing: 0,
                at: "t2",
                output: "200",
            },
        )
        .unwrap();
        let rows = db.services("p1").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].state.as_str(), rows[0].health.as_str()),
            ("running", "healthy")
        );
        assert_eq!(rows[1].health, "none");
        // A new launch: states reset, the install kept, a dropped service gone.
        db.reset_services("p1", &svcs(&[("app", true)])).unwrap();
        let rows = db.services("p1").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, "waiting");
        assert_eq!(rows[0].health, "starting");
        assert!(rows[0].installed);
        assert!(!db.setup_done("p1").unwrap());
        db.set_setup_done("p1").unwrap();
        assert!(db.setup_done("p1").unwrap());
        db.delete_pod("p1").unwrap();
        assert!(db.services("p1").unwrap().is_empty());
    }
}
