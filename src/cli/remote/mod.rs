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

mod project;
mod store;
mod stream;

use serde::Deserialize;
use serde_json::json;

use super::args::{Cli, Cmd, ImageCmd, RunArgs, SystemCmd};
use super::format;
use crate::machine::remote::{enc, http, Remote, RemoteError};
use crate::pod::{PodError, PodView};
use stream::{foreground, is_terminal, wait_answer};

#[derive(Deserialize)]
pub(super) struct Created {
    #[serde(rename = "Id")]
    pub id: String,
}

pub(super) fn dispatch(cli: Cli, url: &str) -> anyhow::Result<i32> {
    let r = Remote::new(url)?;
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
        Cmd::Ps {
            all,
            quiet,
            project,
            format,
        } => {
            let mut pods: Vec<PodView> = r.json(
                "GET",
                &format!("/gvpod/v1/pods?all={}", u8::from(all)),
                None,
            )?;
            if let Some(p) = &project {
                pods.retain(|v| v.config.labels.get(crate::pod::service::PROJECT_LABEL) == Some(p));
            }
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
        Cmd::Port {
            pod,
            listening: true,
            format,
        } => {
            let json = format::check_format(&format)?;
            let ports: Vec<crate::pod::route::ListeningPort> = r.json(
                "GET",
                &format!("/gvpod/v1/pods/{}/listening", enc(&pod)),
                None,
            )?;
            format::listening(&ports, json)?;
            Ok(0)
        }
        Cmd::Port { pod, .. } => {
            format::ports(&view(&r, &pod)?);
            Ok(0)
        }
        Cmd::Logs {
            follow,
            tail,
            since,
            timestamps,
            service,
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
            if let Some(s) = service {
                path.push_str(&format!("&service={}", enc(&s)));
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
        } => stream::exec(&r, interactive, tty, env, user, workdir, &pod, cmd),
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
        Cmd::System(SystemCmd::Gc {
            format,
            orphans: true,
            dry_run,
        }) => store::gc_orphans(&r, dry_run, &format),
        Cmd::System(SystemCmd::Gc { format, .. }) => store::gc(&r, &format),
        Cmd::Stats {
            pods,
            all,
            no_stream,
            format,
        } => {
            let path = format!(
                "/gvpod/v1/stats?pods={}&all={}",
                enc(&pods.join(",")),
                u8::from(all)
            );
            super::stats::show(&mut || Ok(r.json("GET", &path, None)?), no_stream, &format)
        }
        Cmd::Top { pod, format } => {
            let t: crate::pod::Top =
                r.json("GET", &format!("/gvpod/v1/pods/{}/top", enc(&pod)), None)?;
            super::stats::top(&t, &format)?;
            Ok(0)
        }
        Cmd::Generate(super::kube::GenerateCmd::Kube(a)) => {
            let path = format!("/gvpod/v1/kube?pods={}", enc(&a.pods.join(",")));
            let v: serde_json::Value = r.json("GET", &path, None)?;
            super::kube::write(&a, v["yaml"].as_str().unwrap_or_default())
        }
        Cmd::Network(c) => store::network(&r, c),
        Cmd::Pull {
            quiet,
            tls_verify,
            platform,
            image,
        } => store::pull(&r, &image, quiet, tls_verify, platform),
        Cmd::Checkpoint(a) => store::checkpoint(&r, a),
        Cmd::Restore(a) => store::restore(&r, a, debug),
        Cmd::Commit(a) => store::commit(&r, a),
        Cmd::Snapshot(c) => store::snapshot(&r, c),
        Cmd::Load { input, quiet } => store::load(&r, &input, quiet),
        Cmd::Save {
            output,
            format,
            images,
        } => store::save(&r, &output, format, images),
        Cmd::Import {
            change,
            file,
            reference,
        } => store::import(&r, &file, &reference, change),
        Cmd::Tag { source, target } => store::tag(&r, &source, &target),
        Cmd::Rmi { force, images } | Cmd::Image(ImageCmd::Rm { force, images }) => {
            Ok(store::rmi(&r, &images, force))
        }
        Cmd::Image(ImageCmd::Inspect { images }) => store::inspect_images(&r, &images),
        Cmd::Image(ImageCmd::Prune { format }) => store::prune(&r, &format),
        Cmd::Ssh(a) => ssh(&r, a),
        Cmd::Up(a) => project::up(&r, a, debug),
        Cmd::Down(a) => project::down(&r, a),
        Cmd::Service(c) => project::service(&r, c),
        other => Err(RemoteError::Unsupported(verb(&other)).into()),
    }
}

/// The verb's name, for the one line that says it cannot go remote.
fn verb(c: &Cmd) -> &'static str {
    match c {
        Cmd::Push { .. } => "push",
        Cmd::Login { .. } => "login",
        Cmd::Logout { .. } => "logout",
        Cmd::System(_) => "system",
        Cmd::Router { .. } => "router",
        Cmd::Bench(_) => "bench",
        _ => "this verb",
    }
}

/// `gvpod ssh` through the service: the API's exec (as the remote `exec`)
/// of [`crate::pod::ssh::REMOTE_SHELL`] as the pod's dev user.
fn ssh(r: &Remote, a: super::ssh::SshArgs) -> anyhow::Result<i32> {
    let v = view(r, &a.pod)?;
    let Some(user) = v.config.dev.user.clone() else {
        return Err(crate::pod::ssh::no_dev_user(&v.name).into());
    };
    let mut cmd: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        crate::pod::ssh::REMOTE_SHELL.into(),
        "gvpod-ssh".into(),
        user.clone(),
    ];
    if !a.cmd.is_empty() {
        cmd.push(crate::pod::ssh::command_line(&a.cmd));
    }
    let tty = stream::is_terminal();
    stream::exec(r, true, tty, vec![], Some(user), None, &v.id, cmd)
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

pub(super) fn client_env(env: &[String]) -> Vec<String> {
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
