//! Unit tests of the spec module: every error kind with its exact
//! location and message, merging, defaults, cycles.

use std::path::PathBuf;

use super::*;

fn src(name: &str, text: &str) -> Source {
    Source {
        name: name.into(),
        text: text.into(),
        dir: PathBuf::from("/proj"),
    }
}

fn ok(text: &str) -> Project {
    load(&[src("a.yaml", text)]).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    match load(&[src("a.yaml", text)]) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

const GOOD: &str = "\
name: myapp
defaults:
  image: debian:bookworm
  resources: {cpus: 1, memory: 2g, pids: 4096, storage: 10g}
  restart: unless-stopped
  user: {name: dev, sudo: true, ssh_keys: [keys/id.pub]}
  route: auto
pods:
  web:
    image: busybox
    env: {TZ: UTC, N: 1}
    ports: [\"8080:80\", 9090]
    volumes: [\"./src:/workspace\", \"/data:/data:ro\"]
    workdir: /workspace
    network: backend
    resources: {memory: 256m}
    setup: mkdir -p /workspace
    services:
      app:
        start: busybox httpd -f -p 3000
        port: 3000
        health: {http: /, interval: 1m30s, timeout: 500ms}
        depends_on: [db]
      db:
        start: sleep 1000
        health: {tcp: 5432}
  db:
networks: {backend: {subnet: 198.18.60.0/24}}
";

#[test]
fn a_good_spec_decodes_with_defaults_merged() {
    let p = ok(GOOD);
    assert_eq!(p.name, "myapp");
    let web = &p.pods["web"];
    assert_eq!(web.name, "myapp-web");
    assert_eq!(web.image, "busybox");
    assert_eq!(web.env["N"], "1");
    assert_eq!(web.ports, ["8080:80", "9090"]);
    assert_eq!(web.volumes, ["/proj/src:/workspace", "/data:/data:ro"]);
    assert_eq!(web.setup, ["mkdir -p /workspace"]);
    // resources merge key by key: the pod's memory, the defaults' cpus.
    assert_eq!(web.resources.memory, Some(256 << 20));
    assert_eq!(web.resources.cpus, Some(1.0));
    assert_eq!(web.resources.pids, Some(4096));
    assert_eq!(web.resources.storage, Some(10 << 30));
    let user = web.user.as_ref().unwrap();
    assert_eq!(user.ssh_keys, ["/proj/keys/id.pub"]);
    assert!(user.sudo);
    let app = &web.services["app"];
    let h = app.health.as_ref().unwrap();
    assert_eq!(h.probe, Probe::Http("/".into()));
    assert_eq!((h.interval_ms, h.timeout_ms, h.retries), (90_000, 500, 3));
    assert_eq!(
        web.services["db"].health.as_ref().unwrap().probe,
        Probe::Tcp(5432)
    );
    // An empty pod is all defaults.
    let db = &p.pods["db"];
    assert_eq!(db.image, "debian:bookworm");
    assert_eq!(db.restart.as_deref(), Some("unless-stopped"));
    assert_eq!(db.resources.memory, Some(2 << 30));
    assert_eq!(p.networks["backend"].name, "myapp-backend");
}

#[test]
fn a_later_file_overrides_key_by_key_and_errors_name_its_file() {
    let base = src("a.yaml", GOOD);
    let over = Source {
        name: "b.yaml".into(),
        text: "pods:\n  web:\n    image: nginx\n    ports: [\"1:2\"]\n    resources: {cpus: 0.5}\n  extra: {}\n".into(),
        dir: PathBuf::from("/other"),
    };
    let p = load(&[base, over]).unwrap();
    let web = &p.pods["web"];
    assert_eq!(web.image, "nginx");
    assert_eq!(web.ports, ["1:2"], "lists replace");
    assert_eq!(web.resources.cpus, Some(0.5));
    assert_eq!(web.resources.memory, Some(256 << 20), "maps merge");
    assert_eq!(web.workdir.as_deref(), Some("/workspace"));
    assert_eq!(p.pods["extra"].image, "debian:bookworm");
    // The ssh key came from a.yaml: resolved against a.yaml's directory.
    assert_eq!(web.user.as_ref().unwrap().ssh_keys, ["/proj/keys/id.pub"]);
    let bad = Source {
        name: "b.yaml".into(),
        text: "pods:\n  web:\n    ports: [\"99999:80\"]\n".into(),
        dir: PathBuf::from("/other"),
    };
    let e = load(&[src("a.yaml", GOOD), bad]).unwrap_err().to_string();
    assert_eq!(
        e,
        "b.yaml:3:13: pods.web.ports[0]: invalid value \"99999:80\"; ports are numbers from 1 to 65535"
    );
    // A bad value in defaults is reported where defaults wrote it.
    let e = err("name: x\ndefaults:\n  restart: sometimes\npods:\n  a: {image: busybox}\n");
    assert_eq!(
        e,
        "a.yaml:3:12: pods.a.restart: invalid value \"sometimes\"; use no, always, unless-stopped, on-failure or on-failure:N"
    );
}

#[test]
fn syntax_errors_have_a_location() {
    let e = err("name: x\npods: [a\n");
    assert!(e.starts_with("a.yaml:3:1: invalid YAML: "), "{e}");
    assert!(e.ends_with("; expected a YAML mapping"), "{e}");
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn unknown_keys_and_wrong_types() {
    assert_eq!(
        err("name: x\npods:\n  a:\n    image: busybox\n    imagee: busybox\n"),
        "a.yaml:5:5: unknown key \"imagee\" in pods.a; expected one of image, entrypoint, command, env, ports, volumes, workdir, network, user, resources, restart, route, route_default, labels, setup, services"
    );
    assert_eq!(
        err("name: x\nversion: 3\npods: {a: {image: busybox}}\n"),
        "a.yaml:2:1: unknown key \"version\" in the spec; expected one of name, defaults, pods, networks"
    );
    assert_eq!(
        err("name: x\npods:\n  a:\n    image: busybox\n    ports: \"80:80\"\n"),
        "a.yaml:5:12: pods.a.ports: found a string; expected a list of ports such as \"8080:80\""
    );
    assert_eq!(
        err("name: x\npods:\n  a:\n    image: busybox\n    user: {name: dev, sudo: yes}\n"),
        "a.yaml:5:29: pods.a.user.sudo: found a string; expected true or false"
    );
    assert_eq!(
        err("name: x\ndefaults:\n  colour: red\npods: {a: {image: busybox}}\n"),
        "a.yaml:3:3: unknown key \"colour\" in defaults; expected one of image, entrypoint, command, env, ports, volumes, workdir, network, user, resources, restart, route, route_default, labels, setup, services"
    );
}

#[test]
fn bad_values() {
    let pod = |extra: &str| {
        err(&format!(
            "name: x\npods:\n  a:\n    image: busybox\n{extra}"
        ))
    };
    assert_eq!(
        pod("    resources: {memory: lots}\n"),
        "a.yaml:5:25: pods.a.resources.memory: invalid value \"lots\"; use a size such as 256m, 1g or 1048576 (bytes)"
    );
    assert_eq!(
        pod("    resources: {storage: 1m}\n"),
        "a.yaml:5:26: pods.a.resources.storage: invalid value \"1m\"; the smallest writable layer is 32m"
    );
    assert_eq!(
        pod("    resources: {pids: 10}\n"),
        "a.yaml:5:23: pods.a.resources.pids: invalid value \"10\"; expected at least 64 (gVisor's own threads count)"
    );
    assert_eq!(
        pod("    services:\n      s:\n        start: x\n        health: {cmd: x, interval: 5sec}\n"),
        "a.yaml:8:36: pods.a.services.s.health.interval: invalid value \"5sec\"; expected a duration such as 500ms, 5s or 1m30s"
    );
    assert_eq!(
        pod("    route: nowhere\n"),
        "a.yaml:5:12: pods.a.route: invalid value \"nowhere\"; expected auto, HOSTPORT or HOSTIP:HOSTPORT"
    );
    assert_eq!(
        pod("    volumes: [\"data:/data\"]\n"),
        "a.yaml:5:15: pods.a.volumes[0]: invalid value \"data:/data\"; named volumes are not supported; expected a host path such as ./data or /srv/data"
    );
    assert_eq!(
        pod("    user: {sudo: true, ssh_keys: [k.pub]}\n"),
        "a.yaml:5:11: pods.a.user: no name; expected `name:` (the dev user that sudo and ssh_keys are for)"
    );
    assert_eq!(
        pod("    services:\n      s:\n        start: x\n        health: {http: /}\n"),
        "a.yaml:8:24: pods.a.services.s.health.http: no port to probe; expected `port:` on the service"
    );
    assert_eq!(
        pod("    services:\n      s:\n        start: x\n        health: {cmd: x, tcp: 1}\n"),
        "a.yaml:8:17: pods.a.services.s.health: tcp and cmd probes; expected only one of http, tcp or cmd"
    );
    assert_eq!(
        err("name: x\npods:\n  a: {}\n"),
        "a.yaml:3:6: pods.a: no image; expected `image:` in the pod or in defaults"
    );
    assert_eq!(
        err("name: x\npods: {a: {image: b}}\nnetworks: {n: {subnet: 198.18.0.0/33}}\n"),
        "a.yaml:3:24: networks.n.subnet: invalid value \"198.18.0.0/33\"; expected an IPv4 subnet such as 198.18.60.0/24"
    );
}

#[test]
fn names_are_dns_labels() {
    assert_eq!(
        err("name: My_App\npods: {a: {image: b}}\n"),
        "a.yaml:1:7: invalid project name \"My_App\"; expected lowercase letters, digits and '-' (not first or last), at most 61 characters"
    );
    assert_eq!(
        err("name: x\npods:\n  web_1: {image: b}\n"),
        "a.yaml:3:3: invalid pod name \"web_1\"; expected lowercase letters, digits and '-' (not first or last), at most 61 characters"
    );
    assert_eq!(
        err("name: x\npods:\n  a:\n    image: b\n    services:\n      -s: {start: x}\n"),
        "a.yaml:6:7: invalid service name \"-s\"; expected lowercase letters, digits and '-' (not first or last), at most 63 characters"
    );
    assert_eq!(
        err("pods: {a: {image: b}}\n"),
        "a.yaml:1:1: no project name; expected `name:` (pods are named NAME-POD)"
    );
}

#[test]
fn depends_on_targets_and_cycles() {
    let svc = "name: x\npods:\n  a:\n    image: b\n    services:\n      s1: {start: x, depends_on: [s2]}\n      s2: {start: x, depends_on: [s3]}\n      s3: {start: x, depends_on: [s1]}\n";
    assert_eq!(
        err(svc),
        "a.yaml:6:35: pods.a.services.s1.depends_on: a cycle a.s1 -> a.s2 -> a.s3 -> a.s1; expected services that do not wait for each other"
    );
    assert_eq!(
        err("name: x\npods:\n  a:\n    image: b\n    services:\n      s1: {start: x, depends_on: [s1]}\n"),
        "a.yaml:6:35: pods.a.services.s1.depends_on: a cycle a.s1 -> a.s1; expected services that do not wait for each other"
    );
    assert_eq!(
        err("name: x\npods:\n  a:\n    image: b\n    services:\n      s1: {start: x, depends_on: [db]}\n      s2: {start: x}\n"),
        "a.yaml:6:35: pods.a.services.s1.depends_on[0]: no service \"db\" in this pod and no other pod \"db\"; expected one of: s2"
    );
    // Another pod: its services are waited for, and cycles go across pods.
    let across = "name: x\npods:\n  web:\n    image: b\n    services:\n      app: {start: x, depends_on: [db]}\n  db:\n    image: b\n    services:\n      sql: {start: x}\n      sync: {start: x, depends_on: [web]}\n";
    assert_eq!(
        err(across),
        "a.yaml:11:37: pods.db.services.sync.depends_on: a cycle db.sync -> web.app -> db.sync; expected services that do not wait for each other"
    );
    let p = ok(&across.replace(", depends_on: [web]", ""));
    assert_eq!(p.pods["web"].services["app"].depends_on, ["db"]);
    assert_eq!(
        err("name: x\npods:\n  web:\n    image: b\n    services:\n      app: {start: x, depends_on: [web]}\n"),
        "a.yaml:6:36: pods.web.services.app.depends_on[0]: no service \"web\" in this pod and no other pod \"web\"; expected one of: (nothing else to wait for)"
    );
    let ok_chain = "name: x\npods:\n  a:\n    image: b\n    services:\n      s1: {start: x, depends_on: [s2, s3]}\n      s2: {start: x, depends_on: [s3]}\n      s3: {start: x}\n";
    assert_eq!(ok(ok_chain).pods["a"].services.len(), 3);
}

#[test]
fn printed_yaml_is_a_spec_that_loads_to_the_same_project() {
    let p = ok(GOOD);
    let y = to_yaml(&serde_json::to_value(&p).unwrap());
    assert!(y.starts_with("name: \"myapp\"\n"), "{y}");
    assert!(y.contains("interval: \"1m30s\"\n"), "{y}");
    let again = load(&[src("out.yaml", &y)]).unwrap_or_else(|e| panic!("{e}\n{y}"));
    assert_eq!(again, p);
}

#[test]
fn no_files_and_empty_files() {
    assert!(matches!(load(&[]), Err(SpecError::NoFile)));
    assert_eq!(
        err(""),
        "a.yaml:1:1: no project name; expected `name:` (pods are named NAME-POD)"
    );
}

#[test]
fn a_repeated_key_is_an_error_where_it_repeats() {
    assert_eq!(
        err("name: x\nname: y\npods: {a: {image: b}}\n"),
        "a.yaml:2:1: invalid YAML: duplicated key in mapping; expected each key once"
    );
}

#[test]
fn host_ports_and_subnets_do_not_clash() {
    assert_eq!(
        err("name: x\npods:\n  a: {image: b, ports: [\"8080:80\"]}\n  c: {image: b, ports: [\"127.0.0.1:8080:81\"]}\n"),
        "a.yaml:4:25: pods.c.ports[0]: host port 8080/tcp is already published by pods.a.ports[0]; expected a free host port"
    );
    // Other protocol or another address: no clash.
    ok("name: x\npods:\n  a: {image: b, ports: [\"127.0.0.1:8080:80\", \"8080:80/udp\"]}\n  c: {image: b, ports: [\"127.0.0.2:8080:81\"]}\n");
    assert_eq!(
        err("name: x\npods:\n  a: {image: b, network: none, ports: [\"8080:80\"]}\n"),
        "a.yaml:3:40: pods.a.ports[0]: a published port on network none; expected a pod network (remove network: none or the port)"
    );
    assert_eq!(
        err("name: x\npods: {a: {image: b}}\nnetworks:\n  n1: {subnet: 198.18.60.0/24}\n  n2: {subnet: 198.18.60.128/25}\n"),
        "a.yaml:5:16: networks.n2.subnet: 198.18.60.128/25 overlaps the subnet of networks.n1; expected subnets that do not overlap"
    );
}

#[test]
fn a_service_reads_back_from_the_json_a_pod_stores() {
    let p = ok("name: x\npods:\n  a:\n    image: b\n    services:\n      web: {start: httpd, port: 3000, depends_on: [db], health: {http: /, interval: 1m30s, start_period: 500ms}}\n      db: {install: 'true', start: db, health: {cmd: 'test -e /x'}}\n");
    let services = &p.pods["a"].services;
    let json = serde_json::to_string(services).unwrap();
    let back: std::collections::BTreeMap<String, Service> = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, services);
    assert_eq!(back["web"].health.as_ref().unwrap().interval_ms, 90_000);
    assert_eq!(back["web"].health.as_ref().unwrap().start_period_ms, 500);
    assert!(serde_json::from_str::<Health>(
        r#"{"tcp": 1, "interval": "0s", "timeout": "1s", "retries": 1}"#
    )
    .is_err());
}
