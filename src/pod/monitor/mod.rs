//! The per-pod monitor: the same binary re-executed (`gvpod __monitor ID`) in
//! its own session, in the spirit of conmon. It owns the pod's stdio
//! (DESIGN.md fact 6: the sandbox holds runsc's stdio open, so only a process
//! that lives as long as the pod can own it), runs `runsc run` as its child,
//! writes the pod's output as JSON lines, relays it to an attached client,
//! records the exit code and finish time, and removes `--rm` pods.
//!
//! Snapshots: given `--restore DIR` it runs `runsc restore` from the memory
//! image in DIR where it would run `runsc run` (both runsc styles, see
//! `runsc::RestoreLaunch`). When the sandbox exits because the pod was
//! checkpointed (`runsc run` then returns 0), it waits for the checkpoint's
//! outcome (`pod::checkpoint::after_sandbox_exit`) and either records the
//! pod as checkpointed or restores it in place, keeping its log and its
//! attached client: that is how `--leave-running` works on runsc releases
//! whose own `--leave-running` destroys the container, and how a checkpoint
//! that fails after the memory image was written leaves the pod running.
//!
//! The start path (client exec → runsc exec, and runsc's exit → the client's
//! answer) is kept to what must precede runsc or the answer: the pid file
//! is waited for without polling ([`watch`]), and what can wait — the fsync
//! of a bundle the client wrote without one, the WAL checkpoint that keeps
//! every later `Db::open` short — runs on a thread once the pod has run a
//! while or has exited and its client has the answer ([`chores`]). Every
//! host resource is still recorded before it is made (the runsc container
//! before [`spawn`] runs runsc).
//!
//! One concern per file, as conmon splits its own: [`spawn`] starts runsc
//! with the monitor holding its stdio (pipes or a console-socket pty),
//! [`stdio`] relays it (`ctr_stdio`), [`log`] writes the pod log
//! (`ctr_logging`), [`exit`] records the end of a launch (`ctr_exit`),
//! [`watch`] waits on files and pidfds, [`chores`] runs off the start path;
//! the client protocol is `pod::proto` (`conn_sock`). This file is the
//! launch loop: launch, wait for the start, relay, then decide what the end
//! means (`pod::checkpoint::after_sandbox_exit`: exit, checkpointed, or
//! restore in place, or a restart by the pod's restart policy: `exit`
//! records it, the back-off ends early when the user stops or removes the
//! pod, and an attached client is let go with the exit code of the launch
//! it watched). Supervised services and their health checks run beside each
//! launch (`pod::service::supervise`, ended with the launch).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

mod chores;
mod exit;
pub(super) mod log;
mod reap;
mod spawn;
mod stdio;
mod watch;

pub(crate) use watch::sleep_until_exit;

use super::proto::{self, FromMonitor, ToMonitor};
use super::{failpoint, Ctx, PodError};
use crate::bundle::PodOptions;
use crate::runsc::GlobalFlags;
use chores::housekeeping;
use log::Output;
use spawn::spawn;
use stdio::{copy_winsize, relay, Client, Stdio3};

/// Entry point of `gvpod __monitor`; fd 3 is the socket to the starting
/// client. An `early` monitor (`pod::start::EarlyMonitor`) was started
/// before its pod existed: it opens the data root, then waits for the
/// client's go (which brings its log) and touches nothing of the pod
/// before it; end of file instead (the create failed, the client died)
/// ends it quietly. Its go says whether the pod is restored (a clone's
/// early monitor: `pod::restore`), as `restore` does for a late one.
pub fn monitor_main(root: &Path, id: &str, restore: Option<&Path>, early: bool) -> i32 {
    // SAFETY: the client passes the socketpair end as fd 3 and nothing else owns it.
    let sync = unsafe { OwnedFd::from_raw_fd(3) };
    tracing::debug!("step monitor:exec");
    reap::become_subreaper();
    let opened = Ctx::open(root);
    let mut restore = restore.map(Path::to_path_buf);
    if early && opened.is_ok() {
        match proto::recv::<ToMonitor>(&sync) {
            Ok(Some((ToMonitor::Go { restore: from }, fds))) if fds.len() == 1 => {
                if let Err(e) = nix::unistd::dup2(fds[0].as_raw_fd(), 2) {
                    tracing::warn!("monitor log of {id}: {e}");
                }
                restore = restore.or(from);
                tracing::debug!("step monitor:go");
            }
            _ => return 0,
        }
    }
    let mut ctx = match opened {
        Ok(c) => c,
        Err(e) => {
            let _ = proto::send(
                &sync,
                &FromMonitor::Failed {
                    code: e.exit_code(),
                    msg: e.to_string(),
                },
                &[],
            );
            return 1;
        }
    };
    match run(&mut ctx, id, sync, restore) {
        Ok(()) => 0,
        Err((sync, e)) => {
            if let Some(s) = sync {
                let _ = proto::send(
                    &s,
                    &FromMonitor::Failed {
                        code: e.exit_code(),
                        msg: e.to_string(),
                    },
                    &[],
                );
            }
            // The pod did not start: record it as exited so `ps` tells the truth.
            let _ = ctx.db.set_pod_exited(id, &crate::util::now_rfc3339(), None);
            let _ = ctx.db.monitor_done(id, std::process::id() as i32);
            1
        }
    }
}

type MonResult<T> = std::result::Result<T, (Option<OwnedFd>, PodError)>;

/// What the monitor asks runsc to do.
enum Launch {
    /// `runsc run`: a fresh start.
    Run,
    /// Bring the pod back from the memory image in this directory.
    Restore(PathBuf),
}

fn run(ctx: &mut Ctx, id: &str, sync: OwnedFd, restore: Option<PathBuf>) -> MonResult<()> {
    let pod = match ctx.db.pod(id) {
        Ok(Some(p)) => p,
        Ok(None) => return Err((Some(sync), PodError::NotFound(id.to_string()))),
        Err(e) => return Err((Some(sync), e.into())),
    };
    let flags: GlobalFlags = match ctx.flags_of(&pod) {
        Ok(f) => f,
        Err(e) => return Err((Some(sync), e)),
    };
    let opts: PodOptions = match pod.options() {
        Ok(o) => o.clone(),
        Err(e) => return Err((Some(sync), e.into())),
    };

    // The first message says whether the client stays attached. The socket
    // is kept either way until the start is reported; an attached client
    // keeps it until the exit code is sent.
    let mut client = match proto::recv::<ToMonitor>(&sync) {
        Ok(Some((ToMonitor::Attach { stdin }, mut fds)))
            if fds.len() == if stdin { 3 } else { 2 } =>
        {
            let stderr = fds.pop().expect("checked length");
            let stdout = fds.pop().expect("checked length");
            Some(Client {
                stdin: fds.pop(),
                stdout,
                stderr,
            })
        }
        _ => None,
    };
    let mut sync = Some(sync);
    // Published ports: real listening sockets, held for the pod's life and
    // closed before the end is recorded below (or when `run` returns early).
    // Taken before runsc starts, so a port grabbed since `create` fails the
    // start with a clear error. The route port (`--route`) too, served on
    // threads of this process.
    let held_ports = match super::network::hold_ports(ctx, &pod) {
        Ok(h) => h,
        Err(e) => return Err((sync.take(), e)),
    };

    let bundle = ctx.bundle_dir(id);
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ctx.log_path(id))
    {
        Ok(l) => l,
        Err(e) => {
            return Err((
                sync.take(),
                super::io("cannot open log", &ctx.log_path(id))(e),
            ))
        }
    };
    let mut out = Output::new(log, opts.tty, ctx.log_path(id), opts.log.effective());
    let runsc = ctx.runsc_for(&flags).ok();
    let signal = |sig: i32| {
        if let Some(r) = &runsc {
            let _ = r.kill(&flags, id, &sig.to_string(), false);
        }
    };
    let mut launch = match restore {
        Some(d) => Launch::Restore(d),
        None => Launch::Run,
    };
    // Input from clients that attach later (`pod::attach`).
    let attach_path = super::attach::socket_path(ctx, id);
    let attach = opts
        .interactive
        .then(|| super::attach::listen(&attach_path))
        .flatten();
    // Resizes of its terminal (`pod::resize`).
    let ctl_path = super::attach::ctl_path(ctx, id);
    let ctl = opts.tty.then(|| super::attach::listen(&ctl_path)).flatten();
    let mut first = true;
    let mut chores = None;
    let mut checkpointed: Option<String> = None;
    // A temp snapshot directory taken over from a killed gvpod, held until
    // the restore from it has loaded.
    let mut claimed = None;
    // The back-off before the current launch, when it is a restart.
    let mut last_delay = None;
    let (ended, code) = loop {
        let launched_at = chrono::Utc::now();
        let restored = matches!(launch, Launch::Restore(_));
        let (mut child, stdio) = match spawn(ctx, id, &flags, &opts, &launch) {
            Ok(x) => x,
            Err(e) if first => return Err((sync.take(), e)),
            Err(e) => {
                // A restore after a checkpoint, or a restart, failed: the pod is gone.
                let what = if restored { "resumed" } else { "restarted" };
                let line = format!("gvpod: pod {} could not be {what}: {e}", pod.name);
                out.line("stderr", line.as_bytes());
                let ended = exit::Ended {
                    status: None,
                    restored,
                    checkpointed: false,
                };
                break (ended, (!restored).then_some(125));
            }
        };

        // Started once the pid file appears (after create) or the child exits first.
        let pid = watch::wait_pid_file(&bundle.join("pid"), &mut child);
        tracing::debug!("step monitor:pid-file");
        // A restore has a sandbox (and a pid file) before the memory image is
        // loaded; it has started only once runsc records it as running.
        let pid = match (&launch, pid) {
            (Launch::Restore(_), Some(p)) => {
                let running = ctx.runsc_for(&flags).ok().is_some_and(|r| {
                    r.wait_status(
                        &flags,
                        id,
                        |s| s == Some("running"),
                        || matches!(child.try_wait(), Ok(Some(_))),
                    )
                });
                running.then_some(p)
            }
            (_, pid) => pid,
        };
        let me = std::process::id() as i32;
        if let Err(e) = ctx
            .db
            .set_pod_started(id, &crate::util::now_rfc3339(), pid, me)
        {
            tracing::warn!("recording start of {id}: {e}");
        }
        // Every launch gets its sshd before the start is reported (a
        // restore too: see pod::ssh::after_launch).
        if pid.is_some() {
            if let Some(l) = super::ssh::after_launch(ctx, id, &opts) {
                out.line("stderr", l.as_bytes());
            }
        }
        // Its setup and services, supervised for this launch.
        let services = pid
            .is_some()
            .then(|| super::service::supervise(ctx, id, &opts))
            .flatten();
        if first {
            if let (Some(s), Some(p)) = (&sync, pid) {
                let _ = proto::send(s, &FromMonitor::Started { pid: p }, &[]);
            }
            if client.is_none() {
                sync = None;
            }
            failpoint::hit("monitor:started");
            if pid.is_some() {
                let durable = (!pod.auto_remove)
                    .then(|| (bundle.clone(), matches!(launch, Launch::Restore(_))));
                chores = Some(housekeeping(ctx.root.clone(), durable));
            }
        }
        // A restart the user stopped or removed the pod during: it stays down.
        let restart = !first && matches!(launch, Launch::Run);
        if restart && pid.is_some() && !exit::wanted(ctx, id) {
            signal(nix::sys::signal::Signal::SIGKILL as i32);
        }
        first = false;
        if let (Launch::Restore(_), Some(_)) = (&launch, pid) {
            super::checkpoint::after_restore_started(ctx, id, &flags, claimed.take());
        }

        if let Stdio3::Pty { master } = &stdio {
            if let Some(c) = &client {
                copy_winsize(c.stdout.as_raw_fd(), master.as_raw_fd());
            }
        }
        let status = relay(
            &mut child,
            stdio,
            &mut client,
            &mut sync,
            stdio::Listeners {
                attach: attach.as_ref(),
                ctl: ctl.as_ref(),
            },
            &mut out,
            &signal,
        );
        tracing::debug!("step monitor:relayed");
        out.flush();
        if let Some(s) = services {
            s.end(ctx);
        }
        let clean = matches!(status, Some(s) if s.success());
        let mut ended = exit::Ended {
            status,
            restored,
            checkpointed: false,
        };
        match super::checkpoint::after_sandbox_exit(ctx, id, &flags, launched_at, clean) {
            super::checkpoint::AfterExit::Exit => {
                let code = exit::code_of(&ended, &flags, &client, &mut out);
                // A launch that never started (runsc failed before the
                // sandbox ran) is a failed start, not an exit to restart
                // (docker's too): the start, or the restart, fails.
                let delay = match pid {
                    Some(_) => {
                        exit::restart_after(ctx, id, opts.restart, code, launched_at, last_delay)
                    }
                    None => None,
                };
                let Some(delay) = delay else {
                    break (ended, code);
                };
                exit::clear_launch(ctx, id, &flags, &ended);
                // An attached client's run ends with this exit, as docker
                // run's does; the pod goes on without it.
                if let Some(s) = sync.take() {
                    let _ = proto::send(&s, &FromMonitor::Exited { code }, &[]);
                }
                client = None;
                if !exit::back_off(ctx, id, delay) {
                    // Stopped or removed by the user meanwhile.
                    break (ended, code);
                }
                last_delay = Some(delay);
                tracing::debug!("step monitor:restart");
                reprovision(ctx, id);
                launch = Launch::Run;
            }
            super::checkpoint::AfterExit::Checkpointed(snap) => {
                checkpointed = Some(snap);
                ended.checkpointed = true;
                let code = exit::code_of(&ended, &flags, &client, &mut out);
                break (ended, code);
            }
            super::checkpoint::AfterExit::Resume { dir, claimed: c } => {
                claimed = c;
                tracing::debug!("step monitor:resume");
                // DESIGN.md fact 4: the sandbox that was checkpointed took the
                // interface's addresses; give them back before the restore.
                reprovision(ctx, id);
                launch = Launch::Restore(dir);
            }
        }
    };
    if let (Some(snap), Some(c)) = (&checkpointed, &client) {
        let line = format!(
            "gvpod: pod {} was checkpointed to snapshot {snap} (bring it back with `gvpod restore {snap}`)\n",
            pod.name
        );
        let _ = nix::unistd::write(c.stderr.as_fd(), line.as_bytes());
    }
    // The pod's output is all written: our copies of the attached client's
    // stdout and stderr close now, so a reader of them (`$(gvpod run --rm
    // …)`, a pipe) sees their end when the client exits, not after the
    // removal and chores below.
    drop(client);
    // Whoever waits for this monitor (an in-place restore right after a
    // checkpoint, `start` after `stop`) takes what it held as soon as
    // `exit::record` says it is done, while this process still runs its
    // tail: the ports close, and the attach and resize sockets go, first
    // (after the record, their removal would delete the next monitor's).
    held_ports.release();
    if attach.is_some() {
        let _ = std::fs::remove_file(&attach_path);
    }
    if ctl.is_some() {
        let _ = std::fs::remove_file(&ctl_path);
    }

    let later = exit::record(ctx, &pod, &flags, &ended, code);
    tracing::debug!("step monitor:done");
    if let Some(s) = &sync {
        let _ = proto::send(s, &FromMonitor::Exited { code }, &[]);
    }
    failpoint::hit("monitor:answered");
    // A removed --rm pod's bundle, renamed aside: deleted after the answer.
    for d in later {
        if let Err(e) = crate::sys::remove_path(&d) {
            tracing::warn!("removing {}: {e}", d.display());
        }
    }
    // A pod that exited at once: its chores start now, after the answer.
    if let Some((done, t)) = chores {
        drop(done);
        let _ = t.join();
    }
    Ok(())
}

/// DESIGN.md fact 4: a sandbox that ended took its interface's addresses
/// (and routes); the next launch (a restart, or the restore after a
/// checkpoint) gets them back first. A failure is logged: the launch then
/// fails with runsc's own error.
fn reprovision(ctx: &mut Ctx, id: &str) {
    let res = ctx
        .db
        .pod(id)
        .map_err(PodError::from)
        .and_then(|p| p.ok_or_else(|| PodError::NotFound(id.to_string())))
        .and_then(|p| super::network::prepare_start(ctx, &p));
    if let Err(e) = res {
        tracing::warn!("re-provisioning the network of {id}: {e}");
    }
}
