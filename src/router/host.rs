//! Reading a route from a request's Host header. Pure: no I/O.
//!
//! Two entries share this parser (issue 11):
//! - a pod's own route port: `localhost-N.<anything>` is port N of that pod,
//!   any other host its default port (the platform's nginx model);
//! - the shared router: `localhost-N.pod-NAME.localhost` and the one-label
//!   form `N--NAME.localhost` (Coder's `{port}--{workspace}` shape, which a
//!   wildcard certificate or a single-label cookie scope can cover) are
//!   port N of pod NAME; anything else names no route.
//!
//! Hosts compare case-insensitively (browsers lowercase them); a `:port`
//! suffix and a trailing dot are ignored. Ports are 1-65535 in decimal with
//! no sign or leading zero, so `localhost-080` is no route rather than a
//! second spelling of port 80.

/// Where a request goes, as its Host header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Port N of the pod the entry belongs to (`localhost-N.…`).
    Port(u16),
    /// Port N of pod NAME (the shared router's forms).
    PodPort { pod: String, port: u16 },
    /// Nothing in the host names a port.
    Default,
}

/// The host part of a Host header: lowercased, without `:port` and a
/// trailing dot. `None` for an empty host or an IPv6 literal, which can
/// never name a route.
pub fn hostname(header: &str) -> Option<String> {
    let h = header.trim();
    if h.is_empty() || h.starts_with('[') {
        return None;
    }
    let h = match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => h,
    };
    let h = h.strip_suffix('.').unwrap_or(h);
    (!h.is_empty()).then(|| h.to_ascii_lowercase())
}

/// Parses `localhost-N` (a label) as port N.
fn localhost_port(label: &str) -> Option<u16> {
    port_number(label.strip_prefix("localhost-")?)
}

/// A port in canonical decimal: 1-65535, no leading zero.
pub fn port_number(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

/// The route of a request that reached a pod's own route port.
pub fn pod_entry(header: &str) -> Route {
    let Some(h) = hostname(header) else {
        return Route::Default;
    };
    let first = h.split('.').next().unwrap_or_default();
    match localhost_port(first) {
        // `localhost-N` alone is not a hostname a browser resolves to us,
        // but curl sends it as given: treat it the same.
        Some(p) => Route::Port(p),
        None => Route::Default,
    }
}

/// The route of a request that reached the shared router.
pub fn shared_entry(header: &str) -> Route {
    let Some(h) = hostname(header) else {
        return Route::Default;
    };
    let labels: Vec<&str> = h.split('.').collect();
    match labels.as_slice() {
        [first, pod, "localhost"] => match (localhost_port(first), pod.strip_prefix("pod-")) {
            (Some(port), Some(name)) if is_dns_label(name) => Route::PodPort {
                pod: name.to_string(),
                port,
            },
            _ => Route::Default,
        },
        [one, "localhost"] => match one.split_once("--") {
            Some((port, name)) if is_dns_label(name) => match port_number(port) {
                Some(port) => Route::PodPort {
                    pod: name.to_string(),
                    port,
                },
                None => Route::Default,
            },
            _ => Route::Default,
        },
        _ => Route::Default,
    }
}

/// A DNS label as RFC 1123 has it, lowercase: 1-63 of `a-z0-9-`, not
/// starting or ending with `-`. Pod names used in routes must be one.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp(pod: &str, port: u16) -> Route {
        Route::PodPort {
            pod: pod.into(),
            port,
        }
    }

    #[test]
    fn hostnames_lose_port_case_and_trailing_dot() {
        assert_eq!(
            hostname("Web.LOCALHOST:8080").as_deref(),
            Some("web.localhost")
        );
        assert_eq!(hostname("a.localhost.").as_deref(), Some("a.localhost"));
        assert_eq!(hostname("[::1]:80"), None);
        assert_eq!(hostname(""), None);
        assert_eq!(hostname(":80"), None);
    }

    #[test]
    fn the_pod_entry_reads_the_first_label_only() {
        assert_eq!(
            pod_entry("localhost-8726.pod-web.localhost:30001"),
            Route::Port(8726)
        );
        assert_eq!(pod_entry("localhost-3000.example.test"), Route::Port(3000));
        assert_eq!(pod_entry("LOCALHOST-3000"), Route::Port(3000));
        assert_eq!(pod_entry("localhost:30001"), Route::Default);
        assert_eq!(pod_entry("127.0.0.1:30001"), Route::Default);
        assert_eq!(pod_entry("localhost-0.x"), Route::Default);
        assert_eq!(pod_entry("localhost-080.x"), Route::Default);
        assert_eq!(pod_entry("localhost-65536.x"), Route::Default);
        assert_eq!(pod_entry("localhost-+80.x"), Route::Default);
        assert_eq!(pod_entry("x.localhost-80"), Route::Default);
    }

    #[test]
    fn the_shared_router_takes_both_forms() {
        assert_eq!(
            shared_entry("localhost-8726.pod-web.localhost:8080"),
            pp("web", 8726)
        );
        assert_eq!(shared_entry("3000--my-app.localhost"), pp("my-app", 3000));
        assert_eq!(shared_entry("3000--a--b.localhost"), pp("a--b", 3000));
        assert_eq!(
            shared_entry("localhost-80.pod-Web.localhost"),
            pp("web", 80)
        );
        for bad in [
            "localhost:8080",
            "web.localhost",
            "localhost-80.web.localhost",
            "localhost-80.pod-.localhost",
            "localhost-80.pod-a_b.localhost",
            "localhost-80.pod-web.example.com",
            "x.localhost-80.pod-web.localhost",
            "80--.localhost",
            "--web.localhost",
            "0--web.localhost",
            "99999--web.localhost",
            "80--web-.localhost",
        ] {
            assert_eq!(shared_entry(bad), Route::Default, "{bad}");
        }
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("web"));
        assert!(is_dns_label("a1-b2"));
        assert!(is_dns_label(&"a".repeat(63)));
        assert!(!is_dns_label(&"a".repeat(64)));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
