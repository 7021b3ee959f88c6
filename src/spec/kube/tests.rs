//! Unit tests of the kube rendering: the exact probe, resource, volume,
//! port and workload mapping, read back with a real YAML parser.

use std::path::PathBuf;

use saphyr::{LoadableYamlNode, YamlOwned as Yaml};

use super::*;
use crate::spec::{load, Source};

const SPEC: &str = "\
name: shop
defaults:
  image: busybox
  resources: {cpus: 1.5, memory: 64m, pids: 100, storage: 2g}
pods:
  web:
    restart: unless-stopped
    env: {TZ: UTC}
    ports: [\"8080:80\", \"5353:53/udp\"]
    volumes: [\"./src:/workspace\", \"/data:/data:ro\"]
    workdir: /workspace
    command: [sleep, infinity]
    setup: [\"mkdir -p /workspace\"]
    user: {name: dev, sudo: true}
    route: auto
    route_default: 3000
    services:
      app:
        install: \"echo installed\"
        start: \"busybox httpd -f -p 3000\"
        port: 3000
        health: {http: /health, interval: 5s, timeout: 1500ms, retries: 4, start_period: 10s}
      tcpsvc:
        start: \"nc -lk -p 4000\"
        port: 4000
        health: {tcp: 4000, interval: 2s, timeout: 1s, retries: 1}
      web:
        start: \"true\"
        health: {cmd: \"test -e /tmp/ok\", interval: 500ms, timeout: 1s, retries: 2}
  job:
    restart: on-failure:3
    command: [echo, hi]
";

fn docs() -> (String, Vec<Yaml>) {
    let p = load(&[Source {
        name: "a.yaml".into(),
        text: SPEC.into(),
        dir: PathBuf::from("/proj"),
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let pods: Vec<(&str, &Pod)> = p.pods.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let text = render(Some(&p.name), &pods);
    let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, docs)
}

fn kinds(d: &[Yaml]) -> Vec<String> {
    d.iter()
        .map(|x| x["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn str_of(y: &Yaml) -> &str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

fn int_of(y: &Yaml) -> i64 {
    y.as_integer()
        .unwrap_or_else(|| panic!("not an integer: {y:?}"))
}

#[test]
fn documents_and_workloads_follow_the_restart_policy() {
    let (text, d) = docs();
    // job sorts before web: RuntimeClass, job's Pod (no ports: no
    // Service), web's Deployment and Service.
    assert_eq!(kinds(&d), ["RuntimeClass", "Pod", "Deployment", "Service"]);
    assert_eq!(text.matches("\n---\n").count(), 3);
    assert_eq!(str_of(&d[0]["handler"]), "runsc");
    assert_eq!(str_of(&d[0]["metadata"]["name"]), "gvisor");
    assert_eq!(str_of(&d[1]["metadata"]["name"]), "shop-job");
    assert_eq!(str_of(&d[1]["spec"]["restartPolicy"]), "OnFailure");
    assert_eq!(str_of(&d[1]["spec"]["runtimeClassName"]), "gvisor");
    let dep = &d[2];
    assert_eq!(int_of(&dep["spec"]["replicas"]), 1);
    assert_eq!(str_of(&dep["spec"]["strategy"]["type"]), "Recreate");
    let tpl = &dep["spec"]["template"];
    assert_eq!(
        str_of(&dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"]),
        str_of(&tpl["metadata"]["labels"]["app.kubernetes.io/instance"])
    );
    assert_eq!(str_of(&tpl["spec"]["runtimeClassName"]), "gvisor");
    assert!(!tpl["spec"].contains_mapping_key("restartPolicy"));
}

#[test]
fn the_main_container_has_command_env_ports_resources_and_mounts() {
    let (text, d) = docs();
    let c = &d[2]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(str_of(&c["name"]), "web");
    assert_eq!(str_of(&c["image"]), "busybox");
    assert_eq!(str_of(&c["args"][1]), "infinity");
    assert!(!c.contains_mapping_key("command"));
    assert_eq!(str_of(&c["workingDir"]), "/workspace");
    assert_eq!(str_of(&c["env"][0]["name"]), "TZ");
    assert_eq!(str_of(&c["env"][0]["value"]), "UTC");
    assert_eq!(int_of(&c["ports"][0]["containerPort"]), 80);
    assert_eq!(str_of(&c["ports"][1]["protocol"]), "UDP");
    for side in ["limits", "requests"] {
        assert_eq!(str_of(&c["resources"][side]["cpu"]), "1500m");
        assert_eq!(str_of(&c["resources"][side]["memory"]), "64Mi");
        assert_eq!(str_of(&c["resources"][side]["ephemeral-storage"]), "2Gi");
    }
    assert_eq!(str_of(&c["volumeMounts"][0]["mountPath"]), "/workspace");
    assert!(!c["volumeMounts"][0].contains_mapping_key("readOnly"));
    assert_eq!(c["volumeMounts"][1]["readOnly"].as_bool(), Some(true));
    let vols = &d[2]["spec"]["template"]["spec"]["volumes"];
    assert_eq!(str_of(&vols[0]["hostPath"]["path"]), "/proj/src");
    assert_eq!(str_of(&vols[1]["hostPath"]["path"]), "/data");
    // The comments a user must read are there.
    assert!(
        text.contains("# hostPath: a directory of the node"),
        "{text}"
    );
    assert!(text.contains("pids: 100 in gvpod"));
    assert!(text.contains("#   mkdir -p /workspace"));
    assert!(text.contains("dev user \"dev\" with sudo"));
    assert!(text.contains("# the pod's cpus and memory are the first container's limits"));
}

#[test]
fn health_checks_become_exact_probes() {
    let (_, d) = docs();
    let cs = &d[2]["spec"]["template"]["spec"]["containers"];
    // Services in name order after the pod's own container; the service
    // named like the pod gets a suffix.
    let names: Vec<&str> = (0..4).map(|i| str_of(&cs[i]["name"])).collect();
    assert_eq!(names, ["web", "app", "tcpsvc", "web-svc"]);
    let app = &cs[1];
    assert_eq!(str_of(&app["command"][0]), "sh");
    assert_eq!(
        str_of(&app["command"][2]),
        "set -e\necho installed\nbusybox httpd -f -p 3000"
    );
    let p = &app["readinessProbe"];
    assert_eq!(str_of(&p["httpGet"]["path"]), "/health");
    assert_eq!(int_of(&p["httpGet"]["port"]), 3000);
    assert_eq!(int_of(&p["initialDelaySeconds"]), 10);
    assert_eq!(int_of(&p["periodSeconds"]), 5);
    // 1.5 s rounds up: Kubernetes counts whole seconds.
    assert_eq!(int_of(&p["timeoutSeconds"]), 2);
    assert_eq!(int_of(&p["failureThreshold"]), 4);
    let p = &cs[2]["readinessProbe"];
    assert_eq!(int_of(&p["tcpSocket"]["port"]), 4000);
    assert_eq!(int_of(&p["initialDelaySeconds"]), 0);
    assert_eq!(int_of(&p["failureThreshold"]), 1);
    let p = &cs[3]["readinessProbe"];
    assert_eq!(str_of(&p["exec"]["command"][2]), "test -e /tmp/ok");
    // 500 ms is at least a second.
    assert_eq!(int_of(&p["periodSeconds"]), 1);
    assert_eq!(str_of(&cs[3]["command"][2]), "true");
}

#[test]
fn the_service_has_published_service_and_route_ports() {
    let (_, d) = docs();
    let ports = &d[3]["spec"]["ports"];
    let got: Vec<(String, i64, i64, String)> = (0..4)
        .map(|i| {
            let p = &ports[i];
            (
                str_of(&p["name"]).to_string(),
                int_of(&p["port"]),
                int_of(&p["targetPort"]),
                str_of(&p["protocol"]).to_string(),
            )
        })
        .collect();
    let want = [
        ("tcp-8080", 8080, 80, "TCP"),
        ("udp-5353", 5353, 53, "UDP"),
        ("app", 3000, 3000, "TCP"),
        ("tcpsvc", 4000, 4000, "TCP"),
    ];
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1, g.2, g.3.as_str()), w);
    }
    // The route's default port 3000 is already the app's: not twice.
    assert!(ports.as_sequence_get(4).is_none());
    assert_eq!(
        str_of(&d[3]["spec"]["selector"]["app.kubernetes.io/instance"]),
        "shop-web"
    );
}

#[test]
fn quantities_names_and_seconds() {
    assert_eq!(cpu_quantity(2.0), "2");
    assert_eq!(cpu_quantity(0.25), "250m");
    assert_eq!(cpu_quantity(0.0001), "1m");
    assert_eq!(memory_quantity(64 << 20), "64Mi");
    assert_eq!(memory_quantity(2 << 30), "2Gi");
    assert_eq!(memory_quantity(1536 << 10), "1536Ki");
    assert_eq!(memory_quantity(1000), "1000");
    assert_eq!(dns_label("My_Pod.1", 63), "my-pod-1");
    assert_eq!(dns_label("--a--", 63), "a");
    assert_eq!(dns_label("___", 63), "x");
    assert_eq!(dns_label("abcdefghijklmnop-q", 15), "abcdefghijklmno");
    assert_eq!(dns_label("abcdefghijklmn-pq", 15), "abcdefghijklmn");
    assert_eq!(seconds(0, 1), 1);
    assert_eq!(seconds(1001, 0), 2);
    assert_eq!(seconds(10_000, 0), 10);
}
