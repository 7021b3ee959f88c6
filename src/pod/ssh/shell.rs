//! The shell side of `gvpod ssh` that the client needs too (it builds the
//! remote command line): quoting, the command line, the remote login
//! script. Portable (the client build has it, see lib.rs).

use crate::pod::PodError;

/// POSIX shell quoting of one word.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The command line the login shell runs for `gvpod ssh POD CMD…`: one
/// word is a shell command line as given (as with ssh); several are a
/// command and its arguments, each quoted.
pub fn command_line(cmd: &[String]) -> String {
    match cmd {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The error of `gvpod ssh` on a pod without a dev user.
pub fn no_dev_user(pod: &str) -> PodError {
    PodError::Usage(format!(
        "pod {pod} has no dev user; create the pod with --dev-user NAME (or --ssh) to use gvpod ssh"
    ))
}

/// What `gvpod ssh` runs through a service (`--url`), where the client
/// cannot read the pod's rootfs: `/bin/sh -c` of this script with the
/// arguments `gvpod-ssh NAME [CMDLINE]`, as user NAME. It finds NAME's
/// home and login shell in the pod's /etc/passwd, as [`super::shell_request`]
/// does on the host, and runs the same login shell there.
pub const REMOTE_SHELL: &str = r#"u=$1; shift
while IFS=: read -r n _ _ _ _ h s; do [ "$n" = "$u" ] && break; done < /etc/passwd
if [ "$n" != "$u" ]; then echo "gvpod: dev user $u is not in the pod's /etc/passwd; recreate the pod" >&2; exit 125; fi
export HOME="$h" USER="$u" LOGNAME="$u" SHELL="$s"
cd "$h" || exit 125
if [ $# -eq 0 ]; then exec "$s" -l; else exec "$s" -l -c "$1"; fi"#;
