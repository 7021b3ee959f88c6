//! Reading a project's spec files: the default names, paths made absolute
//! against the caller's directory, each file read whole, then `spec` (which
//! does no I/O) parses, merges and validates them. Shared by `gvpod config`,
//! `up`, `down` and the service's project endpoints (which are handed the
//! client's absolute paths: the same paths on the host, or in a Lima
//! machine that mounts the user's home at the same path).

use std::path::{Path, PathBuf};

use crate::spec::{self, Project, Source, SpecError};

/// The spec files to read, absolute: `files` against `cwd`, or the first
/// default name (`gvpod.yaml`, `gvpod.yml`) that exists in `cwd`.
pub fn resolve(files: &[PathBuf], cwd: &Path) -> Result<Vec<PathBuf>, SpecError> {
    if files.is_empty() {
        let found = spec::DEFAULT_FILES
            .iter()
            .map(|f| cwd.join(f))
            .find(|p| p.is_file())
            .ok_or(SpecError::NoFile)?;
        return Ok(vec![found]);
    }
    Ok(files.iter().map(|f| cwd.join(f)).collect())
}

/// Reads, merges and validates the spec files (errors name each file as
/// the user gave it).
pub fn load(files: &[PathBuf], cwd: &Path) -> Result<Project, SpecError> {
    let given: Vec<PathBuf> = if files.is_empty() {
        resolve(files, cwd)?
    } else {
        files.to_vec()
    };
    let mut sources = Vec::new();
    for f in &given {
        let read = |msg: String| SpecError::Read {
            path: f.display().to_string(),
            msg,
        };
        let abs = cwd.join(f);
        let text = std::fs::read_to_string(&abs).map_err(|e| read(e.to_string().to_lowercase()))?;
        // The real directory: relative volumes are mounted from where the
        // file is, and a volume source reached through a symlink is refused.
        let dir = abs.parent().unwrap_or(Path::new("/"));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        sources.push(Source {
            name: f.display().to_string(),
            text,
            dir,
        });
    }
    spec::load(&sources)
}
