//! Registry client: `pull`, `push`, `login` and `logout` against any OCI
//! distribution / Docker registry v2, through the `oci-client` crate.
//!
//! The async machinery (a current-thread tokio runtime) is created only on
//! these paths, so the other commands never pay for it. Blobs stream from the
//! network straight into [`ImageStore::ingest_blob`](super::ImageStore) on a
//! helper thread per blob (at most [`PARALLEL_BLOBS`] at a time); no layer is
//! ever held in memory. Transport rules: plain HTTP for registries on
//! loopback (`localhost`, `127.0.0.0/8`, `[::1]`); with `--tls-verify=false`,
//! HTTPS without certificate checks first, then plain HTTP; otherwise HTTPS.
//! Credentials: gvpod's own auth file (`gvpod login`), then Docker's
//! `config.json`, else anonymous (with bearer tokens when the registry asks).

mod auth;
mod progress;
mod pull;
mod push;

use std::net::IpAddr;

use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

pub use auth::{login, logout, LoginRequest};
pub use progress::{ProgressSink, PullEvent};
pub use pull::{pull, PullOptions};
pub use push::{push, PushOptions};

use super::{ImageError, Reference};

/// How many blobs download (or upload) at the same time.
pub const PARALLEL_BLOBS: usize = 3;

/// Errors of the registry client, each naming the registry and reference involved.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("image {reference} not found in registry {registry}: {reason}")]
    NotFound {
        registry: String,
        reference: String,
        reason: String,
    },
    #[error("registry {registry} unreachable (for {reference}): {reason}")]
    Unreachable {
        registry: String,
        reference: String,
        reason: String,
    },
    #[error("registry {registry}: authentication failed for {reference}: {reason}; use `gvpod login {registry}`")]
    Auth {
        registry: String,
        reference: String,
        reason: String,
    },
    #[error("registry {registry}: {what} of {reference} does not match its digest: {reason}")]
    Digest {
        registry: String,
        reference: String,
        what: String,
        reason: String,
    },
    #[error("registry {registry}: {reference}: no image for platform {platform} in the index (it has {available})")]
    NoPlatform {
        registry: String,
        reference: String,
        platform: String,
        available: String,
    },
    #[error("registry {registry}: {reference}: unsupported {what} {media_type:?}")]
    Unsupported {
        registry: String,
        reference: String,
        what: &'static str,
        media_type: String,
    },
    #[error("registry {registry}: {reference}: {reason}")]
    Protocol {
        registry: String,
        reference: String,
        reason: String,
    },
    /// A reference that does not parse (the message names it).
    #[error(transparent)]
    BadReference(ImageError),
    #[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64")]
    InvalidPlatform(String),
    #[error("{reference}: {source}")]
    Store {
        reference: String,
        #[source]
        source: ImageError,
    },
    #[error("not logged in to {0}")]
    NotLoggedIn(String),
    #[error("{0}")]
    Usage(String),
    #[error("auth file {path}: {reason}")]
    AuthFile { path: String, reason: String },
    #[error("cannot start the async runtime for the registry client: {0}")]
    Runtime(std::io::Error),
}

impl RegistryError {
    /// See [`crate::error::Kind`]: an unknown image or tag, a bad platform or
    /// reference, not logged in: the user's; an unreachable registry or a
    /// protocol failure: gvpod's (125).
    pub fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            RegistryError::NotFound { .. } => Kind::NotFound,
            RegistryError::NoPlatform { .. }
            | RegistryError::InvalidPlatform(_)
            | RegistryError::NotLoggedIn(_)
            | RegistryError::Usage(_) => Kind::User,
            RegistryError::BadReference(e) | RegistryError::Store { source: e, .. } => e.kind(),
            RegistryError::Unreachable { .. }
            | RegistryError::Auth { .. }
            | RegistryError::Digest { .. }
            | RegistryError::Unsupported { .. }
            | RegistryError::Protocol { .. }
            | RegistryError::AuthFile { .. }
            | RegistryError::Runtime(_) => Kind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

/// The registry and reference an operation is about, for error messages.
#[derive(Debug, Clone)]
struct Target {
    /// As the user's reference names it (`docker.io`, `127.0.0.1:5000`).
    registry: String,
    /// The full normalised reference.
    reference: String,
    /// The same reference for oci-client.
    oci: oci_client::Reference,
}

impl Target {
    fn new(r: &Reference) -> Target {
        let oci = match (&r.tag, &r.digest) {
            (_, Some(d)) => oci_client::Reference::with_digest(
                r.registry.clone(),
                r.repository.clone(),
                d.clone(),
            ),
            (Some(t), None) => {
                oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone())
            }
            (None, None) => oci_client::Reference::with_tag(
                r.registry.clone(),
                r.repository.clone(),
                super::reference::DEFAULT_TAG.to_string(),
            ),
        };
        Target {
            registry: r.registry.clone(),
            reference: r.to_string(),
            oci,
        }
    }

    /// The same repository at `digest`.
    fn at_digest(&self, digest: &str) -> oci_client::Reference {
        oci_client::Reference::with_digest(
            self.oci.registry().to_string(),
            self.oci.repository().to_string(),
            digest.to_string(),
        )
    }

    fn protocol(&self, reason: impl Into<String>) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            reason: reason.into(),
        }
    }

    fn store(&self, source: ImageError) -> RegistryError {
        RegistryError::Store {
            reference: self.reference.clone(),
            source,
        }
    }

    /// Sorts an oci-client error into ours. `what` names the object being
    /// fetched (`manifest`, `blob sha256:…`) for "not found" and digest errors.
    fn classify(&self, what: &str, e: OciDistributionError) -> RegistryError {
        let registry = self.registry.clone();
        let reference = self.reference.clone();
        let reason = one_line(&e);
        match &e {
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|x| &x.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    RegistryError::Auth {
                        registry,
                        reference,
                        reason,
                    }
                } else if what == "manifest"
                    && codes.iter().any(|c| {
                        matches!(
                            c,
                            OciErrorCode::ManifestUnknown
                                | OciErrorCode::NameUnknown
                                | OciErrorCode::NotFound
                        )
                    })
                {
                    RegistryError::NotFound {
                        registry,
                        reference,
                        reason: envelope
                            .errors
                            .iter()
                            .map(|x| x.message.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    }
                } else {
                    RegistryError::Protocol {
                        registry,
                        reference,
                        reason: format!("{what}: {reason}"),
                    }
                }
            }
            OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
                registry,
                reference,
                reason,
            },
            OciDistributionError::ServerError { code: 404, .. } if what == "manifest" => {
                RegistryError::NotFound {
                    registry,
                    reference,
                    reason: "manifest unknown".into(),
                }
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::RegistryTokenDecodeError(_)
            | OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => RegistryError::Auth {
                registry,
                reference,
                reason,
            },
            OciDistributionError::DigestError(_) => RegistryError::Digest {
                registry,
                reference,
                what: what.to_string(),
                reason,
            },
            OciDistributionError::RequestError(r)
                if matches!(r.status().map(|s| s.as_u16()), Some(401 | 403)) =>
            {
                RegistryError::Auth {
                    registry,
                    reference,
                    reason,
                }
            }
            OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => {
                RegistryError::Unreachable {
                    registry,
                    reference,
                    reason,
                }
            }
            _ => RegistryError::Protocol {
                registry,
                reference,
                reason: format!("{what}: {reason}"),
            },
        }
    }
}

/// An error and its sources on one line (reqwest hides the cause otherwise).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s.replace('\n', " ")
}

/// True for registries on the loopback interface (`localhost[:port]`,
/// `127.x.y.z[:port]`, `[::1][:port]`): these are spoken to in plain HTTP.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How to speak to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Https,
    /// HTTPS without certificate verification (`--tls-verify=false`).
    HttpsInsecure,
    Http,
}

/// Transports to try, in order, for `registry`.
fn transports(registry: &str, tls_verify: bool) -> Vec<Transport> {
    if is_loopback(registry) {
        vec![Transport::Http]
    } else if !tls_verify {
        vec![Transport::HttpsInsecure, Transport::Http]
    } else {
        vec![Transport::Https]
    }
}

fn new_client(target: &Target, transport: Transport) -> Result<Client> {
    use oci_client::client::{ClientConfig, ClientProtocol};
    let protocol = match transport {
        Transport::Http => {
            // oci-client compares against the registry it resolves (docker.io → index.docker.io).
            ClientProtocol::HttpsExcept(vec![target.oci.resolve_registry().to_string()])
        }
        _ => ClientProtocol::Https,
    };
    let config = ClientConfig {
        protocol,
        accept_invalid_certificates: transport == Transport::HttpsInsecure,
        use_monolithic_push: true,
        platform_resolver: None,
        max_concurrent_upload: PARALLEL_BLOBS,
        max_concurrent_download: PARALLEL_BLOBS,
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        read_timeout: Some(std::time::Duration::from_secs(300)),
        user_agent: concat!("gvpod/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    Client::try_from(config)
        .map_err(|e| target.protocol(format!("cannot build the HTTP client: {}", one_line(&e))))
}

/// Connects to the target's registry for `op`: picks the transport (see the
/// module doc), authenticates (anonymous bearer token, or the stored
/// credentials), and returns the ready client.
async fn connect(
    target: &Target,
    auth: &RegistryAuth,
    tls_verify: bool,
    op: RegistryOperation,
) -> Result<Client> {
    let candidates = transports(&target.registry, tls_verify);
    let mut last = None;
    for (i, t) in candidates.iter().enumerate() {
        let client = new_client(target, *t)?;
        match client.auth(&target.oci, auth, op).await {
            Ok(_) => return Ok(client),
            Err(OciDistributionError::RequestError(e))
                if i + 1 < candidates.len() && (e.is_connect() || e.is_request()) =>
            {
                tracing::debug!(registry = %target.registry, transport = ?t, error = %e, "transport failed, trying the next");
                last = Some(OciDistributionError::RequestError(e));
            }
            Err(e) => return Err(target.classify("authentication", e)),
        }
    }
    Err(target.classify(
        "connection",
        last.unwrap_or(OciDistributionError::GenericError(None)),
    ))
}

/// A current-thread tokio runtime, made only for registry operations.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)
}

/// `sha256:<hex>` of `data`.
fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// The first 12 hex digits of a digest, for progress lines.
fn short_digest(d: &str) -> &str {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
            "reg.localhost:80",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "quay.io:443",
            "198.19.0.1:5000",
            "[fe80::1]:5000",
            "localhostx",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn transport_order() {
        assert_eq!(transports("127.0.0.1:5000", true), vec![Transport::Http]);
        assert_eq!(transports("quay.io", true), vec![Transport::Https]);
        assert_eq!(
            transports("quay.io", false),
            vec![Transport::HttpsInsecure, Transport::Http]
        );
    }

    #[test]
    fn targets_keep_the_reference() {
        let r = Reference::parse("127.0.0.1:5000/ns/app:v1").unwrap();
        let t = Target::new(&r);
        assert_eq!(t.registry, "127.0.0.1:5000");
        assert_eq!(t.oci.repository(), "ns/app");
        assert_eq!(t.oci.tag(), Some("v1"));
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(t.at_digest(&d).digest(), Some(d.as_str()));
        let hub = Target::new(&Reference::parse("alpine").unwrap());
        assert_eq!(hub.oci.resolve_registry(), "index.docker.io");
        assert_eq!(hub.oci.repository(), "library/alpine");
    }

    #[test]
    fn registry_errors_are_sorted_by_what_the_user_can_do() {
        use oci_client::errors::{OciEnvelope, OciError};
        let t = Target::new(&Reference::parse("127.0.0.1:5000/app:v1").unwrap());
        let envelope = |code: OciErrorCode| OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "manifest unknown".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://127.0.0.1:5000/v2/app/manifests/v1".into(),
        };
        let server = |code: u16| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: "m".into(),
        };
        let cases: Vec<(&str, OciDistributionError, &str, i32)> = vec![
            (
                "manifest",
                envelope(OciErrorCode::ManifestUnknown),
                "not found",
                2,
            ),
            (
                "manifest",
                envelope(OciErrorCode::NameUnknown),
                "not found",
                2,
            ),
            ("manifest", server(404), "not found", 2),
            (
                "blob sha256:x",
                envelope(OciErrorCode::BlobUnknown),
                "blob sha256:x",
                125,
            ),
            (
                "manifest",
                envelope(OciErrorCode::Denied),
                "authentication failed",
                125,
            ),
            ("manifest", server(401), "authentication failed", 125),
            (
                "manifest",
                OciDistributionError::UnauthorizedError { url: "u".into() },
                "authentication failed",
                125,
            ),
            (
                "blob sha256:x",
                oci_client::errors::DigestError::VerificationError {
                    expected: "a".into(),
                    actual: "b".into(),
                }
                .into(),
                "does not match its digest",
                125,
            ),
            ("manifest", server(500), "manifest", 125),
        ];
        for (what, e, needle, code) in cases {
            let r = t.classify(what, e);
            let msg = r.to_string();
            assert!(msg.contains(needle), "{msg}");
            assert!(msg.contains("127.0.0.1:5000"), "{msg}");
            assert!(msg.contains("127.0.0.1:5000/app:v1"), "{msg}");
            assert_eq!(r.kind().exit_code(), code, "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn short_digests() {
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "abababababab"
        );
        assert_eq!(short_digest("sha256:ab"), "ab");
    }
}
