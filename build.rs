//! Builds the static C helpers embedded in the gvpod binary, so one file is
//! still all a user installs:
//! - gvpod-relay (src/router/relay.c), the helper gvpod puts in every pod
//!   read-only at /dev/gvpod (see `pod::route`);
//! - gvpod-bench-syscall (src/bench/syscall.c), the `syscall` workload of
//!   `gvpod bench`, put into the bench bundle's rootfs;
//! - gvpod-bench-memfill (benches/memfill.c), the pod the `checkpoint`
//!   workload of `gvpod bench` saves and restores (it touches N MiB).
//!
//! Static, because they run on whatever libc the pod's image has (or none).
//! Needs a C compiler and a static libc: Debian's gcc and libc6-dev.
//!
//! It also sets the one cfg that splits the crate, `host_runtime`: the
//! target is Linux and feature `host` is on (the default). Without it (a
//! macOS build, or `--no-default-features --features client` on Linux) only
//! the client is compiled, and the helpers, which only pods use, are not
//! built (a Mac has no static libc to build them with).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(host_runtime)");
    println!("cargo:rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let host = std::env::var_os("CARGO_FEATURE_HOST").is_some();
    if !(linux && host) {
        return;
    }
    println!("cargo:rustc-cfg=host_runtime");
    println!("cargo:rerun-if-env-changed=CC");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // A cross build names its compiler as cc-rs does (CC_<target>), else cc.
    let target = std::env::var("TARGET").unwrap_or_default();
    let cc = std::env::var(format!("CC_{}", target.replace('-', "_")))
        .or_else(|_| std::env::var("CC"))
        .unwrap_or_else(|_| "cc".into());
    for (src, name) in [
        ("src/router/relay.c", "gvpod-relay"),
        ("src/bench/syscall.c", "gvpod-bench-syscall"),
        ("benches/memfill.c", "gvpod-bench-memfill"),
    ] {
        println!("cargo:rerun-if-changed={src}");
        let status = Command::new(&cc)
            .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(out_dir.join(name))
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
    // The relay's digest names the read-only layer that holds it in every
    // pod (`pod::helpers`): a layer is never changed once made, so another
    // relay needs another name. FNV-1a 64: a name, not a security check.
    let relay = std::fs::read(out_dir.join("gvpod-relay")).expect("read the built relay");
    let digest = relay.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    println!("cargo:rustc-env=GVPOD_RELAY_DIGEST={digest:016x}");
}
