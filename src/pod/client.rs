//! `pod` in the client build (see lib.rs): only the portable files, the
//! views the API sends ([`views`]), [`PodError`], `--route` parsing, the
//! shell side of `gvpod ssh` and the project's spec files, under the same
//! paths as in the host build (`mod.rs`), which alone has the orchestrator.

mod error;
pub mod project {
    //! A project's spec files (see `mod.rs`).
    pub mod files;
    pub use super::views::Done;
}
pub mod route {
    //! `--route` values and listening ports (see `mod.rs`).
    mod spec;
    pub use super::views::ListeningPort;
    pub use spec::parse_spec;
}
pub mod service {
    //! Services as shown (see `mod.rs`).
    pub use super::views::{ServiceView, PROJECT_LABEL};
}
pub mod snapshots {
    //! Snapshots as shown (see `mod.rs`).
    pub use super::views::SnapshotView;
}
pub mod ssh {
    //! What the remote `gvpod ssh` runs (see `mod.rs`).
    mod shell;
    pub use shell::{command_line, no_dev_user, REMOTE_SHELL};
}
mod views;

pub use error::{PodError, Result};
pub use views::{
    BootLine, CheckpointRequest, CreateRequest, GcReport, NetworkView, OrphanReport, PodStats,
    PodView, RestoreRequest, SystemInfo, Top,
};
