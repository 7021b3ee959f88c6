//! Builds gvpod-relay (src/router/relay.c), the static helper gvpod puts in
//! every pod read-only at /dev/gvpod (see `pod::route`). It is embedded in
//! the gvpod binary, so one file is still all a user installs.
//!
//! Static, because it runs on whatever libc the pod's image has (or none).
//! Needs a C compiler and a static libc: Debian's gcc and libc6-dev.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/router/relay.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CC");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("gvpod-relay");
    // A cross build names its compiler as cc-rs does (CC_<target>), else cc.
    let target = std::env::var("TARGET").unwrap_or_default();
    let cc = std::env::var(format!("CC_{}", target.replace('-', "_")))
        .or_else(|_| std::env::var("CC"))
        .unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(src)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building {src} with {cc} failed ({s}): a static libc is needed (Debian: apt-get install gcc libc6-dev)"
        ),
        Err(e) => panic!("cannot run the C compiler {cc:?} for {src}: {e} (Debian: apt-get install gcc libc6-dev)"),
    }
}
