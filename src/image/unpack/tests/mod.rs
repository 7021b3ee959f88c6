//! Unit tests of the layer unpacker. They run as any user (no mount, no
//! device node but fifos and overlay whiteouts, no chown): what needs root
//! (device nodes, owners, the overlay mount and the upper dirs the kernel
//! makes of a layer) is checked by `tests/images/unpacked.rs`.
//!
//! * this file: every entry type, replacement, truncation, removal;
//! * [`hostile`]: the hostile-layer cases, one table;
//! * [`layers`]: layers on top of parents (whiteouts, opaque dirs, lower
//!   symlinks), applied to the merged view without a mount.

mod hostile;
mod layers;

use super::*;
use crate::image::test_tar::{TarBuilder, MTIME};
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

/// Names of the entries directly in a directory, sorted.
fn names(dir: &Path) -> Vec<OsString> {
    let fd = sys::open_dir(dir).unwrap();
    let mut v = sys::list_dir(fd.as_fd()).unwrap();
    v.sort();
    v
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    victim: PathBuf,
}

/// `<tmp>/layer` is unpacked into; `<tmp>/victim` is "the host" that
/// hostile layers aim at.
fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layer");
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("file"), b"host data").unwrap();
    std::fs::set_permissions(victim.join("file"), std::fs::Permissions::from_mode(0o600)).unwrap();
    Sandbox {
        _tmp: tmp,
        root,
        victim,
    }
}

impl Sandbox {
    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, ImageError> {
        unpack_layer(tar, &self.root, "test-layer")
    }

    /// The victim path as a string, for link targets.
    fn host(&self) -> String {
        self.victim.to_str().unwrap().to_string()
    }

    /// The host side is untouched after `what`: the victim dir holds its
    /// one file, unchanged, and nothing but the layer root is beside it.
    fn assert_victim_intact(&self, what: &str) {
        assert_eq!(names(&self.victim), vec![OsString::from("file")], "{what}");
        let m = std::fs::symlink_metadata(self.victim.join("file")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600, "{what}");
        assert_eq!(m.nlink(), 1, "{what}");
        let data = std::fs::read(self.victim.join("file")).unwrap();
        assert_eq!(data, b"host data", "{what}");
        for n in names(self.victim.parent().unwrap()) {
            assert!(n == "layer" || n == "victim", "{what}: {n:?} appeared");
        }
    }

    /// The tree under the layer root as sorted `path kind detail` lines.
    fn tree(&self) -> Vec<String> {
        let mut out = vec![];
        walk(&self.root, Path::new(""), &mut out);
        out.sort();
        out
    }
}

/// Appends a `path kind detail` line for everything below `root/rel`:
/// `dir`, `-> target`, `file CONTENT`, `fifo`, `other`.
fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(root.join(rel)).unwrap() {
        let r = rel.join(e.unwrap().file_name());
        let p = root.join(&r);
        let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
        let line = if ft.is_dir() {
            walk(root, &r, out);
            format!("{} dir", r.display())
        } else if ft.is_symlink() {
            format!(
                "{} -> {}",
                r.display(),
                std::fs::read_link(&p).unwrap().display()
            )
        } else if ft.is_file() {
            format!(
                "{} file {}",
                r.display(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap())
            )
        } else if ft.is_fifo() {
            format!("{} fifo", r.display())
        } else {
            format!("{} other", r.display())
        };
        out.push(line);
    }
}

/// `v` as sorted owned lines, to compare with [`Sandbox::tree`].
fn lines(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every entry type a layer may hold that needs no privilege, with modes,
/// times and xattrs. Device nodes and owners need root:
/// `tests/images/unpacked.rs` (`devices_owners_and_modes_reach_the_layer_dir`).
#[test]
fn unpacks_every_entry_type() {
    let s = sandbox();
    let mut t = TarBuilder::new();
    t.dir("./", 0o755)
        .dir("etc/", 0o755)
        .file("etc/hello", 0o644, b"hello\n")
        .file("bin/tool", 0o4755, b"#!/bin/sh\n")
        .symlink("bin/sh", "/bin/tool")
        .hardlink("bin/tool2", "bin/tool")
        .raw(
            TarBuilder::header(EntryType::Fifo, "run/fifo", 0o620, 0),
            &[],
        )
        .owned(EntryType::Directory, "home/dev", 0o2750, 1000, 1000)
        .owned(EntryType::Regular, "home/dev/.profile", 0o640, 1000, 1001)
        .dir("ro/", 0o555)
        .file("ro/inside", 0o444, b"x")
        .dir("tmp", 0o1777);
    let mut h = TarBuilder::header(EntryType::Regular, "etc/attrs", 0o644, 3);
    h.set_mtime(5);
    t.pax(
        &[
            ("SCHILY.xattr.user.test", b"value"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("mtime", b"1234567890.5"),
        ],
        h,
        b"abc",
    );
    let stats = s.unpack(&t.finish()).unwrap();
    assert_eq!(stats.bytes, 6 + 10 + 1 + 3);
    assert_eq!(stats.entries, 13);

    let r = &s.root;
    let mode = |p: &str| {
        std::fs::symlink_metadata(r.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    let mtime = |p: &str| std::fs::symlink_metadata(r.join(p)).unwrap().mtime();
    assert_eq!(std::fs::read(r.join("etc/hello")).unwrap(), b"hello\n");
    assert_eq!(mode("bin/tool"), 0o4755);
    assert_eq!(
        std::fs::symlink_metadata(r.join("bin/tool"))
            .unwrap()
            .nlink(),
        2
    );
    assert_eq!(
        std::fs::read_link(r.join("bin/sh")).unwrap(),
        Path::new("/bin/tool")
    );
    let fifo = std::fs::symlink_metadata(r.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(mode("run/fifo"), 0o620);
    // Owners are root's business; modes are applied whoever unpacks.
    assert_eq!(mode("home/dev"), 0o2750);
    assert_eq!(mode("home/dev/.profile"), 0o640);
    // Implicit parents are 0755.
    assert_eq!(mode("run"), 0o755);
    // Directory mode and mtime applied after its children were created.
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mtime("ro"), MTIME as i64);
    assert_eq!(mtime("etc"), MTIME as i64);
    assert_eq!(mode("tmp"), 0o1777);
    // xattrs: user.* applied, trusted.* dropped, PAX mtime used.
    let attrs = std::fs::File::open(r.join("etc/attrs")).unwrap();
    let get = |n: &str| sys::fgetxattr(attrs.as_fd(), &CString::new(n).unwrap()).unwrap();
    assert_eq!(get("user.test").as_deref(), Some(&b"value"[..]));
    assert_eq!(get("trusted.overlay.redirect"), None);
    let m = attrs.metadata().unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1234567890, 500_000_000));
    // Symlink times are its own.
    assert_eq!(mtime("bin/sh"), MTIME as i64);
}

#[test]
fn whiteouts_in_a_bottom_layer_hide_nothing_and_leave_no_trace() {
    let s = sandbox();
    let mut t = TarBuilder::new();
    t.dir("etc/", 0o755)
        .file("etc/.wh.passwd", 0o644, b"")
        .dir("var/cache/", 0o755)
        .file("var/cache/new", 0o644, b"n")
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .dir("kept/", 0o755)
        .file(".wh.kept", 0o644, b"")
        .file(".wh..wh.plnk", 0o644, b"")
        .file("nodir/.wh.x", 0o644, b"");
    s.unpack(&t.finish()).unwrap();
    // This layer's own entries survive its whiteouts; nothing else appears.
    assert_eq!(
        s.tree(),
        lines(&[
            "etc dir",
            "kept dir",
            "var dir",
            "var/cache dir",
            "var/cache/new file n",
        ])
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = sandbox();
    let mut t = TarBuilder::new();
    t.file("a", 0o644, b"first")
        .file("a", 0o600, b"second")
        .dir("d/", 0o755)
        .file("d/keep", 0o644, b"k")
        .dir("d/", 0o700)
        .dir("x/", 0o755)
        .file("x/y", 0o644, b"y")
        .file("x", 0o644, b"now a file")
        .file("s", 0o644, b"file")
        .symlink("s", "a");
    s.unpack(&t.finish()).unwrap();
    let r = &s.root;
    assert_eq!(
        s.tree(),
        lines(&[
            "a file second",
            "d dir",
            "d/keep file k",
            "x file now a file",
            "s -> a",
        ])
    );
    let mode = |p: &str| std::fs::metadata(r.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("a"), 0o600);
    assert_eq!(mode("d"), 0o700);
}

#[test]
fn truncated_and_corrupt_archives_fail() {
    let mut t = TarBuilder::new();
    t.file("a", 0o644, &[7u8; 3000]).file("b", 0o644, b"b");
    let good = t.finish();
    // Cut inside a file's data, at an entry boundary, and mid-header.
    for cut in [1024, 512 + 3072, 512 + 3072 + 100] {
        let s = sandbox();
        let err = s.unpack(&good[..cut]).unwrap_err();
        assert!(
            matches!(err, ImageError::CorruptArchive { .. }),
            "cut {cut}: {err}"
        );
        assert!(err.to_string().contains("test-layer"), "{err}");
    }
    let mut bad = good.clone();
    bad[10] ^= 0xff;
    let not_tar = b"this is not a tarball at all".repeat(40);
    for data in [&bad[..], &not_tar[..], b""] {
        let s = sandbox();
        assert!(matches!(
            s.unpack(data).unwrap_err(),
            ImageError::CorruptArchive { .. }
        ));
    }
    // An empty but well-formed archive is an empty layer.
    let s = sandbox();
    assert_eq!(s.unpack(&[0u8; 1024]).unwrap(), UnpackStats::default());
}

/// What a layer cache dir may hold (read-only and mode-0 dirs, symlinks
/// to the host, fifos, overlay whiteout devices) is removed without
/// following anything, by whoever owns it.
#[test]
fn remove_tree_copes_with_read_only_dirs_devices_and_symlinks() {
    let s = sandbox();
    let mut t = TarBuilder::new();
    t.dir("a/", 0o755)
        .dir("a/ro/", 0o500)
        .file("a/ro/f", 0o400, b"f")
        .dir("a/ro/deeper/", 0o000)
        .dev(EntryType::Fifo, "a/ro/fifo", 0, 0)
        .symlink("a/out", &s.host())
        .symlink("a/ro/out2", "/")
        .dir("gone/", 0o000);
    s.unpack(&t.finish()).unwrap();
    // An overlay whiteout (character device 0/0) needs no privilege
    // (Linux ≥ 5.8); the unpacker refuses to make one, so make it here.
    let a = sys::open_dir(&s.root.join("a")).unwrap();
    sys::mknodat(a.as_fd(), OsStr::new("wh"), libc::S_IFCHR | 0o600, 0).unwrap();
    drop(a);
    sys::remove_path(&s.root).unwrap();
    assert!(!s.root.exists());
    s.assert_victim_intact("removing the layer");
    // Missing is fine.
    sys::remove_path(&s.root).unwrap();
}

#[test]
fn normalize_paths() {
    let n = |s: &str| normalize(Path::new(s)).map(|p| p.to_string_lossy().into_owned());
    assert_eq!(n("/a/./b//c/").as_deref(), Some("a/b/c"));
    assert_eq!(n("./").as_deref(), Some(""));
    assert_eq!(n("a/../../b"), None);
    assert_eq!(n("../a"), None);
    assert_eq!(n("a/b/../c").as_deref(), Some("a/c"));
    assert_eq!(parse_pax_time("12.25"), Some((12, 250_000_000)));
    assert_eq!(parse_pax_time("7"), Some((7, 0)));
    assert_eq!(parse_pax_time("-1.5"), Some((-2, 500_000_000)));
    assert_eq!(parse_pax_time("x"), None);
}
