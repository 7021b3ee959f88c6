//! Platform probes. `/dev/kvm` can exist and still hang a sandbox forever
//! under nested virtualisation (DESIGN.md fact 7), so kvm is only used after
//! a probe sandbox has answered within a time limit. The verdict is cached:
//! a success for the runsc release, a failure for the release and this boot
//! of the host (`/proc/sys/kernel/random/boot_id`: a reboot, or a change of
//! the VM's nesting, may change it), so a refused kvm costs the probe's time
//! once, not at every `create`. A probe whose gvpod was killed mid-way leaves
//! a hung sandbox spinning under `probe-kvm-*`: the next probe (and so
//! `gvpod bench`, `create --platform kvm`) kills and removes those that are
//! older than the probe's time limit.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Result, Runsc, RunscError};

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Runsc {
    /// Checks that `platform` can run a sandbox here; ptrace and systrap
    /// need no probe, kvm gets one (cached in `cache_dir`).
    pub fn probe_platform(&self, platform: &str, cache_dir: &Path) -> Result<()> {
        self.check_platform(platform)?;
        if platform != "kvm" {
            return Ok(());
        }
        let cache = cache_dir.join(format!("probe-kvm-{}.ok", self.version.release));
        if cache.exists() {
            return Ok(());
        }
        let fail = |why: String| RunscError::PlatformUnusable {
            platform: "kvm".into(),
            why,
            fallback: self.features.default_platform.clone(),
        };
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|b| b.trim().to_string())
            .unwrap_or_default();
        let failed = cache_dir.join(format!("probe-kvm-{}.failed", self.version.release));
        if let Ok(text) = std::fs::read_to_string(&failed) {
            if let Some((b, why)) = text.split_once('\n') {
                if b == boot && !boot.is_empty() {
                    return Err(fail(format!("{} (probed earlier this boot)", why.trim())));
                }
            }
        }
        sweep_stale_probes(cache_dir);
        if !Path::new("/dev/kvm").exists() {
            return Err(fail("/dev/kvm is missing".into()));
        }
        let root = cache_dir.join(format!("probe-kvm-{}", crate::util::random_hex(4)));
        std::fs::create_dir_all(&root).map_err(|source| RunscError::Spawn {
            bin: root.clone(),
            source,
        })?;
        let mut child = Command::new(&self.bin)
            .arg(format!("--root={}", root.display()))
            // No cgroup: a killed `runsc do` leaves its runsc-NNNNNN ones.
            .args(["--platform=kvm", "--network=none", "--ignore-cgroups"])
            .args(["do", "true"])
            // `runsc do` makes its bundle and its own runsc root in $TMPDIR,
            // and leaves both behind when it is killed: keep them in ours.
            .env("TMPDIR", &root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| RunscError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        let start = Instant::now();
        let verdict = loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => break Ok(()),
                Ok(Some(st)) => break Err(fail(format!("the probe sandbox failed: {st}"))),
                Ok(None) if start.elapsed() > PROBE_TIMEOUT => {
                    // A hung probe: kill its whole process group, then whatever runsc left.
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = child.wait();
                    break Err(fail(format!(
                        "the probe sandbox hung for {}s",
                        PROBE_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => break Err(fail(e.to_string())),
            }
        };
        // The sandbox runs in a session of its own, which the group kill
        // above misses; `--attached` kills it when `runsc do` dies, but a kvm
        // sandbox takes a while to exit (it maps all of the host's memory).
        // Find it by the runsc root under this probe's directory and wait
        // until no such process is left, bounded.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !super::procs::kill_under_root(&root, |_| true).is_empty()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&root);
        match &verdict {
            Ok(()) => {
                let _ = std::fs::write(&cache, b"ok\n");
            }
            Err(RunscError::PlatformUnusable { why, .. }) => {
                let _ = crate::util::write_atomic(&failed, format!("{boot}\n{why}\n").as_bytes());
            }
            Err(_) => {}
        }
        verdict
    }
}

/// Kills what hung probes of killed gvpods left under `cache_dir`
/// (`probe-kvm-XXXX/` older than the probe's limit) and removes them.
fn sweep_stale_probes(cache_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !name.starts_with("probe-kvm-") {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > PROBE_TIMEOUT + Duration::from_secs(20));
        if old {
            let dir = e.path();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !super::procs::kill_under_root(&dir, |_| true).is_empty()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
