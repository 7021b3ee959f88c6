//! The snapshot verbs that are not `checkpoint` or `restore`: list, inspect,
//! remove, export and import, each sweeping what a killed writer left
//! first where it matters, so every front end sees the same store.

use std::path::Path;

pub use super::views::SnapshotView;

use super::{Ctx, Result};
use crate::snapshot::{archive, SnapshotMeta, SnapshotStore};
use crate::state::SnapshotRow;

/// Every registered snapshot, oldest first (temp dirs of killed writers swept).
pub fn list(ctx: &mut Ctx) -> Result<Vec<SnapshotRow>> {
    let store = SnapshotStore::new(&ctx.root)?;
    store.sweep(&ctx.db)?;
    Ok(ctx.db.snapshots()?)
}

/// [`list`] as the views every front end prints.
pub fn views(ctx: &mut Ctx) -> Result<Vec<SnapshotView>> {
    Ok(list(ctx)?
        .into_iter()
        .map(|r| SnapshotView {
            size: u64::try_from(r.size).unwrap_or(0),
            id: r.id,
            name: r.name,
            pod_id: r.pod_id,
            pod_name: r.pod_name,
            image: r.image_ref,
            image_id: r.image_id,
            runsc_version: r.runsc_version,
            platform: r.platform,
            created: r.created,
        })
        .collect())
}

/// A snapshot's `snapshot.json`, plus its size on disk and its directory.
pub fn inspect(ctx: &Ctx, key: &str) -> Result<serde_json::Value> {
    let store = SnapshotStore::new(&ctx.root)?;
    let row = store.lookup(&ctx.db, key)?;
    let mut v = serde_json::to_value(store.meta(&row)?).expect("snapshot metadata serialises");
    v["size"] = row.size.into();
    v["path"] = store.path(&row.id).display().to_string().into();
    Ok(v)
}

/// Removes a snapshot (its row, then its directory).
pub fn remove(ctx: &mut Ctx, key: &str) -> Result<()> {
    let store = SnapshotStore::new(&ctx.root)?;
    let row = store.lookup(&ctx.db, key)?;
    Ok(store.remove(&mut ctx.db, &row)?)
}

/// Writes a snapshot to one archive; returns its name and the archive's size.
pub fn export(ctx: &Ctx, key: &str, out: &Path) -> Result<(String, u64)> {
    let store = SnapshotStore::new(&ctx.root)?;
    let row = store.lookup(&ctx.db, key)?;
    let size = archive::export(&store, &row, out)?;
    Ok((row.name, size))
}

/// Registers a snapshot from an archive made by `export`.
pub fn import(ctx: &mut Ctx, file: &Path, name: Option<&str>) -> Result<SnapshotMeta> {
    let store = SnapshotStore::new(&ctx.root)?;
    store.sweep(&ctx.db)?;
    Ok(archive::import(&store, &mut ctx.db, file, name)?)
}
