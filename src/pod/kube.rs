//! `generate kube` for pods that exist: each pod's stored options (with
//! its spec's services and setup) turned back into a [`spec::Pod`], which
//! `spec::kube` renders. Nothing runs: a stopped pod renders as a running
//! one does.

use super::{Ctx, Result};
use crate::bundle::RestartPolicy;
use crate::spec;

/// Pod `key` as the spec that would make it again.
pub fn spec_of(ctx: &mut Ctx, key: &str) -> Result<spec::Pod> {
    let row = ctx.lookup(key)?;
    let o = row.options()?;
    let restart = match o.restart {
        RestartPolicy::OnFailure { max_retries } if max_retries > 0 => {
            format!("on-failure:{max_retries}")
        }
        r => r.name().to_string(),
    };
    // A spec pod of services idles under gvpod's own init, which a cluster
    // does not have: its spec said no command.
    let gvpod_init = [
        crate::runsc::RELAY_IN_POD,
        crate::runsc::LEGACY_RELAY_IN_POD,
    ]
    .iter()
    .any(|r| o.entrypoint.as_deref() == Some(r));
    Ok(spec::Pod {
        name: row.name.clone(),
        image: row.image_ref.clone(),
        entrypoint: o
            .entrypoint
            .clone()
            .filter(|_| !gvpod_init)
            .map(|e| vec![e]),
        command: (!o.cmd.is_empty() && !gvpod_init).then(|| o.cmd.clone()),
        // A bare `-e KEY` took the host's value when the pod was made:
        // not known here, so left out.
        env: o
            .env
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ports: o.publish.clone(),
        volumes: o
            .volumes
            .iter()
            .map(|v| {
                let ro = if v.readonly { ":ro" } else { "" };
                format!("{}:{}{ro}", v.host.display(), v.pod)
            })
            .collect(),
        workdir: o.workdir.clone(),
        network: Some(o.network.clone()).filter(|n| n != crate::net::DEFAULT_NETWORK),
        user: o.dev.user.clone().map(|name| spec::User {
            name,
            sudo: true,
            ssh_keys: vec![],
        }),
        resources: spec::Resources {
            cpus: o.cpus,
            memory: o.memory,
            pids: o.pids_limit,
            storage: o.storage_size,
        },
        restart: Some(restart),
        route: o.route.clone(),
        route_default: o.route_default,
        labels: o.labels.clone(),
        setup: o.setup.clone(),
        services: o.services.clone(),
    })
}

/// Manifests for pods `keys` (names or id prefixes), in the order given.
pub fn kube(ctx: &mut Ctx, keys: &[String]) -> Result<String> {
    let mut pods = vec![];
    for k in keys {
        pods.push(spec_of(ctx, k)?);
    }
    let refs: Vec<(&str, &spec::Pod)> = pods.iter().map(|p| (p.name.as_str(), p)).collect();
    Ok(spec::kube::render(None, &refs))
}
