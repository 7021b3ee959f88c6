//! Pod options as given on the command line, validated and stored with the pod.
//! Parsing of sizes, CPU counts and volume specs lives here so that every
//! entry point (run, create, later restore) rejects bad input the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BundleError;

/// A host directory bound into the pod (`-v HOSTDIR:PODDIR[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host: PathBuf,
    pub pod: String,
    pub readonly: bool,
}

/// Everything a user can say about a pod; stored as JSON in the pod's row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodOptions {
    /// Command after the image name (replaces the image's Cmd).
    pub cmd: Vec<String>,
    /// `--entrypoint` (replaces the image's Entrypoint and clears its Cmd).
    pub entrypoint: Option<String>,
    /// `-e` and `--env-file` entries, in order, as K=V (a bare K takes the host's value).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub volumes: Vec<Volume>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// CPU limit in cores (1.5 = 150 ms per 100 ms period).
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub read_only: bool,
    /// `none`, `host`, or the name of a gvpod network.
    pub network: String,
    /// `-p` specs as given (validated by the network layer).
    #[serde(default)]
    pub publish: Vec<String>,
    /// `--ip`: a fixed address on the pod's network.
    #[serde(default)]
    pub ip: Option<String>,
    /// `--dns` servers (default: the host's upstream servers).
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--add-host NAME:IP` entries for /etc/hosts.
    #[serde(default)]
    pub add_hosts: Vec<String>,
    pub platform: Option<String>,
    pub runsc_flags: Vec<(String, String)>,
    pub tty: bool,
    pub interactive: bool,
    /// `--storage-opt size=`: the pod's writable layer holds at most this
    /// many bytes (an ext4 image of its own, `bundle::rootfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_size: Option<u64>,
    /// `--restart`: what the pod's monitor does when the pod's process ends.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// `--label KEY[=VALUE]` (docker's `Labels`): the user's metadata,
    /// shown by inspect and matched by the API's `label` filter.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--expose PORT[/PROTO]` (docker's `ExposedPorts`), as `80/tcp`.
    #[serde(default)]
    pub expose: Vec<String>,
    /// `--route [HOSTIP:]HOSTPORT|auto` as given: the pod's own route port
    /// (`pod::route`), where `localhost-N.…` reaches port N of the pod.
    #[serde(default)]
    pub route: Option<String>,
    /// `--route-default N`: the port other hosts reach through the route.
    #[serde(default)]
    pub route_default: Option<u16>,
    /// `--dev-user`, `--ssh`, `--ssh-key` (see `bundle::devuser`).
    #[serde(default)]
    pub dev: super::devuser::DevAccess,
    /// Shell commands run once in the pod, as root, after its first start
    /// (a spec's `setup`; `pod::service` runs them and records that it did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
    /// Services the pod's monitor supervises inside the pod (a spec's
    /// `services`, validated by `spec`): installed once, started after
    /// every launch, restarted by their policy, health-checked.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub services: std::collections::BTreeMap<String, crate::spec::Service>,
    /// `--log-max-size` / `--log-max-file`: how the monitor bounds the log.
    #[serde(default)]
    pub log: LogLimits,
}

/// docker's json-file `max-size` and `max-file`: `logs/<id>.json` is
/// rotated to `.1` (`.1` to `.2`, …) once it passes `max_size` bytes, and
/// at most `max_file` files are kept, the current one included (1: the
/// file is truncated instead). Unset: [`LogLimits::DEFAULT_SIZE`] ×
/// [`LogLimits::DEFAULT_FILES`], so every pod's log is bounded; a size of
/// 0 never rotates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    #[serde(default)]
    pub max_size: Option<u64>,
    #[serde(default)]
    pub max_file: Option<u32>,
}

impl LogLimits {
    pub const DEFAULT_SIZE: u64 = 10 << 20;
    pub const DEFAULT_FILES: u32 = 3;

    /// (rotate past this many bytes, files kept); `None` never rotates.
    pub fn effective(&self) -> Option<(u64, u32)> {
        match self.max_size.unwrap_or(Self::DEFAULT_SIZE) {
            0 => None,
            n => Some((n, self.max_file.unwrap_or(Self::DEFAULT_FILES).max(1))),
        }
    }
}

/// Parses `--log-max-size`: a size such as 10m, 512k or 1048576 (bytes);
/// 0 never rotates.
pub fn parse_log_max_size(s: &str) -> Result<u64, BundleError> {
    let bad = || BundleError::BadValue {
        what: "--log-max-size",
        value: s.to_string(),
        hint: "use a size such as 10m, 512k or 1048576 (bytes); 0 keeps the log unbounded",
    };
    let t = s.trim().to_ascii_lowercase();
    if t == "0" {
        return Ok(0);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some(c) if c.is_ascii_digit() => (t, 1),
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    // Below one full log line (16 KiB of text, JSON-escaped) a file could
    // not hold the line that passes the limit.
    match n.checked_mul(mult) {
        Some(b) if b >= 64 << 10 => Ok(b),
        _ => Err(BundleError::BadValue {
            what: "--log-max-size",
            value: s.to_string(),
            hint: "the minimum is 64k (0 keeps the log unbounded)",
        }),
    }
}

/// Parses `--log-max-file`: how many log files to keep, 1 to 100.
pub fn parse_log_max_file(n: u32) -> Result<u32, BundleError> {
    if (1..=100).contains(&n) {
        Ok(n)
    } else {
        Err(BundleError::BadValue {
            what: "--log-max-file",
            value: n.to_string(),
            hint: "keep between 1 and 100 files",
        })
    }
}

/// A restart policy (`--restart`, docker's `HostConfig.RestartPolicy`),
/// carried out by the pod's monitor (`pod::restart` decides). Stored with
/// the pod's options as `{"name": "on-failure", "max_retries": 2}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart (the default).
    #[default]
    No,
    /// Restart on any exit, unless the user stopped or killed the pod.
    Always,
    /// Restart on a non-zero exit, at most `max_retries` times (0: no limit).
    OnFailure { max_retries: u32 },
    /// As `Always`, and not started at boot once the user stopped it.
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's name: `no`, `always`, `on-failure`, `unless-stopped`.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// Docker's `MaximumRetryCount` (0 but for `on-failure:N`).
    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure { max_retries } => max_retries,
            _ => 0,
        }
    }

    /// From docker's `{Name, MaximumRetryCount}` (an empty name is `no`); a
    /// retry count is refused with any policy but `on-failure`, as docker does.
    pub fn from_docker(name: &str, max_retries: i64) -> Result<RestartPolicy, BundleError> {
        let bad = |hint| BundleError::BadValue {
            what: "restart policy",
            value: if max_retries == 0 {
                name.to_string()
            } else {
                format!("{name}:{max_retries}")
            },
            hint,
        };
        let p = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let max_retries = u32::try_from(max_retries)
                    .map_err(|_| bad("the maximum retry count must be 0 or more"))?;
                return Ok(RestartPolicy::OnFailure { max_retries });
            }
            _ => return Err(bad(RESTART_HINT)),
        };
        if max_retries != 0 {
            return Err(bad(
                "a maximum retry count goes only with on-failure (on-failure:N)",
            ));
        }
        Ok(p)
    }
}

const RESTART_HINT: &str = "use no, always, unless-stopped, on-failure or on-failure:N";

/// Parses `--label KEY[=VALUE]` (a bare KEY has an empty value).
pub fn parse_label(s: &str) -> Result<(String, String), BundleError> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(BundleError::BadValue {
            what: "--label",
            value: s.to_string(),
            hint: "use KEY=VALUE (or KEY) with a key of visible characters",
        });
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses `--expose PORT[/tcp|/udp]` as `PORT/PROTO`.
pub fn parse_expose(s: &str) -> Result<String, BundleError> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    match (port.parse::<u16>(), proto) {
        (Ok(p), "tcp" | "udp") if p > 0 => Ok(format!("{p}/{proto}")),
        _ => Err(BundleError::BadValue {
            what: "--expose",
            value: s.to_string(),
            hint: "use PORT or PORT/tcp or PORT/udp, with PORT from 1 to 65535",
        }),
    }
}

/// Parses `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy, BundleError> {
    let bad = |hint| BundleError::BadValue {
        what: "--restart",
        value: s.to_string(),
        hint,
    };
    match s.split_once(':') {
        None => RestartPolicy::from_docker(s, 0).map_err(|_| bad(RESTART_HINT)),
        Some(("on-failure", n)) => n
            .parse::<u32>()
            .map(|max_retries| RestartPolicy::OnFailure { max_retries })
            .map_err(|_| bad("the retry count after on-failure: must be a number, 0 or more")),
        Some((p, _)) if ["no", "always", "unless-stopped"].contains(&p) => Err(bad(
            "a maximum retry count goes only with on-failure (on-failure:N)",
        )),
        Some(_) => Err(bad(RESTART_HINT)),
    }
}

/// Parses a docker-style size: `256m`, `1g`, `512k`, `1048576`, `1.5g`
/// (binary units); `None` for anything else.
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some(c) if c.is_ascii_digit() => (t, 1),
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let bytes = n * mult as f64;
    (n.is_finite() && n > 0.0 && bytes <= u64::MAX as f64).then_some(bytes as u64)
}

/// Parses `--memory`: a size of at least 6 MiB.
pub fn parse_memory(s: &str) -> Result<u64, BundleError> {
    let bytes = parse_size(s).ok_or_else(|| BundleError::BadValue {
        what: "--memory",
        value: s.to_string(),
        hint: "use a size such as 256m, 1g or 1048576 (bytes)",
    })?;
    // The kernel needs room for the sandbox itself; below 6 MiB nothing starts (docker's minimum too).
    if bytes < 6u64 << 20 {
        return Err(BundleError::BadValue {
            what: "--memory",
            value: s.to_string(),
            hint: "the minimum memory limit is 6m",
        });
    }
    Ok(bytes)
}

/// Parses `--storage-opt` (docker's and podman's): only `size=SIZE`, the
/// bound of the pod's writable layer ([`parse_storage_size`]).
pub fn parse_storage_opt(s: &str) -> Result<u64, BundleError> {
    match s.strip_prefix("size=") {
        Some(size) => parse_storage_size(size).map_err(|e| match e {
            BundleError::BadValue { hint, .. } => BundleError::BadValue {
                what: "--storage-opt",
                value: s.to_string(),
                hint,
            },
            e => e,
        }),
        None => Err(BundleError::BadValue {
            what: "--storage-opt",
            value: s.to_string(),
            hint: "the only storage option is size=SIZE, e.g. --storage-opt size=10g",
        }),
    }
}

/// The smallest bounded writable layer: ext4's own metadata and journal
/// take a few MiB, and an image's first write needs room.
pub const MIN_STORAGE: u64 = 32 << 20;

/// Parses the size a pod's writable layer is bounded to: at least
/// [`MIN_STORAGE`].
pub fn parse_storage_size(s: &str) -> Result<u64, BundleError> {
    let bad = |hint| BundleError::BadValue {
        what: "storage size",
        value: s.to_string(),
        hint,
    };
    let bytes = parse_size(s).ok_or_else(|| bad("use a size such as 512m or 10g"))?;
    if bytes < MIN_STORAGE {
        return Err(bad("the smallest writable layer is 32m"));
    }
    Ok(bytes)
}

/// Parses `--cpus`: a positive decimal number of cores, at most the host's count.
pub fn parse_cpus(s: &str) -> Result<f64, BundleError> {
    let max = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.01 && n <= max => Ok(n),
        _ => Err(BundleError::BadValue {
            what: "--cpus",
            value: s.to_string(),
            hint: if max > 1.0 {
                "use a number of cores between 0.01 and the host's core count"
            } else {
                "use a number of cores between 0.01 and 1"
            },
        }),
    }
}

/// Parses `-v HOSTDIR:PODDIR[:ro|:rw]`; the host path must exist and the pod path be absolute.
pub fn parse_volume(s: &str) -> Result<Volume, BundleError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, pod, mode) = match parts.as_slice() {
        [h, p] => (*h, *p, None),
        [h, p, m] => (*h, *p, Some(*m)),
        _ => {
            return Err(BundleError::BadValue {
                what: "-v",
                value: s.to_string(),
                hint: "use HOSTDIR:PODDIR or HOSTDIR:PODDIR:ro",
            })
        }
    };
    let readonly = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(_) => {
            return Err(BundleError::BadValue {
                what: "-v",
                value: s.to_string(),
                hint: "the mode after the second colon must be ro or rw",
            })
        }
    };
    if !pod.starts_with('/') || pod.split('/').any(|c| c == "..") {
        return Err(BundleError::BadValue {
            what: "-v",
            value: s.to_string(),
            hint: "the pod path must be absolute and must not contain '..'",
        });
    }
    let host_path = std::fs::canonicalize(host).map_err(|_| BundleError::BadValue {
        what: "-v",
        value: s.to_string(),
        hint: "the host path does not exist; create it first",
    })?;
    // The source is mounted where the user's own words lead, never where a
    // symlink on the way does (a link to / would hand the host to the pod).
    let named = std::env::current_dir()
        .map(|cwd| lexical_absolute(&cwd, Path::new(host)))
        .map_err(|source| BundleError::Io {
            path: PathBuf::from("."),
            source,
        })?;
    if named != host_path {
        return Err(BundleError::SymlinkVolume {
            value: s.to_string(),
            host: host.to_string(),
            real: host_path,
        });
    }
    Ok(Volume {
        host: host_path,
        pod: pod.to_string(),
        readonly,
    })
}

/// `path` made absolute against `cwd` with `.` and `..` applied to the text
/// alone (as `canonicalize` would if nothing on the way were a symlink); `..`
/// at the root stays at the root.
fn lexical_absolute(cwd: &Path, path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in cwd.join(path).components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

/// Parses an env file: K=V lines, `#` comments and blank lines skipped, bare K kept.
pub fn parse_env_file(path: &std::path::Path) -> Result<Vec<String>, BundleError> {
    let text = std::fs::read_to_string(path).map_err(|e| BundleError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        check_env(l).map_err(|_| BundleError::BadValue {
            what: "--env-file",
            value: format!("{}:{}: {l}", path.display(), i + 1),
            hint: "each line must be KEY=VALUE or KEY",
        })?;
        out.push(l.to_string());
    }
    Ok(out)
}

/// Checks one `-e` entry: a non-empty key without '=' or whitespace before the first '='.
pub fn check_env(s: &str) -> Result<(), BundleError> {
    let key = s.split('=').next().unwrap_or("");
    if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c == '\0') {
        return Err(BundleError::BadValue {
            what: "-e",
            value: s.to_string(),
            hint: "use KEY=VALUE",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_exposed_ports() {
        assert_eq!(
            parse_label("team=dev").unwrap(),
            ("team".into(), "dev".into())
        );
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_label("flag").unwrap(), ("flag".into(), String::new()));
        for bad in ["", "=x", "a b=c"] {
            assert!(parse_label(bad)
                .unwrap_err()
                .to_string()
                .contains(&format!("{bad:?}")));
        }
        assert_eq!(parse_expose("80").unwrap(), "80/tcp");
        assert_eq!(parse_expose("53/udp").unwrap(), "53/udp");
        for bad in ["0", "x", "80/sctp", "70000"] {
            assert!(parse_expose(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("256m").unwrap(), 256 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("10485760").unwrap(), 10 << 20);
        assert_eq!(parse_memory("512mb").unwrap(), 512 << 20);
        for bad in ["", "m", "abc", "-5m", "12x", "1k", "nanm"] {
            let e = parse_memory(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn storage_opts() {
        assert_eq!(parse_storage_opt("size=64m").unwrap(), 64 << 20);
        assert_eq!(parse_storage_opt("size=10G").unwrap(), 10 << 30);
        for (bad, says) in [
            ("64m", "size=SIZE"),
            ("inodes=5", "size=SIZE"),
            ("size=", "512m"),
            ("size=big", "512m"),
            ("size=1m", "32m"),
        ] {
            let e = parse_storage_opt(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn cpus_and_volumes() {
        assert_eq!(parse_cpus("0.5").unwrap(), 0.5);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("1000").is_err());
        assert!(parse_cpus("x").is_err());
        let v = parse_volume("/tmp:/data:ro").unwrap();
        assert!(v.readonly && v.pod == "/data");
        assert!(parse_volume("/nonexistent-gvpod-dir:/data")
            .unwrap_err()
            .to_string()
            .contains("/nonexistent-gvpod-dir"));
        assert!(parse_volume("/tmp:data").is_err());
        assert!(parse_volume("/tmp:/a/../b").is_err());
        assert!(parse_volume("/tmp:/a:rx").is_err());
    }

    #[test]
    fn volume_sources_through_symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink("/", base.join("to-root")).unwrap();
        std::os::unix::fs::symlink("real", base.join("to-real")).unwrap();
        let b = base.display();
        // The directory itself, and `..` that the text alone resolves, are fine.
        assert_eq!(
            parse_volume(&format!("{b}/real:/data")).unwrap().host,
            base.join("real")
        );
        assert_eq!(
            parse_volume(&format!("{b}/real/../real/./:/data"))
                .unwrap()
                .host,
            base.join("real")
        );
        // A symlink anywhere on the way is refused with one line naming both paths.
        for (host, real) in [
            (format!("{b}/to-root"), "/".to_string()),
            (format!("{b}/to-root/etc"), "/etc".to_string()),
            (format!("{b}/to-real"), format!("{b}/real")),
            // `..` after a symlink: the text says <base>, the kernel says /.
            (format!("{b}/to-root/.."), "/".to_string()),
        ] {
            let e = parse_volume(&format!("{host}:/data")).unwrap_err();
            assert!(
                matches!(e, BundleError::SymlinkVolume { .. }),
                "{host}: {e}"
            );
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(
                msg.contains(&host) && msg.contains(&format!("symlink to {real};")),
                "{msg}"
            );
            assert_eq!(e.kind(), crate::error::Kind::User);
        }
    }

    #[test]
    fn lexical_paths() {
        let cwd = Path::new("/w/d");
        assert_eq!(
            lexical_absolute(cwd, Path::new("x/../y")),
            Path::new("/w/d/y")
        );
        assert_eq!(
            lexical_absolute(cwd, Path::new("/a/./b/")),
            Path::new("/a/b")
        );
        assert_eq!(
            lexical_absolute(cwd, Path::new("../../../..")),
            Path::new("/")
        );
    }

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("no").unwrap(), RestartPolicy::No);
        assert_eq!(parse_restart("always").unwrap(), RestartPolicy::Always);
        assert_eq!(
            parse_restart("unless-stopped").unwrap(),
            RestartPolicy::UnlessStopped
        );
        assert_eq!(
            parse_restart("on-failure").unwrap(),
            RestartPolicy::OnFailure { max_retries: 0 }
        );
        assert_eq!(
            parse_restart("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        for bad in [
            "sometimes",
            "on-failure:",
            "on-failure:-1",
            "on-failure:x",
            "always:3",
        ] {
            let e = parse_restart(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid --restart {bad:?}: ")),
                "{e}"
            );
        }
        // Docker's API form.
        assert_eq!(
            RestartPolicy::from_docker("", 0).unwrap(),
            RestartPolicy::No
        );
        assert_eq!(
            RestartPolicy::from_docker("on-failure", 2).unwrap(),
            RestartPolicy::OnFailure { max_retries: 2 }
        );
        assert!(RestartPolicy::from_docker("always", 2).is_err());
        assert!(RestartPolicy::from_docker("on-failure", -1).is_err());
        let e = RestartPolicy::from_docker("bogus", 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"bogus\""), "{e}");
        // Stored form, and options stored before policies existed.
        let p = RestartPolicy::OnFailure { max_retries: 2 };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"name":"on-failure","max_retries":2}"#);
        assert_eq!(serde_json::from_str::<RestartPolicy>(&text).unwrap(), p);
        let old: PodOptions = serde_json::from_str(
            r#"{"cmd":[],"entrypoint":null,"env":[],"workdir":null,"user":null,"hostname":null,
                "volumes":[],"memory":null,"cpus":null,"pids_limit":null,"read_only":false,
                "network":"none","platform":null,"runsc_flags":[],"tty":false,"interactive":false}"#,
        )
        .unwrap();
        assert_eq!(old.restart, RestartPolicy::No);
    }

    #[test]
    fn env_entries() {
        assert!(check_env("A=1").is_ok());
        assert!(check_env("A").is_ok());
        assert!(check_env("=1").is_err());
        assert!(check_env("A B=1").is_err());
    }
}

#[cfg(test)]
mod log_limit_tests {
    use super::*;

    #[test]
    fn log_limits_parse_and_default_to_bounded() {
        assert_eq!(parse_log_max_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_log_max_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_log_max_size("0").unwrap(), 0);
        for bad in ["", "10x", "-1", "1k", "1.5m"] {
            assert!(parse_log_max_size(bad).is_err(), "{bad}");
        }
        assert!(parse_log_max_file(0).is_err() && parse_log_max_file(101).is_err());
        assert_eq!(
            LogLimits::default().effective(),
            Some((LogLimits::DEFAULT_SIZE, LogLimits::DEFAULT_FILES))
        );
        let unbounded = LogLimits {
            max_size: Some(0),
            max_file: Some(5),
        };
        assert_eq!(unbounded.effective(), None);
        // Options stored before the field existed read back as the default.
        let o: PodOptions = serde_json::from_str(r#"{"cmd":[],"entrypoint":null,"env":[],"workdir":null,"user":null,"hostname":null,"volumes":[],"memory":null,"cpus":null,"pids_limit":null,"read_only":false,"network":"none","platform":null,"runsc_flags":[],"tty":false,"interactive":false}"#).unwrap();
        assert_eq!(o.log, LogLimits::default());
    }
}
