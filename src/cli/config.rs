//! `gvpod config`: reads the spec files, prints the merged, validated
//! project. Needs no root and no data root (run before the context is
//! opened); the logic is `spec`'s, this file only reads and prints.

use std::path::PathBuf;

use clap::Args;

use crate::spec::{self, SpecError};

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

pub(super) fn load(files: &[PathBuf]) -> Result<spec::Project, SpecError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    crate::pod::project::files::load(files, &cwd)
}
