//! The pod's /etc/resolv.conf and /etc/hosts.

use std::net::{IpAddr, Ipv4Addr};

/// resolv.conf for a pod: `--dns` servers if given, else the host's upstream
/// servers. Loopback servers (systemd-resolved's 127.0.0.53, a local
/// dnsmasq) are unreachable from a pod, so systemd-resolved's upstream list
/// is used instead when the host's own file only names a stub; if no
/// usable server remains the file has none rather than an invented one.
pub fn resolv_conf(dns: &[IpAddr], host_files: &[&str]) -> String {
    let mut servers: Vec<String> = dns.iter().map(IpAddr::to_string).collect();
    let mut search = vec![];
    if servers.is_empty() {
        for f in host_files {
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            let (s, sr) = parse(&text);
            if !s.is_empty() {
                servers = s;
                search = sr;
                break;
            }
        }
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// Usable (non-loopback) nameservers and the search list of a resolv.conf.
fn parse(text: &str) -> (Vec<String>, Vec<String>) {
    let mut servers = vec![];
    let mut search = vec![];
    for l in text.lines() {
        let mut w = l.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(ip) = w.next().and_then(|s| s.parse::<IpAddr>().ok()) {
                    if !ip.is_loopback() {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some("search") => search = w.map(str::to_string).collect(),
            _ => {}
        }
    }
    (servers, search)
}

/// The host files read for upstream servers, in order.
pub const HOST_RESOLV: &[&str] = &["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"];

/// The line of a pod's /etc/hosts after which the other pods of its
/// network are listed: [`replace_peers`] rewrites what follows it.
const PEERS_MARKER: &str = "# gvpod peers";

/// A pod's /etc/hosts: localhost; the pod's hostname and name on its
/// address (on 127.0.1.1 without a network, as Debian names its own host);
/// `--add-host` entries; then, after [`PEERS_MARKER`], the other pods of
/// its network.
pub fn hosts(
    hostname: &str,
    name: &str,
    ip: Option<Ipv4Addr>,
    peers: &[(Ipv4Addr, String)],
    extra: &[(String, IpAddr)],
) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let ip = ip.unwrap_or(Ipv4Addr::new(127, 0, 1, 1));
    if hostname == name {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    } else {
        out.push_str(&format!("{ip}\t{hostname} {name}\n"));
    }
    for (name, ip) in extra {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    push_peers(&mut out, peers);
    out
}

/// A pod's hosts file `old` with the peer lines replaced by `peers`; its
/// own and `--add-host` lines are kept.
pub fn replace_peers(old: &str, peers: &[(Ipv4Addr, String)]) -> String {
    let mut out = old.split(PEERS_MARKER).next().unwrap_or(old).to_string();
    push_peers(&mut out, peers);
    out
}

fn push_peers(out: &mut String, peers: &[(Ipv4Addr, String)]) {
    out.push_str(PEERS_MARKER);
    out.push('\n');
    for (ip, name) in peers {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
}

/// Parses `--add-host NAME:IP`.
pub fn parse_add_host(s: &str) -> Result<(String, IpAddr), super::NetError> {
    let bad = || super::NetError::BadValue {
        what: "--add-host",
        value: s.to_string(),
        hint: "use NAME:IP, e.g. db:198.18.0.9".into(),
    };
    let (name, ip) = s.split_once(':').ok_or_else(bad)?;
    let ok_name = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !ok_name {
        return Err(bad());
    }
    let ip: IpAddr = ip
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| bad())?;
    Ok((name.to_string(), ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_prefers_dns_flag_and_skips_loopback_stubs() {
        let d = tempfile::tempdir().unwrap();
        let stub = d.path().join("stub");
        let up = d.path().join("up");
        std::fs::write(&stub, "nameserver 127.0.0.53\nsearch lan\n").unwrap();
        std::fs::write(&up, "search corp\nnameserver 198.18.9.9\n").unwrap();
        let files = [stub.to_str().unwrap(), up.to_str().unwrap()];
        assert_eq!(
            resolv_conf(&[], &files),
            "search corp\nnameserver 198.18.9.9\n"
        );
        assert_eq!(
            resolv_conf(&["198.18.1.1".parse().unwrap()], &files),
            "nameserver 198.18.1.1\n"
        );
    }

    #[test]
    fn hosts_and_add_host() {
        let h = hosts(
            "web",
            "abc",
            Some("198.18.0.2".parse().unwrap()),
            &[("198.18.0.3".parse().unwrap(), "db".into())],
            &[parse_add_host("cache:198.18.0.9").unwrap()],
        );
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             198.18.0.2\tweb abc\n198.18.0.9\tcache\n# gvpod peers\n198.18.0.3\tdb\n"
        );
        // Without a network: the pod's own name on 127.0.1.1, once.
        let h = hosts("web", "web", None, &[], &[]);
        assert!(h.ends_with("127.0.1.1\tweb\n# gvpod peers\n"), "{h}");
        assert!(parse_add_host("nocolon").is_err());
        assert!(parse_add_host("a b:1.2.3.4").is_err());
        assert!(parse_add_host("x:999.1.1.1").is_err());
    }

    #[test]
    fn peers_are_replaced_and_the_rest_kept() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let extra = [parse_add_host("cache:198.18.0.9").unwrap()];
        let old = hosts(
            "web",
            "web",
            Some(ip("198.18.0.2")),
            &[(ip("198.18.0.3"), "db".into())],
            &extra,
        );
        let peers = [
            (ip("198.18.0.4"), "a".into()),
            (ip("198.18.0.5"), "b".into()),
        ];
        let new = replace_peers(&old, &peers);
        assert_eq!(
            new,
            hosts("web", "web", Some(ip("198.18.0.2")), &peers, &extra)
        );
        assert_eq!(replace_peers(&new, &peers), new);
        assert!(replace_peers(&new, &[]).ends_with("198.18.0.9\tcache\n# gvpod peers\n"));
    }
}
