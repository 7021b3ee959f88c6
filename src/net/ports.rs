//! Published-port sockets. Whatever carries the traffic (nftables DNAT in
//! [`super::nft`]), each published port is also a real listening socket on
//! the host, held by the pod's monitor for the pod's life: Lima forwards only
//! ports that have one (DESIGN.md networking rules), `ss -ltn` shows who owns
//! the port, and a second program cannot take it. Connections that reach the
//! socket instead of the DNAT rule (the rules were flushed by hand) are
//! spliced to the pod by a small proxy, so the port keeps working.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::time::Duration;

use super::{NetError, PortMapping, PortSpec, Proto, Result};

/// Binds a published port; `SO_REUSEADDR` for TCP so a port in TIME_WAIT
/// after a restart can be taken again (a live listener still refuses it).
pub fn bind(proto: Proto, ip: Ipv4Addr, port: u16) -> Result<OwnedFd> {
    let addr = SocketAddrV4::new(ip, port);
    let in_use = |e: std::io::Error| NetError::PortInUse {
        ip,
        port,
        proto,
        why: e.to_string(),
    };
    match proto {
        Proto::Tcp => {
            let l = TcpListener::bind(addr).map_err(in_use)?;
            Ok(l.into())
        }
        Proto::Udp => {
            let s = UdpSocket::bind(addr).map_err(in_use)?;
            Ok(s.into())
        }
    }
}

/// Resolves a spec to a mapping: checks that the host port is free now
/// (refused before the pod starts) or picks a free one.
pub fn reserve(spec: &PortSpec) -> Result<PortMapping> {
    let ip = spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let fd = bind(spec.proto, ip, spec.host_port.unwrap_or(0))?;
    let port = local_port(fd, spec.proto)?;
    Ok(PortMapping {
        host_ip: ip,
        host_port: port,
        pod_port: spec.pod_port,
        proto: spec.proto,
    })
}

fn local_port(fd: OwnedFd, proto: Proto) -> Result<u16> {
    let addr = match proto {
        Proto::Tcp => TcpListener::from(fd).local_addr(),
        Proto::Udp => UdpSocket::from(fd).local_addr(),
    };
    addr.map(|a| a.port())
        .map_err(|e| NetError::Other(format!("getsockname: {e}")))
}

/// Whether two mappings would fight over the same host socket.
pub fn conflicts(a: &PortMapping, b: &PortMapping) -> bool {
    a.proto == b.proto
        && a.host_port == b.host_port
        && (a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified())
}

/// Serves connections that reach a held TCP listener (not DNATed) by
/// copying bytes to and from `target`, on a thread of its own until the
/// returned handle is dropped (which closes the listener:
/// `sys::Served`).
pub fn proxy_tcp(listener: OwnedFd, target: SocketAddrV4) -> Result<crate::sys::Served> {
    crate::sys::serve(TcpListener::from(listener), move |conn| {
        std::thread::spawn(move || {
            let Ok(up) = TcpStream::connect_timeout(&target.into(), Duration::from_secs(5)) else {
                return;
            };
            let (Ok(c2), Ok(u2)) = (conn.try_clone(), up.try_clone()) else {
                return;
            };
            let t = std::thread::spawn(move || pipe(c2, u2));
            pipe(up, conn);
            let _ = t.join();
        });
    })
    .map_err(|e| NetError::Other(format!("serving {target}'s published port: {e}")))
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_refuses_a_port_in_use_and_picks_free_ones() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let spec = PortSpec {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: Some(port),
            pod_port: 80,
            proto: Proto::Tcp,
        };
        let e = reserve(&spec).unwrap_err().to_string();
        assert!(e.contains(&format!("{port}/tcp")), "{e}");
        let m = reserve(&PortSpec {
            host_port: None,
            ..spec
        })
        .unwrap();
        assert_ne!(m.host_port, 0);
        let any = PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED,
            ..m
        };
        assert!(conflicts(&m, &any));
        assert!(!conflicts(
            &m,
            &PortMapping {
                proto: Proto::Udp,
                ..m
            }
        ));
    }
}
