//! Dev access routes (issue 11): the pod side of [`crate::router`].
//!
//! - `--route [HOSTIP:]HOSTPORT|auto` gives a pod its own route port: a host
//!   TCP port recorded with its published ports (migration 10: one query
//!   refuses a port either kind holds), listened on by the pod's monitor for
//!   the pod's life ([`hold`]), as its published ports are. `auto` picks a
//!   free port of `GVPOD_ROUTE_PORTS` (default 30000-40000). The route's
//!   default port is `--route-default`, else the pod's first exposed port,
//!   else 80.
//! - `gvpod router` ([`serve_shared`]) finds the pod named in the Host per
//!   connection, so pods come and go with no restart.
//!
//! How a connection reaches port N of a pod ([`PodTarget::open`]): straight
//! to the pod's address; if that is refused, to the pod's own loopback,
//! where dev servers (code-server) listen by default, through gvpod's
//! static relay run with `runsc exec` (runsc 20221219 has no port-forward,
//! and 20240729's crashes the sandbox on large reads: `runsc::forward`).
//! The relay is embedded in the binary and reaches every pod as a
//! read-only top layer of its rootfs ([`crate::pod::helpers`]): never a
//! file of the image, never in a layer a commit writes. It costs a runsc
//! process per connection (one keep-alive connection carries many
//! requests); a direct connection costs nothing more than the hop.
//!
//! Names: a route reaches a pod by name, so pods given `--route` must have
//! a DNS label for a name (lowercase; browsers lowercase hosts).

mod spec;
pub use spec::parse_spec;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

mod listening;
mod target;

pub use listening::{listening, ListeningPort};
pub use target::PodTarget;

use super::{Ctx, PodError, Result};
use crate::bundle::PodOptions;
use crate::net::{PortMapping, Proto};
use crate::router::{Connected, Entry, Refusal, Resolver, Route};
use crate::state::{PodRow, PodStatus, PortRow};

/// The automatic route port range, `FIRST-LAST`.
pub const RANGE_ENV: &str = "GVPOD_ROUTE_PORTS";
const DEFAULT_RANGE: (u16, u16) = (30000, 40000);

fn usage(msg: String) -> PodError {
    PodError::Usage(msg)
}

/// The automatic range from `GVPOD_ROUTE_PORTS`.
fn range() -> Result<(u16, u16)> {
    let Ok(v) = std::env::var(RANGE_ENV) else {
        return Ok(DEFAULT_RANGE);
    };
    let parsed = v.split_once('-').and_then(|(a, b)| {
        let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
        (a > 0 && a <= b).then_some((a, b))
    });
    parsed.ok_or_else(|| {
        usage(format!(
            "invalid {RANGE_ENV}={v:?}: use FIRST-LAST, e.g. 30000-40000"
        ))
    })
}

/// The route's default port: `--route-default`, else the first exposed
/// TCP port (the image's, then `--expose`), else 80.
pub fn default_port(opts: &PodOptions, image_exposed: &[String]) -> u16 {
    opts.route_default.unwrap_or_else(|| {
        image_exposed
            .iter()
            .chain(&opts.expose)
            .filter_map(|e| {
                let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
                (proto == "tcp").then(|| p.parse::<u16>().ok()).flatten()
            })
            .find(|p| *p > 0)
            .unwrap_or(80)
    })
}

/// Checks the route options of a new pod named `name` and takes its route
/// port (refused now, before the pod exists, when it is in use). `taken`
/// are the host ports some pod already holds; `published` the pod's own.
pub fn resolve(
    opts: &PodOptions,
    name: &str,
    image_exposed: &[String],
    taken: &std::collections::HashSet<u16>,
    published: &[PortMapping],
) -> Result<Option<PortMapping>> {
    let Some(spec) = &opts.route else {
        if let Some(p) = opts.route_default {
            return Err(usage(format!(
                "--route-default {p} needs --route (e.g. --route auto)"
            )));
        }
        return Ok(None);
    };
    let (ip, port) = parse_spec(spec)?;
    if !crate::router::is_dns_label(name) {
        return Err(usage(format!(
            "pod name {name:?} cannot be used in routes: hosts like localhost-PORT.pod-NAME.localhost need a DNS label (lowercase letters, digits and '-', at most 63, no '-' at the ends); give one with --name"
        )));
    }
    if opts.route_default == Some(0) {
        return Err(usage(
            "invalid --route-default 0: use a port from 1 to 65535".into(),
        ));
    }
    let pod_port = default_port(opts, image_exposed);
    let clash = |p: u16| {
        published.iter().any(|m| {
            m.proto == Proto::Tcp
                && m.host_port == p
                && (m.host_ip == ip || m.host_ip.is_unspecified() || ip.is_unspecified())
        })
    };
    let mapping = |host_port| PortMapping {
        host_ip: ip,
        host_port,
        pod_port,
        proto: Proto::Tcp,
    };
    if let Some(p) = port {
        if clash(p) {
            return Err(usage(format!(
                "--route {spec} and a -p of the same pod use host port {p}; pick another"
            )));
        }
        crate::net::ports::bind(Proto::Tcp, ip, p)?;
        return Ok(Some(mapping(p)));
    }
    let (first, last) = range()?;
    let span = u32::from(last - first) + 1;
    let start = u32::from_str_radix(&crate::util::random_hex(4), 16).unwrap_or(0) % span;
    for i in 0..span {
        let p = first + ((start + i) % span) as u16;
        if taken.contains(&p) || clash(p) {
            continue;
        }
        if crate::net::ports::bind(Proto::Tcp, ip, p).is_ok() {
            return Ok(Some(mapping(p)));
        }
    }
    Err(usage(format!(
        "--route auto: no free port in {first}-{last} on {ip}; set {RANGE_ENV}=FIRST-LAST or give a port"
    )))
}

/// The route port among a pod's port rows, if it has one.
pub fn route_in(rows: &[PortRow]) -> Option<PortMapping> {
    rows.iter().find(|r| r.route).and_then(|r| {
        Some(PortMapping {
            host_ip: r.host_ip.parse().ok()?,
            host_port: r.host_port,
            pod_port: r.pod_port,
            proto: Proto::Tcp,
        })
    })
}

/// Binds the pod's route port `m` and serves it on threads of this process
/// (the pod's monitor, from `network::hold_ports`) until the handle is
/// released. Run before the sandbox starts, so a port taken since `create`
/// fails the start with one line.
pub fn hold(ctx: &Ctx, pod: &PodRow, m: PortMapping) -> Result<crate::sys::Served> {
    let fd = crate::net::ports::bind(Proto::Tcp, m.host_ip, m.host_port)?;
    let target = PodTarget::of(ctx, pod)?;
    crate::router::spawn(
        TcpListener::from(fd),
        Entry::Pod,
        Arc::new(OnePod {
            target,
            default_port: m.pod_port,
        }),
    )
    .map_err(|e| {
        PodError::Monitor(format!(
            "cannot serve the route port {}:{} of pod {}: {e}",
            m.host_ip, m.host_port, pod.name
        ))
    })
}

/// A pod's own route port.
struct OnePod {
    target: PodTarget,
    default_port: u16,
}

impl Resolver for OnePod {
    fn connect(&self, route: &Route) -> std::result::Result<Connected, Refusal> {
        let port = match route {
            Route::Port(p) | Route::PodPort { port: p, .. } => *p,
            Route::Default => self.default_port,
        };
        Ok(Connected {
            port,
            upstream: self.target.open(port)?,
        })
    }
}

/// The shared router: pods by name, looked up per connection.
struct ByName {
    ctx: Mutex<Ctx>,
    listen: String,
}

impl ByName {
    fn target(&self, name: &str) -> std::result::Result<PodTarget, Refusal> {
        let mut ctx = self.ctx.lock().unwrap_or_else(|e| e.into_inner());
        let pod = ctx
            .db
            .find_pods(name)
            .ok()
            .and_then(|pods| pods.into_iter().find(|p| p.name == name))
            .ok_or_else(|| {
                Refusal::new(
                    404,
                    format!("no pod named {name}"),
                    format!("no pod named {name:?} in this gvpod's data root (see `gvpod ps -a`)"),
                )
            })?;
        let pod = ctx
            .refresh(pod)
            .map_err(|e| Refusal::new(502, "pod state", e.to_string()))?;
        if pod.status != PodStatus::Running || pod.restarting() {
            let status = if pod.restarting() {
                "restarting"
            } else {
                pod.status.as_str()
            };
            return Err(Refusal::new(
                502,
                format!("pod {name} is {status}"),
                format!("pod {name} is {status}; start it with `gvpod start {name}`"),
            ));
        }
        PodTarget::of(&ctx, &pod).map_err(|e| Refusal::new(502, "pod state", e.to_string()))
    }
}

impl Resolver for ByName {
    fn connect(&self, route: &Route) -> std::result::Result<Connected, Refusal> {
        match route {
            Route::PodPort { pod, port } => Ok(Connected {
                port: *port,
                upstream: self.target(pod)?.open(*port)?,
            }),
            _ => Err(Refusal::new(
                404,
                "no route in this host name",
                format!(
                    "open http://localhost-PORT.pod-NAME.localhost:{0}/ or http://PORT--NAME.localhost:{0}/ to reach port PORT of pod NAME",
                    self.listen.rsplit(':').next().unwrap_or("80")
                ),
            )),
        }
    }
}

/// `gvpod router`: serves the shared router on `listener` until the process
/// is stopped. `listen` is what it says in its pages.
pub fn serve_shared(ctx: Ctx, listener: TcpListener, listen: String) {
    listening::record_router(&ctx, &listen);
    let resolver = Arc::new(ByName {
        ctx: Mutex::new(ctx),
        listen,
    });
    crate::router::serve(listener, Entry::Shared, resolver);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    #[test]
    fn route_specs() {
        assert_eq!(parse_spec("auto").unwrap(), (Ipv4Addr::LOCALHOST, None));
        assert_eq!(
            parse_spec("30001").unwrap(),
            (Ipv4Addr::LOCALHOST, Some(30001))
        );
        assert_eq!(
            parse_spec("0.0.0.0:30001").unwrap(),
            (Ipv4Addr::UNSPECIFIED, Some(30001))
        );
        assert_eq!(
            parse_spec("127.0.0.2:auto").unwrap(),
            (Ipv4Addr::new(127, 0, 0, 2), None)
        );
        for bad in [
            "", "0", "65536", "x", "host:80", "1.2.3:80", "auto:80", "-1",
        ] {
            let e = parse_spec(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("use auto"),
                "{e}"
            );
        }
    }

    #[test]
    fn default_ports() {
        let mut o = PodOptions::default();
        assert_eq!(default_port(&o, &[]), 80);
        assert_eq!(
            default_port(&o, &["53/udp".into(), "8765/tcp".into()]),
            8765
        );
        o.expose = vec!["3000/tcp".into()];
        assert_eq!(default_port(&o, &[]), 3000);
        o.route_default = Some(7681);
        assert_eq!(default_port(&o, &["8765/tcp".into()]), 7681);
    }

    #[test]
    fn names_and_options_are_checked_before_any_port_is_taken() {
        let none = HashSet::new();
        let mut o = PodOptions {
            route_default: Some(8080),
            ..Default::default()
        };
        let e = resolve(&o, "web", &[], &none, &[]).unwrap_err().to_string();
        assert!(e.contains("--route-default 8080 needs --route"), "{e}");
        o.route = Some("auto".into());
        for bad in ["Web", "my_pod", "a.b", "-x"] {
            let e = resolve(&o, bad, &[], &none, &[]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("pod name {bad:?} cannot be used in routes")),
                "{e}"
            );
        }
        // A fixed port held by a listener here is refused with the port named.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let held = l.local_addr().unwrap().port();
        o.route = Some(held.to_string());
        let e = resolve(&o, "web", &[], &none, &[]).unwrap_err().to_string();
        assert!(e.contains(&held.to_string()), "{e}");
        // The pod's own -p on the same port.
        o.route = Some("127.0.0.1:31999".into());
        let p = PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 31999,
            pod_port: 80,
            proto: Proto::Tcp,
        };
        let e = resolve(&o, "web", &[], &none, &[p])
            .unwrap_err()
            .to_string();
        assert!(e.contains("same pod use host port 31999"), "{e}");
    }

    #[test]
    fn auto_skips_ports_pods_hold_and_ports_in_use() {
        let o = PodOptions {
            route: Some("auto".into()),
            ..Default::default()
        };
        // A one-port range whose port a pod holds: nothing free.
        std::env::set_var(RANGE_ENV, "31990-31990");
        let taken: HashSet<u16> = [31990].into();
        let e = resolve(&o, "web", &[], &taken, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no free port in 31990-31990"), "{e}");
        // A two-port range: the held one is skipped, the other picked.
        std::env::set_var(RANGE_ENV, "31990-31991");
        let m = resolve(&o, "web", &["8765/tcp".into()], &taken, &[])
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.host_ip, m.host_port, m.pod_port),
            (Ipv4Addr::LOCALHOST, 31991, 8765)
        );
        std::env::set_var(RANGE_ENV, "9-1");
        let e = resolve(&o, "web", &[], &taken, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid GVPOD_ROUTE_PORTS=\"9-1\""), "{e}");
        std::env::remove_var(RANGE_ENV);
    }
}
