//! Unit tests of the orchestrator through its two seams, with no root and
//! no runsc: an in-memory runsc (`runsc::fake`) and [`FakeHost`], over a
//! real state database in a temporary data root. They cover the pod
//! status transitions ([`status`]), the rollback order of host resources
//! ([`rollback`]) and every checkpoint outcome ([`checkpoint`]; the pure
//! decisions are tested in `checkpoint::outcome`).

mod checkpoint;
mod rollback;
mod status;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::host::Host;
use super::{Ctx, PodError, Result};
use crate::bundle::PodOptions;
use crate::net::nft::PortRule;
use crate::runsc::fake::{FakeRunsc, Release};
use crate::runsc::{GlobalFlags, Runsc};
use crate::state::{Json, PodRow, PodStatus};

/// A host that changes nothing: it records each call ("unmount /x") in
/// order, fails the calls a test names, and answers process and netns
/// checks from sets the test fills.
#[derive(Debug, Default)]
pub(super) struct FakeHost {
    calls: Mutex<Vec<String>>,
    failing: Mutex<BTreeSet<String>>,
    live: Mutex<BTreeSet<(i32, String)>>,
    netns: Mutex<BTreeSet<String>>,
}

impl FakeHost {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls whose text starts with `prefix` fail.
    pub fn fail(&self, prefix: &str) {
        self.failing.lock().unwrap().insert(prefix.into());
    }

    /// Process `pid` runs with `arg` on its command line (with the id).
    pub fn live(&self, pid: i32, id: &str) {
        self.live.lock().unwrap().insert((pid, id.into()));
    }

    fn record(&self, call: String) -> Result<()> {
        let fails = self
            .failing
            .lock()
            .unwrap()
            .iter()
            .any(|f| call.starts_with(f.as_str()));
        self.calls.lock().unwrap().push(call.clone());
        if fails {
            return Err(PodError::Io {
                what: "fake host refused",
                path: call.into(),
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            });
        }
        Ok(())
    }
}

impl Host for FakeHost {
    fn unmount(&self, path: &Path) -> Result<()> {
        self.record(format!("unmount {}", path.display()))
    }
    fn remove_path(&self, path: &Path) -> Result<()> {
        self.record(format!("remove {}", path.display()))
    }
    fn remove_cgroup(&self, rel: &str) -> Result<()> {
        self.record(format!("cgroup {rel}"))
    }
    fn remove_netns(&self, path: &Path) -> Result<()> {
        self.netns
            .lock()
            .unwrap()
            .remove(&path.display().to_string());
        self.record(format!("netns {}", path.display()))
    }
    fn netns_exists(&self, path: &Path) -> bool {
        self.netns
            .lock()
            .unwrap()
            .contains(&path.display().to_string())
    }
    fn delete_link(&self, name: &str) -> Result<()> {
        self.record(format!("link {name}"))
    }
    fn remove_ports(&self, table: &str, pod_id: &str, rules: &[PortRule]) -> Result<()> {
        self.record(format!("ports {table} {pod_id} {}", rules.len()))
    }
    fn runs(&self, pid: i32, args: &[&str]) -> bool {
        self.live
            .lock()
            .unwrap()
            .iter()
            .any(|(p, id)| *p == pid && args.contains(&id.as_str()))
    }
}

/// A test world: a data root, a context over the fakes, and the fakes.
pub(super) struct World {
    pub _dir: tempfile::TempDir,
    pub ctx: Ctx,
    pub runsc: Arc<FakeRunsc>,
    pub host: Arc<FakeHost>,
}

pub(super) fn world(release: Release) -> World {
    let dir = tempfile::tempdir().unwrap();
    let runsc = FakeRunsc::new();
    let host = Arc::new(FakeHost::default());
    let ctx = Ctx::with_seams(
        dir.path(),
        Runsc::fake(release, runsc.clone()),
        host.clone(),
    )
    .unwrap();
    World {
        _dir: dir,
        ctx,
        runsc,
        host,
    }
}

impl World {
    /// Records pod `name` (id = name padded to 64 hex-ish chars) in `status`,
    /// with runsc flags of this world's runsc and options `opts`.
    pub fn pod(&mut self, name: &str, status: PodStatus, opts: PodOptions) -> PodRow {
        let id = format!("{name:0<64}");
        let flags = GlobalFlags {
            root: self.ctx.run_dir.join("runsc"),
            platform: "ptrace".into(),
            network: match opts.network.as_str() {
                "none" | "host" => opts.network.clone(),
                _ => "sandbox".into(),
            },
            overlay2: None,
            log: self.ctx.root.join("logs").join(format!("{id}-runsc.log")),
            debug_log: None,
            extra: vec![],
            net_disconnect_ok: false,
            bin: Some("/fake/runsc".into()),
        };
        let started = (status != PodStatus::Created).then(crate::util::now_rfc3339);
        let row = PodRow {
            id: id.clone(),
            name: name.into(),
            image_id: "sha256:feed".into(),
            image_ref: "test:latest".into(),
            status,
            config: Json::new(opts),
            process: None,
            runsc: Json::new(flags),
            created: crate::util::now_rfc3339(),
            started,
            finished: None,
            exit_code: None,
            pid: None,
            monitor_pid: None,
            auto_remove: false,
            restart_count: 0,
            stopped_by_user: false,
        };
        if self.ctx.db.image("sha256:feed").unwrap().is_none() {
            let img = crate::state::ImageRow {
                id: "sha256:feed".into(),
                manifest_digest: "sha256:beef".into(),
                config_json: "{}".into(),
                layers_json: "[]".into(),
                blobs_json: "[]".into(),
                size: 0,
                created: crate::util::now_rfc3339(),
            };
            self.ctx.db.put_image(&img, Some("test:latest")).unwrap();
        }
        self.ctx.db.insert_pod_networked(&row, None, &[]).unwrap();
        let bundle = self.ctx.bundle_dir(&id);
        std::fs::create_dir_all(bundle.join("upper/etc")).unwrap();
        std::fs::write(bundle.join("upper/etc/motd"), b"hello\n").unwrap();
        std::fs::write(bundle.join("config.json"), br#"{"hostname":"h"}"#).unwrap();
        row
    }

    pub fn row(&self, id: &str) -> Option<PodRow> {
        self.ctx.db.pod(id).unwrap()
    }
}

/// Options of a plain pod with no network.
pub(super) fn no_network() -> PodOptions {
    PodOptions {
        network: "none".into(),
        ..Default::default()
    }
}
