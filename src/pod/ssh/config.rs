//! `gvpod ssh-config`: the ssh client configuration that reaches ssh-enabled
//! pods as `NAME.gvpod` through `gvpod ssh-proxy`, with gvpod's own
//! known_hosts and strict host key checking. Pure rendering.
//!
//! ssh takes the first value it finds for each option, so the per-pod
//! blocks (each pod's dev user) come before the `Host *.gvpod` block that
//! every pod shares.

use std::path::Path;

/// What one ssh-enabled pod contributes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SshHost {
    /// `NAME.gvpod`.
    pub host: String,
    pub pod: String,
    pub user: String,
}

/// A value for ssh_config: double-quoted when it has spaces (ssh's own rule).
fn quote(s: &str) -> String {
    if s.contains(char::is_whitespace) || s.is_empty() {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

/// How `ssh-proxy` is run.
pub struct Proxy<'a> {
    /// This gvpod.
    pub exe: &'a Path,
    /// Whether the data root is the default one (else `--root` is given).
    pub default_root: bool,
    /// Run it with `sudo -n` (an ssh client that is not root: gvpod is).
    pub sudo: bool,
}

/// The ssh_config text.
pub fn render(p: &Proxy, root: &Path, hosts: &[SshHost]) -> String {
    let mut out = String::from(
        "# gvpod ssh-config: use with `ssh -F <(gvpod ssh-config) NAME.gvpod`,\n# or save it and `Include` it from ~/.ssh/config.\n",
    );
    for h in hosts {
        out.push_str(&format!("Host {}\n    User {}\n", h.host, h.user));
    }
    let root_arg = if p.default_root {
        String::new()
    } else {
        format!(" --root {}", quote(&root.to_string_lossy()))
    };
    let known = super::keys::known_hosts(root);
    out.push_str(&format!(
        "Host *.gvpod\n    ProxyCommand {}{}{root_arg} ssh-proxy %h\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n    UpdateHostKeys no\n    CheckHostIP no\n",
        if p.sudo { "sudo -n " } else { "" },
        quote(&p.exe.to_string_lossy()),
        quote(&known.to_string_lossy()),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_pod_users_come_before_the_wildcard() {
        let hosts = vec![
            SshHost {
                host: "web.gvpod".into(),
                pod: "web".into(),
                user: "dev".into(),
            },
            SshHost {
                host: "db.gvpod".into(),
                pod: "db".into(),
                user: "alice".into(),
            },
        ];
        let proxy = Proxy {
            exe: Path::new("/usr/bin/gvpod"),
            default_root: true,
            sudo: false,
        };
        let t = render(&proxy, Path::new("/var/lib/gvpod"), &hosts);
        let web = t.find("Host web.gvpod\n    User dev\n").unwrap();
        let db = t.find("Host db.gvpod\n    User alice\n").unwrap();
        let all = t.find("Host *.gvpod\n").unwrap();
        assert!(web < all && db < all);
        assert!(
            t.contains("    ProxyCommand /usr/bin/gvpod ssh-proxy %h\n"),
            "{t}"
        );
        assert!(t.contains("    UserKnownHostsFile /var/lib/gvpod/ssh/known_hosts\n"));
        assert!(t.contains("    StrictHostKeyChecking yes\n"));
    }

    #[test]
    fn another_root_is_passed_and_quoted() {
        let proxy = Proxy {
            exe: Path::new("/opt/my tools/gvpod"),
            default_root: false,
            sudo: false,
        };
        let t = render(&proxy, Path::new("/tmp/a root"), &[]);
        assert!(
            t.contains(
                "    ProxyCommand \"/opt/my tools/gvpod\" --root \"/tmp/a root\" ssh-proxy %h\n"
            ),
            "{t}"
        );
        assert!(t.contains("    UserKnownHostsFile \"/tmp/a root/ssh/known_hosts\"\n"));
        assert!(!t.contains("    User "));
    }

    #[test]
    fn a_user_client_runs_the_proxy_with_sudo() {
        let proxy = Proxy {
            exe: Path::new("/usr/bin/gvpod"),
            default_root: true,
            sudo: true,
        };
        let t = render(&proxy, Path::new("/var/lib/gvpod"), &[]);
        assert!(
            t.contains("    ProxyCommand sudo -n /usr/bin/gvpod ssh-proxy %h\n"),
            "{t}"
        );
    }
}
