//! Exec and stdin through the Docker Engine API, driven by the real docker
//! CLI over a temporary socket with the real runsc: `docker exec` output
//! with stdout and stderr kept apart, exit codes (the process's own, 126/127
//! for a command that cannot run, set before the stream closes), input
//! (`-i`), a terminal (`-it`, through a real pty with its size), a detached
//! exec, and an exec into a stopped pod.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::api::Service;
use common::{stderr, stdout, Root};

/// `docker ARGS` with `input` on its stdin.
fn docker_in(svc: &Service, args: &[&str], input: &[u8]) -> Output {
    let mut c = docker_cmd(svc, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker");
    // Fed from a thread: docker's output is read meanwhile.
    let mut w = c.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || w.write_all(&input));
    let o = c.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    o
}

fn docker_cmd(svc: &Service, args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .env_remove("DOCKER_CONTEXT")
        .args(args);
    c
}

/// Runs `docker ARGS` with a terminal of 30 rows and 100 columns as its
/// stdin, stdout and stderr (python's pty module); what the terminal showed
/// and docker's exit code.
fn docker_in_pty(svc: &Service, args: &[&str]) -> (String, Option<i32>) {
    const SCRIPT: &str = r#"
import fcntl, os, select, struct, subprocess, sys, termios, time
m, s = os.openpty()
fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))
p = subprocess.Popen(sys.argv[1:], stdin=s, stdout=s, stderr=s, start_new_session=True)
os.close(s)
out = b''
deadline = time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([m], [], [], 1)
    if not r:
        if p.poll() is not None:
            break
        continue
    try:
        b = os.read(m, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
sys.stdout.buffer.write(out)
sys.exit(p.wait(timeout=30))
"#;
    let mut all = vec!["-c", SCRIPT, "docker"];
    all.extend_from_slice(args);
    let o = Command::new("python3")
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .env_remove("DOCKER_CONTEXT")
        .args(&all)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    (stdout(&o), o.status.code())
}

/// A pod `web` (busybox sleeping) started through the API.
fn web(svc: &Service) {
    let id = svc.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
}

#[test]
fn docker_exec_gives_output_streams_and_exit_codes() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    web(&svc);

    let o = svc.docker(&["exec", "web", "sh", "-c", "echo hi; echo oops >&2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("hi\n", "oops\n")
    );

    // The exit code is the process's own, every time (it is recorded
    // before the stream closes, and the CLI reads it right after).
    for _ in 0..10 {
        let o = svc.docker(&["exec", "web", "sh", "-c", "exit 3"]);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    }
    // As docker: 127 for a command that is not there, 126 for one that
    // cannot be executed; the reason on stderr.
    let o = svc.docker(&["exec", "web", "nosuch"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("nosuch"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let o = svc.docker(&["exec", "web", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));

    // Env, user and working directory reach the process.
    let o = svc.ok(&[
        "exec",
        "-e",
        "X=42",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "web",
        "sh",
        "-c",
        "echo $X $(id -u) $(pwd)",
    ]);
    assert_eq!(o, "42 65534 /tmp\n");

    // Input: the client's EOF closes the process's stdin.
    let o = docker_in(&svc, &["exec", "-i", "web", "cat"], b"hi\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
    // More than a pipe holds, in both directions at once.
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let o = docker_in(&svc, &["exec", "-i", "web", "cat"], &big);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        o.stdout == big,
        "{} bytes back of {}",
        o.stdout.len(),
        big.len()
    );

    // Detached: runs in the background, its effect is seen later.
    svc.ok(&[
        "exec",
        "-d",
        "web",
        "sh",
        "-c",
        "sleep 1; echo done > /tmp/bg",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = svc.docker(&["exec", "web", "cat", "/tmp/bg"]);
        if o.status.success() {
            assert_eq!(stdout(&o), "done\n");
            break;
        }
        assert!(Instant::now() < deadline, "the detached exec did not run");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A stopped pod: an error and a non-zero exit.
    svc.ok(&["stop", "-t", "1", "web"]);
    let o = svc.docker(&["exec", "web", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    let o = svc.docker(&["exec", "nosuch", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("No such container"), "{}", stderr(&o));
    svc.ok(&["rm", "-f", "web"]);
    r.assert_clean();
}

#[test]
fn docker_exec_it_runs_in_a_terminal_of_the_clients_size() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    web(&svc);
    // gVisor shows a terminal it was handed as `host:[N]`, not a
    // /dev/pts path (`tty` says "not a tty" under runsc, for `gvpod exec
    // -t` as well): what is checked is that stdin and stdout are a
    // terminal, of the client's size, whose line discipline turns \n
    // into \r\n.
    let script = "[ -t 0 ] && [ -t 1 ] && echo terminal; stty size; exit 5";
    let (raw, code) = docker_in_pty(&svc, &["exec", "-it", "web", "sh", "-c", script]);
    assert_eq!(code, Some(5), "{raw:?}");
    assert!(raw.contains("terminal\r\n"), "no terminal: {raw:?}");
    let out = raw.replace('\r', "");
    assert!(out.lines().any(|l| l == "30 100"), "size: {out:?}");
    // Without -t, no terminal even from one.
    let (raw, code) = docker_in_pty(
        &svc,
        &["exec", "-i", "web", "sh", "-c", "[ -t 1 ] || echo none"],
    );
    assert_eq!(code, Some(0), "{raw:?}");
    assert!(raw.contains("none"), "{raw:?}");
    svc.ok(&["rm", "-f", "web"]);
    r.assert_clean();
}

/// One request on a fresh connection; the answer's head and the rest.
fn raw(sock: &std::path::Path, req: &str, body: &str) -> (String, std::os::unix::net::UnixStream) {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{req}\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    )
    .unwrap();
    if req.contains("/start") {
        s.write_all(b"Connection: Upgrade\r\nUpgrade: tcp\r\n")
            .unwrap();
    }
    write!(s, "\r\n{body}").unwrap();
    // Byte by byte: what follows the head stays in the socket.
    let mut head = vec![];
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(std::io::Read::read(&mut s, &mut b).unwrap(), 1, "{head:?}");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    (head, s)
}

fn json_body(sock: &std::path::Path, req: &str, body: &str) -> serde_json::Value {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(s, "{req}\r\nHost: d\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (_, b) = all.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {all}"))
}

#[test]
fn exec_start_is_a_hijacked_stream_of_frames_and_the_code_is_set_when_it_closes() {
    use std::io::Read;
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    web(&svc);
    let made = json_body(
        &svc.sock,
        "POST /v1.47/containers/web/exec HTTP/1.1",
        r#"{"AttachStdout":true,"AttachStderr":true,"Cmd":["sh","-c","echo out; echo err >&2; exit 7"],"Bogus":1}"#,
    );
    let id = made["Id"].as_str().unwrap().to_string();
    let before = json_body(&svc.sock, &format!("GET /exec/{id}/json HTTP/1.1"), "");
    assert_eq!(
        (before["Running"].as_bool(), before["ExitCode"].is_null()),
        (Some(false), true)
    );
    let (head, mut s) = raw(
        &svc.sock,
        &format!("POST /v1.47/exec/{id}/start HTTP/1.1"),
        r#"{"Detach":false,"Tty":false}"#,
    );
    assert!(head.starts_with("HTTP/1.1 101 UPGRADED\r\n"), "{head}");
    assert!(
        head.contains("application/vnd.docker.multiplexed-stream"),
        "{head}"
    );
    // The client stops sending at once (no stdin): the output still comes.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = vec![];
    s.read_to_end(&mut got).unwrap();
    let mut frames = vec![];
    let mut rest = &got[..];
    while rest.len() >= 8 {
        let n = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        frames.push((
            rest[0],
            String::from_utf8_lossy(&rest[8..8 + n]).into_owned(),
        ));
        rest = &rest[8 + n..];
    }
    assert!(rest.is_empty(), "a torn frame: {got:?}");
    let out: String = frames
        .iter()
        .filter(|f| f.0 == 1)
        .map(|f| f.1.as_str())
        .collect();
    let err: String = frames
        .iter()
        .filter(|f| f.0 == 2)
        .map(|f| f.1.as_str())
        .collect();
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    // Set before the stream closed: read at once, no retry.
    let after = json_body(&svc.sock, &format!("GET /exec/{id}/json HTTP/1.1"), "");
    assert_eq!(
        (after["Running"].as_bool(), after["ExitCode"].as_i64()),
        (Some(false), Some(7))
    );
    assert_eq!(after["ProcessConfig"]["entrypoint"], "sh");
    assert!(after["Pid"].as_u64().unwrap() > 0);
    // Once only; unknown ids are 404.
    let again = json_body(&svc.sock, &format!("POST /exec/{id}/start HTTP/1.1"), "{}");
    assert!(
        again["message"].as_str().unwrap().contains("already"),
        "{again}"
    );
    let none = json_body(&svc.sock, "GET /exec/nosuch/json HTTP/1.1", "");
    assert!(
        none["message"].as_str().unwrap().contains("No such exec"),
        "{none}"
    );
    svc.ok(&["rm", "-f", "web"]);
    r.assert_clean();
}

#[test]
fn a_detached_exec_keeps_the_service_from_idling() {
    require_docker!();
    let r = Root::new();
    let mut svc = Service::start(&r, 1);
    web(&svc);
    svc.ok(&["exec", "-d", "web", "sleep", "4"]);
    assert!(
        svc.exited_within(Duration::from_millis(2500)).is_none(),
        "the service went idle while an exec ran"
    );
    let st = svc
        .exited_within(Duration::from_secs(20))
        .expect("idle exit after the exec");
    assert!(st.success(), "{st:?}");
    // The pod lives on.
    let ps = r.ps_all();
    assert_eq!(ps[0]["status"], "running", "{ps:?}");
    r.ok(&["rm", "-f", "web"]);
    r.assert_clean();
}

#[test]
fn docker_run_i_feeds_the_pods_stdin_and_it_runs_in_a_terminal() {
    require_docker!();
    let r = Root::new();
    let svc = Service::start(&r, 0);
    let run = ["run", "-i", "--rm", "--network", "none", "busybox"];
    let o = docker_in(&svc, &[&run[..], &["cat"]].concat(), b"hi\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\n");
    // The client's EOF closes the pod's stdin; the pod's code comes back.
    let script = "read x; echo got $x; cat; exit 4";
    let o = docker_in(&svc, &[&run[..], &["sh", "-c", script]].concat(), b"a\nb\n");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(stdout(&o), "got a\nb\n");
    // -it: the pod's stdin and stdout are a terminal (see the exec test
    // for why not a /dev/pts path).
    let (raw, code) = docker_in_pty(
        &svc,
        &[
            "run",
            "-it",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo terminal; exit 6",
        ],
    );
    assert_eq!(code, Some(6), "{raw:?}");
    assert!(raw.contains("terminal"), "{raw:?}");
    r.assert_clean();
}
