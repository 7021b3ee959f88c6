//! A spec pod as `create` takes it: the same options `gvpod run` would
//! build from flags, plus the pod's setup and services and the labels
//! that tie it to its project and its spec ([`spec_hash`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::super::service::PROJECT_LABEL;
use super::super::{CreateRequest, PodError, Result};
use crate::bundle::{self, devuser::DevAccess, PodOptions};
use crate::spec::{self, Project};

/// The label naming a spec pod's key in its project (`web` of `myapp-web`).
pub const POD_LABEL: &str = "gvpod.project.pod";
/// The label holding the hash of the spec a pod was made from: `up`
/// recreates a pod whose spec changed, and only those.
pub const HASH_LABEL: &str = "gvpod.spec-hash";

/// The hash of everything in the spec that shapes pod `key`: the pod's own
/// (merged) spec and its project network's. The image is hashed by
/// reference: `up` does not pull again an image it has.
pub fn spec_hash(project: &Project, key: &str) -> String {
    let pod = &project.pods[key];
    let net = pod
        .network
        .as_ref()
        .and_then(|n| project.networks.get(n))
        .map(|n| serde_json::to_value(n).expect("a network serialises"));
    let v = serde_json::json!({"pod": pod, "network": net});
    let digest = Sha256::digest(v.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The gvpod network a spec pod is on: its project's network of that key,
/// or a gvpod network named so (`gvpod` when none is named).
pub fn network_of(project: &Project, pod: &spec::Pod) -> String {
    match &pod.network {
        Some(n) => project
            .networks
            .get(n)
            .map(|net| net.name.clone())
            .unwrap_or_else(|| n.clone()),
        None => "gvpod".into(),
    }
}

/// `~/x` against the invoking user's home.
fn expand(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(rest)
        }
        None => PathBuf::from(p),
    }
}

/// The create request of pod `key` of `project` (not started: `up` starts it).
pub fn request(project: &Project, key: &str, debug: bool) -> Result<CreateRequest> {
    let p = &project.pods[key];
    let mut labels: BTreeMap<String, String> = p.labels.clone();
    labels.insert(PROJECT_LABEL.into(), project.name.clone());
    labels.insert(POD_LABEL.into(), key.into());
    labels.insert(HASH_LABEL.into(), spec_hash(project, key));
    let (entrypoint, cmd) = match (&p.entrypoint, &p.command) {
        (Some(e), c) if !e.is_empty() => {
            let mut rest = e[1..].to_vec();
            rest.extend(c.clone().unwrap_or_default());
            (Some(e[0].clone()), rest)
        }
        (_, Some(c)) => (None, c.clone()),
        // A pod whose work is its services idles under gvpod's init.
        (_, None) if !p.services.is_empty() => (
            Some(crate::runsc::RELAY_IN_POD.to_string()),
            vec!["--init".to_string()],
        ),
        (_, None) => (None, vec![]),
    };
    let mut volumes = vec![];
    for v in &p.volumes {
        // As compose does: a missing host directory is made (`spec` made
        // the host path absolute).
        let host = Path::new(v.split(':').next().unwrap_or_default());
        if host.is_absolute() && !host.exists() {
            std::fs::create_dir_all(host).map_err(|e| PodError::Io {
                what: "cannot create the volume directory",
                path: host.to_path_buf(),
                source: e,
            })?;
        }
        volumes.push(bundle::parse_volume(v)?);
    }
    let dev = match &p.user {
        None => DevAccess::default(),
        Some(u) => {
            let mut keys = vec![];
            for k in &u.ssh_keys {
                let path = expand(k);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    PodError::Usage(format!(
                        "pods.{key}.user.ssh_keys: cannot read {}: {}; give the path of a public key file (e.g. ~/.ssh/id_ed25519.pub)",
                        path.display(),
                        e.to_string().to_lowercase()
                    ))
                })?;
                keys.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                );
            }
            DevAccess {
                user: Some(u.name.clone()),
                ssh: !keys.is_empty(),
                authorized_keys: keys,
            }
        }
    };
    let opts = PodOptions {
        cmd,
        entrypoint,
        env: p.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: p.workdir.clone(),
        user: None,
        hostname: Some(key.to_string()),
        volumes,
        memory: p.resources.memory,
        cpus: p.resources.cpus,
        pids_limit: p.resources.pids,
        storage_size: p.resources.storage,
        read_only: false,
        network: network_of(project, p),
        publish: p.ports.clone(),
        ip: None,
        dns: vec![],
        add_hosts: vec![],
        platform: None,
        runsc_flags: vec![],
        tty: false,
        interactive: false,
        restart: p
            .restart
            .as_deref()
            .map(bundle::parse_restart)
            .transpose()?
            .unwrap_or_default(),
        labels,
        expose: p
            .services
            .values()
            .filter_map(|s| s.port)
            .map(|port| format!("{port}/tcp"))
            .collect(),
        route: p.route.clone(),
        route_default: p.route_default,
        dev,
        setup: p.setup.clone(),
        services: p.services.clone(),
        log: Default::default(),
    };
    Ok(CreateRequest {
        image: p.image.clone(),
        name: Some(p.name.clone()),
        opts,
        auto_remove: false,
        debug,
        starting: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Project {
        spec::load(&[spec::Source {
            name: "a.yaml".into(),
            text: text.into(),
            dir: "/srv".into(),
        }])
        .unwrap()
    }

    #[test]
    fn a_pod_of_services_idles_under_gvpods_init_and_carries_its_labels() {
        let p = project(
            "name: app\nnetworks: {back: {subnet: 198.18.60.0/24}}\npods:\n  web:\n    image: busybox\n    network: back\n    services: {s: {start: httpd, port: 3000}}\n  db: {image: busybox, command: [sleep, '9']}\n",
        );
        let r = request(&p, "web", false).unwrap();
        assert_eq!(r.name.as_deref(), Some("app-web"));
        assert_eq!(
            r.opts.entrypoint.as_deref(),
            Some(crate::runsc::RELAY_IN_POD)
        );
        assert_eq!(r.opts.cmd, ["--init"]);
        assert_eq!(r.opts.network, "app-back");
        assert_eq!(r.opts.expose, ["3000/tcp"]);
        assert_eq!(r.opts.labels[PROJECT_LABEL], "app");
        assert_eq!(r.opts.labels[POD_LABEL], "web");
        let db = request(&p, "db", false).unwrap();
        assert_eq!(
            (db.opts.entrypoint, db.opts.cmd),
            (None, vec!["sleep".to_string(), "9".into()])
        );
        assert_eq!(db.opts.network, "gvpod");
    }

    #[test]
    fn only_a_pods_own_spec_changes_its_hash() {
        let a = project("name: app\npods:\n  web: {image: busybox}\n  db: {image: busybox}\n");
        let b = project(
            "name: app\npods:\n  web: {image: busybox, env: {A: '1'}}\n  db: {image: busybox}\n",
        );
        assert_ne!(spec_hash(&a, "web"), spec_hash(&b, "web"));
        assert_eq!(spec_hash(&a, "db"), spec_hash(&b, "db"));
        assert_eq!(spec_hash(&a, "db").len(), 24);
    }
}
