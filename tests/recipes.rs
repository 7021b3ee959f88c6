//! The Debian-package image recipes (images/debian, images/nginx) end to
//! end: build, load, run. They need root, network access to a Debian mirror
//! and a few minutes, so they run only with `GVPOD_TEST_RECIPES=1`
//! (`DEBOOTSTRAP_CACHE` keeps the downloaded packages between runs).

mod common;

use std::path::Path;
use std::process::Command;

use common::{stderr, Root};

fn recipe(name: &str, args: &[&Path], env: &[(&str, &Path)]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("images/{name}/build.sh"));
    let mut c = Command::new("bash");
    c.arg(&script).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run recipe");
    assert!(o.status.success(), "{name}: {}", stderr(&o));
}

#[test]
fn debian_and_nginx_recipes_build_load_and_run() {
    require_runsc!();
    if std::env::var_os("GVPOD_TEST_RECIPES").is_none() {
        // scripts/test.sh sets it; a bare `cargo test` may leave it out.
        assert!(
            !common::skips_forbidden(),
            "set GVPOD_TEST_RECIPES=1: this test builds the Debian recipes (needs a Debian mirror, takes minutes)"
        );
        eprintln!("skipped: set GVPOD_TEST_RECIPES=1 (needs a Debian mirror, takes minutes)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let debian = tmp.path().join("debian.tar");
    let nginx = tmp.path().join("nginx.tar");
    recipe("debian", &[&debian], &[]);
    recipe("nginx", &[&nginx], &[("DEBIAN_TAR", &debian)]);

    let r = Root::new();
    r.ok(&["load", "-i", debian.to_str().unwrap()]);
    r.ok(&["load", "-i", nginx.to_str().unwrap()]);
    let layers = |name: &str| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&r.ok(&["image", "inspect", name])).unwrap();
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["chain_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (d, n) = (layers("debian:bookworm"), layers("nginx:bookworm"));
    assert_eq!(d.len(), 1);
    assert_eq!(n.len(), 2);
    assert_eq!(n[0], d[0], "nginx is built on the same debian layer");
    let o = r.gvpod(&[
        "run",
        "--rm",
        "debian:bookworm",
        "cat",
        "/etc/debian_version",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = r.gvpod(&["run", "--rm", "nginx:bookworm", "nginx", "-t"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("test is successful"));
    r.assert_clean();
}
