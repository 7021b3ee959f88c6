//! The host's view of a pod's TCP connections: the kernel's connection
//! tracking table (`/proc/net/nf_conntrack`), which sees every connection
//! to or from a pod address as it crosses the bridge. Used before a
//! checkpoint on runsc releases that cannot save open connections
//! (DESIGN.md fact 10): a connection closed by the pod lingers in the
//! sandbox's netstack in TIME_WAIT for 60 s, with no socket the pod's own
//! /proc/net/tcp would show, but conntrack still lists it.

use std::net::Ipv4Addr;

/// gVisor's TIME_WAIT (tcpLingerTimeout): a connection closed this long ago
/// is gone from the sandbox.
const SANDBOX_TIME_WAIT_SECS: u64 = 60;

/// Connections of `ip` that a sandbox started `age` ago may still hold in
/// its netstack without a socket, as "STATE a:port -> b:port"; `None` when
/// the table cannot be read. Established connections are left out: they
/// have sockets, which the pod's own /proc/net/tcp shows, and conntrack
/// cannot date them. Every other entry is dated from its state's timeout
/// (`nf_conntrack_tcp_timeout_<state>` minus what is left): one that began
/// before this sandbox belongs to a pod that had the address before.
pub fn busy(ip: Ipv4Addr, age: std::time::Duration) -> Option<Vec<String>> {
    let table = std::fs::read_to_string("/proc/net/nf_conntrack").ok()?;
    let timeout = |state: &str| -> Option<u64> {
        std::fs::read_to_string(format!(
            "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_{}",
            state.to_ascii_lowercase()
        ))
        .ok()?
        .trim()
        .parse()
        .ok()
    };
    Some(parse(&table, ip, &timeout, age.as_secs()))
}

fn parse(
    table: &str,
    ip: Ipv4Addr,
    timeout: &dyn Fn(&str) -> Option<u64>,
    pod_age: u64,
) -> Vec<String> {
    let ip = ip.to_string();
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(2) != Some(&"tcp") {
                return None;
            }
            let left: u64 = f.get(4)?.parse().ok()?;
            let state = *f.get(5)?;
            let field =
                |k: &str| -> Vec<&str> { f.iter().filter_map(|x| x.strip_prefix(k)).collect() };
            let (src, dst, sport, dport) = (
                field("src="),
                field("dst="),
                field("sport="),
                field("dport="),
            );
            if !src.contains(&ip.as_str()) && !dst.contains(&ip.as_str()) {
                return None;
            }
            // Seconds since the entry entered its state (timeouts tick in
            // whole seconds: a 2 s margin against this sandbox's age).
            let entered = timeout(state).map(|t| t.saturating_sub(left));
            let quiet = match state {
                "CLOSE" | "ESTABLISHED" => true,
                "TIME_WAIT" => {
                    entered.is_some_and(|e| e >= SANDBOX_TIME_WAIT_SECS || e > pod_age + 2)
                }
                _ => entered.is_some_and(|e| e > pod_age + 2),
            };
            if quiet {
                return None;
            }
            // The reply direction names the pod's side.
            let i = usize::from(src.len() > 1 && src[1] == ip);
            Some(format!(
                "{state} {}:{} -> {}:{}",
                src.get(i)?,
                sport.get(i)?,
                dst.get(i)?,
                dport.get(i)?
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_and_open_connections_of_the_pod_count() {
        let t = "ipv4     2 tcp      6 114 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=34940 dport=18080 src=198.18.0.2 dst=198.18.0.1 sport=80 dport=34940 [ASSURED] mark=0 zone=0 use=2\n\
ipv4     2 tcp      6 30 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=1 dport=18080 src=198.18.0.2 dst=198.18.0.1 sport=80 dport=1 [ASSURED] mark=0 zone=0 use=2\n\
ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.9 dst=198.18.0.2 sport=5 dport=80 src=198.18.0.2 dst=198.18.0.9 sport=80 dport=5 [ASSURED] mark=0 zone=0 use=2\n\
ipv4     2 tcp      6 431999 ESTABLISHED src=198.19.9.9 dst=198.19.9.8 sport=5 dport=80 src=198.19.9.8 dst=198.19.9.9 sport=80 dport=5 mark=0 zone=0 use=2\n\
ipv4     2 unknown  2 350 src=198.18.0.2 dst=224.0.0.22 [UNREPLIED] src=224.0.0.22 dst=198.18.0.2 mark=0 zone=0 use=2\n";
        let timeouts = |s: &str| match s {
            "TIME_WAIT" => Some(120),
            "LAST_ACK" => Some(30),
            _ => None,
        };
        let got = parse(t, Ipv4Addr::new(198, 18, 0, 2), &timeouts, 3600);
        assert_eq!(got, ["TIME_WAIT 198.18.0.2:80 -> 198.18.0.1:34940"]);
        // Closed 6 s ago, by a pod that had the address before this one (started 2 s ago).
        assert!(parse(t, Ipv4Addr::new(198, 18, 0, 2), &timeouts, 2).is_empty());
        // Closed 6 s ago in a sandbox started 4 s ago by the clock (whole seconds): counted.
        assert_eq!(
            parse(t, Ipv4Addr::new(198, 18, 0, 2), &timeouts, 4).len(),
            1
        );
        // A LAST_ACK of a pod that had the address 20 s before this one started.
        let old = "ipv4     2 tcp      6 10 LAST_ACK src=198.18.0.3 dst=198.18.0.2 sport=7 dport=80 src=198.18.0.2 dst=198.18.0.3 sport=80 dport=7 [ASSURED] mark=0 zone=0 use=2\n";
        assert!(parse(old, Ipv4Addr::new(198, 18, 0, 2), &timeouts, 1).is_empty());
        assert_eq!(
            parse(old, Ipv4Addr::new(198, 18, 0, 2), &timeouts, 60).len(),
            1
        );
    }
}
