//! The store verbs through the service: checkpoint, restore, commit, the
//! snapshot store, the image store's archive verbs, `system gc`. Each sends
//! the pod layer's own request (or a path) to a `/gvpod/v1/` endpoint and
//! prints the answer with the host's own formatting. Paths are made
//! absolute here: the service reads and writes them on its host (on a Mac,
//! the same path in the Lima machine).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use super::super::args::SaveFormat;
use super::super::format;
use super::super::snapshot::{self, CheckpointArgs, CommitArgs, RestoreArgs, SnapshotCmd};
use super::Created;
use crate::machine::remote::{enc, Remote, RemoteError};
use crate::pod::{self, PodError};

#[derive(Deserialize)]
struct Named {
    #[serde(rename = "Name")]
    name: String,
}

/// `path` as the service must see it: absolute, from our working directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path == Path::new("-") {
        return Err(PodError::Usage(
            "reading or writing stdin/stdout does not work through --url: give a file path".into(),
        )
        .into());
    }
    Ok(std::path::absolute(path)?)
}

fn path_query(path: &Path) -> anyhow::Result<String> {
    Ok(enc(&absolute(path)?.to_string_lossy()))
}

pub(super) fn gc(r: &Remote, fmt: &str) -> anyhow::Result<i32> {
    format::check_format(fmt)?;
    let rep: pod::GcReport = r.json("POST", "/gvpod/v1/system/gc", None)?;
    format::gc(&rep, fmt)?;
    Ok(0)
}

pub(super) fn checkpoint(r: &Remote, a: CheckpointArgs) -> anyhow::Result<i32> {
    let req = pod::CheckpointRequest {
        pod: a.pod,
        name: a.name,
        leave_running: a.leave_running,
        tcp_close: a.tcp_close,
    };
    let n: Named = r.json("POST", "/gvpod/v1/checkpoint", Some(&json!(req)))?;
    println!("{}", n.name);
    Ok(0)
}

pub(super) fn restore(r: &Remote, a: RestoreArgs, debug: bool) -> anyhow::Result<i32> {
    let req = pod::RestoreRequest {
        snapshot: a.snapshot,
        name: a.name,
        ports: a.ports.publish,
        network: a.network,
        debug,
    };
    let c: Created = r.json("POST", "/gvpod/v1/restore", Some(&json!(req)))?;
    println!("{}", c.id);
    Ok(0)
}

pub(super) fn commit(r: &Remote, a: CommitArgs) -> anyhow::Result<i32> {
    let path = format!(
        "/gvpod/v1/commit?pod={}&image={}",
        enc(&a.pod),
        enc(&a.image)
    );
    let c: Created = r.json("POST", &path, None)?;
    println!("{}", c.id);
    Ok(0)
}

pub(super) fn snapshot(r: &Remote, cmd: SnapshotCmd) -> anyhow::Result<i32> {
    match cmd {
        SnapshotCmd::Ls { quiet, format } => {
            format::check_format(&format)?;
            let rows: Vec<pod::snapshots::SnapshotView> =
                r.json("GET", "/gvpod/v1/snapshots", None)?;
            snapshot::print_snapshots(&rows, quiet, &format)?;
            Ok(0)
        }
        SnapshotCmd::Inspect { snapshots } => {
            let views = snapshots
                .iter()
                .map(|k| {
                    r.json::<serde_json::Value>(
                        "GET",
                        &format!("/gvpod/v1/snapshots/{}", enc(k)),
                        None,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            format::inspect(&views)?;
            Ok(0)
        }
        SnapshotCmd::Rm { snapshots } => {
            Ok(format::each_name(&snapshots, RemoteError::exit_code, |k| {
                r.call("DELETE", &format!("/gvpod/v1/snapshots/{}", enc(k)))
            }))
        }
        SnapshotCmd::Export { snapshot, output } => {
            let path = format!(
                "/gvpod/v1/snapshots/{}/export?output={}",
                enc(&snapshot),
                path_query(&output)?
            );
            r.call("POST", &path)?;
            println!("{}", output.display());
            Ok(0)
        }
        SnapshotCmd::Import { file, name } => {
            let mut path = format!("/gvpod/v1/snapshots/import?file={}", path_query(&file)?);
            if let Some(n) = name {
                path.push_str(&format!("&name={}", enc(&n)));
            }
            let n: Named = r.json("POST", &path, None)?;
            println!("{}", n.name);
            Ok(0)
        }
    }
}

pub(super) fn load(r: &Remote, input: &Path, quiet: bool) -> anyhow::Result<i32> {
    let path = format!("/gvpod/v1/images/load?input={}", path_query(input)?);
    let names: Vec<String> = r.json("POST", &path, None)?;
    if !quiet {
        names.iter().for_each(|n| println!("Loaded image: {n}"));
    }
    Ok(0)
}

pub(super) fn save(
    r: &Remote,
    output: &Path,
    fmt: SaveFormat,
    images: Vec<String>,
) -> anyhow::Result<i32> {
    let body = json!({
        "images": images,
        "output": absolute(output)?,
        "format": match fmt {
            SaveFormat::OciArchive => "oci-archive",
            SaveFormat::DockerArchive => "docker-archive",
        },
    });
    r.request("POST", "/gvpod/v1/images/save", Some(&body))?
        .read_all()?;
    Ok(0)
}

pub(super) fn import(
    r: &Remote,
    file: &Path,
    reference: &str,
    change: Vec<String>,
) -> anyhow::Result<i32> {
    let body = json!({"file": absolute(file)?, "reference": reference, "change": change});
    let c: Created = r.json("POST", "/gvpod/v1/images/import", Some(&body))?;
    println!("{}", c.id);
    Ok(0)
}

pub(super) fn tag(r: &Remote, source: &str, target: &str) -> anyhow::Result<i32> {
    let path = format!(
        "/gvpod/v1/images/tag?source={}&target={}",
        enc(source),
        enc(target)
    );
    r.call("POST", &path)?;
    Ok(0)
}

/// `rmi`: every name is tried; the first failure's code is the exit code.
pub(super) fn rmi(r: &Remote, images: &[String], force: bool) -> i32 {
    let mut code = 0;
    for name in images {
        let path = format!("/gvpod/v1/images/{}?force={}", enc(name), u8::from(force));
        match r.json::<Vec<String>>("DELETE", &path, None) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("gvpod: {e}");
                code = code.max(e.exit_code());
            }
        }
    }
    code
}

pub(super) fn inspect_images(r: &Remote, images: &[String]) -> anyhow::Result<i32> {
    let views = images
        .iter()
        .map(|n| r.json::<serde_json::Value>("GET", &format!("/gvpod/v1/images/{}", enc(n)), None))
        .collect::<Result<Vec<_>, _>>()?;
    format::inspect(&views)?;
    Ok(0)
}

pub(super) fn prune(r: &Remote, fmt: &str) -> anyhow::Result<i32> {
    format::check_format(fmt)?;
    let rep: crate::image::PruneReport = r.json("POST", "/gvpod/v1/images/prune", None)?;
    format::prune(&rep, fmt)?;
    Ok(0)
}
