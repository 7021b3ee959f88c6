//! The store verbs through the service: checkpoint, restore, commit, the
//! snapshot store, the image store's archive verbs, `system gc`. Each sends
//! the pod layer's own request (or a path) to a `/gvpod/v1/` endpoint and
//! prints the answer with the host's own formatting. Paths are made
//! absolute here: the service reads and writes them on its host (on a Mac,
//! the same path in the Lima machine).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use super::super::args::{NetworkCmd, SaveFormat};
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

/// `system gc --orphans [--dry-run]` on the remote host.
pub(super) fn gc_orphans(r: &Remote, dry_run: bool, fmt: &str) -> anyhow::Result<i32> {
    format::check_format(fmt)?;
    let path = format!(
        "/gvpod/v1/system/gc?orphans=1&dry_run={}",
        u8::from(dry_run)
    );
    let rep: pod::OrphanReport = r.json("POST", &path, None)?;
    format::orphans(&rep, fmt)?;
    Ok(i32::from(!rep.failed.is_empty()))
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
        route: a.ports.route,
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

pub(super) fn network(r: &Remote, cmd: NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create {
            subnet,
            gateway,
            internal,
            name,
        } => {
            let body =
                json!({"name": name, "subnet": subnet, "gateway": gateway, "internal": internal});
            let n: Named = r.json("POST", "/gvpod/v1/networks", Some(&body))?;
            println!("{}", n.name);
            Ok(0)
        }
        NetworkCmd::Ls { quiet, format } => {
            format::check_format(&format)?;
            let list: Vec<pod::NetworkView> = r.json("GET", "/gvpod/v1/networks", None)?;
            format::networks(&list, quiet, &format)?;
            Ok(0)
        }
        NetworkCmd::Inspect { names } => {
            let views = names
                .iter()
                .map(|n| {
                    r.json::<serde_json::Value>(
                        "GET",
                        &format!("/gvpod/v1/networks/{}", enc(n)),
                        None,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            format::inspect(&views)?;
            Ok(0)
        }
        NetworkCmd::Rm { names } => Ok(format::each_name(&names, RemoteError::exit_code, |n| {
            r.call("DELETE", &format!("/gvpod/v1/networks/{}", enc(n)))
        })),
    }
}

/// `pull` through docker's `POST /images/create`: its JSON-lines progress
/// shown one event per line on stderr (unless `quiet`), then the image id,
/// as the host prints it.
pub(super) fn pull(
    r: &Remote,
    image: &str,
    quiet: bool,
    tls_verify: bool,
    platform: Option<String>,
) -> anyhow::Result<i32> {
    if !tls_verify {
        return Err(PodError::Usage(
            "--tls-verify=false does not work through --url: pull on the service's host".into(),
        )
        .into());
    }
    let mut path = format!("/images/create?fromImage={}", enc(image));
    if let Some(p) = platform {
        path.push_str(&format!("&platform={}", enc(&p)));
    }
    let resp = r.request("POST", &path, None)?;
    let reader = std::io::BufReader::new(resp.body);
    for line in std::io::BufRead::lines(reader) {
        let line = line?;
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(msg) = ev.get("error").and_then(|e| e.as_str()) {
            return Err(RemoteError::Api {
                status: 500,
                message: msg.to_string(),
                exit_code: None,
            }
            .into());
        }
        if quiet {
            continue;
        }
        let status = ev.get("status").and_then(|s| s.as_str()).unwrap_or("");
        let progress = ev.get("progress").and_then(|s| s.as_str()).unwrap_or("");
        match ev.get("id").and_then(|s| s.as_str()) {
            Some(id) => eprintln!("{id}: {status} {progress}"),
            None => eprintln!("{status}"),
        }
    }
    let img: serde_json::Value =
        r.json("GET", &format!("/gvpod/v1/images/{}", enc(image)), None)?;
    println!("{}", img["id"].as_str().unwrap_or_default());
    Ok(0)
}
