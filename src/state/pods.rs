//! Pod rows and the host resources recorded against them.
//!
//! A pod row keeps three values as JSON text: the pod's options
//! (`config_json`), its resolved main process (`process_json`) and the
//! runsc global flags it was created with (`runsc_json`, replayed on every
//! runsc call: DESIGN.md fact 1). They are decoded here, once, when a row is
//! read, into the types their owners define (`bundle`, `runsc`: plain data,
//! neither module calls into `state`). A column that does not decode is
//! never read as defaults: its accessor fails naming the pod and the column
//! ([`StateError::CorruptColumn`]), and only where the value is needed, so
//! `rm -f`, which needs none of them, still removes the pod.

use super::{sql, Db, Result, StateError};
use crate::bundle::{PodOptions, ProcessSpec};
use crate::runsc::GlobalFlags;
use rusqlite::{params, OptionalExtension, Row};
use serde::de::DeserializeOwned;
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

/// A JSON column of a pod row, decoded when the row was read: the value, or
/// why the stored text does not decode. Written back as the text it was read
/// from (or that the value serialises to), so a row is never rewritten with
/// defaults.
#[derive(Debug, Clone)]
pub struct Json<T> {
    text: String,
    value: std::result::Result<T, String>,
}

impl<T: Serialize> Json<T> {
    pub fn new(value: T) -> Json<T> {
        Json {
            text: serde_json::to_string(&value).expect("state values serialise"),
            value: Ok(value),
        }
    }
}

impl<T: DeserializeOwned> Json<T> {
    /// Decodes stored (or otherwise received) JSON text.
    pub fn decode(text: String) -> Json<T> {
        let value = serde_json::from_str(&text).map_err(|e| e.to_string());
        Json { text, value }
    }
}

impl<T> Json<T> {
    fn get(&self, pod: &str, column: &'static str) -> Result<&T> {
        self.value
            .as_ref()
            .map_err(|why| StateError::CorruptColumn {
                pod: pod.to_string(),
                column,
                why: why.clone(),
            })
    }
}

/// The stored `process_json`: `{}` (the column's default) until the pod's
/// bundle is built and its main process resolved.
pub fn process_column(text: String) -> Option<Json<ProcessSpec>> {
    (text.trim() != "{}").then(|| Json::decode(text))
}

#[derive(Debug, Clone)]
pub struct PodRow {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub image_ref: String,
    pub status: PodStatus,
    /// `config_json`: the pod's options.
    pub config: Json<PodOptions>,
    /// `process_json`: the resolved main process, once the bundle is built.
    pub process: Option<Json<ProcessSpec>>,
    /// `runsc_json`: the runsc global flags fixed at creation.
    pub runsc: Json<GlobalFlags>,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub exit_code: Option<i32>,
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    pub auto_remove: bool,
    /// Restarts by the pod's monitor (its restart policy) since the user
    /// last started the pod.
    pub restart_count: u32,
    /// The user stopped or killed the pod since last starting it: no
    /// restart policy undoes that.
    pub stopped_by_user: bool,
}

impl PodRow {
    /// Between two launches of its restart policy: `running`, with a
    /// monitor and no process (docker's `Restarting`).
    pub fn restarting(&self) -> bool {
        self.status == PodStatus::Running
            && self.pid.is_none()
            && self.monitor_pid.is_some()
            && self.restart_count > 0
    }

    /// The pod's options; fails if `config_json` is corrupt.
    pub fn options(&self) -> Result<&PodOptions> {
        self.config.get(&self.name, "config_json")
    }

    /// The resolved main process (`None` before the bundle is built); fails
    /// if `process_json` is corrupt.
    pub fn main_process(&self) -> Result<Option<&ProcessSpec>> {
        self.process
            .as_ref()
            .map(|p| p.get(&self.name, "process_json"))
            .transpose()
    }

    /// The runsc global flags of the pod's container; fails if `runsc_json`
    /// is corrupt.
    pub fn flags(&self) -> Result<&GlobalFlags> {
        self.runsc.get(&self.name, "runsc_json")
    }
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

const POD_COLS: &str = "id, name, image_id, image_ref, status, config_json, runsc_json, created, started, finished, exit_code, pid, monitor_pid, auto_remove, process_json, restart_count, stopped_by_user";

fn pod_from_row(r: &Row) -> rusqlite::Result<PodRow> {
    let status: String = r.get(4)?;
    Ok(PodRow {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: r.get(2)?,
        image_ref: r.get(3)?,
        status: PodStatus::parse(&status).unwrap_or(PodStatus::Exited),
        config: Json::decode(r.get(5)?),
        runsc: Json::decode(r.get(6)?),
        created: r.get(7)?,
        started: r.get(8)?,
        finished: r.get(9)?,
        exit_code: r.get(10)?,
        pid: r.get(11)?,
        monitor_pid: r.get(12)?,
        auto_remove: r.get(13)?,
        process: process_column(r.get(14)?),
        restart_count: r.get(15)?,
        stopped_by_user: r.get(16)?,
    })
}

/// The INSERT of a pod row and its parameters (shared by the plain and the
/// networked insert, which adds the lease and ports in the same transaction).
pub(super) fn insert_sql(p: &PodRow) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let opt_i = |v: Option<i32>| v.map_or(Value::Null, |x| Value::Integer(x.into()));
    let opt_s = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    (
        format!("INSERT INTO pods ({POD_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)"),
        vec![
            Value::Text(p.id.clone()),
            Value::Text(p.name.clone()),
            Value::Text(p.image_id.clone()),
            Value::Text(p.image_ref.clone()),
            Value::Text(p.status.as_str().into()),
            Value::Text(p.config.text.clone()),
            Value::Text(p.runsc.text.clone()),
            Value::Text(p.created.clone()),
            opt_s(&p.started),
            opt_s(&p.finished),
            opt_i(p.exit_code),
            opt_i(p.pid),
            opt_i(p.monitor_pid),
            Value::Integer(p.auto_remove.into()),
            Value::Text(p.process.as_ref().map_or("{}", |j| &j.text).to_string()),
            Value::Integer(p.restart_count.into()),
            Value::Integer(p.stopped_by_user.into()),
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

    /// Records a launch as started. The last exit (code and time) is
    /// forgotten, but for a restart by the pod's restart policy, whose last
    /// exit stays readable (`wait`'s next-exit, inspect) while it runs.
    pub fn set_pod_started(
        &mut self,
        id: &str,
        started: &str,
        pid: Option<i32>,
        monitor_pid: i32,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE pods SET status='running', started=?2, pid=?3, monitor_pid=?4, \
                 finished=CASE WHEN restart_count>0 THEN finished END, \
                 exit_code=CASE WHEN restart_count>0 THEN exit_code END WHERE id=?1",
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
    pub fn set_pod_process(&mut self, id: &str, process: &ProcessSpec) -> Result<()> {
        let text = Json::new(process).text;
        self.write(|tx| {
            tx.execute(
                "UPDATE pods SET process_json=?2 WHERE id=?1",
                params![id, text],
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
            // Its checkpoint record (how `checkpoint` and the monitor talk)
            // goes too: one row per checkpointed pod otherwise stays until
            // `system gc` (seen by scripts/soak.sh).
            tx.execute("DELETE FROM pod_checkpoints WHERE pod_id=?1", [id])
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
        self.add_resources(pod_id, &[(kind, value)])
    }

    /// Records several resources in one transaction (one WAL append instead
    /// of one per resource), before any of them is made; their undo runs
    /// in reverse order, so list a filesystem before what is mounted on it.
    pub fn add_resources(&mut self, pod_id: &str, rs: &[(ResourceKind, &str)]) -> Result<()> {
        self.write(|tx| {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO pod_resources (pod_id, kind, value) VALUES (?1, ?2, ?3)",
                )
                .map_err(sql)?;
            for (kind, value) in rs {
                st.execute(params![pod_id, kind.as_str(), value])
                    .map_err(sql)?;
            }
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

    /// A `created` pod row of image `sha256:x`, its JSON columns `{}`.
    fn created_row(id: &str) -> PodRow {
        PodRow {
            id: id.into(),
            name: id.into(),
            image_id: "sha256:x".into(),
            image_ref: "busybox".into(),
            status: PodStatus::Created,
            config: Json::decode("{}".into()),
            process: None,
            runsc: Json::decode("{}".into()),
            created: "t".into(),
            started: None,
            finished: None,
            exit_code: None,
            pid: None,
            monitor_pid: None,
            auto_remove: false,
            restart_count: 0,
            stopped_by_user: false,
        }
    }

    #[test]
    fn a_corrupt_json_column_is_an_error_naming_the_pod_not_defaults() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(d.path()).unwrap();
        db.conn().execute_batch("PRAGMA foreign_keys=OFF").unwrap();
        add_pod(&db, "web", "created", None);
        db.conn()
            .execute(
                "UPDATE pods SET config_json='{\"cmd\": [\"sh\"', process_json='[1]' WHERE id='web'",
                [],
            )
            .unwrap();
        let p = db.pod("web").unwrap().expect("the row still reads");
        let e = p.options().unwrap_err();
        assert!(
            matches!(&e, StateError::CorruptColumn { pod, column: "config_json", .. } if pod == "web"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("pod web: state column config_json is corrupt (")
                && msg.ends_with("; remove the pod with `gvpod rm -f web`"),
            "{msg}"
        );
        let e = p.main_process().unwrap_err().to_string();
        assert!(e.contains("column process_json is corrupt"), "{e}");
        // `{}` is not a set of runsc flags either.
        assert!(p.flags().is_err());
        // The other rows and columns are unaffected, and so is a listing.
        assert_eq!(db.pods().unwrap().len(), 1);
        assert_eq!(db.find_pods("web").unwrap()[0].id, "web");
    }

    #[test]
    fn json_columns_round_trip_and_process_starts_unset() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        db.conn().execute_batch("PRAGMA foreign_keys=OFF").unwrap();
        let opts = PodOptions {
            cmd: vec!["sh".into()],
            network: "none".into(),
            tty: true,
            ..Default::default()
        };
        let flags = GlobalFlags {
            root: "/run/gvpod/x/runsc".into(),
            platform: "ptrace".into(),
            network: "none".into(),
            overlay2: None,
            log: "/l".into(),
            debug_log: None,
            extra: vec![],
            net_disconnect_ok: false,
            bin: None,
        };
        let row = PodRow {
            config: Json::new(opts.clone()),
            runsc: Json::new(flags.clone()),
            ..created_row("a")
        };
        db.insert_pod_networked(&row, None, &[]).unwrap();
        let stored: String = db
            .conn()
            .query_row("SELECT process_json FROM pods WHERE id='a'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, "{}");
        let p = db.pod("a").unwrap().unwrap();
        assert_eq!(p.options().unwrap(), &opts);
        assert_eq!(p.flags().unwrap().platform, "ptrace");
        assert_eq!(p.main_process().unwrap(), None);
        let process = ProcessSpec {
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            terminal: true,
        };
        db.set_pod_process("a", &process).unwrap();
        let p = db.pod("a").unwrap().unwrap();
        assert_eq!(p.main_process().unwrap(), Some(&process));
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
    fn a_removed_pods_checkpoint_record_goes_with_it() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        db.conn().execute_batch("PRAGMA foreign_keys=OFF").unwrap();
        add_pod(&db, "a", "exited", Some(0));
        add_pod(&db, "b", "exited", Some(0));
        for id in ["a", "b"] {
            db.conn()
                .execute(
                    "INSERT INTO pod_checkpoints (pod_id, snapshot_id, snapshot_name, dir, leave_running, state, at) VALUES (?1,'s','n','/d',0,'done','now')",
                    [id],
                )
                .unwrap();
        }
        db.delete_pod("a").unwrap();
        let left: Vec<String> = db
            .conn()
            .prepare("SELECT pod_id FROM pod_checkpoints")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(left, vec!["b".to_string()]);
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
            labels: Default::default(),
        })
        .unwrap();
        // Lowest free address in 198.18.9.0/29 (.2 to .6), gateway aside.
        let lowest = |taken: &std::collections::HashSet<Ipv4Addr>| {
            (2..7u8)
                .map(|i| Ipv4Addr::new(198, 18, 9, i))
                .find(|ip| !taken.contains(ip))
        };
        let pod = created_row;
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
