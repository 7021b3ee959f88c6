//! Per-pod ssh host keys, kept in the data root keyed by **pod name**
//! (`<root>/ssh/<name>/ssh_host_ed25519_key`), and the known_hosts file that
//! names them (`<root>/ssh/known_hosts`, a line `NAME.gvpod ssh-ed25519 …`
//! per pod name with keys).
//!
//! Invariants: a name's keys are made once (ed25519, in Rust, from the
//! kernel's random source) and never replaced, so they outlive `restart`,
//! `checkpoint` + `restore` and `rm` + `run` under the same name; a pod
//! under a new name gets its own. The private key is 0600 in a 0700
//! directory (sshd refuses group- or world-readable keys). known_hosts is
//! rewritten atomically from the key files whenever a key is made, under
//! an exclusive lock, so concurrent creates cannot lose a line.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{LineEnding, PrivateKey, PublicKey};

use super::super::{io, PodError, Result};

/// The private host key's file name (sshd's usual one).
pub const HOST_KEY: &str = "ssh_host_ed25519_key";

/// `<root>/ssh`.
pub fn ssh_dir(root: &Path) -> PathBuf {
    root.join("ssh")
}

/// `<root>/ssh/known_hosts`.
pub fn known_hosts(root: &Path) -> PathBuf {
    ssh_dir(root).join("known_hosts")
}

/// The ssh host name of a pod: `NAME.gvpod`, lowercase (ssh lowercases
/// the host it is given before matching known_hosts or config).
pub fn host_name(pod: &str) -> String {
    format!("{}.gvpod", pod.to_ascii_lowercase())
}

/// The directory of pod `name`'s host keys, made with keys when missing.
pub fn ensure(root: &Path, name: &str) -> Result<PathBuf> {
    // 0755: known_hosts is read by ssh clients that are not root; each
    // name's keys sit in a 0700 directory below.
    let base = ssh_dir(root);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&base)
        .map_err(io("cannot create", &base))?;
    let lock_path = base.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io("cannot open", &lock_path))?;
    crate::sys::flock_exclusive(lock.as_fd()).map_err(io("cannot lock", &lock_path))?;
    let dir = base.join(name);
    let key = dir.join(HOST_KEY);
    if key.exists() {
        return Ok(dir);
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        })
        .map_err(io("cannot create", &dir))?;
    let (private, public) = generate(&host_name(name))?;
    write_file(
        &dir.join(format!("{HOST_KEY}.pub")),
        public.as_bytes(),
        0o644,
    )?;
    // The private key last: its presence says the pair is complete.
    write_file(&key, private.as_bytes(), 0o600)?;
    let text = known_hosts_text(&base)?;
    write_file(&known_hosts(root), text.as_bytes(), 0o644)?;
    Ok(dir)
}

/// A new ed25519 key pair as OpenSSH text: (private, public line).
fn generate(comment: &str) -> Result<(String, String)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| PodError::Monitor(format!("random source: {e}")))?;
    let pair = Ed25519Keypair::from_seed(&seed);
    let bad = |e: ssh_key::Error| PodError::Monitor(format!("ssh host key: {e}"));
    let key = PrivateKey::new(KeypairData::Ed25519(pair), comment).map_err(bad)?;
    let private = key.to_openssh(LineEnding::LF).map_err(bad)?;
    let public = key.public_key().to_openssh().map_err(bad)?;
    Ok((private.to_string(), format!("{public}\n")))
}

/// The public host key of pod `name` (`TYPE BASE64`), when it has one.
pub fn public_key(root: &Path, name: &str) -> Option<String> {
    let p = ssh_dir(root).join(name).join(format!("{HOST_KEY}.pub"));
    let text = std::fs::read_to_string(p).ok()?;
    // Checked as a key; given as `TYPE BASE64` (no comment).
    PublicKey::from_openssh(text.trim()).ok()?;
    let mut w = text.split_whitespace();
    Some(format!("{} {}", w.next()?, w.next()?))
}

/// known_hosts for every `<base>/<name>/` with a public key, sorted by name.
fn known_hosts_text(base: &Path) -> Result<String> {
    let mut lines = vec![];
    for e in std::fs::read_dir(base).map_err(io("cannot read", base))? {
        let e = e.map_err(io("cannot read", base))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.path().is_dir() {
            continue;
        }
        let Some(root) = base.parent() else { continue };
        if let Some(k) = public_key(root, &name) {
            lines.push(known_hosts_line(&name, &k));
        }
    }
    lines.sort();
    Ok(lines.concat())
}

/// One known_hosts line: `NAME.gvpod TYPE BASE64` (the key's comment dropped).
pub fn known_hosts_line(name: &str, public: &str) -> String {
    let mut w = public.split_whitespace();
    let (t, b) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    format!("{} {t} {b}\n", host_name(name))
}

/// Writes a file atomically (temp + fsync + rename) with `mode` from the start.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}", crate::util::random_hex(6)));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_made_once_per_name() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let a = ensure(root, "web").unwrap();
        let key_a = std::fs::read_to_string(a.join(HOST_KEY)).unwrap();
        assert!(key_a.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let mode = std::fs::metadata(a.join(HOST_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Again (restart, restore, rm + run): the same key.
        ensure(root, "web").unwrap();
        assert_eq!(std::fs::read_to_string(a.join(HOST_KEY)).unwrap(), key_a);
        // Another name: another key; both in known_hosts.
        ensure(root, "Api").unwrap();
        let kh = std::fs::read_to_string(known_hosts(root)).unwrap();
        let lines: Vec<&str> = kh.lines().collect();
        assert_eq!(lines.len(), 2, "{kh}");
        assert!(lines[0].starts_with("api.gvpod ssh-ed25519 "), "{kh}");
        assert!(lines[1].starts_with("web.gvpod ssh-ed25519 "), "{kh}");
        let pa = public_key(root, "web").unwrap();
        let pb = public_key(root, "Api").unwrap();
        assert_ne!(pa, pb);
        assert_eq!(
            format!("web.gvpod {}\n", pa.trim()),
            lines[1].to_string() + "\n"
        );
    }
}
