//! Platform probes. `/dev/kvm` can exist and still hang a sandbox forever
//! under nested virtualisation (DESIGN.md fact 7), so kvm is only used after
//! a probe sandbox has answered within a time limit. The verdict is cached.

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
        if verdict.is_ok() {
            let _ = std::fs::write(&cache, b"ok\n");
        }
        verdict
    }
}
