//! gvpod away from the host its pods run on: the remote client mode
//! ([`remote`], `gvpod --url`) and, for macOS, the Lima machine it rides
//! on: the template ([`template`], `lima/gvpod.yaml`), the `limactl`
//! driver ([`lima`]) and the mounts that decide which paths the machine
//! sees ([`mounts`]).
//!
//! Invariants: nothing here depends on Linux-only modules or crates (no
//! nix, netlink, runsc, state; only std, serde, saphyr): the same code is
//! the whole of gvpod on a Mac (DESIGN: `machine` must not depend on
//! Linux-only modules). A machine is a Lima instance whose `lima.yaml`
//! carries the template's `param.gvpodBinary`; its API is the guest's
//! `/run/gvpod/gvpod.sock` forwarded to `<instance dir>/sock/gvpod.sock`,
//! which every forwarded verb uses through [`remote`].

pub mod lima;
pub mod mounts;
pub mod remote;
pub mod template;

use std::path::PathBuf;

/// The machine `gvpod machine` verbs act on when given no name.
pub const DEFAULT_NAME: &str = "gvpod";

/// Errors of the machine verbs and of forwarding to a machine.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("limactl not found on PATH: install Lima (`brew install lima`) and try again")]
    NoLimactl,
    #[error("no machine {0:?}: create it with `gvpod machine init {0}`")]
    NotFound(String),
    #[error("machine {0:?} is stopped: start it with `gvpod machine start {0}`")]
    Stopped(String),
    #[error("machine {0:?} is running: stop it first (`gvpod machine stop {0}`) or use `gvpod machine rm -f {0}`")]
    Running(String),
    #[error("machine {0:?} exists already: start it with `gvpod machine start {0}`, or remove it with `gvpod machine rm -f {0}`")]
    Exists(String),
    #[error("invalid machine name {0:?}: use letters, digits, '-', '_' and '.', starting with a letter or digit (at most 32)")]
    BadName(String),
    #[error("invalid {what} {value:?}: use a size such as 4GiB or 512MiB")]
    BadSize { what: &'static str, value: String },
    #[error("invalid --cpus {0}: use a whole number of CPUs from 1")]
    BadCpus(u32),
    #[error("gvpod machine init needs a Linux build of gvpod {0} for the machine: give it with --gvpod-binary PATH (or GVPOD_LINUX_BINARY)")]
    NoBinary(String),
    #[error("the gvpod binary {0} cannot be used: {1}")]
    BadBinary(PathBuf, String),
    #[error("{path} is not under a directory machine {machine:?} mounts ({mounts}): move it under one of them")]
    OutsideMounts {
        path: PathBuf,
        machine: String,
        mounts: String,
    },
    #[error("{path} is under {mount}, which machine {machine:?} mounts read-only: write under a writable mount instead ({mounts})")]
    ReadOnly {
        path: PathBuf,
        mount: PathBuf,
        machine: String,
        mounts: String,
    },
    #[error("machine {machine:?} runs gvpod {theirs}, this client is {ours}: recreate it with a Linux gvpod {ours} (`gvpod machine rm -f {machine}` then `gvpod machine init --gvpod-binary PATH {machine}`)")]
    Version {
        machine: String,
        theirs: String,
        ours: String,
    },
    #[error("machine {machine:?} started but its gvpod API at {sock} does not answer: see `gvpod machine ssh {machine} -- sudo journalctl -u gvpod.service`")]
    NoApi { machine: String, sock: PathBuf },
    #[error("limactl {verb} {name} failed ({status}){detail}")]
    Limactl {
        verb: &'static str,
        name: String,
        status: String,
        detail: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl MachineError {
    /// See [`crate::error::Kind`].
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            MachineError::NoLimactl
            | MachineError::BadName(_)
            | MachineError::BadSize { .. }
            | MachineError::BadCpus(_)
            | MachineError::NoBinary(_)
            | MachineError::BadBinary(..)
            | MachineError::OutsideMounts { .. }
            | MachineError::ReadOnly { .. }
            | MachineError::Version { .. } => Kind::User,
            MachineError::NotFound(_) => Kind::NotFound,
            MachineError::Stopped(_) | MachineError::Running(_) | MachineError::Exists(_) => {
                Kind::Conflict
            }
            MachineError::NoApi { .. }
            | MachineError::Limactl { .. }
            | MachineError::Read { .. }
            | MachineError::Io(_) => Kind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, MachineError>;

/// A Lima instance name gvpod accepts: what Lima accepts, short enough that
/// `<LIMA_HOME>/<name>/sock/gvpod.sock` fits a unix socket address.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(MachineError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN: `machine` must not depend on Linux-only modules (it is what
    /// gvpod is on a Mac). Its non-test code names no other gvpod module
    /// but `error`, and no Linux-only crate.
    #[test]
    fn the_module_stays_free_of_linux_only_code() {
        let files = [
            ("mod.rs", include_str!("mod.rs")),
            ("lima.rs", include_str!("lima.rs")),
            ("mounts.rs", include_str!("mounts.rs")),
            ("template.rs", include_str!("template.rs")),
            ("remote/mod.rs", include_str!("remote/mod.rs")),
            ("remote/http.rs", include_str!("remote/http.rs")),
        ];
        let linux_only = [
            "nix::",
            "libc::",
            "rtnetlink",
            "netlink",
            "rusqlite",
            "caps::",
            "oci_spec",
            "tokio",
        ];
        for (file, text) in files {
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (n, line) in code.lines().enumerate() {
                let line = line.split("//").next().unwrap();
                let mut rest = line;
                while let Some(i) = rest.find("crate::") {
                    rest = &rest[i + 7..];
                    assert!(
                        rest.starts_with("error") || rest.starts_with("machine"),
                        "{file}:{}: {line}",
                        n + 1
                    );
                }
                for bad in linux_only {
                    // As a path of its own (`std::os::unix::` is not `nix::`).
                    let named = line.match_indices(bad).any(|(i, _)| {
                        !line[..i]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_alphanumeric() || c == '_')
                    });
                    assert!(!named, "{file}:{}: {line}", n + 1);
                }
            }
        }
    }

    #[test]
    fn names_are_lima_instance_names() {
        for good in ["gvpod", "dev-1", "a.b_c", "X9"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "é", &"x".repeat(33)] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::User);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
