//! Messages between `gvpod run/start` and the pod monitor over a
//! SOCK_SEQPACKET socketpair (one JSON message per packet). The client's
//! stdio descriptors travel with the first message (SCM_RIGHTS), so the
//! monitor writes the pod's output straight to the user's terminal or pipes
//! and no output is lost before the client "attaches".

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ToMonitor {
    /// To a monitor started before its pod existed (`--early`): the pod is
    /// made; its log (the monitor's stderr from now on) follows as an fd.
    /// With `restore`, the pod comes back from the memory image in that
    /// directory (what `--restore=DIR` says to a monitor started late).
    Go { restore: Option<std::path::PathBuf> },
    /// The client stays: its stdin (when `stdin`), stdout and stderr follow as fds.
    Attach { stdin: bool },
    /// The client leaves once the pod has started.
    Detach,
    /// The client's terminal changed size; read it from the passed stdout fd.
    Resize,
    /// Forward a signal to the pod (docker's sig-proxy).
    Signal(i32),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum FromMonitor {
    Started { pid: i32 },
    Failed { code: i32, msg: String },
    Exited { code: Option<i32> },
}

pub fn pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

pub fn send<T: Serialize>(sock: &impl AsRawFd, msg: &T, fds: &[RawFd]) -> nix::Result<()> {
    let data = serde_json::to_vec(msg).expect("message serialises");
    let iov = [IoSlice::new(&data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map(|_| ())
}

/// Receives one message and any fds sent with it; `Ok(None)` on EOF.
pub fn recv<T: for<'de> Deserialize<'de>>(
    sock: &impl AsRawFd,
) -> nix::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 4]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = vec![];
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(v) = c {
                // SAFETY: the kernel just installed these descriptors for us.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        (msg.bytes, fds)
    };
    if n == 0 {
        return Ok(None);
    }
    match serde_json::from_slice(&buf[..n]) {
        Ok(m) => Ok(Some((m, fds))),
        Err(_) => Err(nix::errno::Errno::EBADMSG),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_cross_the_pair() {
        let (a, b) = pair().unwrap();
        let devnull = std::fs::File::open("/dev/null").unwrap();
        send(
            &a,
            &ToMonitor::Attach { stdin: true },
            &[devnull.as_raw_fd()],
        )
        .unwrap();
        let (m, fds): (ToMonitor, _) = recv(&b).unwrap().unwrap();
        assert_eq!(m, ToMonitor::Attach { stdin: true });
        assert_eq!(fds.len(), 1);
        send(&b, &FromMonitor::Exited { code: Some(3) }, &[]).unwrap();
        let (m, _): (FromMonitor, _) = recv(&a).unwrap().unwrap();
        assert_eq!(m, FromMonitor::Exited { code: Some(3) });
        drop(b);
        assert!(recv::<FromMonitor>(&a).unwrap().is_none());
    }
}
