//! [`PodError`], the pod layer's error: portable (the client build has it,
//! see lib.rs), so the remote client reports a service's errors as the host
//! does. The variants that wrap a Linux-only module's error exist only with
//! `host_runtime`; each kind and exit code is the same in both builds.

use std::path::PathBuf;

use crate::bundle::BundleError;
#[cfg(host_runtime)]
use crate::image::ImageError;
#[cfg(host_runtime)]
use crate::runsc::RunscError;
#[cfg(host_runtime)]
use crate::state::StateError;

/// Errors of the pod layer. `exit_code` maps them to gvpod's documented codes.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("no such pod: {0:?} (see `gvpod ps -a`)")]
    NotFound(String),
    #[error("{0:?} matches several pods ({1}); give more of the id or the name")]
    Ambiguous(String, String),
    #[error("pod {name} is {status}; {hint}")]
    BadState {
        name: String,
        status: &'static str,
        hint: &'static str,
    },
    #[error("invalid pod name {0:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,62}}")]
    BadName(String),
    #[error("{0}")]
    Usage(String),
    #[error("pod {0} was stopped or removed while the command ran in it")]
    EndedDuringExec(String),
    #[error("{cmd:?}: {why} in image {image}")]
    Command {
        cmd: String,
        why: &'static str,
        image: String,
        code: i32,
    },
    #[cfg(host_runtime)]
    #[error(transparent)]
    State(#[from] StateError),
    #[cfg(host_runtime)]
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[cfg(host_runtime)]
    #[error(transparent)]
    Runsc(#[from] RunscError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pod monitor: {0}")]
    Monitor(String),
    #[cfg(host_runtime)]
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// Boxed: a registry error is large, and every `Result` carries this enum.
    #[cfg(host_runtime)]
    #[error(transparent)]
    Registry(Box<crate::image::registry::RegistryError>),
    #[error("checkpoint of pod {pod} failed: {msg}")]
    Checkpoint { pod: String, msg: String },
    #[error("restore of snapshot {snapshot} failed: {msg}")]
    Restore { snapshot: String, msg: String },
    #[error(transparent)]
    Net(crate::net::NetError),
    #[error("image {image:?} is used by pod(s) {pods}; remove them first or use `gvpod rmi -f`")]
    ImageInUse { image: String, pods: String },
    #[error("no such network: {0:?} (see `gvpod network ls`)")]
    NoNetwork(String),
    /// A project's spec files (read by the service for a remote `up`).
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// `up --wait`: a pod or service did not come up.
    #[error("{0}")]
    NotReady(String),
    #[error("gvpod must run as root: it mounts filesystems and starts runsc sandboxes (try: sudo gvpod ...)")]
    NotRoot,
}

#[cfg(host_runtime)]
impl From<crate::image::registry::RegistryError> for PodError {
    fn from(e: crate::image::registry::RegistryError) -> PodError {
        PodError::Registry(Box::new(e))
    }
}

impl PodError {
    /// See [`crate::error::Kind`]; wrapped errors keep their own kind.
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            PodError::NotFound(_) | PodError::NoNetwork(_) => Kind::NotFound,
            PodError::Ambiguous(..)
            | PodError::BadName(_)
            | PodError::Usage(_)
            | PodError::NotRoot
            | PodError::Command { .. } => Kind::User,
            PodError::BadState { .. }
            | PodError::ImageInUse { .. }
            | PodError::NotReady(_)
            | PodError::EndedDuringExec(_) => Kind::Conflict,
            #[cfg(host_runtime)]
            PodError::State(e) => e.kind(),
            #[cfg(host_runtime)]
            PodError::Image(e) => e.kind(),
            PodError::Bundle(e) => e.kind(),
            #[cfg(host_runtime)]
            PodError::Runsc(e) => e.kind(),
            PodError::Net(e) => e.kind(),
            #[cfg(host_runtime)]
            PodError::Snapshot(e) => e.kind(),
            PodError::Spec(e) => e.kind(),
            #[cfg(host_runtime)]
            PodError::Registry(e) => e.kind(),
            PodError::Io { .. }
            | PodError::Monitor(_)
            | PodError::Checkpoint { .. }
            | PodError::Restore { .. } => Kind::Internal,
        }
    }

    /// gvpod's exit code: 126/127 for a command that cannot run in the
    /// pod (as a shell), else from [`PodError::kind`].
    pub fn exit_code(&self) -> i32 {
        match self {
            PodError::Command { code, .. } => *code,
            e => e.kind().exit_code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, PodError>;

crate::util::io_error_fn!(pub(crate) PodError);
