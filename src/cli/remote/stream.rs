//! The streaming verbs through the service: a foreground pod (`run`
//! without `-d`, `start -a`) and `exec`, over docker's hijacked attach and
//! exec connections: output demultiplexed to our stdout and stderr, our
//! stdin to the pod (`-i`), our terminal in raw mode with its size sent
//! along (`-t`), and the signals we get forwarded (docker's sig-proxy).

use std::io::BufReader;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use nix::sys::signal::{SigSet, Signal};
use serde::Deserialize;
use serde_json::json;

use super::Created;
use crate::machine::remote::{drain, enc, http, Remote, RemoteError};
use crate::pod::PodError;

pub(super) fn is_terminal() -> bool {
    nix::unistd::isatty(std::io::stdin().as_raw_fd()).unwrap_or(false)
}

/// Starts pod `id` attached, as `run` without `-d` and `start -a` do: the
/// output streams until the pod exits, whose code is returned.
pub(super) fn foreground(
    r: &Remote,
    id: &str,
    stdin: bool,
    tty: bool,
    auto_remove: bool,
) -> Result<i32, RemoteError> {
    let signals = crate::util::block_forwarded_signals();
    let attach = r.hijack(
        "POST",
        &format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}",
            u8::from(stdin)
        ),
        None,
    )?;
    // The wait is asked before the start, so no exit can slip past it.
    let condition = if auto_remove { "removed" } else { "next-exit" };
    let waiter = r.request(
        "POST",
        &format!("/containers/{id}/wait?condition={condition}"),
        None,
    )?;
    let waited = std::thread::spawn(move || wait_answer(waiter));
    if let Err(e) = r.call("POST", &format!("/containers/{id}/start")) {
        if auto_remove {
            let _ = r.call("DELETE", &format!("/containers/{id}?force=1"));
        }
        return Err(e);
    }
    let resize = format!("/containers/{id}/resize");
    stream(r, attach, stdin, tty, &resize, signals, id)?;
    waited.join().unwrap_or(Ok(125))
}

/// The exit code a wait answer carries.
pub(super) fn wait_answer(resp: http::Response) -> Result<i32, RemoteError> {
    #[derive(Deserialize)]
    struct W {
        #[serde(rename = "StatusCode")]
        code: i32,
    }
    let raw = resp.read_all()?;
    let w: W = serde_json::from_slice(&raw).map_err(|e| {
        RemoteError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected wait answer: {e}"),
        ))
    })?;
    Ok(w.code)
}

/// Carries a hijacked connection: output to our stdout/stderr until the
/// service closes it, our stdin to it (`-i`), our terminal's size and the
/// signals we get to the pod (or exec). `kill_of` names the container that
/// forwarded signals go to.
fn stream(
    r: &Remote,
    (conn, mux): (BufReader<UnixStream>, bool),
    stdin: bool,
    tty: bool,
    resize: &str,
    signals: SigSet,
    kill_of: &str,
) -> Result<(), RemoteError> {
    let _raw = if tty {
        crate::util::RawMode::enter()
    } else {
        None
    };
    if tty {
        send_size(r, resize);
    }
    {
        let (r, resize, kill) = (r.clone(), resize.to_string(), kill_of.to_string());
        std::thread::spawn(move || loop {
            let Ok(sig) = signals.wait() else {
                return;
            };
            if sig == Signal::SIGWINCH {
                send_size(&r, &resize);
            } else if !tty {
                // With a terminal, Ctrl-C is a byte the pod's tty turns into
                // its own SIGINT; without one, the signal itself is sent.
                let path = format!("/containers/{}/kill?signal={}", enc(&kill), sig as i32);
                let _ = r.call("POST", &path);
            }
        });
    }
    if stdin {
        let mut to_pod = conn.get_ref().try_clone()?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_pod);
            let _ = to_pod.shutdown(std::net::Shutdown::Write);
        });
    } else {
        let _ = conn.get_ref().shutdown(std::net::Shutdown::Write);
    }
    let mut conn = conn;
    let res = http::demux(
        &mut conn,
        !mux,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    drop(_raw);
    if let Err(e) = res {
        // Our own stdout gone (a closed pipe) is not the service's fault.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        drain(conn);
    }
    Ok(())
}

/// Tells the service our terminal's size.
fn send_size(r: &Remote, resize: &str) {
    // SAFETY: winsize is plain data; TIOCGWINSZ only writes it.
    let ws = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) != 0 {
            return;
        }
        ws
    };
    let path = format!("{resize}?h={}&w={}", ws.ws_row, ws.ws_col);
    let _ = r.call("POST", &path);
}

#[allow(clippy::too_many_arguments)]
pub(super) fn exec(
    r: &Remote,
    interactive: bool,
    tty: bool,
    env: Vec<String>,
    user: Option<String>,
    workdir: Option<String>,
    pod: &str,
    cmd: Vec<String>,
) -> anyhow::Result<i32> {
    if tty && !is_terminal() {
        return Err(PodError::Usage(
            "the input device is not a TTY: drop -t, or run gvpod in a terminal".into(),
        )
        .into());
    }
    let signals = crate::util::block_forwarded_signals();
    let body = json!({
        "AttachStdin": interactive,
        "AttachStdout": true,
        "AttachStderr": true,
        "Tty": tty,
        "Cmd": cmd,
        "Env": super::client_env(&env),
        "User": user.unwrap_or_default(),
        "WorkingDir": workdir.unwrap_or_default(),
    });
    let made: Created = r.json(
        "POST",
        &format!("/containers/{}/exec", enc(pod)),
        Some(&body),
    )?;
    let conn = r.hijack(
        "POST",
        &format!("/exec/{}/start", made.id),
        Some(&json!({"Detach": false, "Tty": tty})),
    )?;
    let resize = format!("/exec/{}/resize", made.id);
    stream(r, conn, interactive, tty, &resize, signals, pod)?;
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "ExitCode")]
        exit_code: Option<i32>,
    }
    let i: Inspect = r.json("GET", &format!("/exec/{}/json", made.id), None)?;
    Ok(i.exit_code.unwrap_or(125))
}
