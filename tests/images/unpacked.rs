//! The layer cache as root, without runsc: what the unit tests cannot see
//! because they run as any user (see `src/image/unpack/tests`).
//!
//! * device nodes and owners reach a layer dir, with modes applied after
//!   the owner (chown clears setuid/setgid);
//! * a layer with parents is applied in an overlay mount, so its cache dir
//!   is an overlayfs upper dir (whiteout devices, opaque directories,
//!   copied-up parents, entries where lower symlinks point), and the mount
//!   of the stack shows the merged tree the unit tests check;
//! * the busybox recipe builds a reproducible rootfs that imports with its
//!   owners and modes and runs.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::common::oci::{self, Image, Layer};
use crate::common::{self, Root};
use crate::{require_root, write};

/// Loads `layers` (plain tars) as the image `name`; returns its layer dirs,
/// lowest first.
fn load(r: &Root, name: &str, layers: Vec<Vec<u8>>) -> Vec<PathBuf> {
    let tmp = tempfile::tempdir().unwrap();
    let layers = layers.into_iter().map(|l| (l, oci::MT_TAR)).collect();
    let archive = write(
        tmp.path(),
        "image.tar",
        &oci::oci_archive(&[Image::new(layers, name)]),
    );
    r.ok(&["load", "-i", archive.to_str().unwrap()]);
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", name])).unwrap();
    inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| PathBuf::from(l["path"].as_str().unwrap()))
        .collect()
}

/// Sorted `path kind detail` lines for everything below `root`, in overlay
/// terms: `dir` (`dir opaque` with `trusted.overlay.opaque=y`), `whiteout`
/// (a character device 0/0), `-> target`, `file CONTENT`.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let r = rel.join(e.unwrap().file_name());
            let p = root.join(&r);
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let line = if ft.is_dir() {
                walk(root, &r, out);
                if opaque(&p) {
                    format!("{} dir opaque", r.display())
                } else {
                    format!("{} dir", r.display())
                }
            } else if ft.is_symlink() {
                format!(
                    "{} -> {}",
                    r.display(),
                    std::fs::read_link(&p).unwrap().display()
                )
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!("{} file {}", r.display(), String::from_utf8_lossy(&data))
            } else if ft.is_char_device() && m.rdev() == 0 {
                format!("{} whiteout", r.display())
            } else {
                format!("{} other", r.display())
            };
            out.push(line);
        }
    }
    let mut out = vec![];
    walk(root, Path::new(""), &mut out);
    out.sort();
    out
}

/// Whether the directory `p` carries `trusted.overlay.opaque=y`.
fn opaque(p: &Path) -> bool {
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: NUL-terminated path and attribute name; the buffer pointer and
    // length match.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// The merged tree of `layers` (lowest first) as [`tree`] lines: a
/// read-only overlay mount in the private mount namespace of a thread.
fn merged(layers: &[PathBuf]) -> Vec<String> {
    let mnt = tempfile::tempdir().unwrap();
    let target = mnt.path().to_path_buf();
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    std::thread::spawn(move || {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let opts = format!("lowerdir={}", lower.join(":"));
        mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(opts.as_str()),
        )
        .unwrap();
        let out = tree(&target);
        umount2(&target, MntFlags::MNT_DETACH).unwrap();
        out
    })
    .join()
    .unwrap()
}

fn lines(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Device nodes, owners, and setuid/setgid modes that chown would clear if
/// it came after the chmod.
#[test]
fn devices_owners_and_modes_reach_the_layer_dir() {
    require_root!();
    let r = Root::empty();
    let mut l = Layer::new();
    l.device(EntryType::Char, "dev/null", 1, 3)
        .device(EntryType::Block, "dev/loop9", 7, 9)
        .owned(EntryType::Directory, "home/dev", 0o2750, (1000, 1000), b"")
        .owned(
            EntryType::Regular,
            "home/dev/.profile",
            0o640,
            (1000, 1001),
            b"p",
        )
        .owned(EntryType::Regular, "bin/tool", 0o4755, (1000, 1000), b"t");
    let dirs = load(&r, "test/devices:1", vec![l.finish()]);
    let meta = |p: &str| std::fs::symlink_metadata(dirs[0].join(p)).unwrap();
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o640);
    let lp = meta("dev/loop9");
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), libc::makedev(7, 9));
    for (p, owner, mode) in [
        ("home/dev", (1000, 1000), 0o2750),
        ("home/dev/.profile", (1000, 1001), 0o640),
        ("bin/tool", (1000, 1000), 0o4755),
    ] {
        let m = meta(p);
        assert_eq!((m.uid(), m.gid()), owner, "{p}");
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{p}");
    }
    r.assert_clean();
}

/// The stacks of the unit tests' `layers.rs`, loaded for real: the upper
/// dir the kernel made of each layer, and the merged tree of the mount.
#[test]
fn layer_dirs_are_overlay_upper_dirs() {
    require_root!();
    let r = Root::empty();
    let mut l0 = Layer::new();
    l0.dir("var/")
        .dir("run/")
        .dir("run/lock/")
        .symlink("var/run", "/run")
        .symlink("var/lock", "../run/lock")
        .dir("a/")
        .file("a/keep", b"k")
        .file("a/gone", b"g")
        .dir("d/")
        .file("d/old", b"o")
        .dir("d/sub/")
        .file("d/sub/old2", b"o2")
        .file("f", b"f")
        .dir("r/")
        .file("r/old", b"o")
        .symlink("lnk", "a");
    let mut l1 = Layer::new();
    // Entries below lower symlinks land where they point.
    l1.file("var/run/x", b"x")
        .file("var/lock/y", b"y")
        // Whiteouts of a file and of a symlink, an opaque marker.
        .file("a/.wh.gone", b"")
        .file(".wh.f", b"")
        .file(".wh.lnk", b"")
        .dir("d/")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"n")
        // A directory deleted and re-created.
        .file(".wh.r", b"")
        .dir("r/")
        .file("r/fresh", b"r")
        // A hardlink to a lower file.
        .hardlink("hl", "a/keep");
    let dirs = load(&r, "test/upper:1", vec![l0.finish(), l1.finish()]);
    assert_eq!(dirs.len(), 2);
    assert_eq!(
        tree(&dirs[1]),
        lines(&[
            "a dir",
            "a/gone whiteout",
            "a/keep file k",
            "d dir",
            "d/new file n",
            "d/old whiteout",
            "d/sub whiteout",
            "f whiteout",
            "hl file k",
            "lnk whiteout",
            "r dir opaque",
            "r/fresh file r",
            "run dir",
            "run/lock dir",
            "run/lock/y file y",
            "run/x file x",
        ])
    );
    assert_eq!(
        merged(&dirs),
        lines(&[
            "a dir",
            "a/keep file k",
            "d dir",
            "d/new file n",
            "hl file k",
            "r dir",
            "r/fresh file r",
            "run dir",
            "run/lock dir",
            "run/lock/y file y",
            "run/x file x",
            "var dir",
            "var/lock -> ../run/lock",
            "var/run -> /run",
        ])
    );
    r.assert_clean();
}

/// The busybox recipe (images/busybox/build.sh) builds a byte-identical
/// rootfs each time, which imports with its owners and modes and runs.
#[test]
fn busybox_recipe_builds_a_reproducible_rootfs_that_imports() {
    require_root!();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/busybox/build.sh");
    let tmp = tempfile::tempdir().unwrap();
    let outs = [tmp.path().join("b1.tar"), tmp.path().join("b2.tar")];
    for out in &outs {
        let o = std::process::Command::new("bash")
            .arg(&script)
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
    }
    let [b1, b2] = outs.map(|p| std::fs::read(p).unwrap());
    assert!(b1 == b2, "the busybox build is not reproducible");
    let r = Root::empty();
    r.ok(&[
        "import",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        tmp.path().join("b1.tar").to_str().unwrap(),
        "gvpod/busybox",
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "gvpod/busybox"])).unwrap();
    let root = PathBuf::from(inspect["layers"][0]["path"].as_str().unwrap());
    assert!(root.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"),
        "{passwd}"
    );
    assert!(passwd.contains("\ndev:x:1000:1000:"), "{passwd}");
    assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(meta("tmp").permissions().mode() & 0o7777, 0o1777);
    assert_eq!(
        (meta("home/dev").uid(), meta("home/dev").gid()),
        (1000, 1000)
    );
    assert_eq!(meta("root").permissions().mode() & 0o7777, 0o700);
    for d in ["proc", "sys", "dev"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    // The static binary runs from the layer.
    let st = std::process::Command::new(root.join("bin/busybox"))
        .arg("true")
        .status()
        .unwrap();
    assert!(st.success());
    r.assert_clean();
}
