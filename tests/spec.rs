//! `gvpod config` through the real binary: spec files in a temp dir,
//! merged output, override files, the bundled example, and bad specs that
//! each exit 2 with one line `FILE:LINE:COL: …`. Needs no root, no runsc
//! and no data root (the root given does not exist and is not created).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{stderr, stdout, BIN};

/// Runs `gvpod config ARGS` in `dir` with a data root that does not exist.
fn config(dir: &Path, args: &[&str]) -> Output {
    let root = dir.join("no-such-root");
    let o = Command::new(BIN)
        .arg("config")
        .args(args)
        .current_dir(dir)
        .env("GVPOD_ROOT", &root)
        .env_remove("GVPOD_HOST")
        .output()
        .expect("run gvpod");
    assert!(!root.exists(), "gvpod config made a data root");
    o
}

fn json(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

const TWO_PODS: &str = "\
name: shop
defaults:
  image: busybox
  resources: {memory: 128m}
  user: {name: dev, ssh_keys: [keys/dev.pub]}
pods:
  web:
    ports: [\"127.0.0.1:18080:80\"]
    volumes: [\"./src:/workspace\"]
    network: backend
    services:
      app:
        start: busybox httpd -f -p 80
        port: 80
        health: {http: /, interval: 1m30s}
        depends_on: [db]
  db:
    image: busybox:latest
    resources: {pids: 128}
networks:
  backend: {subnet: 198.18.62.0/24}
";

#[test]
fn a_two_pod_project_prints_merged_with_defaults() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("gvpod.yaml"), TWO_PODS).unwrap();
    let v = json(&config(t.path(), &["--format", "json"]));
    let d = t.path().display();
    assert_eq!(v["name"], "shop");
    assert_eq!(v["networks"]["backend"]["subnet"], "198.18.62.0/24");
    let web = &v["pods"]["web"];
    assert_eq!(web["image"], "busybox");
    assert_eq!(web["volumes"][0], format!("{d}/src:/workspace"));
    assert_eq!(web["user"]["ssh_keys"][0], format!("{d}/keys/dev.pub"));
    assert_eq!(web["resources"]["memory"], 128 << 20);
    let h = &web["services"]["app"]["health"];
    assert_eq!(
        (h["http"].as_str(), h["interval"].as_str()),
        (Some("/"), Some("1m30s"))
    );
    assert_eq!(web["services"]["app"]["depends_on"][0], "db");
    let db = &v["pods"]["db"];
    assert_eq!(db["image"], "busybox:latest");
    assert_eq!(
        db["resources"]["memory"],
        128 << 20,
        "defaults merge into resources"
    );
    assert_eq!(db["resources"]["pids"], 128);
    // The default format is YAML, and gvpod.yml is the second default name.
    std::fs::rename(t.path().join("gvpod.yaml"), t.path().join("gvpod.yml")).unwrap();
    let o = config(t.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let y = stdout(&o);
    assert!(y.starts_with("name: \"shop\"\n"), "{y}");
    // What it prints is a spec that loads again, to the same project.
    std::fs::write(t.path().join("printed.yaml"), &y).unwrap();
    let again = json(&config(
        t.path(),
        &["-f", "printed.yaml", "--format", "json"],
    ));
    std::fs::write(t.path().join("gvpod.yaml"), TWO_PODS).unwrap();
    let first = json(&config(t.path(), &["-f", "gvpod.yaml", "--format", "json"]));
    assert_eq!(again, first);
}

#[test]
fn an_override_file_wins_key_by_key_and_errors_name_it() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("gvpod.yaml"), TWO_PODS).unwrap();
    std::fs::create_dir(t.path().join("dev")).unwrap();
    std::fs::write(
        t.path().join("dev/override.yaml"),
        "pods:\n  web:\n    ports: [\"18081:80\"]\n    volumes: [\"./cache:/cache\"]\n    resources: {cpus: 0.5}\n",
    )
    .unwrap();
    let v = json(&config(
        t.path(),
        &[
            "-f",
            "gvpod.yaml",
            "-f",
            "dev/override.yaml",
            "--format",
            "json",
        ],
    ));
    let web = &v["pods"]["web"];
    assert_eq!(web["ports"], serde_json::json!(["18081:80"]));
    assert_eq!(web["resources"]["cpus"], 0.5);
    assert_eq!(web["resources"]["memory"], 128 << 20);
    assert_eq!(web["network"], "backend");
    // Relative paths resolve against the file that wrote them.
    let d = t.path().display();
    assert_eq!(web["volumes"][0], format!("{d}/dev/cache:/cache"));
    assert_eq!(web["user"]["ssh_keys"][0], format!("{d}/keys/dev.pub"));

    std::fs::write(
        t.path().join("dev/bad.yaml"),
        "pods:\n  web:\n    resources: {memory: 1x}\n",
    )
    .unwrap();
    let o = config(t.path(), &["-f", "gvpod.yaml", "-f", "dev/bad.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "dev/bad.yaml:3:25: pods.web.resources.memory: invalid value \"1x\"; use a size such as 256m, 1g or 1048576 (bytes)\n"
    );
    assert_eq!(stdout(&o), "");
}

#[test]
fn bad_specs_exit_2_with_one_line_at_the_offending_place() {
    let t = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "name: x\npods:\n  a:\n    image: busybox\n    imagee: busybox\n",
            "bad.yaml:5:5: unknown key \"imagee\" in pods.a; expected one of image, entrypoint, command, env, ports, volumes, workdir, network, user, resources, restart, route, route_default, labels, setup, services",
        ),
        (
            "name: x\npods:\n  a:\n    image: busybox\n    ports: 8080\n",
            "bad.yaml:5:12: pods.a.ports: found a number; expected a list of ports such as \"8080:80\"",
        ),
        (
            "name: x\npods:\n  a:\n    image: busybox\n    services:\n      s: {start: x, health: {cmd: x, timeout: 2 seconds}}\n",
            "bad.yaml:6:47: pods.a.services.s.health.timeout: invalid value \"2 seconds\"; expected a duration such as 500ms, 5s or 1m30s",
        ),
        (
            "name: x\npods:\n  a:\n    image: busybox\n    services:\n      s1: {start: x, depends_on: [s2]}\n      s2: {start: x, depends_on: [s1]}\n",
            "bad.yaml:6:35: pods.a.services.s1.depends_on: a cycle a.s1 -> a.s2 -> a.s1; expected services that do not wait for each other",
        ),
        ("name: x\npods: {a: [b\n", ""),
    ];
    for (spec, want) in cases {
        std::fs::write(t.path().join("bad.yaml"), spec).unwrap();
        let o = config(t.path(), &["-f", "bad.yaml"]);
        assert_eq!(o.status.code(), Some(2), "{spec}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        if want.is_empty() {
            assert!(e.starts_with("bad.yaml:3:1: invalid YAML: "), "{e}");
        } else {
            assert_eq!(e.trim_end(), *want);
        }
        assert_eq!(stdout(&o), "");
    }
    // No spec file at all: one line naming both defaults and -f.
    let empty = tempfile::tempdir().unwrap();
    let o = config(empty.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "gvpod: no spec file: neither ./gvpod.yaml nor ./gvpod.yml exists; give one with -f FILE\n"
    );
}

#[test]
fn the_bundled_webdb_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/webdb");
    let v = json(&config(&dir, &["--format", "json"]));
    assert_eq!(v["name"], "webdb");
    let pods: Vec<&String> = v["pods"].as_object().unwrap().keys().collect();
    assert_eq!(pods, ["db", "web"]);
    assert_eq!(
        v["pods"]["web"]["volumes"][0],
        format!("{}/site:/www:ro", dir.display())
    );
    assert_eq!(v["pods"]["db"]["network"], "backend");
    let subnet = v["networks"]["backend"]["subnet"].as_str().unwrap();
    assert!(subnet.starts_with("198.18."), "{subnet}");
    assert_eq!(v["pods"]["web"]["services"]["httpd"]["health"]["http"], "/");
    assert_eq!(v["pods"]["web"]["services"]["httpd"]["depends_on"][0], "db");
}
