//! `gvpod ssh-proxy NAME.gvpod`: ssh's ProxyCommand. Connects its stdin and
//! stdout to port 22 of that running pod at its address on its network, so
//! no port is published. A refused connection is retried for a few seconds
//! (sshd may still be starting right after `run` or a restart).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::super::{Ctx, PodError, Result};

/// How long a refused connection is retried.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// The pod name of an ssh host `NAME.gvpod` (or a bare name).
fn pod_of(host: &str) -> &str {
    let n = host.len();
    if n > 6 && host[n - 6..].eq_ignore_ascii_case(".gvpod") {
        &host[..n - 6]
    } else {
        host
    }
}

/// Relays stdin/stdout to port 22 of the pod `host` names until sshd closes.
pub fn proxy(ctx: &mut Ctx, host: &str) -> Result<()> {
    let name = pod_of(host);
    // ssh lowercases the host it is given: a pod named `Web` is `web.gvpod`.
    let key = match ctx.lookup(name) {
        Ok(p) => p.name,
        Err(PodError::NotFound(_)) => {
            let found: Vec<String> = ctx
                .db
                .pods()?
                .into_iter()
                .filter(|p| p.name.eq_ignore_ascii_case(name))
                .map(|p| p.name)
                .collect();
            match found.as_slice() {
                [one] => one.clone(),
                _ => return Err(PodError::NotFound(name.to_string())),
            }
        }
        Err(e) => return Err(e),
    };
    let v = super::super::inspect(ctx, &key)?;
    if v.status != "running" {
        return Err(PodError::BadState {
            name: v.name,
            status: if v.status == "exited" {
                "exited"
            } else {
                "not running"
            },
            hint: "start it first (`gvpod start`)",
        });
    }
    let ip: Ipv4Addr = v.ip.as_deref().and_then(|i| i.parse().ok()).ok_or_else(|| {
        PodError::Usage(format!(
            "pod {} has no address on a pod network, so ssh cannot reach it; recreate it with a network and --ssh",
            v.name
        ))
    })?;
    let addr = SocketAddr::from((ip, 22));
    let deadline = Instant::now() + RETRY_FOR;
    let sock = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => break s,
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(PodError::Usage(format!(
                    "cannot reach sshd of pod {} at {addr}: {e}; was it created with --ssh?",
                    v.name
                )))
            }
        }
    };
    let _ = sock.set_nodelay(true);
    let mut up = sock
        .try_clone()
        .map_err(|e| PodError::Monitor(format!("socket: {e}")))?;
    // stdin → sshd; its end is passed on as a half close.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = up.shutdown(Shutdown::Write);
    });
    // sshd → stdout, until sshd closes: then the session is over.
    let mut down = sock;
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match down.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pod_of;

    #[test]
    fn hosts_name_pods() {
        assert_eq!(pod_of("web.gvpod"), "web");
        assert_eq!(pod_of("WEB.GVPOD"), "WEB");
        assert_eq!(pod_of("a.b.gvpod"), "a.b");
        assert_eq!(pod_of("web"), "web");
        assert_eq!(pod_of(".gvpod"), ".gvpod");
    }
}
