//! The hostile-layer cases, one table: path traversal, absolute names,
//! replacing the layer root (CVE-2021-29136), symlinked parents that leave
//! the root or point at the host (in one layer or spread over two),
//! hardlink escapes, chmod/chown through a symlink (CVE-2021-32760), and a
//! device node in the overlay whiteout format.
//!
//! Each row names the case, builds its layers and says the outcome: rejected
//! (the phrase the error holds and the names left in the layer root) or
//! applied (a check of the result). Whatever the outcome, the layer root is
//! still a directory and the host (a victim dir beside it) is untouched.
//! Two-layer rows apply the lower layer to the merged view first, as the
//! store does (without the overlay mount: see [`super::layers`]).
//! `tests/images.rs` runs a similar corpus through `gvpod load`, as root.

use super::*;

/// Adds a layer's entries; the second argument is the host path (the victim dir).
type Build = fn(&mut TarBuilder, &str);

enum Expect {
    /// Refused with an `UnsafeEntry` error naming the layer and holding this
    /// phrase; the layer root then holds exactly these names.
    Rejected(&'static str, &'static [&'static str]),
    /// Applied; the check looks at the result.
    Applied(fn(&Sandbox)),
}

struct Case {
    name: &'static str,
    /// Applied first as the layer below (it must be accepted).
    lower: Option<Build>,
    /// The layer under test.
    layer: Build,
    expect: Expect,
}

use Expect::{Applied, Rejected};

const OUTSIDE: &str = "outside the image root";
const MISSING: &str = "does not exist in the image";

fn cases() -> Vec<Case> {
    let one = |name, layer: Build, expect| Case {
        name,
        lower: None,
        layer,
        expect,
    };
    let two = |name, lower: Build, layer: Build, expect| Case {
        name,
        lower: Some(lower),
        layer,
        expect,
    };
    vec![
        // Path traversal and absolute names.
        one(
            "dotdot climbing out",
            |t, _| {
                t.file("../escape", 0o644, b"x");
            },
            Rejected("contains `..`", &[]),
        ),
        one(
            "dotdot climbing to the host",
            |t, _| {
                t.file("a/../../victim/pwned", 0o644, b"x");
            },
            Rejected("contains `..`", &[]),
        ),
        one(
            "dotdot staying inside",
            |t, _| {
                t.file("a/../b", 0o644, b"x");
            },
            Rejected("contains `..`", &[]),
        ),
        one(
            "dotdot as the last component",
            |t, _| {
                t.file("a/..", 0o644, b"x");
            },
            Rejected("contains `..`", &[]),
        ),
        one(
            "absolute name",
            |t, _| {
                t.file("/etc/abs", 0o644, b"x");
            },
            Rejected("is absolute", &[]),
        ),
        one(
            "absolute name of a host path",
            |t, v| {
                t.file(&format!("{v}/pwned"), 0o644, b"x");
            },
            Rejected("is absolute", &[]),
        ),
        one(
            "absolute name /",
            |t, _| {
                t.file("/", 0o644, b"x");
            },
            Rejected("is absolute", &[]),
        ),
        // The layer root (CVE-2021-29136).
        one(
            "symlink replacing the root",
            |t, v| {
                t.symlink(".", v).file("after", 0o644, b"x");
            },
            Rejected("would replace the layer root", &[]),
        ),
        one(
            "symlink named /",
            |t, v| {
                t.symlink("/", v).file("after", 0o644, b"x");
            },
            Rejected("is absolute", &[]),
        ),
        one(
            "regular file replacing the root",
            |t, _| {
                t.file("./", 0o777, b"").file("after", 0o644, b"x");
            },
            Rejected("would replace the layer root", &[]),
        ),
        one(
            "fifo at a/..",
            |t, _| {
                t.raw(TarBuilder::header(EntryType::Fifo, "a/..", 0o777, 0), &[])
                    .file("after", 0o644, b"x");
            },
            Rejected("contains `..`", &[]),
        ),
        one(
            "a directory entry for the root sets its metadata",
            |t, _| {
                t.dir("./", 0o711);
            },
            Applied(|s| {
                let m = std::fs::metadata(&s.root).unwrap();
                assert_eq!(m.permissions().mode() & 0o7777, 0o711);
            }),
        ),
        // Symlinked parents.
        one(
            "parent symlink climbing out",
            |t, _| {
                t.symlink("up", "../../../../../..")
                    .file("up/tmp/y", 0o644, b"y");
            },
            Rejected(OUTSIDE, &["up"]),
        ),
        one(
            "parent symlink to the victim, relative",
            |t, _| {
                t.symlink("rel", "../victim").file("rel/pwned", 0o644, b"z");
            },
            Rejected(OUTSIDE, &["rel"]),
        ),
        one(
            "parent symlink to the host, absolute",
            |t, v| {
                t.symlink("abs", v).file("abs/pwned", 0o644, b"z");
            },
            Rejected(MISSING, &["abs"]),
        ),
        one(
            "nested parent symlink climbing out",
            |t, _| {
                t.dir("d/", 0o755)
                    .symlink("d/deep", "../../outside")
                    .file("d/deep/x", 0o644, b"x");
            },
            Rejected(OUTSIDE, &["d"]),
        ),
        one(
            "absolute parent symlink with `..` above /",
            |t, _| {
                t.symlink("a", "/../../tmp").file("a/x", 0o644, b"x");
            },
            Rejected(OUTSIDE, &["a"]),
        ),
        one(
            "whiteout through a symlink to the host",
            |t, v| {
                t.symlink("w", v).file("w/.wh.file", 0o644, b"");
            },
            Rejected(MISSING, &["w"]),
        ),
        one(
            "opaque marker through a symlink climbing out",
            |t, _| {
                t.symlink("w2", "../../..")
                    .file("w2/.wh..wh..opq", 0o644, b"");
            },
            Rejected(OUTSIDE, &["w2"]),
        ),
        one(
            "dangling parent symlink",
            |t, _| {
                t.symlink("var/run", "/run")
                    .file("var/run/pid", 0o644, b"x");
            },
            Rejected(MISSING, &["var"]),
        ),
        one(
            "parent symlink through a missing dir",
            |t, _| {
                t.symlink("a", "b/../c").file("a/f", 0o644, b"x");
            },
            Rejected("does not exist", &["a"]),
        ),
        one(
            "parent symlink loop",
            |t, _| {
                t.symlink("l1", "l2")
                    .symlink("l2", "l1")
                    .file("l1/x", 0o644, b"x");
            },
            Rejected("symlink", &["l1", "l2"]),
        ),
        one(
            "a symlink to / is the image's own root",
            |t, _| {
                t.symlink("evil", "/").file("evil/etc/x", 0o644, b"x");
            },
            Applied(|s| {
                assert!(s.root.join("etc/x").is_file());
                assert!(!Path::new("/etc/x").exists());
            }),
        ),
        one(
            "a parent symlink to a directory of the image is followed",
            |t, _| {
                t.dir("run/", 0o755)
                    .symlink("var/run", "/run")
                    .file("var/run/pid", 0o644, b"1")
                    .file("var/run/sub/deeper", 0o644, b"2");
            },
            Applied(|s| {
                assert_eq!(std::fs::read(s.root.join("run/pid")).unwrap(), b"1");
                assert_eq!(std::fs::read(s.root.join("run/sub/deeper")).unwrap(), b"2");
            }),
        ),
        // Hardlinks.
        one(
            "hardlink target climbing out",
            |t, _| {
                t.hardlink("passwd", "../../etc/passwd");
            },
            Rejected("contains `..`", &[]),
        ),
        one(
            "hardlink target absolute",
            |t, _| {
                t.hardlink("passwd", "/etc/passwd");
            },
            Rejected("is absolute", &[]),
        ),
        one(
            "hardlink through a symlink to the host",
            |t, v| {
                t.symlink("hostdir", v).hardlink("stolen", "hostdir/file");
            },
            Rejected(MISSING, &["hostdir"]),
        ),
        one(
            "hardlink to the root",
            |t, _| {
                t.hardlink("root", ".");
            },
            Rejected("layer root", &[]),
        ),
        one(
            "a hardlink to a symlink links the symlink itself",
            |t, v| {
                t.symlink("sl", &format!("{v}/file"))
                    .hardlink("hl", "sl")
                    .file("hl", 0o777, b"overwritten");
            },
            Applied(|s| {
                let sl = std::fs::symlink_metadata(s.root.join("sl")).unwrap();
                assert!(sl.file_type().is_symlink());
                assert_eq!(std::fs::read(s.root.join("hl")).unwrap(), b"overwritten");
            }),
        ),
        // CVE-2021-32760: a symlink to a host file, then an entry of the
        // same name with other metadata, must not change the host file.
        one(
            "chmod and chown never follow symlinks",
            |t, v| {
                let file = format!("{v}/file");
                t.symlink("f", &file)
                    .owned(EntryType::Regular, "f", 0o6777, 1234, 1234)
                    .symlink("g", &file)
                    .dir("g/", 0o777)
                    .symlink("h", &file)
                    .dev(EntryType::Fifo, "h", 0, 0)
                    .symlink("dirlink", v)
                    .dir("dirlink/", 0o777);
            },
            Applied(|s| {
                let meta = |p: &str| std::fs::symlink_metadata(s.root.join(p)).unwrap();
                assert!(meta("f").is_file());
                assert_eq!(meta("f").permissions().mode() & 0o7777, 0o6777);
                assert!(meta("g").is_dir());
                assert!(meta("h").file_type().is_fifo());
                assert!(meta("dirlink").is_dir());
                let v = std::fs::metadata(&s.victim).unwrap();
                assert_ne!(v.permissions().mode() & 0o777, 0o777);
            }),
        ),
        // Device nodes.
        one(
            "character device 0/0, the overlay whiteout format",
            |t, _| {
                t.dev(EntryType::Char, "etc/passwd", 0, 0);
            },
            Rejected("whiteout format", &["etc"]),
        ),
        // The same tricks spread over two layers: the symlink below, its use above.
        two(
            "two layers: symlink climbing out, file through it",
            |l, _| {
                l.symlink("up", "../../../../../../..");
            },
            |t, _| {
                t.file("up/tmp/y", 0o644, b"y");
            },
            Rejected(OUTSIDE, &["up"]),
        ),
        two(
            "two layers: symlink to the host, file through it",
            |l, v| {
                l.symlink("abs", v);
            },
            |t, _| {
                t.file("abs/pwned", 0o644, b"z");
            },
            Rejected(MISSING, &["abs"]),
        ),
        two(
            "two layers: whiteout through a symlink to the victim",
            |l, _| {
                l.symlink("rel", "../victim");
            },
            |t, _| {
                t.file("rel/.wh.file", 0o644, b"");
            },
            Rejected(OUTSIDE, &["rel"]),
        ),
        two(
            "two layers: hardlink through a symlink to the host",
            |l, v| {
                l.symlink("hostdir", v);
            },
            |t, _| {
                t.hardlink("stolen", "hostdir/file");
            },
            Rejected(MISSING, &["hostdir"]),
        ),
        two(
            "two layers: opaque marker through a nested symlink climbing out",
            |l, _| {
                l.dir("d/", 0o755).symlink("d/out", "../..");
            },
            |t, _| {
                t.file("d/out/.wh..wh..opq", 0o644, b"");
            },
            Rejected(OUTSIDE, &["d"]),
        ),
        two(
            "two layers: a file over a symlink to a host file replaces the link",
            |l, v| {
                l.symlink("file", &format!("{v}/file"));
            },
            |t, _| {
                t.owned(EntryType::Regular, "file", 0o6777, 1234, 1234)
                    .symlink("evil", "/")
                    .file("evil/etc/x", 0o644, b"x");
            },
            Applied(|s| {
                let m = std::fs::symlink_metadata(s.root.join("file")).unwrap();
                assert!(m.is_file());
                assert_eq!(m.permissions().mode() & 0o7777, 0o6777);
                assert_eq!(m.len(), 0);
                assert_eq!(std::fs::read(s.root.join("etc/x")).unwrap(), b"x");
            }),
        ),
    ]
}

#[test]
fn hostile_layers() {
    let cases = cases();
    assert!(cases.len() >= 35);
    for c in &cases {
        let s = sandbox();
        let host = s.host();
        if let Some(lower) = c.lower {
            let mut t = TarBuilder::new();
            lower(&mut t, &host);
            unpack_layer(&t.finish()[..], &s.root, "lower-layer")
                .unwrap_or_else(|e| panic!("{}: the lower layer is refused: {e}", c.name));
        }
        let mut t = TarBuilder::new();
        (c.layer)(&mut t, &host);
        let res = unpack_layer(&t.finish()[..], &s.root, "test-layer");
        match &c.expect {
            Rejected(reason, left) => {
                match res {
                    Err(e @ ImageError::UnsafeEntry { .. }) => {
                        let msg = e.to_string();
                        assert!(
                            msg.contains("layer test-layer") && msg.contains(reason),
                            "{}: {msg}",
                            c.name
                        );
                    }
                    other => panic!("{}: expected a rejection ({reason}), got {other:?}", c.name),
                }
                let left: Vec<OsString> = left.iter().map(OsString::from).collect();
                assert_eq!(names(&s.root), left, "{}: left in the layer root", c.name);
            }
            Applied(check) => {
                res.unwrap_or_else(|e| panic!("{}: {e}", c.name));
                check(&s);
            }
        }
        let root = std::fs::symlink_metadata(&s.root).unwrap();
        assert!(root.is_dir(), "{}: the layer root was replaced", c.name);
        s.assert_victim_intact(c.name);
    }
}
