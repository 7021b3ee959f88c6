//! Dev access to a pod: its dev user (`--dev-user`), `gvpod ssh` (a login
//! shell as that user over `runsc exec`, no sshd needed) and real SSH
//! (`--ssh`: sshd in the pod with gvpod's per-pod host keys, reached
//! through `gvpod ssh-proxy` as configured by `gvpod ssh-config`).
//!
//! The lifecycle calls in with one line each: [`check`] before anything
//! is made, [`prepare`] while the bundle is assembled (the account and keys
//! in the rootfs), [`keys_mount`] for the spec (the host keys' bind mount,
//! also when a snapshot is restored), [`after_launch`] from the monitor after each
//! launch of the sandbox (sshd). Host keys live in the data root by pod
//! name ([`keys`]).

mod shell;
pub use shell::{command_line, no_dev_user, REMOTE_SHELL};

mod config;
pub mod keys;
mod proxy;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{Ctx, ExecRequest, ExecStdio, PodError, Result};
use crate::bundle::devuser::{self, DevAccess, HOST_KEYS_DIR, SSHD};
use crate::bundle::PodOptions;
use crate::state::PodRow;

pub use config::{Proxy, SshHost};
pub use proxy::proxy;

/// What `--dev-user`/`--ssh` need of the options, before anything is made.
pub(crate) fn check(opts: &mut PodOptions) -> Result<()> {
    opts.dev = std::mem::take(&mut opts.dev).checked()?;
    if opts.dev.ssh && matches!(opts.network.as_str(), "none" | "host") {
        return Err(PodError::Usage(format!(
            "--ssh needs a pod network (sshd listens on the pod's own address), not --network {}; drop --network or name a gvpod network",
            opts.network
        )));
    }
    Ok(())
}

/// Refuses `--ssh` on an image whose layers surely have no sshd, before
/// anything is made (the mounted rootfs is checked again by [`prepare`]).
pub(crate) fn check_image(opts: &PodOptions, image: &crate::image::Image) -> Result<()> {
    if opts.dev.ssh && devuser::layers_lack_sshd(&image.layers) {
        return Err(crate::bundle::BundleError::NoSshd(image.reference.clone()).into());
    }
    Ok(())
}

/// Makes the dev user in the rootfs (for `--ssh` after checking the
/// image's sshd: the keys installed, sshd's directories). Idempotent.
pub(crate) fn prepare(opts: &PodOptions, rootfs: &Path, image: &str) -> Result<()> {
    if opts.dev.ssh {
        devuser::check_ssh_image(rootfs, image)?;
    }
    devuser::ensure(rootfs, &opts.dev)?;
    Ok(())
}

/// The bind mount of pod `name`'s host keys (made when missing), for a pod with `--ssh`.
pub(crate) fn keys_mount(
    ctx: &Ctx,
    name: &str,
    dev: &DevAccess,
) -> Result<Option<(PathBuf, &'static str)>> {
    if !dev.ssh {
        return Ok(None);
    }
    Ok(Some((keys::ensure(&ctx.root, name)?, HOST_KEYS_DIR)))
}

/// sshd's command line: gvpod's host key, keys only (no password, no
/// keyboard-interactive, no root). Without `-D` sshd daemonises, which
/// closes the stdio `runsc exec` lent it (a sandbox process holding host
/// descriptors could not be checkpointed) and makes `runsc exec` return
/// with sshd's own verdict on its configuration.
pub fn sshd_args() -> Vec<String> {
    let mut a = vec![SSHD.to_string()];
    for o in [
        format!("HostKey={HOST_KEYS_DIR}/{}", keys::HOST_KEY),
        "PasswordAuthentication=no".into(),
        "KbdInteractiveAuthentication=no".into(),
        "PermitEmptyPasswords=no".into(),
        "PermitRootLogin=no".into(),
        "AuthenticationMethods=publickey".into(),
        "PubkeyAuthentication=yes".into(),
    ] {
        a.push("-o".into());
        a.push(o);
    }
    a
}

/// After each launch of pod `id` (first start, a restart, a restore):
/// starts sshd when the pod has `--ssh`. Returns a line for the pod's log
/// when it could not. A restore included: runsc 20240729 kills the sshd a
/// restored sandbox brings back from memory (SIGKILL as it resumes; measured),
/// where 20221219 keeps it; a second sshd then fails to bind port 22 in the
/// background after daemonising, quietly, and the first one serves.
pub(crate) fn after_launch(ctx: &mut Ctx, id: &str, opts: &PodOptions) -> Option<String> {
    if !opts.dev.ssh {
        return None;
    }
    let res = (|| {
        let pod = ctx
            .db
            .pod(id)?
            .ok_or_else(|| PodError::NotFound(id.to_string()))?;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| PodError::Monitor(format!("pipe: {e}")))?;
        let w2 = w
            .try_clone()
            .map_err(|e| PodError::Monitor(format!("pipe: {e}")))?;
        let req = ExecRequest {
            cmd: sshd_args(),
            env: vec![],
            user: Some("0:0".into()),
            workdir: Some("/".into()),
            interactive: false,
            tty: false,
        };
        let p = super::exec_spawn(
            ctx,
            &pod,
            req,
            ExecStdio::Fds {
                stdin: None,
                stdout: w,
                stderr: w2,
            },
        )?;
        let code = p.wait()?;
        // sshd's words, if any: it has daemonised (or failed) by now.
        let _ = nix::fcntl::fcntl(
            r.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut buf = [0u8; 4096];
        let n = nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap_or(0);
        let said = String::from_utf8_lossy(&buf[..n])
            .trim()
            .replace('\n', "; ");
        Ok::<_, PodError>((code, said))
    })();
    match res {
        Ok((0, _)) => None,
        Ok((code, said)) => Some(format!("gvpod: sshd exited with {code}: {said}")),
        Err(e) => Some(format!("gvpod: cannot start sshd: {e}")),
    }
}

/// The ssh-enabled pods, for `gvpod ssh-config`.
pub fn hosts(ctx: &Ctx) -> Result<Vec<SshHost>> {
    let mut out = vec![];
    for p in ctx.db.pods()? {
        let Ok(o) = p.options() else { continue };
        if let (true, Some(u)) = (o.dev.ssh, &o.dev.user) {
            out.push(SshHost {
                host: keys::host_name(&p.name),
                pod: p.name.clone(),
                user: u.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(out)
}

/// `gvpod ssh-config`'s text.
pub fn config(ctx: &Ctx, proxy: &Proxy) -> Result<String> {
    Ok(config::render(proxy, &ctx.root, &hosts(ctx)?))
}

/// The exec of `gvpod ssh POD [CMD…]`: the dev user's login shell (or
/// `CMD` run by it), in its home, with its HOME/USER/LOGNAME/SHELL; a
/// terminal when `tty`.
pub fn shell_request(ctx: &Ctx, pod: &PodRow, cmd: &[String], tty: bool) -> Result<ExecRequest> {
    let opts = pod.options()?;
    let Some(name) = &opts.dev.user else {
        return Err(no_dev_user(&pod.name));
    };
    let rootfs = ctx.bundle_dir(&pod.id).join("rootfs");
    let u = devuser::lookup(&rootfs, name)?.ok_or_else(|| {
        PodError::Usage(format!(
            "dev user {name} is not in the rootfs of pod {} (its /etc/passwd was changed); recreate the pod",
            pod.name
        ))
    })?;
    let mut args = vec![u.shell.clone(), "-l".to_string()];
    if !cmd.is_empty() {
        args.push("-c".into());
        args.push(command_line(cmd));
    }
    Ok(ExecRequest {
        cmd: args,
        env: vec![
            format!("HOME={}", u.home),
            format!("USER={name}"),
            format!("LOGNAME={name}"),
            format!("SHELL={}", u.shell),
        ],
        user: Some(name.clone()),
        workdir: Some(u.home),
        interactive: true,
        tty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_for_the_login_shell() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(command_line(&v(&["id -un; echo x"])), "id -un; echo x");
        assert_eq!(command_line(&v(&["sh", "-c", "exit 7"])), "sh -c 'exit 7'");
        assert_eq!(
            command_line(&v(&["echo", "it's", "", "$HOME"])),
            "echo 'it'\\''s' '' '$HOME'"
        );
        assert_eq!(shell::shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
    }

    #[test]
    fn sshd_is_keys_only() {
        let a = sshd_args().join(" ");
        assert!(a.starts_with("/usr/sbin/sshd -o HostKey=/etc/ssh/gvpod/ssh_host_ed25519_key"));
        for o in [
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
            "AuthenticationMethods=publickey",
            "PermitRootLogin=no",
        ] {
            assert!(a.contains(&format!("-o {o}")), "{a}");
        }
        assert!(!a.contains("-D"), "sshd must daemonise");
    }

    #[test]
    fn ssh_needs_a_pod_network() {
        let mut o = PodOptions {
            network: "none".into(),
            ..Default::default()
        };
        o.dev.ssh = true;
        let e = check(&mut o).unwrap_err().to_string();
        assert!(e.contains("--ssh needs a pod network"), "{e}");
        o.network = "gvpod".into();
        check(&mut o).unwrap();
        assert_eq!(o.dev.user.as_deref(), Some("dev"));
    }
}
