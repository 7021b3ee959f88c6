//! Pure edits of an image's account files (`/etc/passwd`, `/etc/group`,
//! `/etc/shadow`, `/etc/gshadow`), of a user's `authorized_keys` and of the
//! choices `useradd` would make (ids, login shell). No I/O: the caller reads
//! the files from the rootfs and writes back what changed.
//!
//! Invariants: an entry that exists is never changed (a user, group or
//! shadow line of that name is kept as it is); every edit appends one line
//! and keeps the rest of the text byte for byte; each function returns
//! `None` when there is nothing to change, so applying twice changes
//! nothing the second time.

use std::collections::HashSet;

/// The first uid/gid of a regular user (Debian's `FIRST_UID`).
pub const FIRST_ID: u32 = 1000;
/// The last uid/gid a regular user gets (Debian's `LAST_UID`).
pub const LAST_ID: u32 = 59999;

/// A valid POSIX-portable user name as useradd takes it: `[a-z_][a-z0-9_-]{0,31}`.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// One line of /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

fn fields(line: &str) -> Vec<&str> {
    line.split(':').collect()
}

/// The user `name` of a passwd text.
pub fn find_user(passwd: &str, name: &str) -> Option<PasswdEntry> {
    passwd.lines().find_map(|l| {
        let f = fields(l);
        if f.len() < 7 || f[0] != name {
            return None;
        }
        Some(PasswdEntry {
            name: f[0].to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5].to_string(),
            shell: f[6].to_string(),
        })
    })
}

/// The gid of group `name` of a group text.
pub fn find_group(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let f = fields(l);
        (f.len() >= 3 && f[0] == name)
            .then(|| f[2].parse().ok())
            .flatten()
    })
}

fn has_entry(text: &str, name: &str) -> bool {
    text.lines().any(|l| l.split(':').next() == Some(name))
}

fn ids(text: &str, field: usize) -> HashSet<u32> {
    text.lines()
        .filter_map(|l| l.split(':').nth(field)?.parse().ok())
        .collect()
}

/// The uid and gid a new user `name` gets: uid 1000 unless taken, else the
/// next free one; the gid of an existing group `name`, else the uid when it
/// is free as a gid too (the usual "same number"), else the next free gid.
/// `None` when every id up to [`LAST_ID`] is taken.
pub fn pick_ids(passwd: &str, group: &str, name: &str) -> Option<(u32, u32)> {
    let uids = ids(passwd, 2);
    let gids = ids(group, 2);
    let free = |set: &HashSet<u32>, from: u32| (from..=LAST_ID).find(|i| !set.contains(i));
    let uid = free(&uids, FIRST_ID)?;
    let gid = match find_group(group, name) {
        Some(g) => g,
        None if !gids.contains(&uid) => uid,
        None => free(&gids, FIRST_ID)?,
    };
    Some((uid, gid))
}

fn append(text: &str, line: &str) -> String {
    let mut s = text.to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(line);
    s.push('\n');
    s
}

/// The passwd text with the user added (`x` in the password field: the
/// password lives in shadow), or `None` when `name` is there already.
pub fn add_passwd(passwd: &str, u: &PasswdEntry, shadowed: bool) -> Option<String> {
    (!has_entry(passwd, &u.name)).then(|| {
        let pw = if shadowed { "x" } else { "*" };
        append(
            passwd,
            &format!(
                "{}:{pw}:{}:{}::{}:{}",
                u.name, u.uid, u.gid, u.home, u.shell
            ),
        )
    })
}

/// The group text with group `name` (gid `gid`, no members) added.
pub fn add_group(group: &str, name: &str, gid: u32) -> Option<String> {
    (!has_entry(group, name)).then(|| append(group, &format!("{name}:x:{gid}:")))
}

/// The shadow text with a user that has **no password** (`*`: no password
/// matches it, but the account is not locked as `!` would make it, so
/// key-only sshd logins work under `UsePAM`). `days` is the day of the last
/// change (days since 1970).
pub fn add_shadow(shadow: &str, name: &str, days: u64) -> Option<String> {
    (!has_entry(shadow, name)).then(|| append(shadow, &format!("{name}:*:{days}:0:99999:7:::")))
}

/// The gshadow text with group `name` (no password, no members).
pub fn add_gshadow(gshadow: &str, name: &str) -> Option<String> {
    (!has_entry(gshadow, name)).then(|| append(gshadow, &format!("{name}:!::")))
}

/// `SHELL=` of an /etc/default/useradd text, when set.
pub fn useradd_shell(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("SHELL=")?.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The login shell a new user gets: bash when the image has it (what
/// users of a dev pod expect), else the image's useradd default when that
/// shell exists, else /bin/sh.
pub fn pick_shell(exists: impl Fn(&str) -> bool, useradd_default: Option<&str>) -> String {
    if exists("/bin/bash") {
        return "/bin/bash".into();
    }
    match useradd_default {
        Some(s) if s.starts_with('/') && exists(s) => s.to_string(),
        _ => "/bin/sh".into(),
    }
}

/// The sudoers drop-in that gives `name` passwordless sudo.
pub fn sudoers(name: &str) -> String {
    format!("# Written by gvpod (--dev-user {name}).\n{name} ALL=(ALL) NOPASSWD:ALL\n")
}

/// The key of an authorized_keys line (type and base64 blob), options and
/// comment aside, so the same key is not added twice.
fn key_of(line: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"))?;
    Some((words[i], words.get(i + 1)?))
}

/// An authorized_keys text with every key of `keys` that is not there yet
/// appended (lines of the user's own are kept), or `None` when all are.
pub fn merge_authorized_keys(existing: &str, keys: &[String]) -> Option<String> {
    let have: HashSet<(&str, &str)> = existing.lines().filter_map(key_of).collect();
    let mut out = existing.to_string();
    let mut added: HashSet<(&str, &str)> = HashSet::new();
    for k in keys {
        let line = k.trim();
        let Some(key) = key_of(line) else { continue };
        if have.contains(&key) || !added.insert(key) {
            continue;
        }
        out = append(&out, line);
    }
    (!added.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:\nnogroup:x:65534:\n";

    fn dev(uid: u32, gid: u32) -> PasswdEntry {
        PasswdEntry {
            name: "dev".into(),
            uid,
            gid,
            home: "/home/dev".into(),
            shell: "/bin/bash".into(),
        }
    }

    #[test]
    fn names_follow_useradd() {
        for ok in ["dev", "_x", "a", "a-b_c9", &"a".repeat(32)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Dev",
            "9a",
            "-a",
            "a b",
            "a:b",
            "a/b",
            "dév",
            &"a".repeat(33),
            "a.b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn first_user_gets_1000() {
        assert_eq!(pick_ids(PASSWD, GROUP, "dev"), Some((1000, 1000)));
    }

    #[test]
    fn taken_ids_move_on() {
        let p = format!("{PASSWD}ubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n");
        let g = format!("{GROUP}ubuntu:x:1000:\n");
        assert_eq!(pick_ids(&p, &g, "dev"), Some((1001, 1001)));
        // A gid taken where the uid is free: uid 1000, and a free gid.
        let g = format!("{GROUP}docker:x:1000:\n");
        assert_eq!(pick_ids(PASSWD, &g, "dev"), Some((1000, 1001)));
        // An existing group of the user's name is used.
        let g = format!("{GROUP}dev:x:1500:\n");
        assert_eq!(pick_ids(PASSWD, &g, "dev"), Some((1000, 1500)));
    }

    #[test]
    fn adding_appends_one_line_and_is_idempotent() {
        let p = add_passwd(PASSWD, &dev(1000, 1000), true).unwrap();
        assert_eq!(p, format!("{PASSWD}dev:x:1000:1000::/home/dev:/bin/bash\n"));
        assert_eq!(add_passwd(&p, &dev(1000, 1000), true), None);
        assert_eq!(find_user(&p, "dev"), Some(dev(1000, 1000)));
        // No trailing newline in the image's file: kept apart.
        let p = add_passwd("root:x:0:0::/root:/bin/sh", &dev(1000, 1000), false).unwrap();
        assert_eq!(
            p,
            "root:x:0:0::/root:/bin/sh\ndev:*:1000:1000::/home/dev:/bin/bash\n"
        );
        let g = add_group(GROUP, "dev", 1000).unwrap();
        assert!(g.ends_with("nogroup:x:65534:\ndev:x:1000:\n"));
        assert_eq!(add_group(&g, "dev", 1000), None);
        assert_eq!(find_group(&g, "dev"), Some(1000));
        let gs = add_gshadow("root:*::\n", "dev").unwrap();
        assert_eq!(gs, "root:*::\ndev:!::\n");
        assert_eq!(add_gshadow(&gs, "dev"), None);
    }

    #[test]
    fn shadow_has_no_password_and_is_not_locked() {
        let s = add_shadow("root:*:19000:0:99999:7:::\n", "dev", 20000).unwrap();
        let line = s.lines().last().unwrap();
        assert_eq!(line, "dev:*:20000:0:99999:7:::");
        let pw = line.split(':').nth(1).unwrap();
        assert!(
            !pw.starts_with('!'),
            "a locked account refuses sshd key logins under PAM"
        );
        assert_eq!(add_shadow(&s, "dev", 1), None);
        // A prefix of another name is not that name.
        assert!(add_shadow("devops:*:1:0:99999:7:::\n", "dev", 1).is_some());
    }

    #[test]
    fn shell_prefers_bash_then_useradd_then_sh() {
        let has = |set: &'static [&'static str]| move |p: &str| set.contains(&p);
        assert_eq!(
            pick_shell(has(&["/bin/bash", "/bin/zsh"]), Some("/bin/zsh")),
            "/bin/bash"
        );
        assert_eq!(pick_shell(has(&["/bin/zsh"]), Some("/bin/zsh")), "/bin/zsh");
        assert_eq!(pick_shell(has(&[]), Some("/bin/zsh")), "/bin/sh");
        assert_eq!(pick_shell(has(&[]), None), "/bin/sh");
        assert_eq!(
            useradd_shell("# comment\nSHELL=/bin/zsh\nGROUP=100\n").as_deref(),
            Some("/bin/zsh")
        );
        assert_eq!(useradd_shell("# SHELL=/bin/sh\n"), None);
    }

    #[test]
    fn authorized_keys_are_merged_once() {
        let a = "ssh-ed25519 AAAAC3Nza1 alice@host".to_string();
        let b = "ssh-rsa AAAAB3Nza2 bob".to_string();
        let out = merge_authorized_keys("", &[a.clone(), b.clone(), a.clone()]).unwrap();
        assert_eq!(out, format!("{a}\n{b}\n"));
        assert_eq!(merge_authorized_keys(&out, std::slice::from_ref(&b)), None);
        // The same key under another comment or with options is the same key.
        let own = "no-pty ssh-ed25519 AAAAC3Nza1 other\n";
        assert_eq!(merge_authorized_keys(own, std::slice::from_ref(&a)), None);
        let out = merge_authorized_keys(own, std::slice::from_ref(&b)).unwrap();
        assert_eq!(out, format!("{own}{b}\n"));
        // Garbage is not a key.
        assert_eq!(merge_authorized_keys("", &["hello".into()]), None);
    }

    #[test]
    fn sudoers_line_is_passwordless() {
        assert!(sudoers("dev").contains("\ndev ALL=(ALL) NOPASSWD:ALL\n"));
    }
}
