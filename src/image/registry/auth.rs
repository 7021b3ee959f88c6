//! Registry credentials.
//!
//! Looked up, for a registry, in gvpod's own auth file `<data root>/auth.json`
//! (written by `gvpod login`, mode 0600), then in Docker's
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. Both use Docker's
//! format: `{"auths": {"<registry>": {"auth": base64("user:password")}}}`;
//! keys may carry a scheme and path (`https://index.docker.io/v1/`) and are
//! compared by host. Credential helpers (`credsStore`, `credHelpers`) are not
//! consulted. No registry entry means anonymous access (the registry may still
//! hand out an anonymous bearer token).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;

use super::{one_line, runtime, transports, RegistryError, Result, Target, Transport};
use crate::image::Reference;

/// Docker's and gvpod's auth file format; unknown fields are kept on rewrite.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AuthJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// The credential files gvpod reads (and the one it writes).
pub struct AuthFile {
    /// gvpod's own file, `<data root>/auth.json`.
    own: PathBuf,
    /// Docker's `config.json`, if a location is known.
    docker: Option<PathBuf>,
}

/// The key a registry is stored under: the host[:port], lower-case, without
/// scheme or path; Docker Hub's aliases all become `docker.io`.
pub fn registry_key(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// `base64("user:password")` → (user, password).
fn decode(auth: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.trim_end_matches('\n').to_string()))
}

fn encode(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

impl AuthFile {
    /// The files for data root `data_root`; Docker's from `$DOCKER_CONFIG` or `$HOME/.docker`.
    pub fn new(data_root: &Path) -> AuthFile {
        let docker = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .map(|d| d.join("config.json"));
        AuthFile {
            own: data_root.join("auth.json"),
            docker,
        }
    }

    /// gvpod's own auth file.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.own
    }

    fn read(path: &Path) -> Result<Option<AuthJson>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| RegistryError::AuthFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::AuthFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Credentials for `registry` in one file, if any.
    fn find_in(path: &Path, key: &str) -> Result<Option<(String, String)>> {
        let Some(j) = Self::read(path)? else {
            return Ok(None);
        };
        for (k, e) in &j.auths {
            if registry_key(k) == key {
                if let Some(a) = &e.auth {
                    return decode(a).map(Some).ok_or_else(|| RegistryError::AuthFile {
                        path: path.display().to_string(),
                        reason: format!("entry {k:?}: \"auth\" is not base64 of user:password"),
                    });
                }
            }
        }
        Ok(None)
    }

    /// The credentials to use for `registry`: gvpod's file, then Docker's, else anonymous.
    pub fn lookup(&self, registry: &str) -> Result<RegistryAuth> {
        let key = registry_key(registry);
        let own = Self::find_in(&self.own, &key)?;
        let found = match own {
            Some(c) => Some(c),
            None => match &self.docker {
                Some(d) => Self::find_in(d, &key)?,
                None => None,
            },
        };
        Ok(match found {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        })
    }

    /// Writes the whole file: temp file (0600), fsync, rename.
    fn write(&self, j: &AuthJson) -> Result<()> {
        let err = |e: std::io::Error| RegistryError::AuthFile {
            path: self.own.display().to_string(),
            reason: e.to_string(),
        };
        let data = serde_json::to_vec_pretty(j).map_err(|e| RegistryError::AuthFile {
            path: self.own.display().to_string(),
            reason: e.to_string(),
        })?;
        let dir = self.own.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(".auth.json.tmp-{}", crate::util::random_hex(6)));
        let res = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.own)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res.map_err(err)
    }

    /// Stores credentials for `registry` in gvpod's file.
    fn store(&self, registry: &str, user: &str, password: &str) -> Result<()> {
        let key = registry_key(registry);
        let mut j = Self::read(&self.own)?.unwrap_or_default();
        j.auths.retain(|k, _| registry_key(k) != key);
        j.auths.insert(
            key,
            AuthEntry {
                auth: Some(encode(user, password)),
                other: Default::default(),
            },
        );
        self.write(&j)
    }

    /// Removes `registry` from gvpod's file; false when it was not there.
    fn remove(&self, registry: &str) -> Result<bool> {
        let key = registry_key(registry);
        let Some(mut j) = Self::read(&self.own)? else {
            return Ok(false);
        };
        let before = j.auths.len();
        j.auths.retain(|k, _| registry_key(k) != key);
        if j.auths.len() == before {
            return Ok(false);
        }
        self.write(&j)?;
        Ok(true)
    }
}

/// What `gvpod login` was asked.
pub struct LoginRequest {
    pub registry: String,
    pub username: Option<String>,
    /// Read the password from stdin (all of it, trailing newline dropped).
    pub password_stdin: bool,
    pub tls_verify: bool,
}

/// Reads one line from the terminal, without echo when `secret`.
fn prompt(label: &str, secret: bool) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(RegistryError::Usage(format!(
            "no {} given and stdin is not a terminal: use -u USER and --password-stdin",
            label.trim_end_matches(": ").to_lowercase()
        )));
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let saved = if secret {
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut t2 = t.clone();
            t2.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t2);
        }
        saved
    } else {
        None
    };
    let mut line = String::new();
    let res = stdin.read_line(&mut line);
    if let Some(t) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
        eprintln!();
    }
    res.map_err(|e| RegistryError::Usage(format!("cannot read {label}: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `gvpod login`: checks the credentials against the registry, then stores
/// them in gvpod's auth file. Returns the registry key stored.
pub fn login(data_root: &Path, req: LoginRequest) -> Result<String> {
    let key = registry_key(&req.registry);
    if key.is_empty() {
        return Err(RegistryError::Usage(format!(
            "invalid registry {:?}",
            req.registry
        )));
    }
    let user = match req.username {
        Some(u) => u,
        None => prompt("Username: ", false)?,
    };
    let password = if req.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            RegistryError::Usage(format!("cannot read the password from stdin: {e}"))
        })?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else {
        prompt("Password: ", true)?
    };
    if user.is_empty() || password.is_empty() {
        return Err(RegistryError::Usage(format!(
            "login to {key}: empty username or password"
        )));
    }
    // A reference in the registry, for oci-client's token exchange.
    let probe = Reference::parse(&format!("{key}/gvpod-login-check"))
        .or_else(|_| Reference::parse(&format!("{key}/library/gvpod-login-check")))
        .map_err(|e| RegistryError::Usage(format!("invalid registry {:?}: {e}", req.registry)))?;
    let target = Target::new(&probe);
    let target = Target {
        reference: key.clone(),
        ..target
    };
    runtime()?.block_on(verify(&target, &user, &password, req.tls_verify))?;
    AuthFile::new(data_root).store(&key, &user, &password)?;
    Ok(key)
}

/// `gvpod logout`: forgets the registry's credentials in gvpod's auth file.
pub fn logout(data_root: &Path, registry: &str) -> Result<String> {
    let key = registry_key(registry);
    if AuthFile::new(data_root).remove(&key)? {
        Ok(key)
    } else {
        Err(RegistryError::NotLoggedIn(key))
    }
}

/// Checks credentials: `GET /v2/` with basic auth answers 200 on a registry
/// that uses basic auth; on one that answers with a bearer challenge the
/// token server must accept them (oci-client does that exchange).
async fn verify(target: &Target, user: &str, password: &str, tls_verify: bool) -> Result<()> {
    let host = target.oci.resolve_registry().to_string();
    let candidates = transports(&target.registry, tls_verify);
    let auth_err = |reason: String| RegistryError::Auth {
        registry: target.registry.clone(),
        reference: target.registry.clone(),
        reason,
    };
    for (i, t) in candidates.iter().enumerate() {
        let scheme = if *t == Transport::Http {
            "http"
        } else {
            "https"
        };
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(*t == Transport::HttpsInsecure)
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| target.protocol(one_line(&e)))?;
        let res = http
            .get(format!("{scheme}://{host}/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) if i + 1 < candidates.len() && (e.is_connect() || e.is_request()) => continue,
            Err(e) => {
                return Err(RegistryError::Unreachable {
                    registry: target.registry.clone(),
                    reference: target.registry.clone(),
                    reason: one_line(&e),
                })
            }
        };
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let bearer = res
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("bearer"));
            if !bearer {
                return Err(auth_err("wrong username or password".into()));
            }
            let client = super::new_client(target, *t)?;
            let creds = RegistryAuth::Basic(user.to_string(), password.to_string());
            return match client
                .auth(&target.oci, &creds, RegistryOperation::Pull)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(auth_err(one_line(&e))),
            };
        }
        return Err(target.protocol(format!("GET /v2/ answered {status}")));
    }
    Err(target.protocol("no transport left"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hosts() {
        assert_eq!(registry_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_key("docker.io"), "docker.io");
        assert_eq!(registry_key("registry-1.docker.io"), "docker.io");
        assert_eq!(registry_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_key("Quay.IO/some/path"), "quay.io");
    }

    #[test]
    fn auth_roundtrip_and_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let f = AuthFile {
            own: dir.path().join("auth.json"),
            docker: Some(dir.path().join("docker.json")),
        };
        assert!(matches!(
            f.lookup("quay.io").unwrap(),
            RegistryAuth::Anonymous
        ));
        // Docker's file, keyed with a scheme and path.
        std::fs::write(
            dir.path().join("docker.json"),
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}},"credsStore":"x"}}"#,
                encode("bob", "s:ecret")
            ),
        )
        .unwrap();
        match f.lookup("docker.io").unwrap() {
            RegistryAuth::Basic(u, p) => assert_eq!((u.as_str(), p.as_str()), ("bob", "s:ecret")),
            other => panic!("{other:?}"),
        }
        // gvpod's own file wins and is 0600.
        f.store("docker.io", "alice", "pw").unwrap();
        match f.lookup("index.docker.io").unwrap() {
            RegistryAuth::Basic(u, _) => assert_eq!(u, "alice"),
            other => panic!("{other:?}"),
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(f.remove("docker.io").unwrap());
        assert!(!f.remove("docker.io").unwrap());
        // Back to Docker's.
        assert!(matches!(f.lookup("docker.io").unwrap(), RegistryAuth::Basic(u, _) if u == "bob"));
        // A malformed entry is an error naming the file.
        std::fs::write(f.path(), r#"{"auths":{"quay.io":{"auth":"!!"}}}"#).unwrap();
        let e = f.lookup("quay.io").unwrap_err().to_string();
        assert!(e.contains("auth.json") && e.contains("quay.io"), "{e}");
        std::fs::write(f.path(), "not json").unwrap();
        assert!(f.lookup("quay.io").is_err());
    }
}
