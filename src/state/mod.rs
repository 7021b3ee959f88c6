//! SQLite state: the one place that knows the schema.
//!
//! WAL mode and a busy timeout let many `gvpod` processes (ten `run -d` at
//! once, monitors recording exits) share the database; every write happens in
//! a short `BEGIN IMMEDIATE` transaction so writers queue instead of failing
//! with "database is locked" on lock upgrade.

mod images;
mod migrations;
mod networks;
mod pods;
mod restarts;
mod services;
mod snapshots;

pub use images::ImageRow;
pub use networks::{Lease, NetworkRow, PortRow};
pub use pods::{process_column, Json, PodRow, PodStatus, Resource, ResourceKind};
pub use services::{ServiceRow, ServiceUpdate};
pub use snapshots::{CheckpointEvent, CheckpointRow, CheckpointState, SnapshotRow};

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// Errors of the state layer, always naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database {path} has schema version {found}, newer than this gvpod understands ({known}); upgrade gvpod")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("a pod named {0:?} already exists")]
    NameInUse(String),
    #[error("a snapshot named {0:?} already exists (see `gvpod snapshot ls`)")]
    SnapshotNameInUse(String),
    #[error("a network named {0:?} already exists")]
    NetworkExists(String),
    #[error("subnet {0} is already used by another network")]
    SubnetInUse(String),
    #[error("network {name} is in use by pod(s) {pods}; remove them first")]
    NetworkInUse { name: String, pods: String },
    #[error("network {name} is full ({used} addresses leased); remove pods or create a network with a larger --subnet")]
    NetworkFull { name: String, used: usize },
    #[error("address {ip} is already taken by pod {by}")]
    AddressTaken { ip: String, by: String },
    #[error("host port {port} is already published by pod {by}")]
    PortTaken { port: String, by: String },
    #[error("corrupt record in state database: {0}")]
    Corrupt(String),
    #[error("pod {pod}: state column {column} is corrupt ({why}); remove the pod with `gvpod rm -f {pod}`")]
    CorruptColumn {
        pod: String,
        column: &'static str,
        why: String,
    },
}

impl StateError {
    /// See [`crate::error::Kind`].
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            StateError::NameInUse(_)
            | StateError::SnapshotNameInUse(_)
            | StateError::NetworkExists(_)
            | StateError::SubnetInUse(_)
            | StateError::NetworkInUse { .. }
            | StateError::NetworkFull { .. }
            | StateError::AddressTaken { .. }
            | StateError::PortTaken { .. } => Kind::Conflict,
            StateError::Sqlite { .. }
            | StateError::TooNew { .. }
            | StateError::Corrupt(_)
            | StateError::CorruptColumn { .. } => Kind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, StateError>;

/// An open state database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) `<root>/gvpod.db` and applies pending migrations.
    pub fn open(root: &Path) -> Result<Db> {
        let path = root.join("gvpod.db");
        let conn = Connection::open(&path).map_err(|source| StateError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let mut db = Db { conn, path };
        db.configure()?;
        migrations::apply(&mut db)?;
        Ok(db)
    }

    fn configure(&self) -> Result<()> {
        self.conn
            .busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err(e))?;
        // journal_mode returns a row, so it cannot go through execute_batch on every version.
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.conn
            .execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(|e| self.err(e))?;
        // Every gvpod invocation is short-lived: a checkpoint (with fsync) on
        // each close would cost milliseconds on the pod start path. The WAL
        // is checkpointed by SQLite's auto-checkpoint instead.
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies the WAL's committed frames into the database file: a PASSIVE
    /// checkpoint, which never waits for readers or writers (it copies what
    /// it can). Why gvpod needs it off the critical path: every short-lived
    /// gvpod process opens the database after the last one closed it, and
    /// that first opener rebuilds SQLite's wal-index by reading and
    /// checksumming every frame written since the last checkpoint (a `run`
    /// and `rm` add ~34 frames). With only SQLite's auto-checkpoint (at 1000
    /// frames, on whichever commit crosses it, fsyncs included) `Db::open`
    /// took 0.8 ms after a checkpoint and 8-18 ms at a 4 MB WAL on the test
    /// VM. Pod monitors call this on a thread of their own once their pod
    /// runs.
    ///
    /// When every frame was copied, the next write restarts the WAL from its
    /// start, and under `synchronous=NORMAL` that write first fsyncs the new
    /// WAL header and, on a connection's first sync, the directory (two
    /// fsyncs measured on a monitor's exit path). So the checkpoint makes
    /// that write itself: `user_version` rewritten unchanged (page 1, no
    /// schema change). Returns the WAL's frames and how many were copied.
    pub fn checkpoint(&mut self) -> Result<(i64, i64)> {
        let (frames, done) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(|e| self.err(e))?;
        if frames > 0 && frames == done {
            self.write(|tx| {
                let v: i64 = tx
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(sql)?;
                tx.pragma_update(None, "user_version", v).map_err(sql)
            })?;
        }
        Ok((frames, done))
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` inside an IMMEDIATE transaction (the write lock is taken up front,
    /// so concurrent writers wait on the busy timeout instead of deadlocking).
    pub fn write<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        let wrap = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let out = f(&tx)?;
        tx.commit().map_err(wrap)?;
        Ok(out)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs a query and collects every row through `map`.
    pub(crate) fn query_all<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map(params, map).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<T>>>()
            .map_err(|e| self.err(e))
    }
}

/// Maps a rusqlite error inside a transaction closure (no path at hand there).
pub(crate) fn sql(e: rusqlite::Error) -> StateError {
    StateError::Sqlite {
        path: PathBuf::from("gvpod.db"),
        source: e,
    }
}

/// What a lookup by `name`, full id or id prefix found (`Db::find_pods`,
/// `Db::find_snapshots` return the candidates).
#[derive(Debug, PartialEq, Eq)]
pub enum Pick<T> {
    One(T),
    Nothing,
    /// The names of all candidates, for the "give more of the id" message.
    Several(Vec<String>),
}

/// Picks the row a user meant among `found`: an exact name or id wins over
/// prefixes (docker's rule); otherwise the only prefix match, if one.
pub fn pick<T>(mut found: Vec<T>, key: &str, name_id: impl Fn(&T) -> (&str, &str)) -> Pick<T> {
    if let Some(i) = found.iter().position(|r| {
        let (name, id) = name_id(r);
        name == key || id == key
    }) {
        return Pick::One(found.swap_remove(i));
    }
    match found.len() {
        0 => Pick::Nothing,
        1 => Pick::One(found.pop().expect("one element")),
        _ => Pick::Several(found.iter().map(|r| name_id(r).0.to_string()).collect()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pick_prefers_exact_matches_then_a_unique_prefix() {
        let rows = |v: &[(&'static str, &'static str)]| v.to_vec();
        let p =
            |found: Vec<(&'static str, &'static str)>, key: &str| pick(found, key, |r| (r.0, r.1));
        // "ab" is a name and a prefix of another id: the name wins.
        assert_eq!(
            p(rows(&[("x", "ab12"), ("ab", "cd34")]), "ab"),
            Pick::One(("ab", "cd34"))
        );
        assert_eq!(p(rows(&[("x", "ab12")]), "ab"), Pick::One(("x", "ab12")));
        assert_eq!(p(rows(&[]), "ab"), Pick::Nothing);
        assert_eq!(
            p(rows(&[("x", "ab12"), ("y", "ab34")]), "ab"),
            Pick::Several(vec!["x".into(), "y".into()])
        );
    }

    use super::*;

    #[test]
    fn migrations_are_idempotent_and_wal_is_on() {
        let dir = tempfile::tempdir().unwrap();
        drop(Db::open(dir.path()).unwrap());
        let db = Db::open(dir.path()).unwrap();
        let mode: String = db
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let v: i64 = db
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, migrations::LATEST);
    }
}
