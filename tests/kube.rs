//! `gvpod generate kube`: manifests from a spec file (services, http/tcp/cmd
//! health checks, volumes, ports, resources, a route) and from a pod made
//! with `gvpod run -d` (ports, env, -m, --cpus, -v), each validated by the
//! real `kubernetes-validate` (PyPI, installed by scripts/setup.sh into
//! /opt/gvpod-venv) against Kubernetes KUBE_VERSION's schemas with
//! `--strict` (unknown fields are errors); bad input is one line and exit 2.

mod common;

use std::path::Path;
use std::process::Command;

use common::{stderr, stdout, Root};

/// The Kubernetes release whose schemas the manifests are checked against.
const KUBE_VERSION: &str = "1.32.0";

const VALIDATOR: &str = "/opt/gvpod-venv/bin/kubernetes-validate";

/// Validates `file`: every document must pass, strictly. Returns the
/// validator's output (one line per resource).
fn validate(file: &Path) -> String {
    assert!(
        Path::new(VALIDATOR).exists() || !common::skips_forbidden(),
        "{VALIDATOR} is missing (scripts/setup.sh installs it)"
    );
    let o = Command::new(VALIDATOR)
        .args(["-k", KUBE_VERSION, "--strict"])
        .arg(file)
        .output()
        .expect("run kubernetes-validate (scripts/setup.sh installs it)");
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "kubernetes-validate refused {}:\n{out}",
        file.display()
    );
    out
}

/// The `kind/name` pairs the validator passed, in order.
fn passed(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(" passed for resource "))
        .filter_map(|l| l.split(" passed for resource ").nth(1))
        .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

const SPEC: &str = r#"
name: shop
defaults:
  image: busybox
  resources: {cpus: 0.5, memory: 64m, pids: 256}
  restart: unless-stopped
networks: {backend: {subnet: 198.18.91.0/24}}
pods:
  web:
    env: {TZ: UTC, GREETING: "hello: world"}
    ports: ["18080:80", "15353:53/udp"]
    volumes: ["./src:/workspace", "./conf:/etc/app:ro"]
    workdir: /workspace
    network: backend
    route: auto
    route_default: 3000
    user: {name: dev, sudo: true}
    setup: ["mkdir -p /workspace/www"]
    command: [sleep, infinity]
    services:
      app:
        install: "echo ok > /tmp/installed"
        start: "busybox httpd -f -p 3000 -h /workspace"
        port: 3000
        health: {http: /, interval: 5s, timeout: 2s, retries: 3, start_period: 10s}
      cache:
        start: "nc -lk -p 6379 -e cat"
        port: 6379
        health: {tcp: 6379, interval: 3s, timeout: 1s, retries: 2}
      worker:
        start: "while :; do sleep 5; done"
        health: {cmd: "test -e /tmp/installed", interval: 10s, timeout: 1s, retries: 5}
        depends_on: [app]
  db:
    restart: on-failure
    network: backend
    command: [sh, -c, "echo db"]
"#;

#[test]
fn a_spec_file_renders_manifests_kubernetes_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("gvpod.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = dir.path().join("k8s.yaml");
    // Needs no root, no data root and no service.
    let o = Command::new(common::BIN)
        .env("GVPOD_ROOT", "/nonexistent/gvpod-kube-test")
        .args(["generate", "kube", "-f"])
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "-o writes the file, not stdout");
    let text = std::fs::read_to_string(&out).unwrap();
    let v = validate(&out);
    assert_eq!(
        passed(&v),
        [
            "runtimeclass/gvisor",
            "pod/shop-db",
            "deployment/shop-web",
            "service/shop-web"
        ],
        "{v}"
    );
    for want in [
        "runtimeClassName: \"gvisor\"",
        "handler: \"runsc\"",
        "httpGet:",
        "tcpSocket:",
        "exec:",
        "initialDelaySeconds: 10",
        "cpu: \"500m\"",
        "memory: \"64Mi\"",
        "# hostPath: a directory of the node",
        "restartPolicy: \"OnFailure\"",
        "value: \"hello: world\"",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // The same through stdout (and the default file name).
    let o = Command::new(common::BIN)
        .current_dir(dir.path())
        .args(["generate", "kube"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), text);
}

#[test]
fn bad_input_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\npods:\n  a: {image: busybox, bogus: 1}\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(common::BIN)
            .current_dir(dir.path())
            .env("GVPOD_ROOT", dir.path().join("root"))
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["generate", "kube", "-f", "bad.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("bad.yaml:3:"), "{err}");
    let o = run(&["generate", "kube", "pod1", "-f", "bad.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not both"), "{}", stderr(&o));
    let o = run(&["generate", "kube"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no spec file"), "{}", stderr(&o));
}

#[test]
fn a_running_pod_renders_manifests_kubernetes_accepts() {
    require_runsc!();
    let r = Root::new();
    let vol = r.path().join("data");
    std::fs::create_dir_all(&vol).unwrap();
    let v = format!("{}:/data:ro", vol.display());
    r.run_detached(&[
        "--name",
        "Web_1",
        "-p",
        "127.0.0.1::80",
        "-p",
        "18443:443",
        "-e",
        "MODE=prod",
        "-m",
        "96m",
        "--cpus",
        "1.5",
        "-v",
        &v,
        "--restart",
        "always",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let out = r.path().join("pod.yaml");
    r.ok(&["generate", "kube", "Web_1", "-o", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    let v = validate(&out);
    assert_eq!(
        passed(&v),
        ["runtimeclass/gvisor", "deployment/web-1", "service/web-1"],
        "{v}"
    );
    for want in [
        "name: \"MODE\"",
        "value: \"prod\"",
        "memory: \"96Mi\"",
        "cpu: \"1500m\"",
        "mountPath: \"/data\"",
        "readOnly: true",
        &format!("path: \"{}\"", vol.display()),
        "containerPort: 80",
        "targetPort: 443",
        "port: 18443",
        "- \"httpd\"",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // stdout is the same text, also through the service (gvpod --url).
    assert_eq!(r.ok(&["generate", "kube", "Web_1"]), text);
    let svc = common::api::Service::start(&r, 0);
    let o = Command::new(common::BIN)
        .env("GVPOD_ROOT", "/nonexistent/gvpod-remote-client")
        .env("GVPOD_HOST", format!("unix://{}", svc.sock.display()))
        .args(["generate", "kube", "Web_1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), text);
    drop(svc);
    // An unknown pod is one line, exit 2.
    r.fails(
        &["generate", "kube", "Web_1", "nope"],
        2,
        "no such pod: \"nope\"",
    );
    r.assert_clean();
}
