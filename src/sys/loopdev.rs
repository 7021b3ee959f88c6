//! Loop devices, for a pod's size-bounded writable layer (an ext4 image
//! file in its bundle): [`attach`] binds a file to a free loop device with
//! `LOOP_CONFIGURE` (Linux 5.8+) and `LO_FLAGS_AUTOCLEAR`, so the device
//! frees itself when the last user lets go. The caller mounts the device
//! while it still holds the returned descriptor, then drops it: the mount
//! is then the only user, and unmounting the filesystem (even lazily, even
//! by `system gc` after a crash) releases the device. Nothing to record,
//! nothing to undo beyond the mount.
//!
//! Two gvpod processes may be handed the same free device number; the
//! loser's `LOOP_CONFIGURE` fails with EBUSY and it asks again.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Binds `file` to a free loop device; returns the device's path and an
/// open descriptor of it, to hold until the device is mounted.
pub fn attach(file: &File) -> io::Result<(PathBuf, OwnedFd)> {
    let ctl = File::open("/dev/loop-control")?;
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = OpenOptions::new().read(true).write(true).open(&path)?;
        // SAFETY: LoopConfig is plain old data; the kernel wants unused fields zeroed.
        let mut cfg: LoopConfig = unsafe { std::mem::zeroed() };
        cfg.fd = file.as_raw_fd() as u32;
        cfg.info.flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: valid loop device fd and a correctly laid out loop_config.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE as _, &cfg) };
        if r == 0 {
            return Ok((path, dev.into()));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "every free loop device was taken by another process meanwhile",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_layouts_match() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
