//! Numbered schema migrations; `PRAGMA user_version` records the last applied.

use super::{sql, Db, Result, StateError};
use rusqlite::TransactionBehavior;

const MIGRATIONS: &[&str] = &[
    // 1: images, tags, pods and the host resources each pod holds.
    r#"
    CREATE TABLE images (
        id              TEXT PRIMARY KEY,   -- digest of the image config ("sha256:…")
        manifest_digest TEXT NOT NULL,
        config_json     TEXT NOT NULL,      -- the OCI image config, for pods to read without the blob store
        layers_json     TEXT NOT NULL,      -- diff ids, lowest first
        size            INTEGER NOT NULL,   -- unpacked bytes
        created         TEXT NOT NULL
    );
    CREATE TABLE image_tags (
        name     TEXT PRIMARY KEY,          -- normalised reference "repo:tag"
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE TABLE pods (
        id          TEXT PRIMARY KEY,       -- 64 hex chars: fixed length, never a prefix of another id (runsc prefix-matches)
        name        TEXT NOT NULL UNIQUE,
        image_id    TEXT NOT NULL REFERENCES images(id),
        image_ref   TEXT NOT NULL,
        status      TEXT NOT NULL,
        config_json TEXT NOT NULL,          -- the pod's options (command, env, limits, …)
        process_json TEXT NOT NULL DEFAULT '{}', -- the resolved main process (args, env, cwd, user)
        runsc_json  TEXT NOT NULL,          -- runsc global flags fixed at creation
        created     TEXT NOT NULL,
        started     TEXT,
        finished    TEXT,
        exit_code   INTEGER,
        pid         INTEGER,
        monitor_pid INTEGER,
        auto_remove INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE pod_resources (
        pod_id TEXT NOT NULL,               -- no foreign key: leftovers must outlive a lost pod row for gc
        kind   TEXT NOT NULL,
        value  TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    );
    CREATE INDEX pod_resources_pod ON pod_resources(pod_id);
    "#,
    // 2: the layer blobs of an image as stored (compressed digests differ from diff ids).
    r#"
    ALTER TABLE images ADD COLUMN blobs_json TEXT NOT NULL DEFAULT '[]';
    "#,
    // 3: every manifest an image was registered through (the same config can
    // come through several: another compression, a pull after a load), so a
    // digest reference finds it and its blobs stay referenced.
    r#"
    CREATE TABLE image_manifests (
        digest     TEXT PRIMARY KEY,        -- "sha256:…" of the manifest
        image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        blobs_json TEXT NOT NULL            -- its layer blob digests, lowest first
    );
    CREATE INDEX image_manifests_image ON image_manifests(image_id);
    INSERT OR IGNORE INTO image_manifests (digest, image_id, blobs_json)
        SELECT manifest_digest, id, blobs_json FROM images;
    "#,
    // 4: networks, IP leases and published ports (IPAM lives here so that an
    // address is claimed in the same transaction as the pod that holds it).
    r#"
    CREATE TABLE networks (
        name     TEXT PRIMARY KEY,
        bridge   TEXT NOT NULL UNIQUE,
        subnet   TEXT NOT NULL UNIQUE,          -- "198.18.0.0/24"
        gateway  TEXT NOT NULL,
        internal INTEGER NOT NULL DEFAULT 0,
        created  TEXT NOT NULL
    );
    CREATE TABLE leases (
        network TEXT NOT NULL REFERENCES networks(name),
        ip      TEXT NOT NULL,
        pod_id  TEXT NOT NULL UNIQUE REFERENCES pods(id) ON DELETE CASCADE,
        PRIMARY KEY (network, ip)               -- never one address to two pods
    );
    CREATE TABLE port_bindings (
        pod_id    TEXT NOT NULL REFERENCES pods(id) ON DELETE CASCADE,
        proto     TEXT NOT NULL,
        host_ip   TEXT NOT NULL,                -- "0.0.0.0" for every address
        host_port INTEGER NOT NULL,
        pod_port  INTEGER NOT NULL,
        PRIMARY KEY (proto, host_ip, host_port)
    );
    CREATE INDEX port_bindings_pod ON port_bindings(pod_id);
    "#,
    // 5: snapshots (issue 5): registered snapshots, and the checkpoint a pod is
    // going through or last went through (its monitor reads it to tell a
    // checkpoint from an exit).
    r#"
    CREATE TABLE snapshots (
        id            TEXT PRIMARY KEY,     -- 64 hex chars, also the directory name under snapshots/
        name          TEXT NOT NULL UNIQUE,
        pod_id        TEXT NOT NULL,        -- the source pod (it may be gone)
        pod_name      TEXT NOT NULL,
        image_id      TEXT NOT NULL,        -- no foreign key: a snapshot outlives its image (restore says so)
        image_ref     TEXT NOT NULL,
        runsc_version TEXT NOT NULL,
        platform      TEXT NOT NULL,
        created       TEXT NOT NULL,
        size          INTEGER NOT NULL,     -- bytes on disk
        meta_json     TEXT NOT NULL         -- the snapshot.json of the snapshot directory
    );
    CREATE TABLE pod_checkpoints (
        pod_id        TEXT PRIMARY KEY,
        snapshot_id   TEXT NOT NULL,
        snapshot_name TEXT NOT NULL,
        dir           TEXT NOT NULL,        -- where the memory image is being written
        leave_running INTEGER NOT NULL,
        state         TEXT NOT NULL,        -- saving, saved, done, failed, resumed
        at            TEXT NOT NULL
    );
    "#,
    // 6: exit codes of removed pods, so that `wait` on a `--rm` pod that is
    // removed meanwhile still reports its code (podman keeps the same, for
    // the same reason); kept five minutes.
    r#"
    CREATE TABLE pod_exits (
        pod_id     TEXT PRIMARY KEY,
        exit_code  INTEGER,                 -- NULL: unknown (killed monitor)
        removed_at INTEGER NOT NULL         -- unix seconds
    );
    "#,
    // 7: addresses of removed pods, not handed out again for a while: the
    // host's conntrack keeps their connections (TIME_WAIT: 120 s) and a new
    // owner of the address must not be blamed for them at checkpoint time.
    r#"
    CREATE TABLE freed_leases (
        network  TEXT NOT NULL,
        ip       TEXT NOT NULL,
        freed_at INTEGER NOT NULL,          -- unix seconds
        PRIMARY KEY (network, ip)
    );
    "#,
    // 8: a network's labels (docker's `Labels`, a JSON object of strings).
    r#"
    ALTER TABLE networks ADD COLUMN labels_json TEXT NOT NULL DEFAULT '{}';
    "#,
    // 9: restart policies (issue 10): how often the pod's monitor restarted
    // it since the user last started it, and whether the user stopped or
    // killed it (never undone by a restart; `unless-stopped` pods stay down
    // at boot then).
    r#"
    ALTER TABLE pods ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE pods ADD COLUMN stopped_by_user INTEGER NOT NULL DEFAULT 0;
    "#,
    // 10: a pod's route port (issue 11: `--route`) is a host TCP port like
    // a published one, in the same table so one query refuses a port that
    // either kind holds; its pod_port is the route's default port.
    r#"
    ALTER TABLE port_bindings ADD COLUMN route INTEGER NOT NULL DEFAULT 0;
    "#,
    // 11: supervised services (issue 12), written by the pod's monitor:
    // one row per service of a pod (its process, restarts and health), and
    // whether the pod's setup commands and each service's install ran
    // (once per pod, so kept across the pod's launches).
    r#"
    CREATE TABLE services (
        pod_id      TEXT NOT NULL REFERENCES pods(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'waiting',
        health      TEXT NOT NULL DEFAULT 'none',
        installed   INTEGER NOT NULL DEFAULT 0,
        restarts    INTEGER NOT NULL DEFAULT 0,
        exit_code   INTEGER,
        started_at  TEXT,
        failing     INTEGER NOT NULL DEFAULT 0,
        checked_at  TEXT,
        check_output TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (pod_id, name)
    );
    ALTER TABLE pods ADD COLUMN setup_done INTEGER NOT NULL DEFAULT 0;
    "#,
];

pub const LATEST: i64 = MIGRATIONS.len() as i64;

pub fn apply(db: &mut Db) -> Result<()> {
    let current: i64 = db
        .conn()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| db.err(e))?;
    if current > LATEST {
        return Err(StateError::TooNew {
            path: db.path().to_owned(),
            found: current,
            known: LATEST,
        });
    }
    if current == LATEST {
        return Ok(());
    }
    let path = db.path().to_owned();
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|source| StateError::Sqlite {
            path: path.clone(),
            source,
        })?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(m).map_err(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(sql)?;
    }
    tx.commit().map_err(sql)
}
