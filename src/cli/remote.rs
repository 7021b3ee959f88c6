//! The CLI's verbs through a gvpod service (`gvpod --url unix:///PATH`, or
//! `GVPOD_HOST`): the same arguments, the same output (tables and `--format
//! json` come from the same [`super::format`] functions over the same pod
//! views, sent by the service's `/gvpod/v1/` endpoints), the same exit codes
//! (the pod's own, 2, 125, 126/127), and for a foreground pod or exec the
//! same streams, terminal, resizes and signal forwarding as on the host.
//!
//! What the client knows that the service cannot (its working directory,
//! its environment for a bare `-e KEY`, its terminal) is resolved here,
//! before the request goes out.

use std::io::BufReader;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use nix::sys::signal::{SigSet, Signal};
use serde::Deserialize;
use serde_json::json;

use super::args::{Cli, Cmd, ImageCmd, RunArgs, SystemCmd};
use super::format;
use crate::machine::remote::{drain, enc, http, Remote, RemoteError};
use crate::pod::{PodError, PodView};

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

pub(super) fn dispatch(cli: Cli, url: &str) -> anyhow::Result<i32> {
    let r = Remote::new(url)?;
    r.check_version()?;
    let debug = cli.debug;
    match cli.cmd {
        Cmd::Run(a) => run(&r, &a, debug),
        Cmd::Create(a) => {
            let id = create(&r, &a, debug, false)?;
            println!("{id}");
            Ok(0)
        }
        Cmd::Start { attach, pods } => {
            let mut code = 0;
            for key in pods {
                if attach {
                    let v = view(&r, &key)?;
                    code = foreground(&r, &v.id, v.config.interactive, v.config.tty, false)?;
                } else {
                    r.call("POST", &format!("/containers/{}/start", enc(&key)))?;
                    println!("{key}");
                }
            }
            Ok(code)
        }
        Cmd::Ps { all, quiet, format } => {
            let pods: Vec<PodView> = r.json(
                "GET",
                &format!("/gvpod/v1/pods?all={}", u8::from(all)),
                None,
            )?;
            format::ps(&pods, quiet, &format)?;
            Ok(0)
        }
        Cmd::Inspect { pods } => {
            let views = pods
                .iter()
                .map(|k| view(&r, k))
                .collect::<Result<Vec<_>, _>>()?;
            format::inspect(&views)?;
            Ok(0)
        }
        Cmd::Port { pod } => {
            view(&r, &pod)?.ports.iter().for_each(|p| println!("{p}"));
            Ok(0)
        }
        Cmd::Logs {
            follow,
            tail,
            since,
            timestamps,
            pod,
        } => {
            let v = view(&r, &pod)?;
            let mut path = format!(
                "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}",
                v.id,
                u8::from(follow),
                u8::from(timestamps)
            );
            if let Some(t) = tail {
                path.push_str(&format!("&tail={t}"));
            }
            if let Some(s) = since {
                path.push_str(&format!("&since={}", enc(&s)));
            }
            let resp = r.request("GET", &path, None)?;
            let mux = resp.multiplexed();
            let mut body = resp.body;
            // A reader gone (a closed pipe) ends a follow, as on the host.
            let _ = http::demux(
                &mut body,
                !mux,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
            Ok(0)
        }
        Cmd::Exec {
            interactive,
            tty,
            env,
            user,
            workdir,
            pod,
            cmd,
        } => exec(&r, interactive, tty, env, user, workdir, &pod, cmd),
        Cmd::Stop { time, pods } => {
            for key in pods {
                r.call("POST", &format!("/containers/{}/stop?t={time}", enc(&key)))?;
                println!("{key}");
            }
            Ok(0)
        }
        Cmd::Kill { signal, pods } => {
            for key in pods {
                let path = format!("/containers/{}/kill?signal={}", enc(&key), enc(&signal));
                r.call("POST", &path)?;
                println!("{key}");
            }
            Ok(0)
        }
        Cmd::Rm { force, pods } => Ok(format::each_name(&pods, RemoteError::exit_code, |key| {
            let path = format!("/containers/{}?force={}", enc(key), u8::from(force));
            r.call("DELETE", &path)
        })),
        Cmd::Wait { pods } => {
            for key in pods {
                let code = wait_answer(r.request(
                    "POST",
                    &format!("/containers/{}/wait", enc(&key)),
                    None,
                )?)?;
                println!("{code}");
            }
            Ok(0)
        }
        Cmd::Images { quiet, format } | Cmd::Image(ImageCmd::Ls { quiet, format }) => {
            let list: Vec<crate::image::ImageSummary> = r.json("GET", "/gvpod/v1/images", None)?;
            format::images(&list, quiet, &format)?;
            Ok(0)
        }
        Cmd::System(SystemCmd::Info { format }) => {
            let info: crate::pod::SystemInfo = r.json("GET", "/gvpod/v1/info", None)?;
            format::info(&info, &format)?;
            Ok(0)
        }
        other => Err(RemoteError::Unsupported(verb(&other)).into()),
    }
}

/// The verb's name, for the one line that says it cannot go remote.
fn verb(c: &Cmd) -> &'static str {
    match c {
        Cmd::Import { .. } => "import",
        Cmd::Pull { .. } => "pull",
        Cmd::Push { .. } => "push",
        Cmd::Login { .. } => "login",
        Cmd::Logout { .. } => "logout",
        Cmd::Load { .. } => "load",
        Cmd::Save { .. } => "save",
        Cmd::Tag { .. } => "tag",
        Cmd::Rmi { .. } | Cmd::Image(ImageCmd::Rm { .. }) => "rmi",
        Cmd::Image(_) => "image",
        Cmd::Network(_) => "network",
        Cmd::System(_) => "system",
        Cmd::Checkpoint(_) => "checkpoint",
        Cmd::Restore(_) => "restore",
        Cmd::Snapshot(_) => "snapshot",
        Cmd::Commit(_) => "commit",
        _ => "this verb",
    }
}

/// A pod's view, as `gvpod inspect` prints it.
fn view(r: &Remote, key: &str) -> Result<PodView, RemoteError> {
    r.json("GET", &format!("/gvpod/v1/pods/{}", enc(key)), None)
}

/// Creates the pod `run`/`create` describe; its id.
fn create(r: &Remote, a: &RunArgs, debug: bool, starting: bool) -> anyhow::Result<String> {
    let mut req = super::create_request(a, debug, starting)?;
    // A bare `-e KEY` takes the value of the client's environment, not the
    // service's (docker's CLI does the same).
    req.opts.env = client_env(&req.opts.env);
    let made: Created = r.json("POST", "/gvpod/v1/pods", Some(&json!(req)))?;
    Ok(made.id)
}

fn client_env(env: &[String]) -> Vec<String> {
    env.iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect()
}

fn run(r: &Remote, a: &RunArgs, debug: bool) -> anyhow::Result<i32> {
    if a.pod.tty && !is_terminal() {
        return Err(PodError::Usage(
            "the input device is not a TTY: drop -t, or run gvpod in a terminal".into(),
        )
        .into());
    }
    let id = create(r, a, debug, true)?;
    if a.detach {
        if let Err(e) = r.call("POST", &format!("/containers/{id}/start")) {
            if a.rm {
                let _ = r.call("DELETE", &format!("/containers/{id}?force=1"));
            }
            return Err(e.into());
        }
        println!("{id}");
        return Ok(0);
    }
    Ok(foreground(r, &id, a.pod.interactive, a.pod.tty, a.rm)?)
}

fn is_terminal() -> bool {
    nix::unistd::isatty(std::io::stdin().as_raw_fd()).unwrap_or(false)
}

/// Starts pod `id` attached, as `run` without `-d` and `start -a` do: the
/// output streams until the pod exits, whose code is returned.
fn foreground(
    r: &Remote,
    id: &str,
    stdin: bool,
    tty: bool,
    auto_remove: bool,
) -> Result<i32, RemoteError> {
    let signals = block_signals();
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
fn wait_answer(resp: http::Response) -> Result<i32, RemoteError> {
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

/// The signals a foreground client forwards (docker's sig-proxy) instead of
/// dying of them; blocked here, before any thread starts, so every thread
/// inherits the mask and one thread takes them with `sigwait`.
fn block_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    let _ = mask.thread_block();
    mask
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
fn exec(
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
    let signals = block_signals();
    let body = json!({
        "AttachStdin": interactive,
        "AttachStdout": true,
        "AttachStderr": true,
        "Tty": tty,
        "Cmd": cmd,
        "Env": client_env(&env),
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
