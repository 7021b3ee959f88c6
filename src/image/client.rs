//! `image` in the client build (see lib.rs): only the views the API sends
//! (`gvpod images`, `image prune`); the image store is `mod.rs`, compiled
//! only with `host_runtime`.

mod views;

pub use views::{ImageSummary, PruneReport};
