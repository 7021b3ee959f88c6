//! Pod options as given on the command line, validated and stored with the pod.
//! Parsing of sizes, CPU counts and volume specs lives here so that every
//! entry point (run, create, later restore) rejects bad input the same way.

use std::path::PathBuf;

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
}

/// Parses a docker-style size: `256m`, `1g`, `512k`, `1048576`, `1.5g` (binary units).
pub fn parse_memory(s: &str) -> Result<u64, BundleError> {
    let bad = || BundleError::BadValue {
        what: "--memory",
        value: s.to_string(),
        hint: "use a size such as 256m, 1g or 1048576 (bytes)",
    };
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some(c) if c.is_ascii_digit() => (t, 1),
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    let bytes = n * mult as f64;
    // The kernel needs room for the sandbox itself; below 6 MiB nothing starts (docker's minimum too).
    if bytes < (6u64 << 20) as f64 || bytes > u64::MAX as f64 {
        return Err(BundleError::BadValue {
            what: "--memory",
            value: s.to_string(),
            hint: "the minimum memory limit is 6m",
        });
    }
    Ok(bytes as u64)
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
    Ok(Volume {
        host: host_path,
        pod: pod.to_string(),
        readonly,
    })
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
    fn env_entries() {
        assert!(check_env("A=1").is_ok());
        assert!(check_env("A").is_ok());
        assert!(check_env("=1").is_err());
        assert!(check_env("A B=1").is_err());
    }
}
