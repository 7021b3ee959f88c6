//! CPU priority of background work.

use std::io;

/// Moves the calling thread to `SCHED_IDLE`: it runs only on a CPU nothing
/// else wants. For work a process does after its caller has its answer
/// (a `--rm` pod's cleanup in its monitor): on a 2-core host it otherwise
/// competes with the next command's start (see `pod::monitor::run`).
pub fn sched_idle() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; 0 is the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_calling_thread_becomes_idle_class() {
        std::thread::spawn(|| {
            super::sched_idle().unwrap();
            // SAFETY: queries the calling thread's policy.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy, libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
        // Only that thread: this one keeps its policy.
        // SAFETY: as above.
        assert_ne!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
    }
}
