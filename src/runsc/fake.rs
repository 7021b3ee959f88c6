//! An in-memory runsc for unit tests (behind [`super::Exec`]): a table of
//! containers that answers `state`, `kill`, `delete`, `list`, `pause`,
//! `resume`, `checkpoint` and `exec` the way the real binary does (exit
//! status, JSON on stdout, one error line on stderr), records every call,
//! and fails a chosen subcommand on request. It writes nothing but the
//! memory image a `checkpoint` asks for.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::sync::{Arc, Mutex};

use super::{Exec, Features, Runsc, Version};

/// Which release the fake behaves as (the two CI runs on real runsc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Debian 12's 20221219: ptrace, restore creates, `--leave-running`
    /// destroys and re-creates the container.
    R20221219,
    /// trixie's 20240729: systrap, `--leave-running` keeps the sandbox in place.
    R20240729,
}

/// One call as runsc saw it: the subcommand and what followed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub sub: String,
    pub args: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    containers: BTreeMap<String, (String, i32)>,
    calls: Vec<Call>,
    failures: BTreeMap<String, String>,
    tcp: String,
    /// A save that fails with `--leave-running` leaves the sandbox running
    /// (20240415+); any other failed save ends it.
    survives_failed_save: bool,
}

#[derive(Debug, Default)]
pub struct FakeRunsc(Mutex<Inner>);

impl FakeRunsc {
    pub fn new() -> Arc<FakeRunsc> {
        Arc::new(FakeRunsc::default())
    }

    /// Puts container `id` in `status` ("created", "running", "paused", "stopped").
    pub fn set(&self, id: &str, status: &str, pid: i32) {
        let mut g = self.0.lock().unwrap();
        g.containers.insert(id.into(), (status.into(), pid));
    }

    /// The status runsc would report for `id`, `None` when it has no such container.
    pub fn status(&self, id: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .containers
            .get(id)
            .map(|c| c.0.clone())
    }

    /// The next `sub` call fails with `msg` (exit 128, as runsc does).
    pub fn fail_next(&self, sub: &str, msg: &str) {
        self.0
            .lock()
            .unwrap()
            .failures
            .insert(sub.into(), msg.into());
    }

    /// What `exec ID cat /proc/net/tcp /proc/net/tcp6` prints.
    pub fn set_tcp(&self, text: &str) {
        self.0.lock().unwrap().tcp = text.into();
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().calls.clone()
    }

    /// The subcommands called so far, oldest first.
    pub fn subs(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.sub).collect()
    }
}

fn done(code: i32, stdout: String, stderr: &str) -> Output {
    Output {
        status: ExitStatus::from_raw(code << 8),
        stdout: stdout.into_bytes(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

impl Exec for FakeRunsc {
    fn output(&self, cmd: &mut Command) -> std::io::Result<Output> {
        let argv: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let Some(at) = argv.iter().position(|a| !a.starts_with("--")) else {
            return Ok(done(1, String::new(), "no subcommand"));
        };
        let sub = argv[at].clone();
        let args = argv[at + 1..].to_vec();
        let mut g = self.0.lock().unwrap();
        g.calls.push(Call {
            sub: sub.clone(),
            args: args.clone(),
        });
        if let Some(msg) = g.failures.remove(&sub) {
            let kept = g.survives_failed_save && args.iter().any(|a| a == "--leave-running");
            if sub == "checkpoint" && !kept {
                if let Some(id) = args.last() {
                    if let Some(c) = g.containers.get_mut(id) {
                        c.0 = "stopped".into();
                    }
                }
            }
            return Ok(done(128, String::new(), &msg));
        }
        let id = args.iter().rfind(|a| !a.starts_with("--")).cloned();
        let missing = |id: &str| {
            done(
                1,
                String::new(),
                &format!("container {id:?} does not exist"),
            )
        };
        let out = match sub.as_str() {
            "list" => {
                let list: Vec<_> = g
                    .containers
                    .iter()
                    .map(|(id, (s, _))| serde_json::json!({"id": id, "status": s}))
                    .collect();
                done(0, serde_json::to_string(&list).unwrap(), "")
            }
            "exec" => done(0, g.tcp.clone(), ""),
            _ => {
                // kill takes the signal after the id.
                let id = if sub == "kill" {
                    args.iter().filter(|a| !a.starts_with("--")).nth(0).cloned()
                } else {
                    id
                };
                let Some(id) = id else {
                    return Ok(done(1, String::new(), "missing container id"));
                };
                let Some((status, pid)) = g.containers.get(&id).cloned() else {
                    return Ok(missing(&id));
                };
                let set = |g: &mut Inner, s: &str| {
                    g.containers.insert(id.clone(), (s.into(), pid));
                };
                match sub.as_str() {
                    "state" => done(
                        0,
                        serde_json::json!({"id": id, "status": status, "pid": pid}).to_string(),
                        "",
                    ),
                    "kill" if status == "stopped" => {
                        done(128, String::new(), "cannot signal a stopped container")
                    }
                    "kill" => {
                        set(&mut g, "stopped");
                        done(0, String::new(), "")
                    }
                    "delete" => {
                        g.containers.remove(&id);
                        done(0, String::new(), "")
                    }
                    "pause" if status == "running" => {
                        set(&mut g, "paused");
                        done(0, String::new(), "")
                    }
                    "resume" if status == "paused" => {
                        set(&mut g, "running");
                        done(0, String::new(), "")
                    }
                    "pause" | "resume" => {
                        done(128, String::new(), &format!("container {id} is {status}"))
                    }
                    "checkpoint" => {
                        let dir = args
                            .iter()
                            .find_map(|a| a.strip_prefix("--image-path="))
                            .map(PathBuf::from);
                        if let Some(d) = dir {
                            std::fs::create_dir_all(&d)?;
                            std::fs::write(d.join("checkpoint.img"), b"fake memory image")?;
                        }
                        if !args.iter().any(|a| a == "--leave-running") {
                            set(&mut g, "stopped");
                        }
                        done(0, String::new(), "")
                    }
                    other => done(1, String::new(), &format!("unknown subcommand {other}")),
                }
            }
        };
        Ok(out)
    }
}

impl Runsc {
    /// A runsc that behaves as `release` and answers from `fake`.
    pub fn fake(release: Release, fake: Arc<FakeRunsc>) -> Runsc {
        let (raw, date, platforms, default, extra): (_, _, &[&str], _, &[&str]) = match release {
            Release::R20221219 => (
                "runsc version release-20221219.0",
                20221219,
                &["kvm", "ptrace"],
                "ptrace",
                &[],
            ),
            Release::R20240729 => (
                "runsc version 0.0~20240729.0",
                20240729,
                &["kvm", "ptrace", "systrap"],
                "systrap",
                &["net-disconnect-ok"],
            ),
        };
        let common = [
            "root",
            "platform",
            "network",
            "log",
            "log-format",
            "overlay2",
            "debug",
        ];
        let new = release == Release::R20240729;
        fake.0.lock().unwrap().survives_failed_save = new;
        Runsc {
            bin: Path::new("/fake/runsc").to_owned(),
            version: Version {
                raw: raw.into(),
                release: date,
            },
            features: Features {
                platforms: platforms.iter().map(|s| s.to_string()).collect(),
                default_platform: default.into(),
                flags: common.iter().chain(extra).map(|s| s.to_string()).collect(),
                flags_on_by_default: Default::default(),
                restore_creates: !new,
                restore_may_create: new,
                root_netns_false_positive: true,
                leave_running_in_place: new,
                port_forward_stream: new,
            },
            exec: fake,
        }
    }
}
