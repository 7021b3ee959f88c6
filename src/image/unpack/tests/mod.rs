//! Unit tests of the layer unpacker.

use super::*;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use tar::{Builder, Header};

/// A tar builder that writes raw headers, so hostile names get through
/// (`tar::Builder`'s path setters refuse `..`).
struct T {
    b: Builder<Vec<u8>>,
}

impl T {
    fn new() -> Self {
        T {
            b: Builder::new(Vec::new()),
        }
    }
    fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        // Bypass path validation: write the name bytes directly.
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        h
    }
    fn raw(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.raw(Self::header(EntryType::Directory, path, mode, 0), &[])
    }
    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(
            Self::header(EntryType::Regular, path, mode, data.len() as u64),
            data,
        )
    }
    fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, path, 0o777, 0);
        let l = &mut h.as_old_mut().linkname;
        l.fill(0);
        l[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, &[])
    }
    fn owned(&mut self, kind: EntryType, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = Self::header(kind, path, mode, 0);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, &[])
    }
    fn dev(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, path, 0o640, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }
    fn pax(&mut self, records: &[(&str, &[u8])], then: Header, data: &[u8]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            // "LEN KEY=VALUE\n" where LEN counts itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while format!("{len}").len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let h = Self::header(EntryType::XHeader, "PaxHeader", 0o644, body.len() as u64);
        self.raw(h, &body);
        self.raw(then, data)
    }
    fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
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
    /// The host side is untouched.
    fn assert_victim_intact(&self) {
        assert_eq!(names(&self.victim), vec![OsString::from("file")]);
        let m = std::fs::symlink_metadata(self.victim.join("file")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
        assert_eq!(m.nlink(), 1);
        assert_eq!(
            std::fs::read(self.victim.join("file")).unwrap(),
            b"host data"
        );
        let parent = self.victim.parent().unwrap();
        let mut top = names(parent);
        top.sort();
        assert_eq!(top, vec![OsString::from("layer"), OsString::from("victim")]);
    }
}

fn rejected(r: Result<UnpackStats, ImageError>, needle: &str) {
    match r {
        Err(e @ ImageError::UnsafeEntry { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("test-layer"), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
        other => panic!("expected rejection mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn unpacks_every_entry_type() {
    let s = sandbox();
    let mut t = T::new();
    t.dir("./", 0o755)
        .dir("etc/", 0o755)
        .file("etc/hello", 0o644, b"hello\n")
        .file("bin/tool", 0o4755, b"#!/bin/sh\n")
        .link(EntryType::Symlink, "bin/sh", "/bin/tool")
        .link(EntryType::Link, "bin/tool2", "bin/tool")
        .dev(EntryType::Char, "dev/null", 1, 3)
        .dev(EntryType::Block, "dev/loop9", 7, 9)
        .raw(T::header(EntryType::Fifo, "run/fifo", 0o620, 0), &[])
        .owned(EntryType::Directory, "home/dev", 0o2750, 1000, 1000)
        .owned(EntryType::Regular, "home/dev/.profile", 0o640, 1000, 1001)
        .dir("ro/", 0o555)
        .file("ro/inside", 0o444, b"x")
        .dir("tmp", 0o1777);
    let mut h = T::header(EntryType::Regular, "etc/attrs", 0o644, 3);
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

    let r = &s.root;
    assert_eq!(std::fs::read(r.join("etc/hello")).unwrap(), b"hello\n");
    let tool = std::fs::symlink_metadata(r.join("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        std::fs::read_link(r.join("bin/sh")).unwrap(),
        Path::new("/bin/tool")
    );
    let null = std::fs::symlink_metadata(r.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o640);
    assert!(std::fs::symlink_metadata(r.join("dev/loop9"))
        .unwrap()
        .file_type()
        .is_block_device());
    let fifo = std::fs::symlink_metadata(r.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.permissions().mode() & 0o7777, 0o620);
    let home = std::fs::symlink_metadata(r.join("home/dev")).unwrap();
    assert_eq!((home.uid(), home.gid()), (1000, 1000));
    assert_eq!(home.permissions().mode() & 0o7777, 0o2750);
    let prof = std::fs::symlink_metadata(r.join("home/dev/.profile")).unwrap();
    assert_eq!((prof.uid(), prof.gid()), (1000, 1001));
    // Implicit parents are 0755.
    let run = std::fs::symlink_metadata(r.join("run")).unwrap();
    assert_eq!(run.permissions().mode() & 0o7777, 0o755);
    // Directory mode and mtime applied after its children were created.
    let ro = std::fs::symlink_metadata(r.join("ro")).unwrap();
    assert_eq!(ro.permissions().mode() & 0o7777, 0o555);
    assert_eq!(ro.mtime(), 1_000_000_000);
    assert_eq!(
        std::fs::symlink_metadata(r.join("etc")).unwrap().mtime(),
        1_000_000_000
    );
    assert_eq!(
        std::fs::symlink_metadata(r.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    // xattrs: user.* applied, trusted.* dropped, PAX mtime used.
    let attrs = std::fs::File::open(r.join("etc/attrs")).unwrap();
    let get = |n: &str| sys::fgetxattr(attrs.as_fd(), &CString::new(n).unwrap()).unwrap();
    assert_eq!(get("user.test").as_deref(), Some(&b"value"[..]));
    assert_eq!(get("trusted.overlay.redirect"), None);
    let m = attrs.metadata().unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1234567890, 500_000_000));
    // Symlink times are its own.
    assert_eq!(
        std::fs::symlink_metadata(r.join("bin/sh")).unwrap().mtime(),
        1_000_000_000
    );
}

#[test]
fn whiteouts_in_a_bottom_layer_hide_nothing_and_leave_no_trace() {
    let s = sandbox();
    let mut t = T::new();
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
    assert!(s.root.join("var/cache/new").is_file());
    assert!(s.root.join("kept").is_dir());
    assert_eq!(
        names(&s.root),
        ["etc", "kept", "var"].map(OsString::from).to_vec()
    );
    assert_eq!(names(&s.root.join("etc")), Vec::<OsString>::new());
    // The overlay whiteout format is refused as an entry.
    let mut t = T::new();
    t.dev(EntryType::Char, "etc/passwd", 0, 0);
    rejected(s.unpack(&t.finish()), "whiteout format");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = sandbox();
    let mut t = T::new();
    t.file("a", 0o644, b"first")
        .file("a", 0o600, b"second")
        .dir("d/", 0o755)
        .file("d/keep", 0o644, b"k")
        .dir("d/", 0o700)
        .dir("x/", 0o755)
        .file("x/y", 0o644, b"y")
        .file("x", 0o644, b"now a file")
        .file("s", 0o644, b"file")
        .link(EntryType::Symlink, "s", "a");
    s.unpack(&t.finish()).unwrap();
    let r = &s.root;
    assert_eq!(std::fs::read(r.join("a")).unwrap(), b"second");
    assert_eq!(
        std::fs::metadata(r.join("a")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(r.join("d/keep").is_file());
    assert_eq!(
        std::fs::metadata(r.join("d")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(std::fs::read(r.join("x")).unwrap(), b"now a file");
    assert_eq!(std::fs::read_link(r.join("s")).unwrap(), Path::new("a"));
}

#[test]
fn dotdot_names_are_rejected() {
    for name in ["../escape", "a/../../victim/pwned", "a/../b", "a/.."] {
        let s = sandbox();
        let mut t = T::new();
        t.file(name, 0o644, b"x");
        rejected(s.unpack(&t.finish()), "contains `..`");
        assert_eq!(names(&s.root), Vec::<OsString>::new());
        s.assert_victim_intact();
    }
}

#[test]
fn absolute_names_are_rejected() {
    let s = sandbox();
    let abs = s.victim.join("pwned");
    for name in ["/etc/abs", abs.to_str().unwrap(), "/"] {
        let mut t = T::new();
        t.file(name, 0o644, b"x");
        rejected(s.unpack(&t.finish()), "is absolute");
    }
    assert_eq!(names(&s.root), Vec::<OsString>::new());
    s.assert_victim_intact();
}

#[test]
fn parents_through_symlinks_that_leave_the_root_are_rejected() {
    let victim = |s: &Sandbox| s.victim.to_str().unwrap().to_string();
    type Case = fn(&mut T, &str) -> &'static str;
    let cases: &[Case] = &[
        |t, _| {
            t.link(EntryType::Symlink, "up", "../../../../../..")
                .file("up/tmp/y", 0o644, b"y");
            "outside the image root"
        },
        |t, _| {
            t.link(EntryType::Symlink, "rel", "../victim")
                .file("rel/pwned", 0o644, b"z");
            "outside the image root"
        },
        |t, v| {
            t.link(EntryType::Symlink, "abs", v)
                .file("abs/pwned", 0o644, b"z");
            "does not exist in the image"
        },
        |t, _| {
            t.dir("d/", 0o755)
                .link(EntryType::Symlink, "d/deep", "../../outside")
                .file("d/deep/x", 0o644, b"x");
            "outside the image root"
        },
        |t, _| {
            // Absolute targets with `..` above the root are refused too.
            t.link(EntryType::Symlink, "a", "/../../tmp")
                .file("a/x", 0o644, b"x");
            "outside the image root"
        },
        |t, v| {
            // A whiteout through a symlink to the host.
            t.link(EntryType::Symlink, "w", v)
                .file("w/.wh.file", 0o644, b"");
            "does not exist in the image"
        },
        |t, _| {
            t.link(EntryType::Symlink, "w2", "../../..")
                .file("w2/.wh..wh..opq", 0o644, b"");
            "outside the image root"
        },
    ];
    for case in cases {
        let s = sandbox();
        let mut t = T::new();
        let needle = case(&mut t, &victim(&s));
        rejected(s.unpack(&t.finish()), needle);
        s.assert_victim_intact();
    }
    // A symlink to `/` is the image's own root: contained, accepted.
    let s = sandbox();
    let mut t = T::new();
    t.link(EntryType::Symlink, "evil", "/")
        .file("evil/etc/x", 0o644, b"x");
    s.unpack(&t.finish()).unwrap();
    assert!(s.root.join("etc/x").is_file());
    assert!(!Path::new("/etc/x").exists());
    s.assert_victim_intact();
}

#[test]
fn dangling_and_looping_symlink_parents() {
    for (tricks, needle) in [
        (
            &[("var/run", "/run"), ("", "var/run/pid")][..],
            "does not exist in the image",
        ),
        (&[("a", "b/../c"), ("", "a/f")][..], "does not exist"),
        (&[("l1", "l2"), ("l2", "l1"), ("", "l1/x")][..], "symlink"),
    ] {
        let s = sandbox();
        let mut t = T::new();
        for (link, target) in tricks {
            if link.is_empty() {
                t.file(target, 0o644, b"x");
            } else {
                t.link(EntryType::Symlink, link, target);
            }
        }
        let err = s.unpack(&t.finish()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("test-layer") && msg.contains(needle), "{msg}");
        s.assert_victim_intact();
    }
    // A symlink to an existing directory is followed.
    let s = sandbox();
    let mut t = T::new();
    t.dir("run/", 0o755)
        .link(EntryType::Symlink, "var/run", "/run")
        .file("var/run/pid", 0o644, b"1")
        .file("var/run/sub/deeper", 0o644, b"2");
    s.unpack(&t.finish()).unwrap();
    assert_eq!(std::fs::read(s.root.join("run/pid")).unwrap(), b"1");
    assert_eq!(std::fs::read(s.root.join("run/sub/deeper")).unwrap(), b"2");
}

#[test]
fn chmod_and_chown_never_follow_symlinks() {
    // CVE-2021-32760: a symlink to a host file, then an entry of the same
    // name with other metadata, must not change the host file.
    let s = sandbox();
    let target = s.victim.join("file");
    let target = target.to_str().unwrap();
    let mut t = T::new();
    t.link(EntryType::Symlink, "f", target)
        .owned(EntryType::Regular, "f", 0o6777, 1234, 1234)
        .link(EntryType::Symlink, "g", target)
        .dir("g/", 0o777)
        .link(EntryType::Symlink, "h", target)
        .dev(EntryType::Fifo, "h", 0, 0)
        .link(EntryType::Symlink, "dirlink", s.victim.to_str().unwrap())
        .dir("dirlink/", 0o777);
    s.unpack(&t.finish()).unwrap();
    let f = std::fs::symlink_metadata(s.root.join("f")).unwrap();
    assert!(f.is_file());
    assert_eq!(f.permissions().mode() & 0o7777, 0o6777);
    assert!(std::fs::symlink_metadata(s.root.join("g"))
        .unwrap()
        .is_dir());
    assert!(std::fs::symlink_metadata(s.root.join("h"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(s.root.join("dirlink"))
        .unwrap()
        .is_dir());
    let v = std::fs::metadata(&s.victim).unwrap();
    assert_ne!(v.permissions().mode() & 0o777, 0o777);
    s.assert_victim_intact();
}

#[test]
fn hardlinks_stay_inside() {
    let s = sandbox();
    let mut t = T::new();
    t.link(EntryType::Link, "passwd", "../../etc/passwd");
    rejected(s.unpack(&t.finish()), "contains `..`");
    let mut t = T::new();
    t.link(EntryType::Link, "passwd", "/etc/passwd");
    rejected(s.unpack(&t.finish()), "is absolute");

    // Through a symlink: resolved inside the layer, where it does not exist.
    let s = sandbox();
    let mut t = T::new();
    t.link(EntryType::Symlink, "hostdir", s.victim.to_str().unwrap())
        .link(EntryType::Link, "stolen", "hostdir/file");
    rejected(s.unpack(&t.finish()), "does not exist in the image");
    s.assert_victim_intact();

    // A hardlink to a symlink links the symlink itself.
    let s = sandbox();
    let target = s.victim.join("file");
    let mut t = T::new();
    t.link(EntryType::Symlink, "sl", target.to_str().unwrap())
        .link(EntryType::Link, "hl", "sl")
        .file("hl", 0o777, b"overwritten");
    s.unpack(&t.finish()).unwrap();
    assert!(std::fs::symlink_metadata(s.root.join("sl"))
        .unwrap()
        .file_type()
        .is_symlink());
    s.assert_victim_intact();

    let s = sandbox();
    let mut t = T::new();
    t.link(EntryType::Link, "root", ".");
    rejected(s.unpack(&t.finish()), "layer root");
}

#[test]
fn the_root_cannot_be_replaced() {
    for (kind, name, needle) in [
        (EntryType::Symlink, ".", "would replace the layer root"),
        (EntryType::Symlink, "/", "is absolute"),
        (EntryType::Regular, "./", "would replace the layer root"),
        (EntryType::Fifo, "a/..", "contains `..`"),
    ] {
        let s = sandbox();
        let mut t = T::new();
        let mut h = T::header(kind, name, 0o777, 0);
        if kind == EntryType::Symlink {
            h.set_link_name(s.victim.to_str().unwrap()).unwrap();
        }
        t.raw(h, &[]).file("after", 0o644, b"x");
        rejected(s.unpack(&t.finish()), needle);
        assert!(std::fs::symlink_metadata(&s.root).unwrap().is_dir());
        s.assert_victim_intact();
    }
    // A directory entry for the root just sets its metadata.
    let s = sandbox();
    let mut t = T::new();
    t.dir("./", 0o711);
    s.unpack(&t.finish()).unwrap();
    assert_eq!(
        std::fs::metadata(&s.root).unwrap().permissions().mode() & 0o7777,
        0o711
    );
}

#[test]
fn truncated_and_corrupt_archives_fail() {
    let mut t = T::new();
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
    let s = sandbox();
    assert!(matches!(
        s.unpack(&bad).unwrap_err(),
        ImageError::CorruptArchive { .. }
    ));
    let s = sandbox();
    assert!(matches!(
        s.unpack(b"this is not a tarball at all".repeat(40).as_slice())
            .unwrap_err(),
        ImageError::CorruptArchive { .. }
    ));
    let s = sandbox();
    assert!(matches!(
        s.unpack(b"").unwrap_err(),
        ImageError::CorruptArchive { .. }
    ));
    // An empty but well-formed archive is an empty layer.
    let s = sandbox();
    assert_eq!(s.unpack(&[0u8; 1024]).unwrap(), UnpackStats::default());
}

#[test]
fn remove_tree_copes_with_read_only_dirs_devices_and_symlinks() {
    let s = sandbox();
    let mut t = T::new();
    t.dir("a/", 0o755)
        .dir("a/ro/", 0o500)
        .file("a/ro/f", 0o400, b"f")
        .dir("a/ro/deeper/", 0o000)
        .file(".wh.lower", 0o644, b"")
        .link(EntryType::Symlink, "a/out", s.victim.to_str().unwrap())
        .link(EntryType::Symlink, "a/ro/out2", "/");
    s.unpack(&t.finish()).unwrap();
    sys::remove_path(&s.root).unwrap();
    assert!(!s.root.exists());
    s.victim.join("file").metadata().unwrap();
    assert_eq!(names(&s.victim), vec![OsString::from("file")]);
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
    assert_eq!(parse_pax_time("x"), None);
}

// ---- layers on top of parents ----

/// A stack of layers under `<tmp>/layers`, each applied on top of the
/// previous ones as the store does; `<tmp>/victim` is "the host".
struct Stack {
    sb: Sandbox,
    layers: Vec<PathBuf>,
}

impl Stack {
    fn new() -> Stack {
        let sb = sandbox();
        std::fs::create_dir(sb.root.parent().unwrap().join("layers")).unwrap();
        Stack { sb, layers: vec![] }
    }
    fn push(&mut self, tar: &[u8]) -> Result<UnpackStats, ImageError> {
        let base = self.sb.root.parent().unwrap().join("layers");
        let n = self.layers.len();
        let scratch = base.join(format!(".tmp-{n}"));
        let dest = scratch.join("upper");
        std::fs::create_dir_all(&dest).unwrap();
        let res = apply_layer(
            tar,
            &dest,
            &self.layers,
            &scratch,
            &format!("test-layer-L{n}"),
        );
        if res.is_ok() {
            let fin = base.join(format!("l{n}"));
            std::fs::rename(&dest, &fin).unwrap();
            self.layers.push(fin);
        }
        sys::remove_path(&scratch).unwrap();
        res
    }
    /// The merged view of the stack as `path kind detail` lines.
    fn merged(&self) -> Vec<String> {
        merged_view(&self.layers)
    }
    fn assert_host_intact(&self) {
        assert_eq!(names(&self.sb.victim), vec![OsString::from("file")]);
        let m = std::fs::symlink_metadata(self.sb.victim.join("file")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
        assert_eq!(m.nlink(), 1);
        assert_eq!(
            std::fs::read(self.sb.victim.join("file")).unwrap(),
            b"host data"
        );
        let parent = self.sb.victim.parent().unwrap();
        assert_eq!(
            names(parent),
            ["layer", "layers", "victim"].map(OsString::from).to_vec()
        );
    }
}

/// Mounts the layers (read-only overlay, private namespace) and lists
/// everything in the merged tree, sorted.
pub(crate) fn merged_view(layers: &[PathBuf]) -> Vec<String> {
    let mnt = tempfile::tempdir().unwrap();
    let target = mnt.path().to_path_buf();
    let layers = layers.to_vec();
    std::thread::spawn(move || {
        overlay::private_mount_namespace().unwrap();
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let opts = if lower.len() == 1 {
            // overlayfs needs two lower dirs without an upper: add an empty one.
            let empty = target.parent().unwrap().join(format!(
                "{}-empty",
                target.file_name().unwrap().to_string_lossy()
            ));
            std::fs::create_dir_all(&empty).unwrap();
            format!("lowerdir={}:{}", lower[0], empty.display())
        } else {
            format!("lowerdir={}", lower.join(":"))
        };
        nix::mount::mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(opts.as_str()),
        )
        .unwrap();
        let mut out = vec![];
        walk(&target, Path::new(""), &mut out);
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
        let _ = std::fs::remove_dir(target.parent().unwrap().join(format!(
            "{}-empty",
            target.file_name().unwrap().to_string_lossy()
        )));
        out.sort();
        out
    })
    .join()
    .unwrap()
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let dir = root.join(rel);
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        let m = std::fs::symlink_metadata(root.join(&r)).unwrap();
        let ft = m.file_type();
        let line = if ft.is_dir() {
            walk(root, &r, out);
            format!("{} dir", r.display())
        } else if ft.is_symlink() {
            format!(
                "{} -> {}",
                r.display(),
                std::fs::read_link(root.join(&r)).unwrap().display()
            )
        } else if ft.is_file() {
            format!(
                "{} file {}",
                r.display(),
                String::from_utf8_lossy(&std::fs::read(root.join(&r)).unwrap())
            )
        } else {
            format!("{} other", r.display())
        };
        out.push(line);
    }
}

fn lines(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn entries_below_a_lower_symlink_land_where_it_points() {
    let mut st = Stack::new();
    let mut t = T::new();
    t.dir("var/", 0o755)
        .dir("run/", 0o755)
        .dir("run/lock/", 0o755)
        .link(EntryType::Symlink, "var/run", "/run")
        .link(EntryType::Symlink, "var/lock", "../run/lock");
    st.push(&t.finish()).unwrap();
    let mut t = T::new();
    t.file("var/run/x", 0o644, b"x")
        .file("var/lock/y", 0o644, b"y");
    st.push(&t.finish()).unwrap();
    assert_eq!(
        st.merged(),
        lines(&[
            "run dir",
            "run/x file x",
            "run/lock dir",
            "run/lock/y file y",
            "var dir",
            "var/run -> /run",
            "var/lock -> ../run/lock",
        ])
    );
    // The layer's own dir holds the real location, not a shadowing `var/run`.
    assert!(st.layers[1].join("run/x").is_file());
    assert!(!st.layers[1].join("var/run").exists());
    // A directory entry over a symlink replaces the symlink (as containerd
    // and GNU tar do); what follows goes into the new directory.
    let mut t = T::new();
    t.dir("var/run/", 0o755).file("var/run/z", 0o644, b"z");
    st.push(&t.finish()).unwrap();
    let m = st.merged();
    assert!(m.contains(&"var/run dir".to_string()), "{m:?}");
    assert!(m.contains(&"var/run/z file z".to_string()), "{m:?}");
    assert!(!m.iter().any(|l| l.starts_with("var/run/x")), "{m:?}");
    st.assert_host_intact();
}

#[test]
fn whiteouts_and_opaque_dirs_give_the_merged_tree() {
    let mut st = Stack::new();
    let mut t = T::new();
    t.dir("a/", 0o755)
        .file("a/keep", 0o644, b"k")
        .file("a/gone", 0o644, b"g")
        .dir("d/", 0o755)
        .file("d/old", 0o644, b"o")
        .dir("d/sub/", 0o755)
        .file("d/sub/old2", 0o644, b"o2")
        .file("f", 0o644, b"f")
        .dir("r/", 0o755)
        .file("r/old", 0o644, b"o")
        .dir("late/", 0o755)
        .file("late/old", 0o644, b"o")
        .dir("late/sub/", 0o755)
        .file("late/sub/old", 0o644, b"o")
        .link(EntryType::Symlink, "lnk", "a");
    st.push(&t.finish()).unwrap();
    let mut t = T::new();
    t.file("a/.wh.gone", 0o644, b"")
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/new", 0o644, b"n")
        .file(".wh.f", 0o644, b"")
        // Whiteout, then the same name re-created: only the new content.
        .file(".wh.r", 0o644, b"")
        .dir("r/", 0o755)
        .file("r/fresh", 0o644, b"r")
        // Entries first, opaque marker after: this layer's entries stay.
        .dir("late/", 0o755)
        .file("late/mine", 0o644, b"m")
        .file("late/sub/mine", 0o644, b"m")
        .file("late/.wh..wh..opq", 0o644, b"")
        // A whiteout of a symlink removes the link, not its target.
        .file(".wh.lnk", 0o644, b"")
        // A hardlink to a lower file.
        .link(EntryType::Link, "hl", "a/keep")
        .file(".wh.never-existed", 0o644, b"")
        .file("nodir/.wh.x", 0o644, b"");
    st.push(&t.finish()).unwrap();
    assert_eq!(
        st.merged(),
        lines(&[
            "a dir",
            "a/keep file k",
            "d dir",
            "d/new file n",
            "hl file k",
            "late dir",
            "late/mine file m",
            "late/sub dir",
            "late/sub/mine file m",
            "r dir",
            "r/fresh file r",
        ])
    );
    // A third layer sees the second's deletions and re-creates something.
    let mut t = T::new();
    t.file("f", 0o644, b"back").file("d/sub/again", 0o644, b"a");
    st.push(&t.finish()).unwrap();
    let m = st.merged();
    assert!(m.contains(&"f file back".to_string()), "{m:?}");
    assert!(m.contains(&"d/sub/again file a".to_string()), "{m:?}");
    assert!(!m.iter().any(|l| l.starts_with("d/sub/old2")), "{m:?}");
    st.assert_host_intact();
}

#[test]
fn tricks_spread_over_two_layers_are_rejected() {
    type Case = fn(&mut T, &mut T, &str) -> &'static str;
    let cases: &[Case] = &[
        |l0, l1, _| {
            l0.link(EntryType::Symlink, "up", "../../../../../../..");
            l1.file("up/tmp/y", 0o644, b"y");
            "outside the image root"
        },
        |l0, l1, v| {
            l0.link(EntryType::Symlink, "abs", v);
            l1.file("abs/pwned", 0o644, b"z");
            "does not exist in the image"
        },
        |l0, l1, _| {
            l0.link(EntryType::Symlink, "rel", "../victim");
            l1.file("rel/.wh.file", 0o644, b"");
            "outside the image root"
        },
        |l0, l1, v| {
            l0.link(EntryType::Symlink, "hostdir", v);
            l1.link(EntryType::Link, "stolen", "hostdir/file");
            "does not exist in the image"
        },
        |l0, l1, _| {
            l0.dir("d/", 0o755)
                .link(EntryType::Symlink, "d/out", "../..");
            l1.file("d/out/.wh..wh..opq", 0o644, b"");
            "outside the image root"
        },
    ];
    for case in cases {
        let mut st = Stack::new();
        let victim = st.sb.victim.to_str().unwrap().to_string();
        let (mut l0, mut l1) = (T::new(), T::new());
        let needle = case(&mut l0, &mut l1, &victim);
        st.push(&l0.finish()).unwrap();
        match st.push(&l1.finish()) {
            Err(e @ ImageError::UnsafeEntry { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("test-layer-L1") && msg.contains(needle),
                    "{msg}"
                );
            }
            other => panic!("expected a rejection ({needle}), got {other:?}"),
        }
        st.assert_host_intact();
    }
    // Symlink then a same-name file with other metadata: replaced, the
    // host file keeps its mode.
    let mut st = Stack::new();
    let target = format!("{}/file", st.sb.victim.display());
    let mut t = T::new();
    t.link(EntryType::Symlink, "file", &target);
    st.push(&t.finish()).unwrap();
    let mut t = T::new();
    t.owned(EntryType::Regular, "file", 0o6777, 1234, 1234)
        .link(EntryType::Symlink, "evil", "/")
        .file("evil/etc/x", 0o644, b"x");
    st.push(&t.finish()).unwrap();
    let m = st.merged();
    assert!(m.contains(&"file file ".to_string()), "{m:?}");
    assert!(m.contains(&"etc/x file x".to_string()), "{m:?}");
    st.assert_host_intact();
}
