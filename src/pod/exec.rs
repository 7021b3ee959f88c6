//! `exec`: run another process in a running pod through `runsc exec`, with
//! gvpod's own stdio (runsc hands it to the sandbox; with `-t` the sentry
//! drives the caller's terminal directly).

use std::os::fd::AsRawFd;
use std::process::Stdio;

use super::{Ctx, PodError, Result};
use crate::bundle::{self, ProcessSpec};
use crate::state::PodRow;

pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub interactive: bool,
    pub tty: bool,
}

/// Runs the command and returns its exit code.
pub fn exec(ctx: &mut Ctx, pod: &PodRow, req: ExecRequest) -> Result<i32> {
    let pod = ctx.refresh(pod.clone())?;
    if !pod.status.can_exec() {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "start it first (`gvpod start`)",
        });
    }
    if req.cmd.is_empty() {
        return Err(PodError::Usage(
            "exec needs a command after the pod name".into(),
        ));
    }
    // With a terminal, the sentry drives the caller's stdin as the pod's tty,
    // so stdin must be that terminal (with or without -i).
    if req.tty && !nix::unistd::isatty(std::io::stdin().as_raw_fd()).unwrap_or(false) {
        return Err(PodError::Usage(
            "the input device is not a TTY: drop -t, or run gvpod in a terminal".into(),
        ));
    }
    let bundle_dir = ctx.bundle_dir(&pod.id);
    let rootfs = bundle_dir.join("rootfs");
    let main: &ProcessSpec = pod
        .main_process()?
        .ok_or_else(|| PodError::Monitor(format!("pod {} has no recorded process", pod.name)))?;
    for e in &req.env {
        bundle::check_env(e)?;
    }
    let env = bundle::merge_env(&main.env, &req.env, req.tty, None);
    let (uid, gid, additional_gids) = match &req.user {
        Some(u) => {
            let r = bundle::resolve_user(&rootfs, u)?;
            (r.uid, r.gid, r.additional_gids)
        }
        None => (main.uid, main.gid, main.additional_gids.clone()),
    };
    let cwd = req.workdir.clone().unwrap_or_else(|| main.cwd.clone());
    super::check_command(&rootfs, &req.cmd[0], &env, &cwd, &pod.image_ref)?;
    let process = bundle::exec_process(&ProcessSpec {
        args: req.cmd.clone(),
        env,
        cwd,
        uid,
        gid,
        additional_gids,
        terminal: req.tty,
    })?;
    let dir = ctx.pod_run_dir(&pod.id);
    std::fs::create_dir_all(&dir).map_err(super::io("cannot create", &dir))?;
    let file = dir.join(format!("exec-{}.json", crate::util::random_hex(6)));
    let data = serde_json::to_vec(&process).expect("a process spec serialises");
    crate::util::write_atomic(&file, &data).map_err(super::io("cannot write", &file))?;
    let flags = ctx.flags_of(&pod)?;
    let runsc = ctx.runsc_for(&flags)?;
    let mut cmd = runsc.command(&flags, "exec");
    cmd.arg(format!("--process={}", file.display()))
        .arg(&pod.id);
    // The sentry writes a donated regular file at its own offset (clobbering
    // what the caller already wrote there), so files get a pipe in between.
    let (out_file, err_file) = (
        is_regular_file(&std::io::stdout()),
        is_regular_file(&std::io::stderr()),
    );
    cmd.stdin(if req.interactive || req.tty {
        Stdio::inherit()
    } else {
        Stdio::null()
    })
    .stdout(if out_file {
        Stdio::piped()
    } else {
        Stdio::inherit()
    })
    .stderr(if err_file {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let status =
        cmd.spawn().and_then(|mut child| {
            let out = child.stdout.take().map(|mut r| {
                std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::stdout()))
            });
            let err = child.stderr.take().map(|mut r| {
                std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::stderr()))
            });
            let st = child.wait();
            for t in [out, err].into_iter().flatten() {
                let _ = t.join();
            }
            st
        });
    let _ = std::fs::remove_file(&file);
    let status = status.map_err(super::io("cannot run", &runsc.bin))?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if let Some(f) = crate::runsc::OwnFailure::of_exit(code, &flags) {
        return Err(f.into_error("exec", &pod.name).into());
    }
    Ok(code)
}

fn is_regular_file(fd: &impl std::os::fd::AsFd) -> bool {
    crate::sys::fstat(fd.as_fd()).is_ok_and(|st| (st.st_mode & libc::S_IFMT) == libc::S_IFREG)
}
