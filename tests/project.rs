//! `gvpod up` / `down` and supervised services against the real runsc:
//! a two-pod project whose web pod depends on its db pod's healthy service,
//! `up` twice (nothing changes), a changed spec (only that pod recreated),
//! `down` (nothing left); services that turn healthy, that are killed and
//! restarted, that fail their checks, that the user stops and starts, and
//! their own logs; setup and install run once per pod.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{stderr, stdout, Root};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// `service ls POD --format json`, by name.
fn services(r: &Root, pod: &str) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&r.ok(&["service", "ls", pod, "--format", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// Polls until `pred` holds for the pod's services (at most `secs`).
fn until(
    r: &Root,
    pod: &str,
    secs: u64,
    what: &str,
    pred: impl Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = services(r, pod);
        if pred(&s) {
            return;
        }
        assert!(Instant::now() < end, "{what}: not within {secs} s: {s:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `gvpod logs ARGS`: both streams (gvpod's own lines are the pod's stderr).
fn logs(r: &Root, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let o = r.gvpod(&all);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    format!("{}{}", stdout(&o), stderr(&o))
}

fn id_of(r: &Root, pod: &str) -> String {
    r.inspect(pod)["id"].as_str().unwrap().to_string()
}

const PROJECT: &str = "\
name: shop
networks: {back: {subnet: 198.19.61.0/24}}
defaults:
  image: busybox
  network: back
pods:
  db:
    resources: {memory: 96m}
    setup: [\"mkdir -p /www && echo db-ok > /www/index.html\"]
    services:
      db:
        start: httpd -f -p 3000 -h /www
        port: 3000
        health: {http: /, interval: 1s, timeout: 1s, retries: 2}
  web:
    services:
      app:
        start: httpd -f -p 8080 -h /
        port: 8080
        health: {tcp: 8080, interval: 1s}
        depends_on: [db]
";

#[test]
fn a_project_comes_up_in_order_stays_put_changes_one_pod_and_goes() {
    require_runsc!();
    let r = Root::new();
    let t = tempfile::tempdir().unwrap();
    let spec = write(t.path(), "gvpod.yaml", PROJECT);

    // A bad spec creates nothing.
    let bad = write(
        t.path(),
        "bad.yaml",
        "name: shop\npods: {web: {image: busybox, ports: 8080}}\n",
    );
    let o = r.gvpod(&["up", "-f", &bad]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!("{bad}:2:")),
        "{}",
        stderr(&o)
    );
    assert!(r.ps_all().is_empty());

    let o = r.gvpod(&["up", "-f", &spec, "--wait", "90"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(said.contains("network shop-back created"), "{said}");
    assert!(
        said.contains("pod shop-db created") && said.contains("pod shop-web created"),
        "{said}"
    );
    // Both healthy; web's service waited for db's to be healthy.
    let ps = r.ok(&["ps", "--project", "shop"]);
    assert_eq!(ps.matches("(healthy)").count(), 2, "{ps}");
    let healthy_at = logs(&r, &["-t", "shop-db"])
        .lines()
        .find(|l| l.contains("gvpod: service db is healthy"))
        .and_then(|l| l.split(' ').next().map(str::to_string))
        .expect("db's health in its log");
    let web = services(&r, "shop-web");
    let started = web["app"]["started_at"].as_str().unwrap();
    assert!(
        started > healthy_at.as_str(),
        "web's app started at {started}, db healthy at {healthy_at}"
    );
    // The pods reach each other by name on their project network.
    let got = r.ok(&["exec", "shop-web", "wget", "-qO-", "http://shop-db:3000/"]);
    assert_eq!(got.trim(), "db-ok");
    assert_eq!(r.inspect("shop-db")["config"]["memory"], 96 << 20);
    // stats: the spec's memory is the pod's limit; cpu and memory are read.
    let st: serde_json::Value =
        serde_json::from_str(&r.ok(&["stats", "--no-stream", "--format", "json", "shop-db"]))
            .unwrap();
    assert_eq!(st[0]["memory_limit"], 96 << 20, "{st}");
    assert!(st[0]["memory_usage"].as_u64().unwrap() > 0, "{st}");
    let (db_id, web_id) = (id_of(&r, "shop-db"), id_of(&r, "shop-web"));
    r.track(&db_id);
    r.track(&web_id);

    // A second up changes nothing.
    let o = r.gvpod(&["up", "-f", &spec, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let done: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let actions: Vec<&str> = done
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["unchanged", "unchanged"], "{done}");
    assert_eq!(
        (id_of(&r, "shop-db"), id_of(&r, "shop-web")),
        (db_id.clone(), web_id.clone())
    );

    // A changed spec (an override file) recreates only the pod it changes.
    let over = write(
        t.path(),
        "over.yaml",
        "pods:\n  web:\n    env: {MODE: dev}\n",
    );
    let o = r.gvpod(&["up", "-f", &spec, "-f", &over, "--wait", "60"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pod shop-web recreated"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("pod shop-db unchanged"),
        "{}",
        stderr(&o)
    );
    assert_eq!(id_of(&r, "shop-db"), db_id);
    let new_web = id_of(&r, "shop-web");
    assert_ne!(new_web, web_id);
    r.track(&new_web);
    let env = r.ok(&["exec", "shop-web", "sh", "-c", "echo $MODE"]);
    assert_eq!(env.trim(), "dev");

    // A stopped pod is started again by up, not recreated.
    r.ok(&["stop", "-t", "1", "shop-db"]);
    let o = r.gvpod(&["up", "-f", &spec, "-f", &over]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("pod shop-db started"), "{}", stderr(&o));
    assert_eq!(id_of(&r, "shop-db"), db_id);

    // A pod the spec no longer has is named, not touched.
    let only_db = write(
        t.path(),
        "only-db.yaml",
        PROJECT.split("  web:\n").next().unwrap(),
    );
    let o = r.gvpod(&["up", "-f", &only_db]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(said.contains("pod shop-db unchanged"), "{said}");
    assert!(
        said.contains("pod shop-web is not in the spec any more: `gvpod rm -f shop-web`"),
        "{said}"
    );
    assert_eq!(id_of(&r, "shop-web"), new_web);
    // down removes the pods and the network; nothing is left on the host.
    let o = r.gvpod(&["down", "-f", &spec]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("network shop-back removed"),
        "{}",
        stderr(&o)
    );
    assert!(r.ps_all().is_empty());
    assert_eq!(r.ok(&["network", "ls", "-q"]).trim(), "");
    r.assert_clean();
}

const SERVICES: &str = "\
name: svc
pods:
  box:
    image: busybox
    network: none
    setup: [\"echo run >> /setup.count\"]
    services:
      web:
        install: \"mkdir -p /site && echo hi > /site/index.html && echo run >> /install.count\"
        start: httpd -f -p 8080 -h /site
        port: 8080
        restart: on-failure
        health: {http: /, interval: 1s, timeout: 1s, retries: 2}
      ticker:
        start: \"while true; do echo tick; sleep 1; done\"
      broken:
        start: sleep 100000
        port: 9000
        health: {http: /, interval: 1s, timeout: 1s, retries: 2}
";

#[test]
fn services_turn_healthy_restart_fail_stop_and_log_on_their_own() {
    require_runsc!();
    let r = Root::new();
    let t = tempfile::tempdir().unwrap();
    let spec = write(t.path(), "gvpod.yaml", SERVICES);
    // --wait refuses an unhealthy service, naming it.
    let o = r.gvpod(&["up", "-f", &spec, "--wait", "60"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("service broken of pod svc-box is unhealthy"),
        "{err}"
    );
    r.track(&id_of(&r, "svc-box"));

    // The loopback service is healthy (checked through the relay: no network).
    until(&r, "svc-box", 30, "web healthy", |s| {
        s["web"]["health"] == "healthy"
    });
    until(&r, "svc-box", 30, "broken unhealthy", |s| {
        s["broken"]["health"] == "unhealthy"
    });
    let s = services(&r, "svc-box");
    assert!(
        s["broken"]["check_output"]
            .as_str()
            .unwrap()
            .contains("nothing listens on port 9000"),
        "{s:?}"
    );
    assert_eq!(s["ticker"]["health"], "none");
    assert!(r.ok(&["ps"]).contains("(unhealthy)"));
    assert_eq!(r.inspect("svc-box")["health"], "unhealthy");

    // Its own log.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let l = r.ok(&["logs", "svc-box", "--service", "ticker"]);
        if l.lines().filter(|l| *l == "tick").count() >= 2 {
            break;
        }
        assert!(Instant::now() < end, "no ticks: {l:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    r.fails(
        &["logs", "svc-box", "--service", "nope"],
        2,
        "has no service \"nope\"",
    );

    // Killed inside the pod: restarted by its policy, healthy again.
    r.ok(&["exec", "svc-box", "sh", "-c", "kill -9 $(pidof httpd)"]);
    until(&r, "svc-box", 30, "web restarted", |s| {
        s["web"]["restarts"] == 1
            && s["web"]["state"] == "running"
            && s["web"]["health"] == "healthy"
    });
    let log = logs(&r, &["svc-box"]);
    assert!(
        log.contains("gvpod: service web exited with 137; restart 1"),
        "{log}"
    );

    // Stopped by the user: no process, not restarted; started again.
    assert_eq!(r.ok(&["service", "stop", "svc-box", "web"]).trim(), "web");
    let s = services(&r, "svc-box");
    assert_eq!(
        (s["web"]["state"].as_str(), s["web"]["health"].as_str()),
        (Some("stopped"), Some("none"))
    );
    assert!(!r.ok(&["exec", "svc-box", "ps"]).contains("httpd"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(services(&r, "svc-box")["web"]["state"], "stopped");
    r.ok(&["service", "start", "svc-box", "web"]);
    until(&r, "svc-box", 30, "web back", |s| {
        s["web"]["state"] == "running" && s["web"]["health"] == "healthy"
    });
    r.ok(&["service", "restart", "svc-box", "ticker"]);
    r.fails(
        &["service", "stop", "svc-box", "nope"],
        2,
        "has no service \"nope\"",
    );

    // A stop/start of the pod runs its services again, but not setup or install.
    r.ok(&["stop", "-t", "1", "svc-box"]);
    assert_eq!(services(&r, "svc-box")["web"]["state"], "exited");
    r.fails(&["service", "start", "svc-box"], 2, "is exited");
    r.ok(&["start", "svc-box"]);
    until(&r, "svc-box", 30, "web after start", |s| {
        s["web"]["health"] == "healthy"
    });
    assert_eq!(
        r.ok(&["exec", "svc-box", "cat", "/setup.count"]).trim(),
        "run"
    );
    assert_eq!(
        r.ok(&["exec", "svc-box", "cat", "/install.count"]).trim(),
        "run"
    );

    // Services belong to spec pods; a plain pod has none.
    r.run_detached(&[
        "--name",
        "plain",
        "--network",
        "none",
        "busybox",
        "sleep",
        "100",
    ]);
    assert!(services(&r, "plain").is_empty());
    r.fails(
        &["service", "stop", "plain"],
        2,
        "pod plain has no services",
    );
    r.ok(&["down", "-p", "svc"]);
    r.assert_clean();
}

/// GET `path` with `host` through 127.0.0.1:`port`: (status line, body).
fn get(port: u16, host: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_bundled_examples_come_up_and_answer() {
    require_runsc!();
    let r = Root::new();
    let t = tempfile::tempdir().unwrap();
    let bundles = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles");

    // webdb, with its published port moved to a free one.
    let port = free_port();
    let over = write(
        t.path(),
        "webdb-port.yaml",
        &format!("pods:\n  web:\n    ports: [\"127.0.0.1:{port}:80\"]\n"),
    );
    let webdb = bundles.join("webdb/gvpod.yaml").display().to_string();
    let o = r.gvpod(&["up", "-f", &webdb, "-f", &over, "--wait", "90"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    r.track(&id_of(&r, "webdb-web"));
    r.track(&id_of(&r, "webdb-db"));
    let (status, body) = get(port, &format!("127.0.0.1:{port}"), "/");
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("webdb: served by the web pod"), "{body}");
    let db = r.ok(&[
        "exec",
        "webdb-web",
        "sh",
        "-c",
        "nc webdb-db 5432 </dev/null",
    ]);
    assert_eq!(db.trim(), "ready");
    r.ok(&["down", "-f", &webdb, "-f", &over]);

    // devpod, with the test's own key for the dev user.
    let image = r.load_devbox();
    assert!(image.ends_with("gvpod/devbox:bookworm"), "{image}");
    std::fs::copy(
        bundles.join("devpod/gvpod.yaml"),
        t.path().join("gvpod.yaml"),
    )
    .unwrap();
    let key = t.path().join("id");
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let over = write(
        t.path(),
        "key.yaml",
        &format!(
            "pods:\n  box:\n    user: {{name: dev, ssh_keys: [{}.pub]}}\n",
            key.display()
        ),
    );
    let spec = t.path().join("gvpod.yaml").display().to_string();
    let o = r.gvpod(&["up", "-f", &spec, "-f", &over, "--wait", "120"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    r.track(&id_of(&r, "dev-box"));
    let s = services(&r, "dev-box");
    for name in ["ide", "terminal", "app"] {
        assert_eq!(s[name]["health"], "healthy", "{s:#?}");
    }
    // One route port for all of them: the IDE page (loopback-only, through
    // the relay), the app, the terminal.
    let route = common::route::route_port(&r, "dev-box");
    let (status, body) = get(route, "localhost-8765.pod-dev-box.localhost", "/");
    assert!(
        status.contains(" 200 ") && body.contains("echo"),
        "{status} {body}"
    );
    std::fs::write(t.path().join("workspace/hello.txt"), "hi").unwrap();
    let (status, body) = get(route, "localhost-3000.pod-dev-box.localhost", "/");
    assert!(
        status.contains(" 200 ") && body.contains("hello.txt"),
        "{status} {body}"
    );
    // The services run as the dev user, who also has a shell.
    let ps = r.ok(&[
        "exec",
        "dev-box",
        "sh",
        "-c",
        r#"for p in /proc/[0-9]*; do echo "$(grep ^Uid: $p/status | cut -f2) $(tr '\0' ' ' < $p/cmdline)"; done"#,
    ]);
    let uid = r.ok(&["exec", "dev-box", "id", "-u", "dev"]);
    let uid = format!("{} ", uid.trim());
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&uid)
                && l[uid.len()..].starts_with("python3 -m http.server 3000")),
        "{ps}"
    );
    assert_eq!(r.ok(&["ssh", "dev-box", "id", "-un"]).trim(), "dev");
    r.ok(&["down", "-f", &spec, "-f", &over]);
    r.assert_clean();
}

/// `gvpod --url … ARGS` in `dir` (the client's working directory).
fn remote(svc: &common::api::Service, dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::BIN)
        .env("GVPOD_ROOT", "/nonexistent/gvpod-remote-client")
        .env("GVPOD_HOST", format!("unix://{}", svc.sock.display()))
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn up_service_and_down_work_through_the_service() {
    require_runsc!();
    let r = Root::new();
    let svc = common::api::Service::start(&r, 0);
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "gvpod.yaml",
        "name: far\npods:\n  one:\n    image: busybox\n    network: none\n    services:\n      web: {start: httpd -f -p 80, port: 80, health: {tcp: 80, interval: 1s}}\n",
    );
    // The default spec file of the client's directory, sent by path.
    let o = remote(&svc, t.path(), &["up", "--wait", "60"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim(), "pod far-one created");
    r.track(&id_of(&r, "far-one"));
    let o = remote(
        &svc,
        t.path(),
        &["service", "ls", "far-one", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["health"], "healthy", "{v}");
    // Docker clients see it as a container with a health check.
    let health = svc.ok(&["inspect", "-f", "{{.State.Health.Status}}", "far-one"]);
    assert_eq!(health.trim(), "healthy");
    assert!(svc
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(healthy)"));
    let o = remote(&svc, t.path(), &["service", "stop", "far-one", "web"]);
    assert_eq!(
        (o.status.code(), stdout(&o).trim()),
        (Some(0), "web"),
        "{}",
        stderr(&o)
    );
    assert_eq!(services(&r, "far-one")["web"]["state"], "stopped");
    // A spec error prints as on the host: FILE:LINE:COL first.
    write(
        t.path(),
        "bad.yaml",
        "name: far\npods: {one: {image: busybox, bogus: 1}}\n",
    );
    let o = remote(&svc, t.path(), &["up", "-f", "bad.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("bad.yaml:2:"), "{}", stderr(&o));
    let o = remote(&svc, t.path(), &["down"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim(), "pod far-one removed");
    assert!(r.ps_all().is_empty());
    r.assert_clean();
}

#[test]
fn a_pod_with_services_is_checkpointed_once_they_are_stopped_and_restores_with_them() {
    require_runsc!();
    let r = Root::new();
    let t = tempfile::tempdir().unwrap();
    let spec = write(
        t.path(),
        "gvpod.yaml",
        "name: snap\npods:\n  a:\n    image: busybox\n    network: none\n    setup: [\"echo run >> /setup.count\"]\n    services:\n      web:\n        install: \"echo run >> /install.count\"\n        start: httpd -f -p 80\n        port: 80\n        health: {tcp: 80, interval: 1s}\n",
    );
    let o = r.gvpod(&["up", "-f", &spec, "--wait", "60"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    r.track(&id_of(&r, "snap-a"));
    // Refused while a service runs (its host pipes cannot be saved); the
    // pod is left as it was.
    r.fails(
        &["checkpoint", "snap-a"],
        2,
        "runs supervised services (web)",
    );
    assert_eq!(services(&r, "snap-a")["web"]["health"], "healthy");
    r.ok(&["service", "stop", "snap-a"]);
    r.ok(&["checkpoint", "--name", "s1", "snap-a"]);
    r.ok(&["rm", "-f", "snap-a"]);
    let id = r.restore(&["s1"]);
    r.track(&id);
    until(&r, "snap-a", 30, "web after restore", |s| {
        s["web"]["state"] == "running" && s["web"]["health"] == "healthy"
    });
    // Setup and install ran once, before the snapshot.
    assert_eq!(
        r.ok(&["exec", "snap-a", "cat", "/setup.count"]).trim(),
        "run"
    );
    assert_eq!(
        r.ok(&["exec", "snap-a", "cat", "/install.count"]).trim(),
        "run"
    );
    r.ok(&["rm", "-f", "snap-a"]);
    r.ok(&["snapshot", "rm", "s1"]);
    r.assert_clean();
}
