//! [`BundleError`], the bundle layer's error: portable (the client build
//! checks pod options with the same parsers, see lib.rs). The OCI-spec
//! variant exists only with `host_runtime`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("invalid {what} {value:?}: {hint}")]
    BadValue {
        what: &'static str,
        value: String,
        hint: &'static str,
    },
    #[error(
        "invalid -v {value:?}: the host path {host} leads through a symlink to {real}; name that directory itself if it is the one to mount"
    )]
    SymlinkVolume {
        value: String,
        host: String,
        real: PathBuf,
    },
    #[error("image {0} has no command (no Entrypoint or Cmd); give one after the image name")]
    NoCommand(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot mount {path}: {msg}")]
    Mount { path: PathBuf, msg: String },
    #[cfg(host_runtime)]
    #[error("building the OCI spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("image {0} has no /usr/sbin/sshd, which --ssh needs; install openssh-server in it or drop --ssh")]
    NoSshd(String),
}

impl BundleError {
    /// See [`crate::error::Kind`].
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            BundleError::BadValue { .. }
            | BundleError::SymlinkVolume { .. }
            | BundleError::NoCommand(_)
            | BundleError::NoSshd(_) => Kind::User,
            BundleError::Io { .. } | BundleError::Mount { .. } => Kind::Internal,
            #[cfg(host_runtime)]
            BundleError::Spec(_) => Kind::Internal,
        }
    }
}
