//! `/_ping`, `/version` and `/info`: what clients ask before anything else
//! (the docker CLI pings to negotiate the API version).

use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::json;

use super::http::{self, Request};
use super::{After, Reply, API_VERSION, MIN_API_VERSION};
use crate::pod::{self, Ctx};

pub fn ping(req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let body: &[u8] = if req.method == "HEAD" { b"" } else { b"OK" };
    http::respond(w, 200, "text/plain; charset=utf-8", body, req.keep_alive())?;
    Ok(After::Next)
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

pub fn version(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let runsc = Ctx::open(root)
        .ok()
        .and_then(|c| c.runsc().ok().map(|r| r.version.raw.clone()))
        .unwrap_or_default();
    let v = env!("CARGO_PKG_VERSION");
    Reply::Json(
        200,
        json!({
            "Platform": {"Name": "gvpod"},
            "Components": [
                {"Name": "Engine", "Version": v, "Details": {
                    "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                    "Os": "linux", "Arch": arch(), "KernelVersion": kernel()}},
                {"Name": "runsc", "Version": runsc, "Details": {}}
            ],
            "Version": v,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel(),
            "BuildTime": ""
        }),
    )
    .send(w, req.keep_alive())
}

pub fn info(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let res = Ctx::open(root).and_then(|mut ctx| {
        let info = pod::system_info(&mut ctx)?;
        let pods = pod::list(&mut ctx, true)?;
        Ok((info, pods))
    });
    let (info, pods) = match res {
        Ok(x) => x,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    let running = pods.iter().filter(|p| p.status == "running").count();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    Reply::Json(
        200,
        json!({
            "ID": info.data_root,
            "Containers": pods.len(),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": pods.len() - running,
            "Images": info.images,
            "Driver": "overlay",
            "DockerRootDir": info.data_root,
            "OperatingSystem": "gvpod (gVisor sandboxes)",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "MemTotal": mem_total,
            "Name": host,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "KernelVersion": info.kernel,
            "CgroupVersion": info.cgroup_version.to_string(),
            "Runtimes": {"runsc": {"path": info.runsc_path}},
            "DefaultRuntime": "runsc",
            "SecurityOptions": ["name=gvisor"],
            "Swarm": {"LocalNodeState": "inactive"},
            "Labels": [],
            "Warnings": []
        }),
    )
    .send(w, keep)
}
