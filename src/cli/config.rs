//! `gvpod config`: reads the spec files, prints the merged, validated
//! project. Needs no root and no data root (run before the context is
//! opened); the logic is `spec`'s, this file only reads and prints.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::spec::{self, Source, SpecError};

#[derive(Args)]
pub struct ConfigArgs {
    /// Spec file (repeatable: later files override earlier ones key by
    /// key); default ./gvpod.yaml, else ./gvpod.yml.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format: yaml or json.
    #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
    pub format: String,
}

/// Runs `gvpod config`. A spec error goes back to `cli::main`, which
/// prints it as its own `FILE:LINE:COL: …` line (the form editors jump to).
pub fn config(a: ConfigArgs) -> anyhow::Result<i32> {
    let p = load(&a.files)?;
    let v = serde_json::to_value(&p)?;
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", spec::to_yaml(&v));
    }
    Ok(0)
}

/// Reads, merges and validates the spec files (default ./gvpod.yaml).
pub(super) fn load(files: &[PathBuf]) -> Result<spec::Project, SpecError> {
    let files: Vec<PathBuf> = if files.is_empty() {
        let found = spec::DEFAULT_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(SpecError::NoFile)?;
        vec![found]
    } else {
        files.to_vec()
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut sources = Vec::new();
    for f in &files {
        let read = |msg: String| SpecError::Read {
            path: f.display().to_string(),
            msg,
        };
        let text = std::fs::read_to_string(f).map_err(|e| read(e.to_string().to_lowercase()))?;
        let abs = cwd.join(f);
        let dir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
        sources.push(Source {
            name: f.display().to_string(),
            text,
            dir,
        });
    }
    spec::load(&sources)
}
