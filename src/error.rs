//! One classification of every gvpod error, from which both front ends
//! derive what they report: the CLI's exit code (and the API's HTTP
//! status: 400, 404, 409, 500).
//! Each error enum says its [`Kind`] in one `kind()` next to its variants
//! (wrapped errors ask the error they wrap), so `gvpod rmi sha256:zz` and
//! `gvpod run sha256:zz` cannot disagree.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The user asked for something invalid: a bad name, value, option or
    /// input file, or an operation the object's state does not allow.
    User,
    /// What the user named does not exist (pod, image, snapshot, network).
    NotFound,
    /// The request clashes with what exists (a taken name, port, address;
    /// a pod in the wrong state for it).
    Conflict,
    /// gvpod, runsc or the host failed.
    Internal,
}

impl Kind {
    /// gvpod's documented exit code: 2 for anything the user can fix by
    /// changing the command, 125 when gvpod itself failed. (A command that
    /// cannot run in the pod exits 126/127; a pod's own exit code passes
    /// through: both are decided by the pod layer, not here.)
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::User | Kind::NotFound | Kind::Conflict => 2,
            Kind::Internal => 125,
        }
    }
}

/// The exit code for an error a front end got back: a pod error decides
/// its own (126/127 for a command that cannot run), every other known error
/// by its [`Kind`], anything else is gvpod's own failure (125).
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(p) = e.downcast_ref::<crate::pod::PodError>() {
        return p.exit_code();
    }
    if let Some(r) = e.downcast_ref::<crate::machine::remote::RemoteError>() {
        return r.exit_code();
    }
    kind_of(e).exit_code()
}

/// The [`Kind`] of an error a front end got back.
pub fn kind_of(e: &anyhow::Error) -> Kind {
    macro_rules! try_kind {
        ($($t:ty),*) => {
            $(if let Some(x) = e.downcast_ref::<$t>() {
                return x.kind();
            })*
        };
    }
    try_kind!(
        crate::pod::PodError,
        crate::bundle::BundleError,
        crate::spec::SpecError,
        crate::net::NetError,
        crate::machine::remote::RemoteError,
        crate::machine::MachineError
    );
    // The runtime's own errors (none reach a client build's front end).
    #[cfg(host_runtime)]
    try_kind!(
        crate::image::ImageError,
        crate::image::registry::RegistryError,
        crate::snapshot::SnapshotError,
        crate::state::StateError,
        crate::runsc::RunscError,
        crate::api::ApiError,
        crate::bench::BenchError
    );
    Kind::Internal
}

/// Whether `e` or an error it wraps is a full disk (ENOSPC, or EDQUOT: a
/// quota counts as full). Where an error names the file it read rather
/// than the one it wrote, the caller re-says it naming the file written.
pub fn disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if x.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|c| c == libc::ENOSPC || c == libc::EDQUOT)
        {
            return true;
        }
        cur = x.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(host_runtime)]
    use crate::image::ImageError;
    use crate::pod::PodError;

    #[test]
    fn a_full_disk_is_found_through_wrappers() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(disk_full(&full));
        let wrapped = PodError::Io {
            what: "cannot write",
            path: "/x".into(),
            source: full,
        };
        assert!(disk_full(&wrapped));
        assert!(!disk_full(&std::io::Error::from_raw_os_error(libc::EIO)));
    }

    #[test]
    fn codes_and_statuses_follow_the_kind() {
        let all = [Kind::User, Kind::NotFound, Kind::Conflict, Kind::Internal];
        let codes: Vec<i32> = all.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes, [2, 2, 2, 125]);
    }

    /// What a client build's front end meets: the same codes as the host's.
    #[test]
    fn portable_errors_keep_their_codes() {
        let mount = crate::bundle::BundleError::Mount {
            path: "/x".into(),
            msg: "EPERM".into(),
        };
        assert_eq!(exit_code(&anyhow::Error::from(mount)), 125);
        let port = crate::net::parse_port("0").unwrap_err();
        assert_eq!(exit_code(&anyhow::Error::from(port)), 2);
        let stopped = anyhow::Error::from(crate::machine::MachineError::Stopped("gvpod".into()));
        assert_eq!(
            (kind_of(&stopped), exit_code(&stopped)),
            (Kind::Conflict, 2)
        );
        let gone = PodError::NotFound("web".into());
        assert_eq!(kind_of(&anyhow::Error::from(gone)), Kind::NotFound);
    }

    #[cfg(host_runtime)]
    #[test]
    fn an_error_means_the_same_wherever_it_surfaces() {
        // `rmi sha256:zz` gets the image error itself; `run sha256:zz` the
        // same error wrapped by the pod layer: one exit code.
        let bare = || ImageError::InvalidId("sha256:zz".into());
        let direct = anyhow::Error::from(bare());
        let wrapped = anyhow::Error::from(PodError::Image(bare()));
        assert_eq!(exit_code(&direct), 2);
        assert_eq!(exit_code(&wrapped), 2);
        assert_eq!(kind_of(&direct), kind_of(&wrapped));
        // So for a bundle failure that is the host's, not the user's.
        let mount = crate::bundle::BundleError::Mount {
            path: "/x".into(),
            msg: "EPERM".into(),
        };
        assert_eq!(exit_code(&anyhow::Error::from(mount)), 125);
        let missing = anyhow::Error::from(ImageError::NotFound("nosuch".into()));
        assert_eq!(kind_of(&missing), Kind::NotFound);
        assert_eq!(kind_of(&anyhow::anyhow!("anything else")), Kind::Internal);
        // A command that cannot run keeps its shell code.
        let cmd = PodError::Command {
            cmd: "nosuch".into(),
            why: "executable file not found",
            image: "busybox".into(),
            code: 127,
        };
        assert_eq!(exit_code(&anyhow::Error::from(cmd)), 127);
    }
}
