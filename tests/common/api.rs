//! The Docker Engine API harness: a `gvpod system service` on a socket in a
//! test's data root, the real docker CLI pointed at it, and a zombie check
//! for the service's children.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{stderr, stdout, Root};

/// The docker CLI, or a skip (a failure under GVPOD_REQUIRE_ROOT_TESTS=1).
#[macro_export]
macro_rules! require_docker {
    () => {
        require_runsc!();
        if Command::new("docker").arg("--version").output().is_err() {
            assert!(
                !common::skips_forbidden(),
                "the docker CLI is missing (scripts/setup.sh installs it)"
            );
            eprintln!("skipped: no docker CLI");
            return;
        }
    };
}

/// A running `gvpod system service` on a socket in the data root; stopped
/// (and waited for) when dropped.
pub struct Service {
    child: Option<Child>,
    pub sock: std::path::PathBuf,
    pub config: tempfile::TempDir,
}

impl Service {
    /// The service's pid (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn start(r: &Root, idle_secs: u64) -> Service {
        let sock = r.path().join("api.sock");
        let child = r
            .cmd(&[
                "system",
                "service",
                "--time",
                &idle_secs.to_string(),
                &format!("unix://{}", sock.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the service");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                Instant::now() < deadline,
                "the service did not listen on {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            child: Some(child),
            sock,
            config: tempfile::tempdir().unwrap(),
        }
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {}", stderr(&o));
        stdout(&o)
    }

    /// Waits for the service to exit on its own; its exit status.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Children of process `pid` that have ended and were not reaped.
pub fn zombies_of(pid: u32) -> Vec<String> {
    let mut z = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: the comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1) == Some(&pid.to_string().as_str()) {
            z.push(stat);
        }
    }
    z
}
