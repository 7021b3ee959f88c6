//! Stats, networks, events and image pull/remove through the Docker Engine
//! API (`gvpod system service`), driven by the real docker CLI and curl over
//! a temporary socket, with the real runsc; and `gvpod stats` itself.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::api::Service;
use common::registry::Registry;
use common::{stderr, stdout, Root};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl --unix-socket` against the service: (HTTP status, body).
fn curl(svc: &Service, method: &str, path: &str) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-s", "-X", method, "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&svc.sock)
        .arg(format!("http://d{path}"))
        .output()
        .expect("run curl");
    let out = stdout(&o);
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (code.parse().unwrap_or(0), body.to_string())
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Fetches `/` from the pod's httpd `n` times over the published port.
fn traffic(port: u16, n: usize) {
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the published port");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n").unwrap();
        let mut buf = vec![];
        let _ = s.read_to_end(&mut buf);
        assert!(
            buf.starts_with(b"HTTP/1."),
            "{:?}",
            String::from_utf8_lossy(&buf)
        );
    }
}

/// Waits until the pod's httpd answers on the published port.
fn wait_http(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut b = [0u8; 8];
            if s.read(&mut b).is_ok_and(|n| n > 0) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "httpd never answered on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `256MiB` → bytes (docker's binary units).
fn bytes_of(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("not a size: {s}"));
    n * match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        u => panic!("unit {u} in {s}"),
    }
}

#[test]
fn stats_through_the_docker_cli_curl_and_gvpod() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    // It burns some CPU before it serves: for an httpd that had only
    // started and answered a few requests, runsc 20240729's `events
    // --stats` now and then reported a CPU time of 0 in both samples (1
    // run in 3), which the checks below cannot tell from the zeros of a pod
    // that does not run.
    let id = svc.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-m",
        "256m",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec httpd -f -p 80 -h /",
    ]);
    let id = id.trim().to_string();
    r.track(&id);
    // A pod that does not run: never in the default list.
    let idle = svc.ok(&[
        "create",
        "--name",
        "idle",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    r.track(idle.trim());
    wait_http(port);

    // docker stats with a name, and without (running pods only).
    let fmt = "{{.Name}}|{{.MemUsage}}|{{.MemPerc}}|{{.CPUPerc}}|{{.NetIO}}|{{.PIDs}}";
    let named = svc.ok(&["stats", "--no-stream", "--format", fmt, "web"]);
    let all = svc.ok(&["stats", "--no-stream", "--format", fmt]);
    for out in [&named, &all] {
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 1, "one running pod: {out}");
        let f: Vec<&str> = rows[0].split('|').collect();
        assert_eq!(f[0], "web", "{out}");
        let (usage, limit) = f[1].split_once(" / ").unwrap();
        assert_eq!(limit, "256MiB", "the -m limit: {out}");
        let used = bytes_of(usage);
        assert!(
            used > 256.0 * 1024.0 && used < 256.0 * 1024.0 * 1024.0,
            "{out}"
        );
        assert!(f[3].ends_with('%') && f[2].ends_with('%'), "{out}");
        assert_ne!(f[4], "0B / 0B", "eth0 saw the httpd's traffic: {out}");
        assert!(f[5].parse::<u32>().is_ok_and(|p| p >= 1), "{out}");
    }

    // The JSON, field by field: a real precpu_stats a second earlier.
    let (code, body) = curl(&svc, "GET", "/v1.47/containers/web/stats?stream=false");
    assert_eq!(code, 200, "{body}");
    let s1 = json(&body);
    assert_eq!(s1["id"], id.as_str());
    assert_eq!(s1["name"], "/web");
    let cpu = &s1["cpu_stats"];
    let pre = &s1["precpu_stats"];
    let total = cpu["cpu_usage"]["total_usage"].as_u64().unwrap();
    let pre_total = pre["cpu_usage"]["total_usage"].as_u64().unwrap();
    assert!(pre_total > 0, "precpu is a real sample: {body}");
    assert!(total >= pre_total, "{body}");
    let sys = cpu["system_cpu_usage"].as_u64().unwrap();
    let pre_sys = pre["system_cpu_usage"].as_u64().unwrap();
    assert!(
        sys > pre_sys,
        "the host's cpu time moved between the samples: {body}"
    );
    assert!(cpu["online_cpus"].as_u64().unwrap() >= 1, "{body}");
    assert!(cpu["cpu_usage"]["usage_in_usermode"].is_u64());
    assert!(cpu["throttling_data"]["periods"].is_u64());
    let read = chrono::DateTime::parse_from_rfc3339(s1["read"].as_str().unwrap()).unwrap();
    let preread = chrono::DateTime::parse_from_rfc3339(s1["preread"].as_str().unwrap()).unwrap();
    let gap = (read - preread).num_milliseconds();
    assert!((800..5000).contains(&gap), "samples {gap} ms apart: {body}");
    assert_eq!(s1["memory_stats"]["limit"], 256u64 << 20, "{body}");
    assert!(s1["memory_stats"]["usage"].as_u64().unwrap() > 0, "{body}");
    assert!(s1["pids_stats"]["current"].as_u64().unwrap() >= 1, "{body}");
    let eth0 = &s1["networks"]["eth0"];
    for k in [
        "rx_bytes",
        "rx_packets",
        "rx_errors",
        "rx_dropped",
        "tx_bytes",
        "tx_packets",
        "tx_errors",
        "tx_dropped",
    ] {
        assert!(eth0[k].is_u64(), "networks.eth0.{k}: {body}");
    }
    // Traffic to the pod over its published port shows in its eth0 counters.
    traffic(port, 20);
    let (_, body2) = curl(
        &svc,
        "GET",
        "/containers/web/stats?stream=false&one-shot=true",
    );
    let s2 = json(&body2);
    let e2 = &s2["networks"]["eth0"];
    for k in ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"] {
        assert!(
            e2[k].as_u64().unwrap() > eth0[k].as_u64().unwrap(),
            "{k} grew: {eth0} then {e2}"
        );
    }
    // 20 requests of ~40 bytes each came in, 20 answers went out.
    assert!(e2["rx_bytes"].as_u64().unwrap() - eth0["rx_bytes"].as_u64().unwrap() >= 20 * 40);
    assert!(e2["tx_packets"].as_u64().unwrap() - eth0["tx_packets"].as_u64().unwrap() >= 20);
    // One-shot: docker's empty precpu.
    assert_eq!(s2["preread"], "0001-01-01T00:00:00Z", "{body2}");

    // gvpod stats --format json agrees.
    let g = json(&r.ok(&["stats", "--no-stream", "--format", "json"]));
    let rows = g.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{g}");
    assert_eq!(rows[0]["name"], "web");
    assert_eq!(rows[0]["memory_limit"], 256u64 << 20);
    assert!(rows[0]["memory_usage"].as_u64().unwrap() > 0, "{g}");
    assert!(rows[0]["net_rx_bytes"].as_u64().unwrap() >= e2["rx_bytes"].as_u64().unwrap());
    let g = json(&r.ok(&["stats", "--no-stream", "--format", "json", "-a"]));
    assert_eq!(
        g.as_array().unwrap().len(),
        2,
        "-a shows the created pod too: {g}"
    );
    let table = r.ok(&["stats", "--no-stream", "web"]);
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    assert!(table.contains("/ 256MiB"), "{table}");
    r.fails(&["stats", "--no-stream", "nosuch"], 2, "nosuch");

    // A stream: one object a second, each precpu the one before; it ends when the pod stops.
    let mut child = Command::new("curl")
        .args(["-sN", "--unix-socket"])
        .arg(&svc.sock)
        .arg("http://d/containers/web/stats")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let a = json(&lines.next().unwrap().unwrap());
    let b = json(&lines.next().unwrap().unwrap());
    assert_eq!(
        b["precpu_stats"], a["cpu_stats"],
        "each precpu is the sample before"
    );
    assert_eq!(b["preread"], a["read"]);
    assert!(
        a["precpu_stats"]["cpu_usage"]["total_usage"]
            .as_u64()
            .unwrap()
            > 0
    );
    let t0 = Instant::now();
    svc.ok(&["stop", "-t", "1", "web"]);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the stream ended with the pod"
    );
    assert!(child.wait().unwrap().success());
    let last = json(rest.last().expect("a last, zero object"));
    assert_eq!(last["cpu_stats"]["cpu_usage"]["total_usage"], 0, "{last}");

    // A stopped pod: one zero sample; an unknown one: 404.
    let (code, body) = curl(&svc, "GET", "/containers/web/stats?stream=false");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["pids_stats"]["current"], 0);
    let (code, body) = curl(&svc, "GET", "/containers/nosuch/stats?stream=false");
    assert_eq!(
        (code, json(&body)["message"].as_str()),
        (404, Some("No such container: nosuch"))
    );
    r.assert_clean();
}

#[test]
fn networks_through_the_docker_cli() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let id = svc.ok(&[
        "network",
        "create",
        "--subnet",
        "198.18.77.0/24",
        "--label",
        "team=a",
        "n1",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    // A clash: 409 and docker's words.
    let o = svc.docker(&["network", "create", "--subnet", "198.18.78.0/24", "n1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("network with name n1 already exists"),
        "{}",
        stderr(&o)
    );
    let o = svc.docker(&["network", "create", "--driver", "overlay", "n2"]);
    assert!(
        !o.status.success() && stderr(&o).contains("not supported"),
        "{}",
        stderr(&o)
    );

    let ls = svc.ok(&[
        "network",
        "ls",
        "--format",
        "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    let rows: Vec<&str> = ls.lines().collect();
    assert!(
        rows.contains(&format!("{} n1 bridge local", &id[..12]).as_str()),
        "{ls}"
    );
    assert!(rows.iter().any(|l| l.ends_with(" host host local")), "{ls}");
    assert!(rows.iter().any(|l| l.ends_with(" none null local")), "{ls}");
    let f = svc.ok(&["network", "ls", "-q", "--filter", "label=team=a"]);
    assert_eq!(f.trim(), &id[..12]);
    let f = svc.ok(&["network", "ls", "-q", "--filter", "name=nosuch"]);
    assert_eq!(f.trim(), "");
    let f = svc.ok(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("id={}", &id[..8]),
    ]);
    assert_eq!(f.trim(), &id[..12]);

    let v = json(&svc.ok(&["network", "inspect", "n1"]));
    let n = &v[0];
    assert_eq!(n["Name"], "n1");
    assert_eq!(n["Id"], id.as_str());
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "198.18.77.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "198.18.77.1");
    assert_eq!(n["Labels"]["team"], "a");
    // By id prefix too, and gvpod sees the same network.
    let v = json(&svc.ok(&["network", "inspect", &id[..10]]));
    assert_eq!(v[0]["Name"], "n1");
    let gv = json(&r.ok(&["network", "inspect", "n1"]));
    assert_eq!(gv["subnet"], "198.18.77.0/24");

    // In use: refused (409) until the pod is gone.
    let pod = svc.ok(&[
        "run",
        "-d",
        "--network",
        "n1",
        "--name",
        "p",
        "busybox",
        "sleep",
        "60",
    ]);
    r.track(pod.trim());
    let v = json(&svc.ok(&["network", "inspect", "n1"]));
    let c = &v[0]["Containers"][pod.trim()];
    assert_eq!(c["Name"], "p", "{v}");
    assert!(
        c["IPv4Address"].as_str().unwrap().starts_with("198.18.77."),
        "{v}"
    );
    let (code, body) = curl(&svc, "DELETE", "/networks/n1");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("in use"), "{body}");
    svc.ok(&["rm", "-f", "p"]);
    let o = svc.docker(&["network", "rm", "host"]);
    assert!(stderr(&o).contains("pre-defined"), "{}", stderr(&o));
    assert_eq!(svc.ok(&["network", "rm", "n1"]).trim(), "n1");
    let o = svc.docker(&["network", "inspect", "n1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("network n1 not found"),
        "{}",
        stderr(&o)
    );
    assert!(!r.ok(&["network", "ls", "-q"]).lines().any(|l| l == "n1"));
    r.assert_clean();
}

#[test]
fn events_stay_open_report_a_life_and_close_at_until() {
    require_docker!();
    let r = Root::new();
    // Idle after 1 s: an open event stream must keep the service up.
    let mut svc = Service::start(&r, 1);
    let until = chrono::Utc::now().timestamp() + 6;
    let t0 = Instant::now();
    let events = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .args([
            "events",
            "--until",
            &until.to_string(),
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}{{with .Actor.Attributes.exitCode}} {{.}}{{end}}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Time for the CLI to start and connect (events are watched from then on).
    std::thread::sleep(Duration::from_millis(1500));
    let o = svc.docker(&[
        "run",
        "--rm",
        "--name",
        "brief",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        svc.exited_within(Duration::ZERO).is_none(),
        "the service stays while events are open"
    );
    let out = events.wait_with_output().unwrap();
    let took = t0.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(10),
        "the stream closed at until, after {took:?}"
    );
    let got = stdout(&out);
    let lines: Vec<&str> = got.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "create brief",
            "start brief",
            "die brief 3",
            "destroy brief"
        ],
        "{got}"
    );
    // Past events: a range ending now replays them and closes.
    let since = chrono::Utc::now().timestamp() - 1;
    let pod = svc.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    r.track(pod.trim());
    // Within the service's idle second: the next whole second as until.
    let now = chrono::Utc::now().timestamp() + 1;
    let t = Instant::now();
    let past = svc.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &now.to_string(),
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a past range closes at once"
    );
    assert_eq!(past.trim(), "create later", "{past}");
    // Once everything is closed, the idle service exits.
    assert!(
        svc.exited_within(Duration::from_secs(10)).is_some(),
        "idle exit after the stream"
    );
    r.assert_clean();
}

#[test]
fn pull_images_and_rmi_through_the_docker_cli() {
    require_docker!();
    require_registry!();
    let reg = Registry::start();
    // Push the project's busybox into the registry from one data root…
    let src = Root::new();
    let image = format!("{}/bb:v1", reg.addr());
    let o = src.gvpod(&["push", "-q", "busybox", &image]);
    assert!(o.status.success(), "{}", stderr(&o));
    // …and pull it through the API into an empty one.
    let r = Root::empty();
    let svc = Service::start(&r, 0);
    let o = svc.docker(&["pull", &image]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("v1: Pulling from bb"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {image}")),
        "{out}"
    );
    // The raw stream: docker's JSON lines.
    let (code, body) = curl(
        &svc,
        "POST",
        &format!("/images/create?fromImage={}/bb&tag=v1", reg.addr()),
    );
    assert_eq!(code, 200, "{body}");
    let msgs: Vec<serde_json::Value> = body.lines().map(json).collect();
    assert_eq!(msgs[0]["status"], "Pulling from bb");
    assert_eq!(msgs[0]["id"], "v1");
    assert!(
        msgs.iter()
            .any(|m| m["status"] == "Already exists"
                && m["id"].as_str().is_some_and(|i| i.len() == 12)),
        "{body}"
    );
    assert_eq!(
        msgs.last().unwrap()["status"],
        format!("Status: Image is up to date for {image}").as_str()
    );
    // Not there: 404 before any stream; a bad reference: 400.
    let (code, body) = curl(
        &svc,
        "POST",
        &format!("/images/create?fromImage={}/nosuch&tag=v1", reg.addr()),
    );
    assert_eq!(code, 404, "{body}");
    assert!(json(&body)["message"].is_string());
    let (code, body) = curl(&svc, "POST", "/images/create?fromImage=UPPER/Case&tag=v1");
    assert_eq!(code, 400, "{body}");
    let o = svc.docker(&["pull", &format!("{}/nosuch:v1", reg.addr())]);
    assert!(!o.status.success());

    let images = svc.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), image, "{images}");
    // Tag, then remove: in use → 409; the tag, then the image.
    let (code, body) = curl(
        &svc,
        "POST",
        &format!("/images/{image}/tag?repo=copy&tag=2"),
    );
    assert_eq!(code, 201, "{body}");
    let pod = svc.ok(&[
        "create",
        "--name",
        "user",
        "--network",
        "none",
        &image,
        "true",
    ]);
    r.track(pod.trim());
    let untag = svc.ok(&["rmi", "copy:2"]);
    assert_eq!(untag.trim(), "Untagged: copy:2");
    let (code, body) = curl(&svc, "DELETE", &format!("/images/{image}"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("used by pod"), "{body}");
    svc.ok(&["rm", "user"]);
    let out = svc.ok(&["rmi", &image]);
    assert!(out.contains(&format!("Untagged: {image}")), "{out}");
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(svc.ok(&["images", "-q"]).trim(), "");
    let o = svc.docker(&["rmi", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such image: nosuch"),
        "{}",
        stderr(&o)
    );

    // A blob damaged in the registry: the stream has begun (200), so the
    // failure is docker's errorDetail line, and nothing is registered.
    let blobs = reg
        .dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256");
    let mut files = vec![];
    for a in std::fs::read_dir(&blobs).unwrap().flatten() {
        for b in std::fs::read_dir(a.path()).unwrap().flatten() {
            let f = b.path().join("data");
            files.push((std::fs::metadata(&f).unwrap().len(), f));
        }
    }
    let (_, layer) = files.iter().max().unwrap(); // the busybox layer
    let mut data = std::fs::read(layer).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(layer, data).unwrap();
    let (code, body) = curl(
        &svc,
        "POST",
        &format!("/images/create?fromImage={}/bb&tag=v1", reg.addr()),
    );
    assert_eq!(code, 200, "{body}");
    let msgs: Vec<serde_json::Value> = body.lines().map(json).collect();
    assert!(
        msgs.iter().any(|m| m["status"] == "Pulling fs layer"),
        "{body}"
    );
    let last = msgs.last().unwrap();
    let m = last["errorDetail"]["message"]
        .as_str()
        .expect("an errorDetail line");
    assert_eq!(last["error"].as_str(), Some(m));
    assert!(m.contains("sha256:"), "names the blob: {m}");
    assert_eq!(svc.ok(&["images", "-q"]).trim(), "", "nothing registered");
    let o = svc.docker(&["pull", &image]);
    assert!(!o.status.success(), "{}", stdout(&o));
    r.assert_clean();
    src.assert_clean();
}
