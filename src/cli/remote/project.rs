//! `up`, `down` and `service` through the service. The client reads and
//! validates the spec files itself (a spec error prints as on the host,
//! `FILE:LINE:COL: …`), then sends their absolute paths: the service reads
//! the same files (the same host, or a Lima machine that mounts the user's
//! home at the same path).

use std::path::PathBuf;

use serde_json::json;

use super::super::format;
use super::super::project::{DownArgs, ServiceCmd, UpArgs};
use crate::machine::remote::{enc, Remote};
use crate::pod::project::{files, Done};

/// The spec files, absolute, and the project they hold (validated here).
fn read(given: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, crate::spec::Project)> {
    let cwd = std::env::current_dir()?;
    let project = files::load(given, &cwd)?;
    Ok((files::resolve(given, &cwd)?, project))
}

fn print(done: &[Done], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(done)?);
    }
    for d in done {
        super::super::project::print_done(d, json);
    }
    Ok(())
}

fn call(r: &Remote, path: &str, body: serde_json::Value, json: bool) -> anyhow::Result<i32> {
    let done: Vec<Done> = r.json("POST", path, Some(&body))?;
    print(&done, json)?;
    Ok(0)
}

pub fn up(r: &Remote, a: UpArgs, debug: bool) -> anyhow::Result<i32> {
    let json = format::check_format(&a.format)?;
    let (files, _) = read(&a.files)?;
    let body = json!({"files": files, "pods": a.pods, "wait": a.wait, "debug": debug});
    call(r, "/gvpod/v1/projects/up", body, json)
}

pub fn down(r: &Remote, a: DownArgs) -> anyhow::Result<i32> {
    let json = format::check_format(&a.format)?;
    let body = match (&a.project, a.files.is_empty()) {
        (Some(p), true) => json!({"project": p, "pods": a.pods, "rmi": a.rmi}),
        _ => {
            let (files, _) = read(&a.files)?;
            json!({"files": files, "pods": a.pods, "rmi": a.rmi})
        }
    };
    call(r, "/gvpod/v1/projects/down", body, json)
}

pub fn service(r: &Remote, c: ServiceCmd) -> anyhow::Result<i32> {
    let (key, name, action) = match c {
        ServiceCmd::Ls { pod, format } => {
            let json = format::check_format(&format)?;
            let v = super::view(r, &pod)?;
            format::services(&v.services, json)?;
            return Ok(0);
        }
        ServiceCmd::Start { pod, service } => (pod, service, "start"),
        ServiceCmd::Stop { pod, service } => (pod, service, "stop"),
        ServiceCmd::Restart { pod, service } => (pod, service, "restart"),
    };
    let mut path = format!("/gvpod/v1/pods/{}/services/{action}", enc(&key));
    if let Some(n) = &name {
        path.push_str(&format!("?service={}", enc(n)));
    }
    let names: Vec<String> = r.json("POST", &path, None)?;
    for n in names {
        println!("{n}");
    }
    Ok(0)
}
