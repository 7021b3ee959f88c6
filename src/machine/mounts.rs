//! Which host paths a machine sees: the same-path mounts of its
//! `lima.yaml`, and the check every forwarded path goes through.
//!
//! Invariants: only a mount whose `mountPoint` is absent or equal to its
//! location counts (the service opens the client's path as it is, so the
//! path must mean the same file in the VM); `~` and `{{.Home}}` expand to
//! the client's home; a `lima.yaml` without `mounts` has Lima's defaults
//! (`~` read-only, `/tmp/lima` writable). Paths are compared after
//! resolving symlinks where they exist (macOS's `/tmp` is `/private/tmp`).

use std::path::{Component, Path, PathBuf};

use saphyr::{LoadableYamlNode, YamlOwned};

use super::{MachineError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub path: PathBuf,
    pub writable: bool,
}

/// The same-path mounts of one machine.
#[derive(Debug, Clone)]
pub struct Mounts {
    pub machine: String,
    pub list: Vec<Mount>,
}

impl Mounts {
    /// Reads `<instance dir>/lima.yaml`.
    pub fn load(machine: &str, lima_yaml: &Path, home: &Path) -> Result<Mounts> {
        let text = std::fs::read_to_string(lima_yaml).map_err(|source| MachineError::Read {
            path: lima_yaml.to_path_buf(),
            source,
        })?;
        Mounts::parse(machine, &text, home).ok_or_else(|| MachineError::Read {
            path: lima_yaml.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a Lima YAML file"),
        })
    }

    /// The mounts of a `lima.yaml` text; `None` if it is not YAML.
    pub fn parse(machine: &str, text: &str, home: &Path) -> Option<Mounts> {
        let doc = YamlOwned::load_from_str(text).ok()?.into_iter().next();
        let entries = doc
            .as_ref()
            .and_then(|d| d.as_mapping_get("mounts"))
            .and_then(|m| m.as_vec());
        let list = match entries {
            None => vec![
                Mount {
                    path: home.to_path_buf(),
                    writable: false,
                },
                Mount {
                    path: "/tmp/lima".into(),
                    writable: true,
                },
            ],
            Some(entries) => entries
                .iter()
                .filter_map(|m| {
                    let loc = expand(m.as_mapping_get("location")?.as_str()?, home)?;
                    if let Some(mp) = m.as_mapping_get("mountPoint").and_then(|p| p.as_str()) {
                        if expand(mp, home).as_ref() != Some(&loc) {
                            return None;
                        }
                    }
                    let writable = m
                        .as_mapping_get("writable")
                        .and_then(|w| w.as_bool())
                        .unwrap_or(false);
                    Some(Mount {
                        path: loc,
                        writable,
                    })
                })
                .collect(),
        };
        Some(Mounts {
            machine: machine.to_string(),
            list,
        })
    }

    /// `path` (absolute) if the machine sees it at the same path, writable
    /// when `write` says so; else the one-line refusal naming the mounts.
    pub fn check(&self, path: &Path, write: bool) -> Result<()> {
        let p = resolve(path);
        let mut best: Option<(&Mount, PathBuf)> = None;
        for m in &self.list {
            let mp = resolve(&m.path);
            if p.starts_with(&mp)
                && best
                    .as_ref()
                    .is_none_or(|(_, b)| mp.components().count() > b.components().count())
            {
                best = Some((m, mp));
            }
        }
        match best {
            None => Err(MachineError::OutsideMounts {
                path: path.to_path_buf(),
                machine: self.machine.clone(),
                mounts: self.describe(),
            }),
            Some((m, _)) if write && !m.writable => Err(MachineError::ReadOnly {
                path: path.to_path_buf(),
                mount: m.path.clone(),
                machine: self.machine.clone(),
                mounts: self.describe(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// "/Users/me (writable), /tmp/lima (writable)", or "none".
    pub fn describe(&self) -> String {
        if self.list.is_empty() {
            return "none".into();
        }
        self.list
            .iter()
            .map(|m| {
                format!(
                    "{} ({})",
                    m.path.display(),
                    if m.writable { "writable" } else { "read-only" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A mount location as Lima expands it; `None` for a location gvpod
/// cannot expand (another template variable), which then does not count.
fn expand(loc: &str, home: &Path) -> Option<PathBuf> {
    let loc = loc.replace("{{.Home}}", &home.to_string_lossy());
    let p = if loc == "~" {
        home.to_path_buf()
    } else if let Some(rest) = loc.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(&loc)
    };
    (p.is_absolute() && !loc.contains("{{")).then(|| normalize(&p))
}

/// `.` and `..` removed lexically (on an absolute path).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The path with symlinks resolved as far as it exists: the longest
/// existing ancestor canonicalized, the rest appended.
fn resolve(p: &Path) -> PathBuf {
    let p = normalize(p);
    let mut tail = vec![];
    let mut cur = p.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                cur = parent;
            }
            _ => return p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/nonexistent-home/me";

    fn mounts(yaml: &str) -> Mounts {
        Mounts::parse("gvpod", yaml, Path::new(HOME)).unwrap()
    }

    #[test]
    fn same_path_mounts_count_and_others_do_not() {
        let m = mounts(
            "mounts:\n- location: \"~\"\n  writable: true\n- location: /tmp/lima\n  writable: true\n\
             - location: /srv/data\n  mountPoint: /mnt/data\n- location: \"{{.Dir}}/x\"\n\
             - location: \"{{.Home}}/src\"\n  mountPoint: \"~/src\"\n",
        );
        assert_eq!(
            m.list,
            vec![
                Mount {
                    path: HOME.into(),
                    writable: true
                },
                Mount {
                    path: "/tmp/lima".into(),
                    writable: true
                },
                Mount {
                    path: format!("{HOME}/src").into(),
                    writable: false
                },
            ]
        );
        assert!(m.describe().starts_with(&format!("{HOME} (writable), ")));
    }

    #[test]
    fn no_mounts_key_means_limas_defaults() {
        let m = mounts("cpus: 2\n");
        assert_eq!(m.list.len(), 2);
        assert!(!m.list[0].writable && m.list[1].writable);
        assert!(Mounts::parse("x", "a: [", Path::new(HOME)).is_none());
    }

    #[test]
    fn paths_are_checked_against_the_mounts() {
        let m = mounts("mounts:\n- location: \"~\"\n- location: \"~/rw\"\n  writable: true\n");
        assert!(m
            .check(Path::new(&format!("{HOME}/a/b.tar")), false)
            .is_ok());
        assert!(m.check(Path::new(HOME), false).is_ok());
        // The deepest mount decides whether a write is allowed.
        assert!(m
            .check(Path::new(&format!("{HOME}/rw/out.tar")), true)
            .is_ok());
        let e = m
            .check(Path::new(&format!("{HOME}/out.tar")), true)
            .unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        // Siblings that share a prefix are not inside; `..` is resolved.
        for out in [
            "/nonexistent-home/meme/x",
            "/etc/passwd",
            "/nonexistent-home/me/../x",
        ] {
            let e = m.check(Path::new(out), false).unwrap_err();
            let s = e.to_string();
            assert!(s.starts_with(out) && s.contains(HOME), "{s}");
            assert_eq!(e.kind(), crate::error::Kind::User);
            assert_eq!(s.lines().count(), 1);
        }
    }

    #[test]
    fn symlinks_resolve_before_the_comparison() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        let m = Mounts {
            machine: "gvpod".into(),
            list: vec![Mount {
                path: d.path().join("link"),
                writable: true,
            }],
        };
        assert!(m.check(&real.join("new/file"), true).is_ok());
        assert!(m.check(&d.path().join("other"), false).is_err());
    }
}
