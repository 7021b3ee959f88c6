//! runsc command lines for snapshots: `checkpoint`, the two restore styles,
//! `pause`/`resume`, and reaping what a 2022 checkpoint leaves behind.
//!
//! DESIGN.md fact 5: release 20221219 `runsc restore --image-path=DIR ID`
//! creates the container itself (a prior `runsc create` makes it fail) and,
//! without `--detach`, waits for it like `runsc run`; newer releases
//! document `runsc create` first, then `runsc restore` on the created
//! container. A binary that still carries the fallback that creates a
//! missing container on restore ([`Features::restore_may_create`], probed:
//! 20240729 has it) is restored in one step too: a whole runsc process
//! fewer on the start path (18 ms on a clone). Only a binary that has
//! neither the one-step restore of 2022 nor that fallback gets the two
//! steps.

use std::path::Path;
use std::process::Command;

use super::{GlobalFlags, Result, Runsc};

/// How to launch a restore: an optional `runsc create` to run to completion
/// first (newer releases), then the `runsc restore` that stays in the
/// foreground until the pod exits, like `runsc run`.
pub struct RestoreLaunch {
    pub create: Option<Command>,
    pub restore: Command,
}

impl Runsc {
    /// Whether `runsc restore` creates the container itself here: required
    /// by 20221219-style binaries, accepted by those that create a missing
    /// container on restore (see the module docs).
    pub fn restore_in_one_step(&self) -> bool {
        self.features.restore_creates || self.features.restore_may_create
    }

    /// `runsc checkpoint --image-path=DIR [--leave-running] ID`. Only asks
    /// runsc for `--leave-running` when it keeps the sandbox running in place
    /// (20240415 and newer); older releases destroy and re-create the
    /// container inside the checkpoint command, which would take the pod's
    /// stdio away from its monitor, so gvpod emulates it there.
    pub fn checkpoint(
        &self,
        flags: &GlobalFlags,
        id: &str,
        image_dir: &Path,
        leave_running: bool,
    ) -> Result<()> {
        let path = format!("--image-path={}", image_dir.display());
        let mut args = vec![path.as_str()];
        if leave_running && self.features.leave_running_in_place {
            args.push("--leave-running");
        }
        self.call(flags, "checkpoint", &args, id).map(|_| ())
    }

    /// Builds the command(s) that bring container `id` back from the memory
    /// image in `image_dir`, in the style this release wants. The caller
    /// sets stdio (the sandbox inherits it from `create`, or from `restore`
    /// when it creates the container itself) and appends nothing: the id is
    /// already the last argument.
    pub fn restore_launch(
        &self,
        flags: &GlobalFlags,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        image_dir: &Path,
    ) -> RestoreLaunch {
        let bundle_arg = format!("--bundle={}", bundle.display());
        let pid_arg = format!("--pid-file={}", pid_file.display());
        let image_arg = format!("--image-path={}", image_dir.display());
        if self.restore_in_one_step() {
            let mut restore = self.command(flags, "restore");
            restore.args([&image_arg, &bundle_arg, &pid_arg, id]);
            RestoreLaunch {
                create: None,
                restore,
            }
        } else {
            let mut create = self.command(flags, "create");
            create.args([&bundle_arg, &pid_arg, id]);
            let mut restore = self.command(flags, "restore");
            restore.args([&image_arg, &bundle_arg, id]);
            RestoreLaunch {
                create: Some(create),
                restore,
            }
        }
    }

    /// `runsc pause ID` (freezes the sandbox so its files stop changing).
    pub fn pause(&self, flags: &GlobalFlags, id: &str) -> Result<()> {
        self.call(flags, "pause", &[], id).map(|_| ())
    }

    /// `runsc resume ID`.
    pub fn resume(&self, flags: &GlobalFlags, id: &str) -> Result<()> {
        self.call(flags, "resume", &[], id).map(|_| ())
    }
}

impl Runsc {
    /// Whether runsc keeps any state for container `id` under the runsc root
    /// of `flags` (every release names its state files after the id): a
    /// directory listing instead of a `runsc state` call (~40 ms).
    pub fn has_state(&self, flags: &GlobalFlags, id: &str) -> bool {
        std::fs::read_dir(&flags.root).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(id))
        })
    }

    /// The status runsc records for container `id` ("created", "running",
    /// "stopped"), read from its state file (`<root>/<id>_sandbox:<id>.state`)
    /// in microseconds instead of a `runsc state` call (~40 ms), falling back
    /// to `runsc state` when the file is not where this layout puts it.
    pub fn status(&self, flags: &GlobalFlags, id: &str) -> Option<String> {
        let f = flags.root.join(format!("{id}_sandbox:{id}.state"));
        match std::fs::read(&f) {
            Ok(data) => serde_json::from_slice::<serde_json::Value>(&data)
                .ok()
                .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string)),
            Err(_) => self.state(flags, id).ok().flatten().map(|s| s.status),
        }
    }

    /// Waits until the status runsc records for container `id` satisfies
    /// `done` (`None`: no state known); false when `give_up` says to stop
    /// first. Woken by runsc rewriting a state file (inotify on its state
    /// directory) rather than by polling: a restore of a large pod takes a
    /// second or more, and a poll loop competed with it for the CPU (+108 ms
    /// on a 1 GiB restore, 2 cores). Looks at least every 50 ms regardless,
    /// for a runsc whose state files live elsewhere. The watch is closed on a
    /// background thread ([`crate::util::drop_in_background`]).
    pub fn wait_status(
        &self,
        flags: &GlobalFlags,
        id: &str,
        done: impl Fn(Option<&str>) -> bool,
        mut give_up: impl FnMut() -> bool,
    ) -> bool {
        let watch =
            crate::util::DirWatch::new(&flags.root, true, std::time::Duration::from_millis(5));
        loop {
            let status = self.status(flags, id);
            tracing::trace!("wait_status {id}: {status:?}");
            if done(status.as_deref()) {
                return true;
            }
            if give_up() {
                return false;
            }
            let ev = watch.wait(&[], std::time::Duration::from_millis(50));
            tracing::trace!("wait_status woken: {ev:?}");
        }
    }
}

impl Runsc {
    /// The pod's TCP endpoints that a save would refuse (any state but
    /// LISTEN and CLOSE, TIME_WAIT included), read from its own
    /// /proc/net/tcp{,6} with `runsc exec ID cat`. `None` when that cannot
    /// be read (no `cat` in the image): the caller goes on without the check.
    pub fn open_tcp(&self, flags: &GlobalFlags, id: &str) -> Option<Vec<String>> {
        let mut cmd = self.command(flags, "exec");
        cmd.args([id, "cat", "/proc/net/tcp", "/proc/net/tcp6"])
            .stdout(std::process::Stdio::piped());
        let out = self.exec.output(&mut cmd).ok()?;
        if !out.status.success() {
            return None;
        }
        Some(parse_open_tcp(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// Entries of /proc/net/tcp(6) text in a state other than LISTEN (0A) or
/// CLOSE (07), as "STATE local -> remote".
pub fn parse_open_tcp(text: &str) -> Vec<String> {
    const STATES: [&str; 12] = [
        "",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
    ];
    let addr = |a: &str| -> String {
        let (ip, port) = a.split_once(':').unwrap_or((a, "0"));
        let port = u16::from_str_radix(port, 16).unwrap_or(0);
        // The kernel prints each 32-bit word of the address in host order.
        let words: Vec<u32> = (0..ip.len() / 8)
            .filter_map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
            .map(u32::swap_bytes)
            .collect();
        match words[..] {
            [v] if ip.len() == 8 => format!("{}:{port}", std::net::Ipv4Addr::from(v)),
            [a, b, c, d] if ip.len() == 32 => {
                let v6 = std::net::Ipv6Addr::from(
                    (u128::from(a) << 96)
                        | (u128::from(b) << 64)
                        | (u128::from(c) << 32)
                        | u128::from(d),
                );
                match v6.to_ipv4_mapped() {
                    Some(v4) => format!("{v4}:{port}"),
                    None => format!("[{v6}]:{port}"),
                }
            }
            _ => format!("[{ip}]:{port}"),
        }
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let st = u8::from_str_radix(f.get(3)?, 16).ok()?;
            if !f.first()?.ends_with(':') || st == 0x0a || st == 0x07 {
                return None;
            }
            let name = STATES.get(st as usize).copied().unwrap_or("?");
            Some(format!("{name} {} -> {}", addr(f[1]), addr(f[2])))
        })
        .collect()
}

/// SIGKILLs the sandbox and gofer processes of container `id` under the
/// runsc root of `flags` that are still alive. DESIGN.md fact 5: after a
/// checkpoint, release 20221219's sandbox and gofer can linger and hold the
/// container's control socket, so a restore under the same id fails with
/// "address already in use". They are found by their command line (program
/// `runsc-sandbox` / `runsc-gofer`, this runsc root, this id), never by a
/// broad name. Returns the pids killed.
pub fn reap_leftovers(flags: &GlobalFlags, id: &str) -> Vec<i32> {
    super::procs::kill_under_root(&flags.root, |args| {
        let prog = args.first().copied().unwrap_or_default();
        (prog.ends_with(b"runsc-sandbox") || prog.ends_with(b"runsc-gofer"))
            && args
                .iter()
                .any(|a| a.windows(id.len()).any(|w| w == id.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Features, Version};
    use super::*;

    fn runsc(release: u32) -> Runsc {
        Runsc {
            bin: "/usr/bin/runsc".into(),
            version: Version {
                raw: format!("runsc version {release}"),
                release,
            },
            features: Features {
                platforms: vec!["ptrace".into()],
                default_platform: "ptrace".into(),
                restore_creates: release < 20230327,
                root_netns_false_positive: release < 20240807,
                leave_running_in_place: release >= 20240415,
                ..Default::default()
            },
            exec: std::sync::Arc::new(super::super::exec::System),
        }
    }

    fn flags() -> GlobalFlags {
        GlobalFlags {
            root: "/run/gvpod/x/runsc".into(),
            platform: "ptrace".into(),
            network: "none".into(),
            overlay2: Some("none".into()),
            log: "/b/runsc.log".into(),
            debug_log: None,
            extra: vec![],
            net_disconnect_ok: false,
            bin: None,
        }
    }

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn restore_style_follows_the_release() {
        let old = runsc(20221219).restore_launch(
            &flags(),
            "ID",
            Path::new("/b"),
            Path::new("/b/pid"),
            Path::new("/s"),
        );
        assert!(old.create.is_none());
        let a = args(&old.restore);
        assert_eq!(
            &a[a.len() - 5..],
            [
                "restore",
                "--image-path=/s",
                "--bundle=/b",
                "--pid-file=/b/pid",
                "ID"
            ]
        );
        // Same global flags as every other call (fact 1).
        assert_eq!(&a[..6], &flags().to_args()[..]);

        // Accepted (and one runsc process fewer) where the binary can create
        // a missing container on restore.
        let mut fallback = runsc(20240729);
        fallback.features.restore_may_create = true;
        let verified = fallback.restore_launch(
            &flags(),
            "ID",
            Path::new("/b"),
            Path::new("/b/pid"),
            Path::new("/s"),
        );
        assert!(verified.create.is_none());

        let new = runsc(20250101).restore_launch(
            &flags(),
            "ID",
            Path::new("/b"),
            Path::new("/b/pid"),
            Path::new("/s"),
        );
        let c = args(new.create.as_ref().unwrap());
        assert_eq!(
            &c[c.len() - 4..],
            ["create", "--bundle=/b", "--pid-file=/b/pid", "ID"]
        );
        let r = args(&new.restore);
        assert_eq!(
            &r[r.len() - 4..],
            ["restore", "--image-path=/s", "--bundle=/b", "ID"]
        );
    }

    #[test]
    fn open_tcp_connections_are_found() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
   1: 020012C6:0050 010012C6:DFBA 06 00000000:00000000 00:00000000 00000000     0        0 2\n\
   2: 020012C6:0050 010012C6:DFBB 07 00000000:00000000 00:00000000 00000000     0        0 3\n";
        assert_eq!(
            parse_open_tcp(text),
            ["TIME_WAIT 198.18.0.2:80 -> 198.18.0.1:57274"]
        );
        assert!(parse_open_tcp("").is_empty());
        // /proc/net/tcp6: an IPv4-mapped peer, and a plain IPv6 one.
        let v6 = "  sl  local_address                         remote_address                        st\n\
   0: 0000000000000000FFFF0000024E12C6:0050 0000000000000000FFFF0000014E12C6:9E26 01 0\n\
   1: 00000000000000000000000001000000:0050 00000000000000000000000001000000:9E27 01 0\n";
        assert_eq!(
            parse_open_tcp(v6),
            [
                "ESTABLISHED 198.18.78.2:80 -> 198.18.78.1:40486",
                "ESTABLISHED [::1]:80 -> [::1]:40487"
            ]
        );
    }

    #[test]
    fn reaping_spares_other_processes() {
        // No process of this made-up root and id exists; nothing is killed.
        let mut f = flags();
        f.root = "/run/gvpod/none-such/runsc".into();
        assert!(reap_leftovers(&f, &"f".repeat(64)).is_empty());
    }
}
