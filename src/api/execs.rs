//! The exec instances of the service (`POST /containers/{id}/exec` makes
//! one, `/exec/{id}/start` runs it, `/exec/{id}/json` shows it). They live
//! in the service's memory only, as podman's compat layer keeps them: an
//! exec is a client's short-lived request, not a pod's state.
//!
//! Invariants: an instance goes Created → Running → Exited, once (a second
//! start is a conflict); its exit code is recorded (by [`Execs::finished`])
//! before its stream is closed, so a client that inspects it right after
//! the stream ends reads the code (podman #6893 is the race avoided); an
//! exited instance is forgotten [`KEEP`] after it ended, a never-started
//! one [`KEEP`] after it was made; the idle timer of the service counts
//! running instances as activity ([`Execs::busy`]).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long an instance is kept after it ended (or was made and never started).
pub const KEEP: Duration = Duration::from_secs(300);

/// What `POST /containers/{id}/exec` asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecConfig {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// `ConsoleSize` `[rows, cols]` (API 1.42+): the pty's size at once, so
    /// the process never sees the size the resize that follows would fix.
    pub console: Option<(u16, u16)>,
}

impl ExecConfig {
    /// Reads docker's exec create body; unknown fields are ignored.
    pub fn from_body(container_id: &str, body: &Value) -> Result<ExecConfig, String> {
        let strings = |k: &str| -> Result<Vec<String>, String> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("{k} must be a list of strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("{k} must be a list of strings")),
            }
        };
        let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let cmd = strings("Cmd")?;
        if cmd.is_empty() {
            return Err("exec config has no Cmd: name the command to run".into());
        }
        let console = body
            .get("ConsoleSize")
            .and_then(Value::as_array)
            .and_then(|a| match a.as_slice() {
                [h, w] => Some((h.as_u64()?, w.as_u64()?)),
                _ => None,
            })
            .filter(|(h, w)| *h > 0 && *w > 0)
            .map(|(h, w)| (h.min(u16::MAX as u64) as u16, w.min(u16::MAX as u64) as u16));
        Ok(ExecConfig {
            container_id: container_id.to_string(),
            cmd,
            env: strings("Env")?,
            user: text("User"),
            workdir: text("WorkingDir"),
            tty: flag("Tty"),
            stdin: flag("AttachStdin"),
            stdout: flag("AttachStdout"),
            stderr: flag("AttachStderr"),
            console,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Exited,
}

/// One exec instance.
pub struct Exec {
    pub config: ExecConfig,
    pub state: State,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    /// The pty master while the process runs with a terminal (for resizes).
    pub pty: Option<Arc<OwnedFd>>,
    /// When it was made, then when it ended.
    since: Instant,
}

/// Why an instance cannot start.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    NotFound,
    /// Already started (running or exited).
    Started,
}

/// The service's exec instances.
#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Exec>>,
    last_end: Mutex<Option<Instant>>,
}

/// The instances of this process.
pub fn all() -> &'static Execs {
    static EXECS: OnceLock<Execs> = OnceLock::new();
    EXECS.get_or_init(Execs::default)
}

impl Execs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Exec>> {
        // A panicked holder leaves a map that is still consistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new instance; its id.
    pub fn create(&self, config: ExecConfig, now: Instant) -> String {
        let id = crate::util::random_hex(32);
        let mut m = self.lock();
        m.retain(|_, e| e.state == State::Running || now.duration_since(e.since) < KEEP);
        m.insert(
            id.clone(),
            Exec {
                config,
                state: State::Created,
                pid: None,
                exit_code: None,
                pty: None,
                since: now,
            },
        );
        id
    }

    /// Claims instance `id` for a start (Created → Running); its config.
    pub fn begin(&self, id: &str) -> Result<ExecConfig, StartError> {
        let mut m = self.lock();
        let e = m.get_mut(id).ok_or(StartError::NotFound)?;
        if e.state != State::Created {
            return Err(StartError::Started);
        }
        e.state = State::Running;
        Ok(e.config.clone())
    }

    /// The process of `id` runs as `pid` (with that pty master, if any).
    pub fn started(&self, id: &str, pid: u32, pty: Option<Arc<OwnedFd>>) {
        if let Some(e) = self.lock().get_mut(id) {
            e.pid = Some(pid);
            e.pty = pty;
        }
    }

    /// The process of `id` ended with `code`.
    pub fn finished(&self, id: &str, code: i32, now: Instant) {
        if let Some(e) = self.lock().get_mut(id) {
            e.state = State::Exited;
            e.exit_code = Some(code);
            e.pty = None;
            e.since = now;
        }
        *self.last_end.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    /// The pty master of running instance `id`: `Err(NotFound)` for no
    /// such instance, `Ok(None)` when it has no terminal or is not running.
    pub fn pty(&self, id: &str) -> Result<Option<Arc<OwnedFd>>, StartError> {
        let m = self.lock();
        let e = m.get(id).ok_or(StartError::NotFound)?;
        Ok(e.pty.clone())
    }

    /// Whether any instance is running, and when the last one ended: the
    /// service is not idle while one runs, nor for its idle time after.
    pub fn busy(&self) -> (bool, Option<Instant>) {
        let running = self.lock().values().any(|e| e.state == State::Running);
        let last = *self.last_end.lock().unwrap_or_else(|e| e.into_inner());
        (running, last)
    }

    /// `GET /exec/{id}/json`.
    pub fn view(&self, id: &str) -> Option<Value> {
        let m = self.lock();
        let e = m.get(id)?;
        let c = &e.config;
        Some(json!({
            "ID": id,
            "ContainerID": c.container_id,
            "Running": e.state == State::Running,
            "ExitCode": e.exit_code,
            "Pid": e.pid.unwrap_or(0),
            "OpenStdin": c.stdin,
            "OpenStdout": c.stdout,
            "OpenStderr": c.stderr,
            "CanRemove": false,
            "DetachKeys": "",
            "ProcessConfig": {
                "tty": c.tty,
                "entrypoint": c.cmd.first(),
                "arguments": c.cmd.get(1..).unwrap_or_default(),
                "privileged": false,
                "user": c.user.clone().unwrap_or_default(),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ExecConfig {
        ExecConfig::from_body(
            "c1",
            &json!({"Cmd": ["sh", "-c", "exit 3"], "AttachStdout": true, "Tty": false,
                    "ConsoleSize": [30, 100], "Privileged": false, "Unknown": {"x": 1}}),
        )
        .unwrap()
    }

    #[test]
    fn the_create_body_is_read_and_unknown_fields_ignored() {
        let c = config();
        assert_eq!(c.cmd, ["sh", "-c", "exit 3"]);
        assert_eq!((c.stdout, c.stdin, c.tty), (true, false, false));
        assert_eq!(c.console, Some((30, 100)));
        assert!(ExecConfig::from_body("c1", &json!({"Cmd": []})).is_err());
        assert!(ExecConfig::from_body("c1", &json!({})).is_err());
        assert!(ExecConfig::from_body("c1", &json!({"Cmd": [1]})).is_err());
        let zero = ExecConfig::from_body("c1", &json!({"Cmd": "ls", "ConsoleSize": [0, 0]}));
        assert_eq!(zero.unwrap().console, None);
    }

    #[test]
    fn an_instance_runs_once_and_shows_its_code_when_ended() {
        let x = Execs::default();
        let t0 = Instant::now();
        let id = x.create(config(), t0);
        assert_eq!(id.len(), 64);
        let v = x.view(&id).unwrap();
        assert_eq!(
            (v["Running"].clone(), v["ExitCode"].clone()),
            (json!(false), Value::Null)
        );
        assert_eq!(v["ProcessConfig"]["entrypoint"], "sh");
        assert_eq!(v["ProcessConfig"]["arguments"], json!(["-c", "exit 3"]));
        assert_eq!(x.begin(&id).unwrap().cmd[0], "sh");
        assert_eq!(x.begin(&id), Err(StartError::Started));
        assert_eq!(x.begin("nosuch"), Err(StartError::NotFound));
        x.started(&id, 42, None);
        assert!(x.busy().0);
        let v = x.view(&id).unwrap();
        assert_eq!(
            (v["Running"].clone(), v["Pid"].clone()),
            (json!(true), json!(42))
        );
        x.finished(&id, 3, t0);
        let v = x.view(&id).unwrap();
        assert_eq!(
            (v["Running"].clone(), v["ExitCode"].clone()),
            (json!(false), json!(3))
        );
        assert_eq!(x.busy(), (false, Some(t0)));
        assert_eq!(x.begin(&id), Err(StartError::Started));
    }

    #[test]
    fn ended_instances_are_forgotten_later_running_ones_never() {
        let x = Execs::default();
        let t0 = Instant::now();
        let done = x.create(config(), t0);
        let running = x.create(config(), t0);
        x.begin(&running).unwrap();
        x.begin(&done).unwrap();
        x.finished(&done, 0, t0);
        let _ = x.create(config(), t0 + KEEP / 2);
        assert!(x.view(&done).is_some(), "kept a while after it ended");
        let _ = x.create(config(), t0 + KEEP);
        assert!(x.view(&done).is_none());
        assert!(x.view(&running).is_some());
    }
}
