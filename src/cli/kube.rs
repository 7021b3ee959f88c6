//! `gvpod generate kube (POD…|-f FILE…) [-o FILE]`: Kubernetes manifests
//! (`spec::kube` renders them). From spec files it needs no root, no data
//! root and no service (run before the context is opened, like `gvpod
//! config`, also under `--url`); from pods it reads their stored options
//! (through the service under `--url`). `-o` writes the file atomically.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[cfg(host_runtime)]
use crate::pod::Ctx;
use crate::pod::PodError;
use crate::spec;

#[derive(Subcommand)]
pub enum GenerateCmd {
    /// Kubernetes manifests that run the pods on a cluster with gVisor
    /// (a RuntimeClass, then per pod a Deployment or Pod and a Service).
    Kube(KubeArgs),
}

#[derive(Args)]
pub struct KubeArgs {
    /// Pods to export (names or ids); without any, the spec files.
    pub pods: Vec<String>,
    /// Spec file (repeatable, merged as `gvpod config` merges them);
    /// default ./gvpod.yaml, else ./gvpod.yml.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the manifests to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl KubeArgs {
    /// Pods and spec files are two different inputs: one at a time.
    pub fn wants_specs(&self) -> anyhow::Result<bool> {
        if !self.pods.is_empty() && !self.files.is_empty() {
            return Err(PodError::Usage(
                "generate kube takes pods or -f spec files, not both; run it once for each".into(),
            )
            .into());
        }
        Ok(self.pods.is_empty())
    }
}

/// The manifests of the spec files `a` names (or the default one).
pub fn from_files(a: &KubeArgs) -> anyhow::Result<i32> {
    let p = super::config::load(&a.files)?;
    let pods: Vec<(&str, &spec::Pod)> = p.pods.iter().map(|(k, v)| (k.as_str(), v)).collect();
    write(a, &spec::kube::render(Some(&p.name), &pods))
}

#[cfg(host_runtime)]
/// The manifests of existing pods, on this host.
pub fn from_pods(ctx: &mut Ctx, a: &KubeArgs) -> anyhow::Result<i32> {
    write(a, &crate::pod::generate_kube(ctx, &a.pods)?)
}

/// Prints `yaml`, or writes it to `-o FILE`.
pub fn write(a: &KubeArgs, yaml: &str) -> anyhow::Result<i32> {
    match &a.output {
        Some(f) => crate::util::write_atomic(f, yaml.as_bytes()).map_err(|e| {
            PodError::Usage(format!(
                "cannot write {}: {}; check the path given with -o",
                f.display(),
                e.to_string().to_lowercase()
            ))
        })?,
        None => print!("{yaml}"),
    }
    Ok(0)
}
