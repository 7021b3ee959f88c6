//! Tables and JSON output.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::pod::{BootLine, GcReport, PodView, SystemInfo};

pub(super) fn check_format(f: &str) -> anyhow::Result<bool> {
    match f {
        "table" => Ok(false),
        "json" => Ok(true),
        _ => Err(
            crate::pod::PodError::Usage(format!("invalid --format {f:?}: use table or json"))
                .into(),
        ),
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints rows as left-aligned columns separated by three spaces.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", table_text(header, rows));
}

/// The text [`table`] prints.
pub(super) fn table_text(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// `gvpod port POD`: docker's lines for published ports, then the route.
pub fn ports(v: &PodView) {
    for p in &v.ports {
        println!("{p}");
    }
    if let Some(r) = &v.route {
        println!("route -> {} (default port {})", r.address, r.default_port);
    }
}

/// `gvpod port POD --listening`.
pub fn listening(ports: &[crate::pod::route::ListeningPort], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(ports);
    }
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            vec![
                p.port.to_string(),
                p.address.clone(),
                if p.urls.is_empty() {
                    "-".into()
                } else {
                    p.urls.join(" ")
                },
            ]
        })
        .collect();
    table(&["PORT", "ADDRESS", "URLS"], &rows);
    Ok(())
}

/// "3 seconds", "5 minutes", … like docker.
/// `inspect` output as docker prints it: one object for one name, an array for several.
pub fn inspect<T: Serialize>(views: &[T]) -> anyhow::Result<()> {
    let out = match views {
        [one] => serde_json::to_string_pretty(one)?,
        many => serde_json::to_string_pretty(many)?,
    };
    println!("{out}");
    Ok(())
}

/// Applies `f` to each name the way docker's `rm` does: each name done is
/// printed, each failure is one line on stderr and the rest still go on;
/// the exit code is the first failure's.
pub fn each_name<E: std::fmt::Display>(
    names: &[String],
    code: fn(&E) -> i32,
    mut f: impl FnMut(&str) -> Result<(), E>,
) -> i32 {
    let mut failed = None;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("gvpod: {e}");
                failed.get_or_insert(code(&e));
            }
        }
    }
    failed.unwrap_or(0)
}

pub fn ago(t: &str) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(t) else {
        return t.to_string();
    };
    let s = (Utc::now() - t.with_timezone(&Utc)).num_seconds().max(0);
    let (n, unit) = match s {
        0..=1 => return "Less than a second".to_string(),
        2..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86399 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn status_text(p: &PodView) -> String {
    match p.status.as_str() {
        // Between two launches of its restart policy (docker's words).
        "running" if p.restarting => format!(
            "Restarting ({}) {} ago",
            p.exit_code.map_or("unknown".to_string(), |c| c.to_string()),
            p.finished.as_deref().map(ago).unwrap_or_default()
        ),
        "running" => match &p.health {
            Some(h) => format!(
                "Up {} ({h})",
                p.started.as_deref().map(ago).unwrap_or_default()
            ),
            None => format!("Up {}", p.started.as_deref().map(ago).unwrap_or_default()),
        },
        "exited" if p.checkpointed.is_some() => format!(
            "Checkpointed ({}) {} ago",
            p.checkpointed.as_deref().unwrap_or_default(),
            p.finished.as_deref().map(ago).unwrap_or_default()
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            p.exit_code.map_or("unknown".to_string(), |c| c.to_string()),
            p.finished.as_deref().map(ago).unwrap_or_default()
        ),
        s => {
            let mut c = s.to_string();
            c[..1].make_ascii_uppercase();
            c
        }
    }
}

/// `service ls`.
pub fn services(v: &[crate::pod::service::ServiceView], json: bool) -> anyhow::Result<()> {
    if json {
        return self::json(v);
    }
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|s| {
            let check: String = s
                .check_output
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(60)
                .collect();
            vec![
                s.name.clone(),
                s.state.clone(),
                s.health.clone(),
                s.restarts.to_string(),
                s.port.map(|p| p.to_string()).unwrap_or_default(),
                check,
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "STATE",
            "HEALTH",
            "RESTARTS",
            "PORT",
            "LAST CHECK",
        ],
        &rows,
    );
    Ok(())
}

pub fn ps(pods: &[PodView], quiet: bool, format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(pods);
    }
    if quiet {
        pods.iter().for_each(|p| println!("{}", &p.id[..12]));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            let mut cmd = p.command.join(" ");
            if cmd.chars().count() > 30 {
                cmd = format!("{}…", cmd.chars().take(29).collect::<String>());
            }
            vec![
                p.id[..12].to_string(),
                p.image.clone(),
                format!("\"{cmd}\""),
                format!("{} ago", ago(&p.created)),
                status_text(p),
                p.name.clone(),
            ]
        })
        .collect();
    table(
        &["POD ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"],
        &rows,
    );
    Ok(())
}

/// `system boot`: one line per pod (what was done, and why not).
pub fn boot(lines: &[BootLine], format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(lines);
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let result = match &l.reason {
                Some(r) => format!("{}: {r}", l.action),
                None => l.action.to_string(),
            };
            // One line per pod, whatever the error quotes.
            let result = result
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            vec![l.name.clone(), l.restart.to_string(), result]
        })
        .collect();
    table(&["POD", "RESTART", "RESULT"], &rows);
    Ok(())
}

pub fn images(
    list: &[crate::image::ImageSummary],
    quiet: bool,
    format: &str,
) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(list);
    }
    if quiet {
        list.iter().for_each(|i| println!("{}", short_id(&i.id)));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                i.repository.clone().unwrap_or_else(|| "<none>".into()),
                i.tag.clone().unwrap_or_else(|| "<none>".into()),
                short_id(&i.id),
                format!("{} ago", ago(&i.created)),
                human_size(i.size),
            ]
        })
        .collect();
    table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
    Ok(())
}

/// `gvpod image prune`: one line per removed item and the space reclaimed.
pub fn prune(rep: &crate::image::PruneReport, format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(rep);
    }
    for b in &rep.blobs {
        println!("deleted blob {b}");
    }
    for l in &rep.layers {
        println!("deleted layer {l}");
    }
    for t in &rep.temp {
        println!("deleted {}", t.display());
    }
    println!("Total reclaimed space: {}", human_size(rep.bytes));
    Ok(())
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", units[i]).replace(".000", "")
    }
}

pub fn info(i: &SystemInfo, format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(i);
    }
    let feats = i.features.as_object().map(|o| {
        o.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let rows = vec![
        vec!["gvpod version".into(), i.gvpod_version.to_string()],
        vec!["data root".into(), i.data_root.clone()],
        vec!["runsc path".into(), i.runsc_path.clone()],
        vec!["runsc version".into(), i.runsc_version.clone()],
        vec!["runsc root".into(), i.runsc_root.clone()],
        vec!["platforms".into(), i.platforms.join(", ")],
        vec!["default platform".into(), i.default_platform.clone()],
        vec!["features".into(), feats.unwrap_or_default()],
        vec!["cgroup version".into(), i.cgroup_version.to_string()],
        vec!["kernel".into(), i.kernel.clone()],
        vec!["pods".into(), i.pods.to_string()],
        vec!["images".into(), i.images.to_string()],
    ];
    for r in rows {
        println!("{:<17} {}", format!("{}:", r[0]), r[1]);
    }
    Ok(())
}

pub fn gc(r: &GcReport, format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(r);
    }
    println!(
        "removed {} pod(s), {} orphaned resource(s), {} runsc container(s), {} mount(s), {} path(s), {} cgroup(s), {} network object(s)",
        r.pods_removed.len(),
        r.resources_released,
        r.runsc_containers.len(),
        r.mounts.len(),
        r.paths.len(),
        r.cgroups.len(),
        r.network.len()
    );
    Ok(())
}

/// `system gc --orphans`: one line per object, then a summary.
pub fn orphans(r: &crate::pod::OrphanReport, format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(r);
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut n = 0;
    for root in &r.roots {
        for o in &root.objects {
            println!("{verb} {o} (data root {})", root.root);
            n += 1;
        }
    }
    for f in &r.failed {
        eprintln!("gvpod: cannot remove {f}");
    }
    let named = r.roots.iter().filter(|x| x.root != "(unknown)").count();
    println!("{verb} {n} object(s) of {named} deleted data root(s) and of unnamed ones");
    Ok(())
}

pub fn networks(list: &[crate::pod::NetworkView], quiet: bool, format: &str) -> anyhow::Result<()> {
    if check_format(format)? {
        return json(list);
    }
    if quiet {
        list.iter().for_each(|n| println!("{}", n.name));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.subnet.clone(),
                n.gateway.clone(),
                n.bridge.clone(),
                if n.internal { "yes" } else { "no" }.to_string(),
                n.pods.len().to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "SUBNET", "GATEWAY", "BRIDGE", "INTERNAL", "PODS"],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500_000), "1.500 MB");
        assert_eq!(human_size(2_000_000), "2 MB");
    }
}
