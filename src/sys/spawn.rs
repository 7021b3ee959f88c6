//! Starting a helper process without waiting for its exec.
//!
//! `std::process::Command::spawn` returns only once the child has exec'd
//! (or reports why it could not, through a close-on-exec pipe). For a pod
//! monitor (`pod::start::spawn_monitor`: the early ones of `run` and of a
//! named clone, and those of `start` and `restore`) that wait is the exec
//! of gvpod's own 25 MB binary, 0.3-0.5 ms on the test VM, spent on the
//! client's start path for nothing: a monitor that cannot exec ends with
//! status 127 and the client sees end of file on its socket, which it
//! handles as a monitor that died.
//!
//! Invariants: everything the child needs (argv, the /dev/null descriptor)
//! is made before `fork`, and between `fork` and `execv` the child calls
//! only async-signal-safe functions (`setsid`, `dup2`, `fcntl`,
//! `sigprocmask`, `signal`, `execv`, `_exit`), so this is sound in a
//! multi-threaded caller (the API service) as std's own spawn is.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A child started by [`spawn_session`], reaped by [`Spawned::wait`].
#[derive(Debug)]
pub struct Spawned {
    pid: libc::pid_t,
}

impl Spawned {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Waits for the child to end; its exit status (128 + signal when killed).
    pub fn wait(&mut self) -> io::Result<i32> {
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        })
    }
}

/// Starts `argv[0]` (a path) with `argv` in a session of its own, its
/// stdin and stdout /dev/null, its stderr `stderr` (/dev/null without),
/// and `fd3` as its descriptor 3, and returns without waiting for its exec
/// (see the module doc).
pub fn spawn_session(
    argv: &[CString],
    fd3: BorrowedFd<'_>,
    stderr: Option<BorrowedFd<'_>>,
) -> io::Result<Spawned> {
    if argv.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty argv"));
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let (null, fd3) = (null.as_raw_fd(), fd3.as_raw_fd());
    let err = stderr.map_or(null, |e| e.as_raw_fd());
    // SAFETY: the child runs only async-signal-safe calls on data made
    // before the fork (module doc) and never returns from this function:
    // it execs or `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls only; `ptrs` is NUL-terminated
        // and points into `argv`, alive in this copy of the address space.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            // Rust's runtime ignores SIGPIPE, and an ignored signal stays
            // ignored across exec: std resets it in its children too.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::setsid();
            // A descriptor the stdio dup2s below would overwrite before
            // its own use (fd 3's source below 3, stderr's below 2) is
            // copied above 2 first (close-on-exec: the copy goes with the
            // exec). Then stdio, then fd 3: /dev/null or stderr may
            // themselves be descriptor 3, and are copied by then.
            let above = |fd: libc::c_int, min: libc::c_int| {
                if fd < min {
                    libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3)
                } else {
                    fd
                }
            };
            let (fd3, err) = (above(fd3, 3), above(err, 2));
            if fd3 < 0
                || err < 0
                || libc::dup2(null, 0) < 0
                || libc::dup2(null, 1) < 0
                || libc::dup2(err, 2) < 0
            {
                libc::_exit(127);
            }
            let moved = if fd3 == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd3, 3)
            };
            if moved < 0 {
                libc::_exit(127);
            }
            libc::execv(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    Ok(Spawned { pid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn the_child_gets_fd_3_and_its_own_session() {
        let (mine, theirs) = UnixStream::pair().unwrap();
        // Field 6 of /proc/PID/stat is the session id.
        let script = "echo \"$(cut -d' ' -f6 /proc/$$/stat) $$ $(readlink /proc/$$/fd/0)\" >&3";
        let argv = [c("/bin/sh"), c("-c"), c(script)];
        let mut child = spawn_session(&argv, theirs.as_fd(), None).unwrap();
        drop(theirs);
        let mut out = String::new();
        use std::io::Read;
        (&mine).read_to_string(&mut out).unwrap();
        assert_eq!(child.wait().unwrap(), 0);
        let ids: Vec<&str> = out.split_whitespace().collect();
        // A session leader: its session id is its pid.
        assert_eq!(ids.len(), 3, "{out:?}");
        assert_eq!(ids[0], ids[1], "{out:?}");
        assert_eq!(ids[1], child.id().to_string());
        assert_eq!(ids[2], "/dev/null");
    }

    #[test]
    fn an_exec_that_fails_is_status_127() {
        let (_mine, theirs) = UnixStream::pair().unwrap();
        let argv = [c("/nonexistent/gvpod")];
        let mut child = spawn_session(&argv, theirs.as_fd(), None).unwrap();
        assert_eq!(child.wait().unwrap(), 127);
        assert!(spawn_session(&[], theirs.as_fd(), None).is_err());
    }

    #[test]
    fn stderr_goes_where_it_is_given_and_stdout_to_dev_null() {
        let (mine, theirs) = UnixStream::pair().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let script = "echo out; echo err >&2; o=$(readlink /proc/$$/fd/1); echo \"$o\" >&3";
        let argv = [c("/bin/sh"), c("-c"), c(script)];
        let mut child = spawn_session(&argv, theirs.as_fd(), Some(log.as_fd())).unwrap();
        drop(theirs);
        let mut out = String::new();
        use std::io::Read;
        (&mine).read_to_string(&mut out).unwrap();
        assert_eq!(child.wait().unwrap(), 0);
        assert_eq!(out, "/dev/null\n");
        let logged = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert_eq!(logged, "err\n");
    }
}
