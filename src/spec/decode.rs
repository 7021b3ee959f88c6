//! The typed walk from a merged [`Node`] tree to a [`Project`]: each key
//! is checked against the keys its mapping allows (unknown keys are
//! errors, serde's `deny_unknown_fields`), each value against its type and
//! gvpod's own parser for it (`-p`, `--memory`, `--cpus`, `--restart`,
//! `--route`). Services and health checks are walked in `service`. Every error carries the location of the offending key or
//! value. Cross-object checks (names, depends_on) are in `check`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::tree::{Key, Loc, Node, Val};
use super::types::*;
use super::SpecError;

type Result<T> = std::result::Result<T, SpecError>;

/// The keys a pod (and `defaults`) may have.
pub const POD_KEYS: &[&str] = &[
    "image",
    "entrypoint",
    "command",
    "env",
    "ports",
    "volumes",
    "workdir",
    "network",
    "user",
    "resources",
    "restart",
    "route",
    "route_default",
    "labels",
    "setup",
    "services",
];

/// A mapping whose keys have been checked against the allowed ones.
pub struct Fields<'a> {
    pub path: String,
    pub at: &'a Loc,
    entries: &'a [(Key, Node)],
}

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v.val, Val::Null))
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn wrong_type(n: &Node, path: &str, expected: &str) -> SpecError {
    SpecError::at(
        &n.at,
        format!("{path}: found {}; expected {expected}", n.val.what()),
    )
}

/// The entries of a mapping (any keys).
pub fn mapping<'a>(n: &'a Node, path: &str, expected: &str) -> Result<&'a [(Key, Node)]> {
    match &n.val {
        Val::Map(m) => Ok(m),
        _ => Err(wrong_type(n, path, expected)),
    }
}

/// A mapping with only the `allowed` keys.
pub fn fields<'a>(n: &'a Node, path: &str, allowed: &[&str]) -> Result<Fields<'a>> {
    let what = if path.is_empty() {
        "a mapping (the spec file)".to_string()
    } else {
        format!("a mapping with keys {}", allowed.join(", "))
    };
    let entries = mapping(n, path, &what)?;
    for (k, _) in entries {
        if !allowed.contains(&k.name.as_str()) {
            let inside = if path.is_empty() { "the spec" } else { path };
            return Err(SpecError::at(
                &k.at,
                format!(
                    "unknown key {:?} in {inside}; expected one of {}",
                    k.name,
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(Fields {
        path: path.to_string(),
        at: &n.at,
        entries,
    })
}

/// A scalar as text (numbers too: `memory: 1024`, `ports: [80]`).
pub fn text(n: &Node, path: &str, expected: &str) -> Result<String> {
    match &n.val {
        Val::Str(s) => Ok(s.clone()),
        Val::Int(i) => Ok(i.to_string()),
        Val::Float(f) => Ok(f.to_string()),
        _ => Err(wrong_type(n, path, expected)),
    }
}

pub fn boolean(n: &Node, path: &str) -> Result<bool> {
    match n.val {
        Val::Bool(b) => Ok(b),
        _ => Err(wrong_type(n, path, "true or false")),
    }
}

/// A list of scalars; a single scalar is taken as a list of one when
/// `one_ok`.
pub fn texts(n: &Node, path: &str, expected: &str, one_ok: bool) -> Result<Vec<(String, Loc)>> {
    match &n.val {
        Val::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, it)| Ok((text(it, &format!("{path}[{i}]"), expected)?, it.at.clone())))
            .collect(),
        Val::Str(_) | Val::Int(_) if one_ok => Ok(vec![(text(n, path, expected)?, n.at.clone())]),
        _ => Err(wrong_type(n, path, &format!("a list of {expected}"))),
    }
}

pub fn bad_value(at: &Loc, path: &str, value: &str, hint: &str) -> SpecError {
    SpecError::at(at, format!("{path}: invalid value {value:?}; {hint}"))
}

fn bundle_hint(e: crate::bundle::BundleError) -> String {
    match e {
        crate::bundle::BundleError::BadValue { hint, .. } => hint.to_string(),
        other => other.to_string(),
    }
}

pub fn port_number(n: &Node, path: &str) -> Result<u16> {
    let t = text(n, path, "a port number from 1 to 65535")?;
    crate::router::host::port_number(&t)
        .ok_or_else(|| bad_value(&n.at, path, &t, "expected a port number from 1 to 65535"))
}

/// `KEY: VALUE` mapping or `["KEY=VALUE", …]` list (env, labels).
fn key_values(n: &Node, path: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match &n.val {
        Val::Map(m) => {
            for (k, v) in m {
                let p = join(path, &k.name);
                let val = match &v.val {
                    Val::Null => String::new(),
                    Val::Bool(b) => b.to_string(),
                    _ => text(v, &p, "a string, number or boolean")?,
                };
                check_key(&k.name, &k.at, path)?;
                out.insert(k.name.clone(), val);
            }
        }
        Val::Seq(_) => {
            for (i, (s, at)) in texts(n, path, "KEY=VALUE strings", false)?
                .into_iter()
                .enumerate()
            {
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                check_key(k, &at, &format!("{path}[{i}]"))?;
                out.insert(k.to_string(), v.to_string());
            }
        }
        _ => {
            return Err(wrong_type(
                n,
                path,
                "a mapping of KEY: VALUE or a list of KEY=VALUE",
            ))
        }
    }
    Ok(out)
}

fn check_key(k: &str, at: &Loc, path: &str) -> Result<()> {
    if k.is_empty()
        || k.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '=')
    {
        return Err(bad_value(
            at,
            path,
            k,
            "expected a key of visible characters without '='",
        ));
    }
    Ok(())
}

/// `dir` joined with a relative `p`, without `.` components; no I/O.
fn resolve(dir: &Path, p: &str) -> String {
    if p.starts_with('/') || p.starts_with('~') {
        return p.to_string();
    }
    let mut out = dir.to_path_buf();
    for c in Path::new(p).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..")
                }
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

fn volume(s: &str, at: &Loc, path: &str, dir: &Path) -> Result<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, pod, mode) = match parts.as_slice() {
        [h, p] => (*h, *p, None),
        [h, p, m] => (*h, *p, Some(*m)),
        _ => {
            return Err(bad_value(
                at,
                path,
                s,
                "expected HOSTPATH:PODPATH or HOSTPATH:PODPATH:ro",
            ))
        }
    };
    if !(host.starts_with('/') || host.starts_with('.') || host.starts_with('~')) {
        return Err(bad_value(
            at,
            path,
            s,
            "named volumes are not supported; expected a host path such as ./data or /srv/data",
        ));
    }
    if !pod.starts_with('/') {
        return Err(bad_value(
            at,
            path,
            s,
            "expected an absolute path in the pod after ':'",
        ));
    }
    let host = resolve(dir, host);
    match mode {
        None => Ok(format!("{host}:{pod}")),
        Some(m @ ("ro" | "rw")) => Ok(format!("{host}:{pod}:{m}")),
        Some(_) => Err(bad_value(
            at,
            path,
            s,
            "expected ro or rw after the pod path",
        )),
    }
}

fn absolute(n: &Node, path: &str) -> Result<String> {
    let t = text(n, path, "an absolute path")?;
    if !t.starts_with('/') {
        return Err(bad_value(&n.at, path, &t, "expected an absolute path"));
    }
    Ok(t)
}

pub fn restart(n: &Node, path: &str) -> Result<String> {
    let t = text(n, path, "a restart policy")?;
    crate::bundle::parse_restart(&t).map_err(|e| bad_value(&n.at, path, &t, &bundle_hint(e)))?;
    Ok(t)
}

/// Decodes one pod (defaults already merged in). `dir_of` gives the
/// directory of the file a location is in.
pub fn pod(
    n: &Node,
    path: &str,
    full_name: String,
    dir_of: &dyn Fn(&Loc) -> PathBuf,
) -> Result<Pod> {
    let f = fields(n, path, POD_KEYS)?;
    let mut p = Pod {
        name: full_name,
        ..Pod::default()
    };
    let Some(image) = f.get("image") else {
        return Err(SpecError::at(
            f.at,
            format!("{path}: no image; expected `image:` in the pod or in defaults"),
        ));
    };
    p.image = text(
        image,
        &f.path("image"),
        "an image reference such as busybox",
    )?;
    if p.image.is_empty() || p.image.contains(char::is_whitespace) {
        return Err(bad_value(
            &image.at,
            &f.path("image"),
            &p.image,
            "expected an image reference such as busybox:latest",
        ));
    }
    if let Some(e) = f.get("entrypoint") {
        p.entrypoint = Some(
            texts(e, &f.path("entrypoint"), "strings", true)?
                .into_iter()
                .map(|x| x.0)
                .collect(),
        );
    }
    if let Some(c) = f.get("command") {
        p.command = Some(match &c.val {
            // A string is a shell command line, as compose's healthcheck takes it.
            Val::Str(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            _ => texts(c, &f.path("command"), "strings", false)?
                .into_iter()
                .map(|x| x.0)
                .collect(),
        });
    }
    if let Some(e) = f.get("env") {
        p.env = key_values(e, &f.path("env"))?;
    }
    if let Some(l) = f.get("labels") {
        p.labels = key_values(l, &f.path("labels"))?;
    }
    if let Some(ports) = f.get("ports") {
        let path = f.path("ports");
        for (i, (s, at)) in texts(ports, &path, "ports such as \"8080:80\"", false)?
            .into_iter()
            .enumerate()
        {
            if let Err(e) = crate::net::parse_port(&s) {
                let hint = match e {
                    crate::net::NetError::BadValue { hint, .. } => hint,
                    other => other.to_string(),
                };
                return Err(bad_value(&at, &format!("{path}[{i}]"), &s, &hint));
            }
            p.ports.push(s);
        }
    }
    if let Some(v) = f.get("volumes") {
        let path = f.path("volumes");
        for (i, (s, at)) in texts(v, &path, "volumes such as \"./src:/workspace\"", false)?
            .into_iter()
            .enumerate()
        {
            p.volumes
                .push(volume(&s, &at, &format!("{path}[{i}]"), &dir_of(&at))?);
        }
    }
    if let Some(w) = f.get("workdir") {
        p.workdir = Some(absolute(w, &f.path("workdir"))?);
    }
    if let Some(n) = f.get("network") {
        p.network = Some(text(n, &f.path("network"), "a network name")?);
    }
    if let Some(u) = f.get("user") {
        p.user = Some(user(u, &f.path("user"), dir_of)?);
    }
    if let Some(r) = f.get("resources") {
        p.resources = resources(r, &f.path("resources"))?;
    }
    if let Some(r) = f.get("restart") {
        p.restart = Some(restart(r, &f.path("restart"))?);
    }
    if let Some(r) = f.get("route") {
        let path = f.path("route");
        let t = text(r, &path, "auto, PORT or IP:PORT")?;
        crate::pod::route::parse_spec(&t).map_err(|_| {
            bad_value(
                &r.at,
                &path,
                &t,
                "expected auto, HOSTPORT or HOSTIP:HOSTPORT",
            )
        })?;
        p.route = Some(t);
    }
    if let Some(r) = f.get("route_default") {
        p.route_default = Some(port_number(r, &f.path("route_default"))?);
    }
    if let Some(s) = f.get("setup") {
        p.setup = texts(s, &f.path("setup"), "shell commands", true)?
            .into_iter()
            .map(|x| x.0)
            .collect();
    }
    if let Some(s) = f.get("services") {
        let path = f.path("services");
        for (k, v) in mapping(s, &path, "a mapping of service names to services")? {
            p.services.insert(
                k.name.clone(),
                super::service::service(v, &join(&path, &k.name))?,
            );
        }
    }
    Ok(p)
}

fn user(n: &Node, path: &str, dir_of: &dyn Fn(&Loc) -> PathBuf) -> Result<User> {
    let f = fields(n, path, &["name", "sudo", "ssh_keys"])?;
    let Some(name) = f.get("name") else {
        return Err(SpecError::at(
            f.at,
            format!(
                "{path}: no name; expected `name:` (the dev user that sudo and ssh_keys are for)"
            ),
        ));
    };
    let np = f.path("name");
    let name_s = text(name, &np, "a user name")?;
    if !crate::bundle::devuser::valid_name(&name_s) {
        return Err(bad_value(
            &name.at,
            &np,
            &name_s,
            "expected a user name such as dev ([a-z_][a-z0-9_-]*, at most 32)",
        ));
    }
    let sudo = match f.get("sudo") {
        Some(s) => boolean(s, &f.path("sudo"))?,
        None => false,
    };
    let ssh_keys = match f.get("ssh_keys") {
        Some(k) => texts(k, &f.path("ssh_keys"), "public key files", false)?
            .into_iter()
            .map(|(s, at)| resolve(&dir_of(&at), &s))
            .collect(),
        None => Vec::new(),
    };
    Ok(User {
        name: name_s,
        sudo,
        ssh_keys,
    })
}

fn resources(n: &Node, path: &str) -> Result<Resources> {
    let f = fields(n, path, &["cpus", "memory", "pids", "storage"])?;
    let mut r = Resources::default();
    if let Some(c) = f.get("cpus") {
        let p = f.path("cpus");
        let t = text(c, &p, "a number of cores")?;
        r.cpus = Some(
            crate::bundle::parse_cpus(&t).map_err(|e| bad_value(&c.at, &p, &t, &bundle_hint(e)))?,
        );
    }
    if let Some(m) = f.get("memory") {
        let p = f.path("memory");
        let t = text(m, &p, "a size such as 512m")?;
        r.memory = Some(
            crate::bundle::parse_memory(&t)
                .map_err(|e| bad_value(&m.at, &p, &t, &bundle_hint(e)))?,
        );
    }
    if let Some(m) = f.get("storage") {
        let p = f.path("storage");
        let t = text(m, &p, "a size such as 10g")?;
        r.storage = Some(
            crate::bundle::parse_storage_size(&t)
                .map_err(|e| bad_value(&m.at, &p, &t, &bundle_hint(e)))?,
        );
    }
    if let Some(n) = f.get("pids") {
        let p = f.path("pids");
        match n.val {
            Val::Int(i) if i >= 64 => r.pids = Some(i),
            Val::Int(i) => {
                return Err(bad_value(
                    &n.at,
                    &p,
                    &i.to_string(),
                    "expected at least 64 (gVisor's own threads count)",
                ))
            }
            _ => return Err(wrong_type(n, &p, "a number of tasks, at least 64")),
        }
    }
    Ok(r)
}
