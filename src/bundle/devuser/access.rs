//! [`DevAccess`], a pod's dev access as stored with its options: portable
//! (the client build has the pod options, see lib.rs).

use serde::{Deserialize, Serialize};

use super::valid_name;
use crate::bundle::BundleError;

/// Dev access of a pod (`--dev-user`, `--ssh`, `--ssh-key`), stored with
/// its options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevAccess {
    /// The dev user's name (`--dev-user`; `dev` when only `--ssh` is given).
    #[serde(default)]
    pub user: Option<String>,
    /// Run sshd in the pod with gvpod's per-pod host keys (`--ssh`).
    #[serde(default)]
    pub ssh: bool,
    /// Public keys (OpenSSH lines) for the dev user's authorized_keys.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
}

/// The dev user `--ssh` gets when no `--dev-user` is given.
pub const DEFAULT_SSH_USER: &str = "dev";

impl DevAccess {
    /// Checks what needs no image: the user name, and that `--ssh` has
    /// keys. `--ssh` alone gets the user [`DEFAULT_SSH_USER`].
    pub fn checked(mut self) -> Result<DevAccess, BundleError> {
        if self.ssh && self.user.is_none() {
            self.user = Some(DEFAULT_SSH_USER.to_string());
        }
        if let Some(u) = &self.user {
            if !valid_name(u) {
                return Err(BundleError::BadValue {
                    what: "--dev-user",
                    value: u.clone(),
                    hint: "use a user name of lowercase letters, digits, _ and -, starting with a letter or _ (at most 32)",
                });
            }
        }
        if !self.authorized_keys.is_empty() && self.user.is_none() {
            return Err(BundleError::BadValue {
                what: "--ssh-key",
                value: "without a dev user".into(),
                hint: "the keys are authorized for the dev user: add --dev-user NAME or --ssh",
            });
        }
        Ok(self)
    }
}
