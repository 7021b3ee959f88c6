//! Projects (issue 12): `gvpod up` turns a spec (`spec::Project`) into
//! networks and pods, `gvpod down` removes them. A project's objects are
//! ordinary gvpod pods and networks carrying labels
//! ([`PROJECT_LABEL`](super::service::PROJECT_LABEL), [`convert::POD_LABEL`],
//! [`convert::HASH_LABEL`]), so `ps`, `logs`, `inspect`, `rm` and the
//! Docker API see them as they see any other, and no state lives beside
//! the database (compose's labels are the model).
//!
//! Invariants:
//! * `up` is idempotent: a pod whose spec is unchanged and that runs is not
//!   touched; only a pod whose spec hash changed is recreated ([`plan`]).
//! * nothing is created before the whole spec and every image are known
//!   good: images are pulled first, pod options are built (and refused)
//!   before the first pod is made.
//! * pods are made and started by dependency level, a level in parallel
//!   (one thread and one `Ctx` per pod); the services inside wait for what
//!   they depend on themselves (`pod::service`), so `up` returns once the
//!   pods run, or with `--wait` once every service is up and healthy.
//! * a failure of one pod is reported with its name; the pods already made
//!   stay (as compose's do) and a second `up` finishes the job.

pub use super::views::Done;

pub mod convert;
pub mod files;
pub mod plan;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::service::PROJECT_LABEL;
use super::{Attach, Ctx, PodError, Result};
use crate::spec::Project;
use crate::state::PodStatus;
use plan::{Existing, Step};

pub struct UpRequest<'a> {
    pub project: &'a Project,
    /// Pod keys to bring up (all when empty).
    pub only: Vec<String>,
    /// Wait until every service runs and every health check passes.
    pub wait: Option<Duration>,
    pub debug: bool,
}

/// The project's pods that exist: (key, name, hash, running).
fn existing(ctx: &mut Ctx, project: &str) -> Result<BTreeMap<String, (String, Existing)>> {
    let mut out = BTreeMap::new();
    for v in super::list(ctx, true)? {
        if v.config.labels.get(PROJECT_LABEL).map(String::as_str) != Some(project) {
            continue;
        }
        let key = v
            .config
            .labels
            .get(convert::POD_LABEL)
            .cloned()
            .unwrap_or_else(|| v.name.clone());
        let e = Existing {
            hash: v.config.labels.get(convert::HASH_LABEL).cloned(),
            running: v.status == PodStatus::Running.as_str() && !v.restarting,
        };
        out.insert(key, (v.name, e));
    }
    Ok(out)
}

fn check_only(project: &Project, only: &[String]) -> Result<Vec<String>> {
    if only.is_empty() {
        return Ok(project.pods.keys().cloned().collect());
    }
    for k in only {
        if !project.pods.contains_key(k) {
            return Err(PodError::Usage(format!(
                "project {} has no pod {k:?} (it has {}); name pods by their key in the spec",
                project.name,
                project.pods.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(only.to_vec())
}

/// `gvpod up`. `progress` is told of each step as it is done.
pub fn up(ctx: &mut Ctx, req: UpRequest, progress: &(dyn Fn(&Done) + Sync)) -> Result<Vec<Done>> {
    let project = req.project;
    let keys = check_only(project, &req.only)?;
    let mut done = vec![];
    let mut report = |d: Done| {
        progress(&d);
        done.push(d);
    };
    // Everything that can be refused, before anything is made.
    let mut requests = BTreeMap::new();
    for k in &keys {
        requests.insert(k.clone(), convert::request(project, k, req.debug)?);
    }
    for net in project.networks.values() {
        if let Some(have) = ctx.db.network(&net.name)? {
            if let Some(want) = &net.subnet {
                if have.subnet != *want {
                    return Err(PodError::Usage(format!(
                        "network {} exists with subnet {}, the spec says {want}; run `gvpod down` first (or change the spec)",
                        net.name, have.subnet
                    )));
                }
            }
        }
    }
    let mut images: Vec<&str> = keys
        .iter()
        .map(|k| project.pods[k].image.as_str())
        .collect();
    images.sort();
    images.dedup();
    for image in images {
        super::images::ensure(ctx, image)?;
    }
    for net in project.networks.values() {
        if ctx.db.network(&net.name)?.is_none() {
            let labels = BTreeMap::from([(PROJECT_LABEL.to_string(), project.name.clone())]);
            super::create_labeled_network(
                ctx,
                &net.name,
                net.subnet.as_deref(),
                None,
                net.internal,
                labels,
            )?;
            report(Done {
                kind: "network".into(),
                name: net.name.clone(),
                action: "created".into(),
            });
        }
    }
    let have = existing(ctx, &project.name)?;
    // A pod of the project that its spec no longer has is left alone and
    // named (compose's orphans): `down` or `rm -f` removes it.
    if req.only.is_empty() {
        for (key, (name, _)) in &have {
            if !project.pods.contains_key(key) {
                report(Done {
                    kind: "pod".into(),
                    name: name.clone(),
                    action: "orphaned".into(),
                });
            }
        }
    }
    let root = ctx.root.clone();
    let mut failures = vec![];
    for level in plan::levels(project, &keys) {
        let results: Vec<(String, Result<&'static str>)> = std::thread::scope(|s| {
            let handles: Vec<_> = level
                .iter()
                .map(|k| {
                    let want = convert::spec_hash(project, k);
                    let ex = have.get(k);
                    let step = plan::step(&want, ex.map(|(_, e)| e));
                    let old = ex.map(|(n, _)| n.clone());
                    let req = requests.remove(k).expect("a request per key");
                    let name = project.pods[k].name.clone();
                    let root = root.clone();
                    let h = s.spawn(move || apply(&root, step, old.as_deref(), req));
                    (name, h)
                })
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(PodError::Monitor(format!(
                            "bringing up pod {name} panicked"
                        )))
                    });
                    (name, r)
                })
                .collect()
        });
        for (name, r) in results {
            match r {
                Ok(action) => report(Done {
                    kind: "pod".into(),
                    name,
                    action: action.into(),
                }),
                Err(e) => failures.push((name, e)),
            }
        }
        if !failures.is_empty() {
            break;
        }
    }
    if let Some((name, e)) = failures.into_iter().next() {
        return Err(match e {
            PodError::Usage(m) => PodError::Usage(format!("pod {name}: {m}")),
            e => e,
        });
    }
    if let Some(limit) = req.wait {
        let names: Vec<String> = keys.iter().map(|k| project.pods[k].name.clone()).collect();
        wait_ready(ctx, &names, limit)?;
    }
    Ok(done)
}

/// Carries out one pod's step (on its own thread, with its own `Ctx`).
fn apply(
    root: &Path,
    step: Step,
    old: Option<&str>,
    req: super::CreateRequest,
) -> Result<&'static str> {
    let mut ctx = Ctx::open(root)?;
    let name = req.name.clone().unwrap_or_default();
    let action = match step {
        Step::Keep => return Ok("unchanged"),
        Step::Start => {
            let pod = ctx.lookup(&name)?;
            super::start(&mut ctx, &pod, Attach::Detached)?;
            return Ok("started");
        }
        Step::Recreate => {
            if let Some(o) = old {
                super::remove(&mut ctx, o, true)?;
            }
            "recreated"
        }
        Step::Create => "created",
    };
    let pod = super::create(&mut ctx, req)?;
    match super::start(&mut ctx, &pod, Attach::Detached) {
        Ok(super::StartOutcome::Started { .. }) => Ok(action),
        Ok(super::StartOutcome::Exited { code }) => Err(PodError::Monitor(format!(
            "pod {name} exited at once (code {}); see `gvpod logs {name}`",
            code.map_or("unknown".to_string(), |c| c.to_string())
        ))),
        Err(e) => Err(e),
    }
}

/// Waits until each pod runs and each of its services runs and passes its
/// health check; refuses with the first that does not, by the deadline.
fn wait_ready(ctx: &mut Ctx, names: &[String], limit: Duration) -> Result<()> {
    let until = Instant::now() + limit;
    loop {
        let mut waiting = None;
        for n in names {
            let pod = ctx.lookup(n)?;
            if pod.status != PodStatus::Running {
                return Err(PodError::BadState {
                    name: pod.name.clone(),
                    status: pod.status.as_str(),
                    hint: "see `gvpod logs` for why it stopped",
                });
            }
            for s in super::service::views(ctx, &pod)? {
                if s.health == "unhealthy" {
                    return Err(PodError::NotReady(format!(
                        "service {} of pod {n} is unhealthy: {}; see `gvpod service ls {n}` and `gvpod logs {n} --service {}`",
                        s.name, s.check_output, s.name
                    )));
                }
                if s.state == "failed" {
                    return Err(PodError::NotReady(format!(
                        "service {} of pod {n} failed; see `gvpod logs {n} --service {}`",
                        s.name, s.name
                    )));
                }
                let ready = s.state == "running" && (s.health == "none" || s.health == "healthy");
                if !ready && waiting.is_none() {
                    waiting = Some(format!(
                        "service {} of pod {n} is {} ({})",
                        s.name, s.state, s.health
                    ));
                }
            }
        }
        let Some(w) = waiting else {
            return Ok(());
        };
        if Instant::now() >= until {
            return Err(PodError::NotReady(format!(
                "not ready after {} s: {w}; see `gvpod service ls`",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub struct DownRequest {
    pub project: String,
    /// The project's networks, to remove once its pods are gone.
    pub networks: Vec<String>,
    /// Pod keys to remove (all, and then the networks, when empty).
    pub only: Vec<String>,
    /// Remove the images the removed pods used, where no other pod does.
    pub rmi: bool,
}

/// `gvpod down`: removes the project's pods (in parallel), then its
/// networks and, with `rmi`, its images.
pub fn down(
    ctx: &mut Ctx,
    req: DownRequest,
    progress: &(dyn Fn(&Done) + Sync),
) -> Result<Vec<Done>> {
    let have = existing(ctx, &req.project)?;
    let mut done = vec![];
    let mut report = |d: Done| {
        progress(&d);
        done.push(d);
    };
    let pods: Vec<(String, String)> = have
        .iter()
        .filter(|(k, _)| req.only.is_empty() || req.only.contains(k))
        .map(|(_, (name, _))| {
            let image = ctx.lookup(name).map(|p| p.image_id).unwrap_or_default();
            (name.clone(), image)
        })
        .collect();
    let root = ctx.root.clone();
    let results: Vec<(String, Result<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = pods
            .iter()
            .map(|(name, _)| {
                let root = root.clone();
                let n = name.clone();
                (
                    name.clone(),
                    s.spawn(move || {
                        let mut ctx = Ctx::open(&root)?;
                        super::remove(&mut ctx, &n, true)
                    }),
                )
            })
            .collect();
        hs.into_iter()
            .map(|(n, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(PodError::NotReady(format!("removing {n} panicked"))));
                (n, r)
            })
            .collect()
    });
    let mut first_err = None;
    for (name, r) in results {
        match r {
            Ok(_) => report(Done {
                kind: "pod".into(),
                name,
                action: "removed".into(),
            }),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if req.only.is_empty() {
        let mut nets = req.networks.clone();
        for n in super::list_networks(ctx)? {
            if n.labels.get(PROJECT_LABEL) == Some(&req.project) && !nets.contains(&n.name) {
                nets.push(n.name);
            }
        }
        for n in nets {
            if ctx.db.network(&n)?.is_none() {
                continue;
            }
            super::remove_network(ctx, &n)?;
            report(Done {
                kind: "network".into(),
                name: n,
                action: "removed".into(),
            });
        }
    }
    if req.rmi {
        let mut images: Vec<String> = pods.into_iter().map(|(_, i)| i).collect();
        images.sort();
        images.dedup();
        for image in images.into_iter().filter(|i| !i.is_empty()) {
            match super::remove_image(ctx, &image, false) {
                Ok(_) => report(Done {
                    kind: "image".into(),
                    name: image,
                    action: "removed".into(),
                }),
                // Used by a pod of another project: kept, as compose does.
                Err(PodError::ImageInUse { .. }) => report(Done {
                    kind: "image".into(),
                    name: image,
                    action: "kept".into(),
                }),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}
