//! Image store: references, OCI blobs, layer cache. (temporary stub until the image module lands)

use std::path::{Path, PathBuf};

use crate::state::{Db, ImageRow};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0:?} not found; import it with `gvpod import` or `gvpod load`")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, ImageError>;

#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub reference: String,
    pub config: oci_spec::image::ImageConfiguration,
    pub layers: Vec<PathBuf>,
    pub size: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageSummary {
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub id: String,
    pub created: String,
    pub size: u64,
}

pub struct ImageStore {
    dir: PathBuf,
}

fn other<E: std::fmt::Display>(e: E) -> ImageError {
    ImageError::Other(e.to_string())
}

impl ImageStore {
    pub fn new(data_root: &Path) -> Result<Self> {
        Ok(ImageStore { dir: data_root.join("images") })
    }
    pub fn import_tarball(&self, db: &mut Db, src: &Path, reference: &str, changes: &[String]) -> Result<Image> {
        let id = format!("sha256:{}", crate::util::random_hex(32));
        let layer = self.dir.join("layers").join(&id[7..]);
        std::fs::create_dir_all(&layer).map_err(other)?;
        let st = std::process::Command::new("tar").arg("-xf").arg(src).arg("-C").arg(&layer).status().map_err(other)?;
        if !st.success() {
            return Err(ImageError::Other("tar failed".into()));
        }
        let mut cmd: Vec<String> = vec![];
        for c in changes {
            if let Some(rest) = c.strip_prefix("CMD ") {
                cmd = serde_json::from_str(rest).map_err(other)?;
            }
        }
        let config = serde_json::json!({"architecture":"amd64","os":"linux","config":{"Cmd":cmd,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":[id.clone()]},"history":[]});
        let row = ImageRow { id: id.clone(), manifest_digest: id.clone(), config_json: config.to_string(), layers_json: format!("[\"{id}\"]"), size: 0, created: crate::util::now_rfc3339() };
        db.put_image(&row, Some(reference)).map_err(other)?;
        self.resolve(db, reference)
    }
    pub fn resolve(&self, db: &Db, name: &str) -> Result<Image> {
        let id = match db.tag(name).map_err(other)? {
            Some(t) => t.image_id,
            None => name.to_string(),
        };
        let row = db.image(&id).map_err(other)?.ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        let config = serde_json::from_str(&row.config_json).map_err(other)?;
        Ok(Image { id: row.id.clone(), reference: name.to_string(), config, layers: vec![self.dir.join("layers").join(&row.id[7..])], size: 0 })
    }
    pub fn list(&self, db: &Db) -> Result<Vec<ImageSummary>> {
        Ok(db.tags().map_err(other)?.into_iter().map(|t| ImageSummary { repository: Some(t.name), tag: None, id: t.image_id, created: String::new(), size: 0 }).collect())
    }
    pub fn remove(&self, db: &mut Db, name: &str) -> Result<Vec<String>> {
        db.delete_tag(name).map_err(other)?;
        Ok(vec![name.to_string()])
    }
}
