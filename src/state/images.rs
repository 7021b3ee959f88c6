//! Image and tag rows. The blobs themselves live in the image store on disk;
//! the database is the index of what is registered.

use super::{sql, Db, Result};
use rusqlite::{params, OptionalExtension, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub id: String,
    pub manifest_digest: String,
    pub config_json: String,
    /// Diff ids, lowest first (JSON array).
    pub layers_json: String,
    /// Digests of the layer blobs as stored (possibly compressed), lowest
    /// first (JSON array); `[]` for rows written before migration 2, whose
    /// layer blobs are the uncompressed tars (digest = diff id).
    pub blobs_json: String,
    pub size: i64,
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub name: String,
    pub image_id: String,
}

const IMAGE_COLS: &str = "id, manifest_digest, config_json, layers_json, size, created, blobs_json";

fn image_from_row(r: &Row) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        manifest_digest: r.get(1)?,
        config_json: r.get(2)?,
        layers_json: r.get(3)?,
        size: r.get(4)?,
        created: r.get(5)?,
        blobs_json: r.get(6)?,
    })
}

impl Db {
    /// Registers an image (idempotent) and points `tag` at it, in one transaction.
    pub fn put_image(&mut self, img: &ImageRow, tag: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO images ({IMAGE_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"
                ),
                params![
                    img.id,
                    img.manifest_digest,
                    img.config_json,
                    img.layers_json,
                    img.size,
                    img.created,
                    img.blobs_json
                ],
            )
            .map_err(sql)?;
            tx.execute(
                "INSERT OR IGNORE INTO image_manifests (digest, image_id, blobs_json) VALUES (?1, ?2, ?3)",
                params![img.manifest_digest, img.id, img.blobs_json],
            )
            .map_err(sql)?;
            if let Some(tag) = tag {
                tx.execute(
                    "INSERT OR REPLACE INTO image_tags (name, image_id) VALUES (?1, ?2)",
                    params![tag, img.id],
                )
                .map_err(sql)?;
            }
            Ok(())
        })
    }

    pub fn image(&self, id: &str) -> Result<Option<ImageRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {IMAGE_COLS} FROM images WHERE id=?1"),
                [id],
                image_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn images(&self) -> Result<Vec<ImageRow>> {
        let mut st = self
            .conn()
            .prepare(&format!(
                "SELECT {IMAGE_COLS} FROM images ORDER BY created DESC"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], image_from_row)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The image registered through the manifest `digest` (any of its manifests).
    pub fn image_by_manifest(&self, digest: &str) -> Result<Option<ImageRow>> {
        let cols: Vec<String> = IMAGE_COLS.split(", ").map(|c| format!("i.{c}")).collect();
        self.conn()
            .query_row(
                &format!(
                    "SELECT {} FROM images i JOIN image_manifests m ON m.image_id = i.id WHERE m.digest=?1",
                    cols.join(", ")
                ),
                [digest],
                image_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every registered manifest: (digest, image id, layer blobs JSON).
    pub fn manifests(&self) -> Result<Vec<(String, String, String)>> {
        let mut st = self
            .conn()
            .prepare("SELECT digest, image_id, blobs_json FROM image_manifests ORDER BY digest")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Deletes the tag `name` (the image row stays).
    pub fn delete_tag(&mut self, name: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM image_tags WHERE name=?1", [name])
                .map_err(sql)?;
            Ok(())
        })
    }

    pub fn tag(&self, name: &str) -> Result<Option<TagRow>> {
        self.conn()
            .query_row(
                "SELECT name, image_id FROM image_tags WHERE name=?1",
                [name],
                |r| {
                    Ok(TagRow {
                        name: r.get(0)?,
                        image_id: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn tags(&self) -> Result<Vec<TagRow>> {
        let mut st = self
            .conn()
            .prepare("SELECT name, image_id FROM image_tags ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(TagRow {
                    name: r.get(0)?,
                    image_id: r.get(1)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Images whose id starts with `prefix` (ids are "sha256:<hex>"; the prefix may omit "sha256:").
    pub fn images_by_id_prefix(&self, prefix: &str) -> Result<Vec<ImageRow>> {
        let full = if prefix.starts_with("sha256:") {
            prefix.to_string()
        } else {
            format!("sha256:{prefix}")
        };
        let mut st = self
            .conn()
            .prepare(&format!(
                "SELECT {IMAGE_COLS} FROM images WHERE substr(id, 1, length(?1)) = ?1"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([full], image_from_row)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Names of the tags pointing at `image_id`, sorted.
    pub fn tags_of(&self, image_id: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn()
            .prepare("SELECT name FROM image_tags WHERE image_id=?1 ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([image_id], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// In one transaction: deletes `tag` (if given) and, when `image_id` has
    /// no tag left, the image row. Returns whether the image row was deleted.
    pub fn untag_image(&mut self, tag: Option<&str>, image_id: &str) -> Result<bool> {
        self.write(|tx| {
            if let Some(tag) = tag {
                tx.execute(
                    "DELETE FROM image_tags WHERE name=?1 AND image_id=?2",
                    params![tag, image_id],
                )
                .map_err(sql)?;
            }
            let left: i64 = tx
                .query_row(
                    "SELECT count(*) FROM image_tags WHERE image_id=?1",
                    [image_id],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if left > 0 {
                return Ok(false);
            }
            let n = tx
                .execute("DELETE FROM images WHERE id=?1", [image_id])
                .map_err(sql)?;
            Ok(n > 0)
        })
    }
}
