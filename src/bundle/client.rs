//! `bundle` in the client build (see lib.rs): only the portable files, the
//! pod options with their parsers and [`BundleError`], which the client
//! uses to check arguments and spec files as the host does. The bundle
//! builder itself (`mod.rs`) is compiled only with `host_runtime`.

pub mod devuser {
    //! The dev user's name rule and the stored dev access (see `mod.rs`).
    mod access;
    mod edit;
    pub use access::DevAccess;
    pub use edit::valid_name;
}
mod error;
mod options;

pub use error::BundleError;
pub use options::{
    check_env, parse_cpus, parse_env_file, parse_expose, parse_label, parse_log_max_file,
    parse_log_max_size, parse_memory, parse_restart, parse_storage_opt, parse_storage_size,
    parse_volume, LogLimits, PodOptions,
};
