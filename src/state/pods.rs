//! Pod rows and the host resources recorded against them.

use super::{sql, Db, Result, StateError};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

/// Lifecycle state of a pod as recorded. `Created` pods have a bundle but no
/// sandbox; `Running` pods have a monitor and a sandbox; `Exited` pods have
/// an exit code (or none when the monitor was killed before it could record one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PodStatus {
    Created,
    Running,
    Exited,
}

impl PodStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PodStatus::Created => "created",
            PodStatus::Running => "running",
            PodStatus::Exited => "exited",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => PodStatus::Created,
            "running" => PodStatus::Running,
            "exited" => PodStatus::Exited,
            _ => return None,
        })
    }
    pub fn can_start(self) -> bool {
        matches!(self, PodStatus::Created | PodStatus::Exited)
    }
    pub fn can_exec(self) -> bool {
        self == PodStatus::Running
    }
    pub fn can_stop(self) -> bool {
        self == PodStatus::Running
    }
    pub fn can_remove_without_force(self) -> bool {
        self != PodStatus::Running
    }
}

#[derive(Debug, Clone)]
pub struct PodRow {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub image_ref: String,
    pub status: PodStatus,
    pub config_json: String,
    pub process_json: String,
    pub runsc_json: String,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub exit_code: Option<i32>,
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    pub auto_remove: bool,
}

/// Kinds of host resources a pod can hold; each is undone by `pod::cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A file or directory gvpod created (bundle, log); removed recursively.
    Path,
    /// A mount point (the pod's overlay rootfs); lazily unmounted.
    Mount,
    /// A runsc container id under the data root's runsc `--root`.
    Runsc,
    /// A cgroup path relative to each controller's mount.
    Cgroup,
    /// A pinned network namespace file (`<root>/netns/<id>`); unmounted and removed.
    Netns,
    /// The host end of a pod's veth pair (deleting it deletes both ends).
    Veth,
    /// The pod's nftables rules, by comment (`pod:<id>`) in the data root's table.
    Firewall,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Path => "path",
            ResourceKind::Mount => "mount",
            ResourceKind::Runsc => "runsc",
            ResourceKind::Cgroup => "cgroup",
            ResourceKind::Netns => "netns",
            ResourceKind::Veth => "veth",
            ResourceKind::Firewall => "firewall",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "path" => ResourceKind::Path,
            "mount" => ResourceKind::Mount,
            "runsc" => ResourceKind::Runsc,
            "cgroup" => ResourceKind::Cgroup,
            "netns" => ResourceKind::Netns,
            "veth" => ResourceKind::Veth,
            "firewall" => ResourceKind::Firewall,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub pod_id: String,
    pub kind: ResourceKind,
    pub value: String,
}

/// How long the exit code of a removed pod is kept for `wait`.
pub const EXIT_KEPT_SECS: i64 = 300;

const POD_COLS: &str = "id, name, image_id, image_ref, status, config_json, runsc_json, created, started, finished, exit_code, pid, monitor_pid, auto_remove, process_json";

fn pod_from_row(r: &Row) -> rusqlite::Result<PodRow> {
    let status: String = r.get(4)?;
    Ok(PodRow {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        image_ref: r.get(3)?,
        status: PodStatus::parse(&status).unwrap_or(PodStatus::Exited),
        config_json: r.get(5)?,
        runsc_json: r.get(6)?,
        created: r.get(7)?,
        started: r.get(8)?,
        finished: r.get(9)?,
        exit_code: r.get(10)?,
        pid: r.get(11)?,
        monitor_pid: r.get(12)?,
        auto_remove: r.get(13)?,
        process_json: r.get(14)?,
    })
}

/// The INSERT of a pod row and its parameters (shared by the plain and the
/// networked insert, which adds the lease and ports in the same transaction).
pub(super) fn insert_sql(p: &PodRow) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let opt_i = |v: Option<i32>| v.map_or(Value::Null, |x| Value::Integer(x.into()));
    let opt_s = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    (
        format!("INSERT INTO pods ({POD_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"),
        vec![
            Value::Text(p.id.clone()),
            Value::Text(p.name.clone()),
            Value::Text(p.image_id.clone()),
            Value::Text(p.image_ref.clone()),
            Value::Text(p.status.as_str().into()),
            Value::Text(p.config_json.clone()),
            Value::Text(p.runsc_json.clone()),
            Value::Text(p.created.clone()),
            opt_s(&p.started),
            opt_s(&p.finished),
            opt_i(p.exit_code),
            opt_i(p.pid),
            opt_i(p.monitor_pid),
            Value::Integer(p.auto_remove.into()),
            Value::Text(p.process_json.clone()),
        ],
    )
}

/// Maps the result of the pod INSERT: a taken name is `NameInUse`.
pub(super) fn map_insert(res: rusqlite::Result<usize>, p: &PodRow) -> Result<()> {
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
            if e.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("pods.name") =>
        {
            Err(StateError::NameInUse(p.name.clone()))
        }
        Err(e) => Err(sql(e)),
    }
}

impl Db {
    pub fn pods(&self) -> Result<Vec<PodRow>> {
        self.query_all(
            &format!("SELECT {POD_COLS} FROM pods ORDER BY created"),
            [],
            pod_from_row,
        )
    }

    pub fn pod(&self, id: &str) -> Result<Option<PodRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {POD_COLS} FROM pods WHERE id = ?1"),
                [id],
                pod_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Finds pods whose name equals `key` or whose id starts with `key`.
    pub fn find_pods(&self, key: &str) -> Result<Vec<PodRow>> {
        self.query_all(
            &format!(
                "SELECT {POD_COLS} FROM pods WHERE name = ?1 OR substr(id, 1, length(?1)) = ?1"
            ),
            [key],
            pod_from_row,
        )
    }

    pub fn set_pod_started(
        &mut self,
        id: &str,
        started: &str,
        pid: Option<i32>,
        monitor_pid: i32,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE pods SET status='running', started=?2, pid=?3, monitor_pid=?4, finished=NULL, exit_code=NULL WHERE id=?1",
                params![id, started, pid, monitor_pid],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    /// Records the exit. The monitor stays recorded (`monitor_pid`) while it
    /// finishes (runsc leftovers, `--rm`), until [`Db::monitor_done`].
    pub fn set_pod_exited(
        &mut self,
        id: &str,
        finished: &str,
        exit_code: Option<i32>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE pods SET status='exited', finished=?2, exit_code=?3, pid=NULL WHERE id=?1",
                params![id, finished, exit_code],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    /// Records the resolved main process once the bundle is built.
    pub fn set_pod_process(&mut self, id: &str, process_json: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE pods SET process_json=?2 WHERE id=?1",
                params![id, process_json],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    /// The monitor `monitor_pid` is done with the pod (or dead); a newer
    /// monitor's record is left alone.
    pub fn monitor_done(&mut self, id: &str, monitor_pid: i32) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE pods SET monitor_pid=NULL WHERE id=?1 AND monitor_pid=?2",
                params![id, monitor_pid],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    pub fn set_pod_monitor(&mut self, id: &str, monitor_pid: i32) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE pods SET monitor_pid=?2 WHERE id=?1",
                params![id, monitor_pid],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    /// Deletes the pod row; its resources must have been released first.
    /// Deletes the pod row; an exited pod's exit code is kept for
    /// [`EXIT_KEPT_SECS`] (see [`Db::exit_of_removed`]).
    pub fn delete_pod(&mut self, id: &str) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.write(|tx| {
            tx.execute(
                "DELETE FROM pod_exits WHERE removed_at < ?1",
                [now - EXIT_KEPT_SECS],
            )
            .map_err(sql)?;
            tx.execute(
                "INSERT OR REPLACE INTO pod_exits (pod_id, exit_code, removed_at) \
                 SELECT id, exit_code, ?2 FROM pods WHERE id=?1 AND status='exited'",
                params![id, now],
            )
            .map_err(sql)?;
            tx.execute(
                "DELETE FROM freed_leases WHERE freed_at < ?1",
                [now - super::networks::ADDRESS_REST_SECS],
            )
            .map_err(sql)?;
            tx.execute(
                "INSERT OR REPLACE INTO freed_leases (network, ip, freed_at) \
                 SELECT network, ip, ?2 FROM leases WHERE pod_id=?1",
                params![id, now],
            )
            .map_err(sql)?;
            tx.execute("DELETE FROM pods WHERE id=?1", [id])
                .map_err(sql)?;
            Ok(())
        })
    }

    /// The exit of a pod removed in the last [`EXIT_KEPT_SECS`]: `None`
    /// when none is known, `Some(None)` when it exited with an unknown code.
    pub fn exit_of_removed(&self, id: &str) -> Result<Option<Option<i32>>> {
        self.conn()
            .query_row(
                "SELECT exit_code FROM pod_exits WHERE pod_id=?1",
                [id],
                |r| r.get::<_, Option<i32>>(0),
            )
            .optional()
            .map_err(sql)
    }

    /// Records a host resource before it is created, so a crash right after
    /// creating it still leaves a trace for `rm -f` and `system gc`.
    pub fn add_resource(&mut self, pod_id: &str, kind: ResourceKind, value: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO pod_resources (pod_id, kind, value) VALUES (?1, ?2, ?3)",
                params![pod_id, kind.as_str(), value],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    pub fn remove_resource(&mut self, kind: ResourceKind, value: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM pod_resources WHERE kind=?1 AND value=?2",
                params![kind.as_str(), value],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    /// Forgets several undone resources in one transaction.
    pub fn remove_resources(&mut self, rs: &[Resource]) -> Result<()> {
        self.write(|tx| {
            for r in rs {
                tx.execute(
                    "DELETE FROM pod_resources WHERE kind=?1 AND value=?2",
                    params![r.kind.as_str(), r.value],
                )
                .map_err(sql)?;
            }
            Ok(())
        })
    }

    /// Resources of one pod (or of every pod when `pod_id` is None), newest first
    /// so that they are undone in reverse order of creation.
    pub fn resources(&self, pod_id: Option<&str>) -> Result<Vec<Resource>> {
        let rows = self.query_all(
            "SELECT pod_id, kind, value FROM pod_resources WHERE ?1 IS NULL OR pod_id = ?1 ORDER BY rowid DESC",
            [pod_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
        )?;
        rows.into_iter()
            .map(|(pod_id, kind, value)| {
                let kind = ResourceKind::parse(&kind).ok_or_else(|| {
                    StateError::Corrupt(format!("unknown resource kind {kind:?}"))
                })?;
                Ok(Resource {
                    pod_id,
                    kind,
                    value,
                })
            })
            .collect()
    }

    /// Number of pods that use an image (`rmi` refuses to remove those).
    pub fn pods_using_image(&self, image_id: &str) -> Result<Vec<String>> {
        self.query_all("SELECT name FROM pods WHERE image_id=?1", [image_id], |r| {
            r.get(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_pod(db: &Db, id: &str, status: &str, code: Option<i32>) {
        db.conn()
            .execute(
                "INSERT INTO pods (id, name, image_id, image_ref, status, config_json, runsc_json, created, exit_code) \
                 VALUES (?1, ?1, 'sha256:x', 'busybox', ?2, '{}', '{}', 't', ?3)",
                params![id, status, code],
            )
            .unwrap();
    }

    #[test]
    fn a_removed_pods_exit_is_kept_for_a_while() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        db.conn().execute_batch("PRAGMA foreign_keys=OFF").unwrap();
        add_pod(&db, "a", "exited", Some(7));
        add_pod(&db, "b", "exited", None);
        add_pod(&db, "c", "created", None);
        for id in ["a", "b", "c"] {
            db.delete_pod(id).unwrap();
        }
        assert_eq!(db.exit_of_removed("a").unwrap(), Some(Some(7)));
        assert_eq!(db.exit_of_removed("b").unwrap(), Some(None));
        assert_eq!(db.exit_of_removed("c").unwrap(), None, "never ran");
        // Older than EXIT_KEPT_SECS: dropped at the next removal.
        db.conn()
            .execute("UPDATE pod_exits SET removed_at=0 WHERE pod_id='a'", [])
            .unwrap();
        add_pod(&db, "d", "exited", Some(0));
        db.delete_pod("d").unwrap();
        assert_eq!(db.exit_of_removed("a").unwrap(), None);
        assert_eq!(db.exit_of_removed("d").unwrap(), Some(Some(0)));
    }

    #[test]
    fn a_removed_pods_address_rests_while_others_are_free() {
        use crate::state::networks::{Lease, NetworkRow};
        use std::net::Ipv4Addr;
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        db.conn()
            .execute(
                "INSERT INTO images (id, manifest_digest, config_json, layers_json, size, created) \
                 VALUES ('sha256:x', 'sha256:m', '{}', '[]', 0, 't')",
                [],
            )
            .unwrap();
        db.insert_network(&NetworkRow {
            name: "n".into(),
            bridge: "gvtest0".into(),
            subnet: "198.18.9.0/29".into(),
            gateway: "198.18.9.1".into(),
            internal: false,
            created: "t".into(),
        })
        .unwrap();
        // Lowest free address in 198.18.9.0/29 (.2 to .6), gateway aside.
        let lowest = |taken: &std::collections::HashSet<Ipv4Addr>| {
            (2..7u8)
                .map(|i| Ipv4Addr::new(198, 18, 9, i))
                .find(|ip| !taken.contains(ip))
        };
        let pod = |id: &str| PodRow {
            id: id.into(),
            name: id.into(),
            image_id: "sha256:x".into(),
            image_ref: "busybox".into(),
            status: PodStatus::Created,
            config_json: "{}".into(),
            process_json: "{}".into(),
            runsc_json: "{}".into(),
            created: "t".into(),
            started: None,
            finished: None,
            exit_code: None,
            pid: None,
            monitor_pid: None,
            auto_remove: false,
        };
        let a = pod("a");
        let ip = |db: &mut Db, p: &PodRow| {
            db.insert_pod_networked(p, Some(("n", Lease::Pick(&lowest))), &[])
                .unwrap()
                .unwrap()
        };
        assert_eq!(ip(&mut db, &a), Ipv4Addr::new(198, 18, 9, 2));
        db.delete_pod("a").unwrap();
        // .2 rests: the next pod gets .3, not the address just freed.
        let b = pod("b");
        assert_eq!(ip(&mut db, &b), Ipv4Addr::new(198, 18, 9, 3));
        // Asked for by name, a resting address is given.
        let c = pod("c");
        assert_eq!(
            db.insert_pod_networked(
                &c,
                Some(("n", Lease::Fixed(Ipv4Addr::new(198, 18, 9, 2)))),
                &[]
            )
            .unwrap(),
            Some(Ipv4Addr::new(198, 18, 9, 2))
        );
        // A full subnet but for resting addresses: they are used after all.
        for id in ["d", "e", "f"] {
            let p = pod(id);
            ip(&mut db, &p);
        }
        db.delete_pod("f").unwrap();
        let g = pod("g");
        assert_eq!(ip(&mut db, &g), Ipv4Addr::new(198, 18, 9, 6));
        // Rested long enough: handed out again, lowest first.
        db.delete_pod("b").unwrap();
        db.conn()
            .execute("UPDATE freed_leases SET freed_at=0", [])
            .unwrap();
        let h = pod("h");
        assert_eq!(ip(&mut db, &h), Ipv4Addr::new(198, 18, 9, 3));
    }
}
