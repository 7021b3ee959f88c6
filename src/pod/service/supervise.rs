//! The supervisor a pod's monitor runs for each launch of a pod with
//! services (see the parent module for the rules it keeps). One thread per
//! service (dependencies, install, start, restart), one per health check,
//! one for the control socket; each opens its own [`Ctx`] (a database
//! connection is not shared between threads). They all end when the
//! launch ends ([`Supervisor::end`]): the sandbox is gone, so every
//! `runsc exec` they wait on has returned or is about to.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::health::{self, Outcome, Tally};
use super::{Action, Reply, Request};
use crate::bundle::{PodOptions, RestartPolicy};
use crate::pod::exec::ExecKiller;
use crate::pod::restart::{self, Ended};
use crate::pod::{exec_spawn, Ctx, ExecRequest, ExecStdio, LogLine};
use crate::spec::{Probe, Service};
use crate::state::ServiceUpdate;

/// How long a service has to end after SIGTERM before its relay kills its
/// group (docker stop's default; the relay's own `alarm(10)`).
const STOP_GRACE: Duration = Duration::from_secs(10);

pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    sock: PathBuf,
}

struct Shared {
    root: PathBuf,
    id: String,
    pod_name: String,
    project: Option<String>,
    services: BTreeMap<String, Service>,
    /// The user services run as: the dev user when the pod has one.
    user: Option<String>,
    setup: Vec<String>,
    /// The pod's log bounds (`--log-max-size`/`--log-max-file`), which its
    /// services' logs keep too.
    log_limits: Option<(u64, u32)>,
    ctl: Mutex<BTreeMap<String, Ctl>>,
    cv: Condvar,
    ending: AtomicBool,
    /// Setup ran (or had nothing to do) and did not fail.
    setup_ok: AtomicBool,
    setup_over: AtomicBool,
}

/// What the threads share about one service.
#[derive(Debug, Default)]
struct Ctl {
    /// Its process, while it runs: a number per start, and what signals it.
    pid: Option<u64>,
    killer: Option<ExecKiller>,
    /// When its current process started.
    started: Option<Instant>,
    /// The user has not stopped it.
    wanted: bool,
    /// `service restart`: start it again as soon as it ends.
    restart_now: bool,
    /// Its last recorded health (`none` without a check).
    health: &'static str,
}

impl Shared {
    fn ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`, or until something changes.
    fn wait(&self, d: Duration) {
        let g = self.ctl.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.cv.wait_timeout(g, d);
    }

    /// Sleeps `d` unless the launch ends first; false when it did.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while !self.ending() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            self.wait(left);
        }
        false
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Ctl) -> T) -> T {
        let mut g = self.ctl.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(g.entry(name.to_string()).or_default());
        self.cv.notify_all();
        r
    }

    /// A line in the pod's own log (`gvpod logs POD`), as gvpod's stderr.
    fn note(&self, text: &str) {
        let path = self.root.join("logs").join(format!("{}.json", self.id));
        append_line(&path, "stderr", text.as_bytes());
    }

    fn record(&self, ctx: &mut Ctx, name: &str, u: ServiceUpdate) {
        if let Err(e) = ctx.db.update_service(&self.id, name, u) {
            tracing::warn!("recording service {name} of {}: {e}", self.id);
        }
    }
}

fn append_line(path: &Path, stream: &str, line: &[u8]) {
    let rec = LogLine::encode(stream, line);
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(rec.as_bytes()));
    if let Err(e) = res {
        tracing::warn!("writing {}: {e}", path.display());
    }
}

/// Starts supervising the services of pod `id` for one launch; `None`
/// when it has neither services nor setup.
pub(crate) fn supervise(ctx: &mut Ctx, id: &str, opts: &PodOptions) -> Option<Supervisor> {
    if opts.services.is_empty() && opts.setup.is_empty() {
        return None;
    }
    let pod = ctx.db.pod(id).ok().flatten()?;
    let rows: Vec<(String, bool)> = opts
        .services
        .iter()
        .map(|(n, s)| (n.clone(), s.health.is_some()))
        .collect();
    if let Err(e) = ctx.db.reset_services(id, &rows) {
        tracing::warn!("recording the services of {id}: {e}");
    }
    let dir = super::log_dir(&ctx.root, id);
    let _ = std::fs::create_dir_all(&dir);
    let ctl = opts
        .services
        .iter()
        .map(|(n, s)| {
            let c = Ctl {
                wanted: true,
                health: if s.health.is_some() {
                    "starting"
                } else {
                    "none"
                },
                ..Ctl::default()
            };
            (n.clone(), c)
        })
        .collect();
    let shared = Arc::new(Shared {
        root: ctx.root.clone(),
        id: id.to_string(),
        pod_name: pod.name.clone(),
        project: opts.labels.get(super::PROJECT_LABEL).cloned(),
        services: opts.services.clone(),
        user: opts.dev.user.clone().or_else(|| opts.user.clone()),
        setup: opts.setup.clone(),
        log_limits: opts.log.effective(),
        ctl: Mutex::new(ctl),
        cv: Condvar::new(),
        ending: AtomicBool::new(false),
        setup_ok: AtomicBool::new(false),
        setup_over: AtomicBool::new(false),
    });
    let mut threads = vec![];
    let sh = shared.clone();
    threads.push(std::thread::spawn(move || run_setup(&sh)));
    for (name, svc) in &opts.services {
        let (sh, n) = (shared.clone(), name.clone());
        threads.push(std::thread::spawn(move || run_service(&sh, &n)));
        if svc.health.is_some() {
            let (sh, n) = (shared.clone(), name.clone());
            threads.push(std::thread::spawn(move || run_health(&sh, &n)));
        }
    }
    let sock = super::socket_path(ctx, id);
    if let Some(l) = crate::pod::attach::listen(&sock) {
        let sh = shared.clone();
        threads.push(std::thread::spawn(move || serve_control(&sh, l)));
    }
    Some(Supervisor {
        shared,
        threads,
        sock,
    })
}

impl Supervisor {
    /// The launch ended: every thread stops, and the services are recorded
    /// as exited with the pod. Waits a little for the threads (their
    /// processes died with the sandbox), then leaves the stragglers.
    pub(crate) fn end(self, ctx: &mut Ctx) {
        self.shared.ending.store(true, Ordering::SeqCst);
        self.shared.cv.notify_all();
        let _ = std::fs::remove_file(&self.sock);
        let until = Instant::now() + Duration::from_secs(3);
        for t in self.threads {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        for name in self.shared.services.keys() {
            let state = match ctx.db.services(&self.shared.id) {
                Ok(rows) => rows.into_iter().find(|r| r.name == *name).map(|r| r.state),
                Err(_) => None,
            };
            if matches!(state.as_deref(), Some("failed") | Some("stopped")) {
                continue;
            }
            self.shared.record(
                ctx,
                name,
                ServiceUpdate::State {
                    state: "exited",
                    exit_code: None,
                    started_at: None,
                },
            );
        }
    }
}

/// Runs `sh -c script` in the pod (wrapped so that the whole process group
/// is one process to runsc: see src/router/relay.c), its output into the
/// log at `log` (bounded as the pod's own with `limits`, rotated the same
/// way, so `gvpod logs --service` reads across rotations); returns the
/// started process.
fn spawn_in_pod(
    ctx: &mut Ctx,
    sh: &Shared,
    script: &str,
    user: Option<String>,
    log: PathBuf,
    limits: bool,
) -> Result<(crate::pod::exec::ExecProcess, JoinHandle<()>), String> {
    let pod = ctx
        .db
        .pod(&sh.id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("pod {} is gone", sh.pod_name))?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let w2: OwnedFd = w.try_clone().map_err(|e| e.to_string())?;
    let req = ExecRequest {
        cmd: vec![
            crate::pod::helpers::relay_of(&ctx.bundle_dir(&sh.id)).to_string(),
            "--group".into(),
            "sh".into(),
            "-c".into(),
            script.to_string(),
        ],
        env: vec![],
        user,
        workdir: None,
        interactive: false,
        tty: false,
    };
    let p = exec_spawn(
        ctx,
        &pod,
        req,
        ExecStdio::Fds {
            stdin: None,
            stdout: w,
            stderr: w2,
        },
    )
    .map_err(|e| e.to_string())?;
    let limits = limits.then_some(sh.log_limits).flatten();
    let copier = std::thread::spawn(move || {
        let mut r = BufReader::new(std::fs::File::from(r));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log);
        let mut out = match file {
            Ok(f) => crate::pod::monitor::log::Output::new(f, false, log.clone(), limits),
            Err(e) => {
                tracing::warn!("cannot open {}: {e}", log.display());
                return;
            }
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    out.line("stdout", text);
                }
            }
        }
        out.flush();
    });
    Ok((p, copier))
}

/// Runs a once-per-pod step to its end; its exit code.
fn run_once(ctx: &mut Ctx, sh: &Shared, script: &str, log: PathBuf) -> Result<i32, String> {
    let (p, copier) = spawn_in_pod(ctx, sh, script, Some("0:0".into()), log, true)?;
    let code = p.wait().map_err(|e| e.to_string());
    let _ = copier.join();
    code
}

fn run_setup(sh: &Shared) {
    let ok = (|| {
        if sh.setup.is_empty() {
            return true;
        }
        let Ok(mut ctx) = Ctx::open(&sh.root) else {
            return false;
        };
        if ctx.db.setup_done(&sh.id).unwrap_or(false) {
            return true;
        }
        let log = sh.root.join("logs").join(format!("{}.json", sh.id));
        for (i, cmd) in sh.setup.iter().enumerate() {
            if sh.ending() {
                return false;
            }
            sh.note(&format!(
                "gvpod: setup [{}/{}]: {cmd}",
                i + 1,
                sh.setup.len()
            ));
            match run_once(&mut ctx, sh, cmd, log.clone()) {
                Ok(0) => {}
                Ok(code) => {
                    sh.note(&format!(
                        "gvpod: setup command {cmd:?} exited with {code}; the pod's services are not started (fix the spec's setup, then `gvpod up` again)"
                    ));
                    return false;
                }
                Err(e) => {
                    sh.note(&format!("gvpod: setup command {cmd:?} could not run: {e}"));
                    return false;
                }
            }
        }
        if let Err(e) = ctx.db.set_setup_done(&sh.id) {
            tracing::warn!("recording the setup of {}: {e}", sh.id);
        }
        true
    })();
    sh.setup_ok.store(ok, Ordering::SeqCst);
    sh.setup_over.store(true, Ordering::SeqCst);
    sh.cv.notify_all();
}

/// Whether what `svc` depends on is up: a service of this pod runs (and is
/// healthy when it has a check); another pod of the project runs and all
/// of its services are.
fn deps_ready(sh: &Shared, ctx: &mut Ctx, svc: &Service) -> bool {
    svc.depends_on.iter().all(|dep| {
        if sh.services.contains_key(dep) {
            return sh.with(dep, |c| {
                c.pid.is_some() && (c.health == "none" || c.health == "healthy")
            });
        }
        let Some(project) = &sh.project else {
            return true;
        };
        let name = format!("{project}-{dep}");
        let Ok(pod) = ctx.lookup(&name) else {
            return false;
        };
        if pod.status != crate::state::PodStatus::Running || pod.pid.is_none() {
            return false;
        }
        let Ok(opts) = pod.options() else {
            return false;
        };
        let want = opts.services.len();
        let rows = ctx.db.services(&pod.id).unwrap_or_default();
        rows.len() == want
            && rows
                .iter()
                .all(|r| r.state == "running" && (r.health == "none" || r.health == "healthy"))
    })
}

fn run_service(sh: &Shared, name: &str) {
    let Ok(mut ctx) = Ctx::open(&sh.root) else {
        return;
    };
    let svc = &sh.services[name];
    let log = super::log_path(&sh.root, &sh.id, name);
    // Setup first, then what it depends on.
    while !sh.setup_over.load(Ordering::SeqCst) || !deps_ready(sh, &mut ctx, svc) {
        if sh.ending() {
            return;
        }
        if sh.setup_over.load(Ordering::SeqCst) && !sh.setup_ok.load(Ordering::SeqCst) {
            return;
        }
        sh.wait(Duration::from_millis(250));
    }
    let installed = ctx
        .db
        .services(&sh.id)
        .ok()
        .and_then(|rows| rows.into_iter().find(|r| r.name == name))
        .is_some_and(|r| r.installed);
    if let (Some(install), false) = (&svc.install, installed) {
        sh.record(
            &mut ctx,
            name,
            ServiceUpdate::State {
                state: "installing",
                exit_code: None,
                started_at: None,
            },
        );
        match run_once(&mut ctx, sh, install, log.clone()) {
            Ok(0) => sh.record(&mut ctx, name, ServiceUpdate::Installed),
            res => {
                let why = match &res {
                    Ok(code) => format!("exited with {code}"),
                    Err(e) => format!("could not run: {e}"),
                };
                if !sh.ending() {
                    sh.note(&format!(
                        "gvpod: the install of service {name} {why}; see `gvpod logs {} --service {name}`",
                        sh.pod_name
                    ));
                }
                sh.record(
                    &mut ctx,
                    name,
                    ServiceUpdate::State {
                        state: "failed",
                        exit_code: res.ok(),
                        started_at: None,
                    },
                );
                return;
            }
        }
    }
    let policy = svc
        .restart
        .as_deref()
        .and_then(|r| crate::bundle::parse_restart(r).ok())
        .unwrap_or(RestartPolicy::No);
    let mut restarts = 0u32;
    let mut last_delay = None;
    let mut generation = 0u64;
    loop {
        // Stopped by the user (or ended by its policy): wait for a start.
        while !sh.with(name, |c| c.wanted) {
            if sh.ending() {
                return;
            }
            sh.wait(Duration::from_millis(500));
        }
        if sh.ending() {
            return;
        }
        let now = crate::util::now_rfc3339();
        let (p, copier) =
            match spawn_in_pod(&mut ctx, sh, &svc.start, sh.user.clone(), log.clone(), true) {
                Ok(x) => x,
                Err(e) => {
                    if !sh.ending() {
                        sh.note(&format!("gvpod: service {name} could not start: {e}"));
                        sh.record(
                            &mut ctx,
                            name,
                            ServiceUpdate::State {
                                state: "failed",
                                exit_code: None,
                                started_at: None,
                            },
                        );
                    }
                    return;
                }
            };
        let started = Instant::now();
        generation += 1;
        sh.with(name, |c| {
            c.pid = Some(generation);
            c.killer = Some(p.killer());
            c.started = Some(started);
            if c.health != "none" {
                c.health = "starting";
            }
        });
        sh.record(
            &mut ctx,
            name,
            ServiceUpdate::State {
                state: "running",
                exit_code: None,
                started_at: Some(&now),
            },
        );
        let code = p.wait().ok();
        let _ = copier.join();
        let (wanted, again) = sh.with(name, |c| {
            c.pid = None;
            c.killer = None;
            (c.wanted, std::mem::take(&mut c.restart_now))
        });
        if sh.ending() {
            return;
        }
        let ended = |state| ServiceUpdate::State {
            state,
            exit_code: code,
            started_at: None,
        };
        if again {
            continue;
        }
        if !wanted {
            sh.record(&mut ctx, name, ended("stopped"));
            continue;
        }
        let e = Ended {
            code,
            restarts,
            stopped_by_user: false,
            ran_for: started.elapsed(),
            last_delay,
        };
        let code_text = code.map_or("an unknown code".to_string(), |c| c.to_string());
        match restart::after_exit(policy, &e) {
            None => {
                sh.note(&format!("gvpod: service {name} exited with {code_text}"));
                sh.record(&mut ctx, name, ended("exited"));
                sh.with(name, |c| c.wanted = false);
            }
            Some(delay) => {
                restarts += 1;
                sh.note(&format!(
                    "gvpod: service {name} exited with {code_text}; restart {restarts} in {} ms (policy {})",
                    delay.as_millis(),
                    policy.name()
                ));
                sh.record(&mut ctx, name, ended("restarting"));
                sh.record(&mut ctx, name, ServiceUpdate::Restarts(restarts));
                if !sh.sleep(delay) {
                    return;
                }
                last_delay = Some(delay);
            }
        }
    }
}

fn run_health(sh: &Shared, name: &str) {
    let Ok(mut ctx) = Ctx::open(&sh.root) else {
        return;
    };
    let svc = &sh.services[name];
    let Some(h) = svc.health.clone() else {
        return;
    };
    let target = match ctx.db.pod(&sh.id) {
        Ok(Some(pod)) => crate::pod::route::PodTarget::of(&ctx, &pod).ok(),
        _ => None,
    };
    let mut tally = Tally::new();
    let mut seen_start: Option<Instant> = None;
    let mut first = true;
    loop {
        let pause = if first {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(h.interval_ms)
        };
        if !sh.sleep(pause) {
            return;
        }
        let (pid, started) = sh.with(name, |c| (c.pid, c.started));
        let (Some(_), Some(started)) = (pid, started) else {
            continue;
        };
        first = false;
        if seen_start != Some(started) {
            // A new process: its health starts over (docker's too).
            seen_start = Some(started);
            tally = Tally::new();
        }
        let out = match &h.probe {
            Probe::Cmd(c) => probe_cmd(&mut ctx, sh, c, h.timeout_ms),
            Probe::Tcp(port) => probe_tcp(&mut ctx, sh, *port, h.timeout_ms),
            _ => match &target {
                Some(t) => health::probe_net(t, &h, svc.port),
                None => Outcome {
                    ok: false,
                    output: "the pod's address is unknown".into(),
                },
            },
        };
        if sh.ending() {
            return;
        }
        let before = tally.health;
        tally = tally.record(&h, out.ok, started.elapsed());
        sh.with(name, |c| c.health = tally.health);
        // The line first: whoever waits on the recorded health (another
        // pod's service) starts after the pod's log says it.
        if before != tally.health {
            sh.note(&format!(
                "gvpod: service {name} is {}: {}",
                tally.health, out.output
            ));
        }
        let at = crate::util::now_rfc3339();
        sh.record(
            &mut ctx,
            name,
            ServiceUpdate::Health {
                health: tally.health,
                failing: tally.failing,
                at: &at,
                output: &out.output,
            },
        );
    }
}

/// A `tcp` check: a connection to the pod's address, else (refused, or no
/// address) the relay's probe of its loopback.
fn probe_tcp(ctx: &mut Ctx, sh: &Shared, port: u16, timeout_ms: u64) -> Outcome {
    if let Ok(Some((_, ip))) = ctx.db.lease_of(&sh.id) {
        let addr = std::net::SocketAddr::from((ip, port));
        let t = Duration::from_millis(timeout_ms);
        match std::net::TcpStream::connect_timeout(&addr, t) {
            Ok(_) => {
                return Outcome {
                    ok: true,
                    output: format!("port {port} accepts connections"),
                }
            }
            Err(e) if e.kind() != std::io::ErrorKind::ConnectionRefused => {
                return Outcome {
                    ok: false,
                    output: format!("connecting to {addr}: {e}"),
                }
            }
            Err(_) => {}
        }
    }
    let relay = crate::pod::helpers::relay_of(&ctx.bundle_dir(&sh.id));
    let script = format!("exec {relay} --probe {port}");
    probe_cmd(ctx, sh, &script, timeout_ms)
}

/// A `cmd` check: `sh -c CMD` in the pod as root, killed at the timeout.
fn probe_cmd(ctx: &mut Ctx, sh: &Shared, cmd: &str, timeout_ms: u64) -> Outcome {
    let out_file = sh.root.join("logs").join(format!(
        "{}.check-{}.json",
        sh.id,
        crate::util::random_hex(4)
    ));
    let res = spawn_in_pod(ctx, sh, cmd, Some("0:0".into()), out_file.clone(), false);
    let (p, copier) = match res {
        Ok(x) => x,
        Err(e) => {
            return Outcome {
                ok: false,
                output: e,
            }
        }
    };
    let killer = p.killer();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(p.wait());
    });
    let res = rx.recv_timeout(Duration::from_millis(timeout_ms));
    if res.is_err() {
        killer.signal(ctx, "TERM");
        if rx.recv_timeout(Duration::from_secs(1)).is_err() {
            killer.signal(ctx, "KILL");
        }
    }
    let _ = copier.join();
    let said: String = std::fs::read_to_string(&out_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n");
    let _ = std::fs::remove_file(&out_file);
    let said = said.trim().chars().take(512).collect::<String>();
    match res {
        Ok(Ok(0)) => Outcome {
            ok: true,
            output: said,
        },
        Ok(Ok(code)) => Outcome {
            ok: false,
            output: format!("exit {code}: {said}").trim().to_string(),
        },
        Ok(Err(e)) => Outcome {
            ok: false,
            output: e.to_string(),
        },
        Err(_) => Outcome {
            ok: false,
            output: format!(
                "timed out after {}",
                crate::spec::format_duration(timeout_ms)
            ),
        },
    }
}

/// Serves `service start|stop|restart` from the front ends
/// ([`super::control`]): one JSON request and one JSON reply per connection.
fn serve_control(sh: &Shared, l: UnixListener) {
    let Ok(ctx) = Ctx::open(&sh.root) else {
        return;
    };
    let _ = l.set_nonblocking(true);
    while !sh.ending() {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                handle(sh, &ctx, s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                sh.wait(Duration::from_millis(200));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn handle(sh: &Shared, ctx: &Ctx, s: UnixStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let mut r = BufReader::new(&s);
    let reply = match r.read_line(&mut line) {
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => apply(sh, ctx, &req),
            Err(e) => Reply::Error(format!("bad request: {e}")),
        },
        Err(e) => Reply::Error(format!("reading the request: {e}")),
    };
    let mut w = &s;
    let mut text = serde_json::to_string(&reply).unwrap_or_default();
    text.push('\n');
    let _ = w.write_all(text.as_bytes());
}

fn apply(sh: &Shared, ctx: &Ctx, req: &Request) -> Reply {
    if !sh.services.contains_key(&req.service) {
        return Reply::Error(format!(
            "pod {} has no service {:?} (see `gvpod service ls {}`)",
            sh.pod_name, req.service, sh.pod_name
        ));
    }
    let name = req.service.as_str();
    match req.action {
        Action::Start => {
            sh.with(name, |c| c.wanted = true);
            Reply::Ok
        }
        Action::Restart => {
            let running = sh.with(name, |c| {
                c.wanted = true;
                if c.pid.is_some() {
                    c.restart_now = true;
                }
                c.pid.zip(c.killer.clone())
            });
            if let Some((gen, k)) = running {
                stop_process(sh, ctx, name, gen, &k);
            }
            Reply::Ok
        }
        Action::Stop => {
            let running = sh.with(name, |c| {
                c.wanted = false;
                c.pid.zip(c.killer.clone())
            });
            if let Some((gen, k)) = running {
                stop_process(sh, ctx, name, gen, &k);
            }
            Reply::Ok
        }
    }
}

/// SIGTERM to the service's relay, which passes it to the service's whole
/// process group and kills the group after its grace (src/router/relay.c);
/// waits for the end, a little longer than that grace.
fn stop_process(sh: &Shared, ctx: &Ctx, name: &str, gen: u64, k: &ExecKiller) {
    // The pid file is written as the process starts: retry a moment.
    let until = Instant::now() + Duration::from_secs(2);
    while !k.signal(ctx, "TERM") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let until = Instant::now() + STOP_GRACE + Duration::from_secs(2);
    while Instant::now() < until {
        if sh.with(name, |c| c.pid != Some(gen)) {
            return;
        }
        sh.wait(Duration::from_millis(100));
    }
}
