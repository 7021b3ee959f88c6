//! `--dev-user`/`--ssh`/`--ssh-key` of `run` and `create`, and the verbs
//! `ssh`, `ssh-config`, `ssh-proxy` (the logic is `pod::ssh`). The caller's
//! public keys are read here, on the client side: they are the invoking
//! user's (SUDO_USER's under sudo).

#[cfg(host_runtime)]
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::bundle::devuser::DevAccess;
use crate::pod::PodError;
#[cfg(host_runtime)]
use crate::pod::{self, Ctx};

/// Dev access options of `run` and `create`.
#[derive(Args, Default)]
pub struct DevArgs {
    /// Create user NAME in the pod (uid 1000 unless taken, home, the image's
    /// login shell, no password, passwordless sudo when the image has sudo);
    /// `gvpod ssh POD` logs in as it.
    #[arg(long, value_name = "NAME")]
    pub dev_user: Option<String>,
    /// Run sshd in the pod (the image needs /usr/sbin/sshd) with host keys
    /// gvpod keeps per pod name; keys only. The dev user defaults to `dev`.
    /// See `gvpod ssh-config`.
    #[arg(long)]
    pub ssh: bool,
    /// Public key file to authorize for the dev user (repeatable; default
    /// with --ssh: every ~/.ssh/id_*.pub of the invoking user).
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Vec<PathBuf>,
}

impl DevArgs {
    /// The pod's [`DevAccess`]: names as given (checked by `pod::create`),
    /// keys read from their files.
    pub fn to_access(&self) -> anyhow::Result<DevAccess> {
        if !self.ssh_key.is_empty() && self.dev_user.is_none() && !self.ssh {
            return Err(PodError::Usage(
                "--ssh-key needs --dev-user NAME or --ssh: the keys are authorized for the dev user"
                    .into(),
            )
            .into());
        }
        let mut files = self.ssh_key.clone();
        if files.is_empty() && self.ssh {
            files = default_keys();
            if files.is_empty() {
                return Err(PodError::Usage(format!(
                    "--ssh found no public key in {}; pass one with --ssh-key FILE",
                    home_dir().join(".ssh/id_*.pub").display()
                ))
                .into());
            }
        }
        let mut keys = vec![];
        for f in &files {
            keys.extend(read_keys(f)?);
        }
        Ok(DevAccess {
            user: self.dev_user.clone(),
            ssh: self.ssh,
            authorized_keys: keys,
        })
    }
}

/// The invoking user's home: SUDO_USER's under sudo, else $HOME.
fn home_dir() -> PathBuf {
    if let Ok(u) = std::env::var("SUDO_USER") {
        if let Ok(Some(u)) = nix::unistd::User::from_name(&u) {
            return u.dir;
        }
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Every `~/.ssh/id_*.pub`, sorted.
fn default_keys() -> Vec<PathBuf> {
    let dir = home_dir().join(".ssh");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("id_") && n.ends_with(".pub"))
        })
        .collect();
    out.sort();
    out
}

/// The public keys of a file (authorized_keys style: one per line).
fn read_keys(f: &Path) -> anyhow::Result<Vec<String>> {
    let bad = |why: String| PodError::Usage(format!("--ssh-key {}: {why}", f.display()));
    let text = std::fs::read_to_string(f).map_err(|e| bad(e.to_string()))?;
    let mut keys = vec![];
    for l in text.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.contains("PRIVATE KEY") {
            return Err(bad("this is a private key; give the .pub file".into()).into());
        }
        ssh_key::PublicKey::from_openssh(l)
            .map_err(|e| bad(format!("not an OpenSSH public key ({e})")))?;
        keys.push(l.to_string());
    }
    if keys.is_empty() {
        return Err(bad("no public key in it".into()).into());
    }
    Ok(keys)
}

/// `gvpod ssh`.
#[derive(Args)]
pub struct SshArgs {
    pub pod: String,
    /// Command run by the dev user's login shell (default: an interactive
    /// login shell). One word is a shell command line; several are quoted.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// `gvpod ssh-config`.
#[derive(Args)]
pub struct SshConfigArgs {
    /// Output format: text (an ssh_config) or json (the hosts).
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Run ssh-proxy with `sudo -n`, for an ssh client that is not root
    /// (the default when gvpod itself runs under sudo).
    #[arg(long)]
    pub sudo: bool,
}

/// `gvpod ssh-proxy`.
#[derive(Args)]
pub struct SshProxyArgs {
    /// NAME.gvpod (ssh's %h).
    pub host: String,
}

#[cfg(host_runtime)]
pub fn ssh(ctx: &mut Ctx, a: SshArgs) -> anyhow::Result<i32> {
    let p = ctx.lookup(&a.pod)?;
    let tty = nix::unistd::isatty(std::io::stdin().as_raw_fd()).unwrap_or(false);
    let req = pod::ssh::shell_request(ctx, &p, &a.cmd, tty)?;
    Ok(pod::exec(ctx, &p, req)?)
}

#[cfg(host_runtime)]
pub fn ssh_config(ctx: &mut Ctx, root: &Path, a: SshConfigArgs) -> anyhow::Result<i32> {
    match a.format.as_str() {
        "json" => {
            println!("{}", serde_json::to_string_pretty(&pod::ssh::hosts(ctx)?)?);
        }
        "text" => {
            let exe = std::env::current_exe()?;
            let under_sudo = std::env::var("SUDO_USER").is_ok_and(|u| !u.is_empty() && u != "root");
            let proxy = pod::ssh::Proxy {
                exe: &exe,
                default_root: root == Path::new(super::args::DEFAULT_ROOT),
                sudo: a.sudo || under_sudo,
            };
            print!("{}", pod::ssh::config(ctx, &proxy)?);
        }
        f => {
            return Err(PodError::Usage(format!("invalid --format {f:?}: use text or json")).into())
        }
    }
    Ok(0)
}

#[cfg(host_runtime)]
/// Exit 255 with one line on any failure, as ssh's ProxyCommand convention.
pub fn ssh_proxy(root: &Path, a: SshProxyArgs) -> i32 {
    let res = Ctx::open(root).and_then(|mut ctx| pod::ssh::proxy(&mut ctx, &a.host));
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gvpod ssh-proxy: {e}");
            255
        }
    }
}
