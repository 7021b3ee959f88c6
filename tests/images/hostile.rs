//! A corpus of hostile layers against the real binary, each checked on the
//! host side: nothing outside the data root is created or changed
//! (CVE-2018-15664-style escapes through symlinks, `..`, absolute names and
//! hard links), and the error names the layer entry.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::common::oci::{self, Image, Layer};
use crate::common::{self, busybox_tarball, stderr, Root};
use crate::{images_json, require_runsc, store_files, write};

/// The "host" a hostile layer aims at: a directory outside the data root
/// with a file, checked byte for byte afterwards.
struct Sentinel {
    _tmp: tempfile::TempDir,
    /// The world outside: holds only `sentinel/`.
    outside: PathBuf,
    dir: PathBuf,
}

impl Sentinel {
    fn new() -> Sentinel {
        let tmp = tempfile::Builder::new()
            .prefix("gvpod-sentinel-")
            .tempdir()
            .unwrap();
        let outside = tmp.path().to_path_buf();
        let dir = outside.join("sentinel");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("file"), b"host data").unwrap();
        std::fs::set_permissions(dir.join("file"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Sentinel {
            _tmp: tmp,
            outside,
            dir,
        }
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// Nothing outside changed: the sentinel dir holds exactly its file,
    /// unchanged, and nothing was created next to it.
    fn assert_untouched(&self, case: &str) {
        let list = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(list(&self.outside), ["sentinel"], "{case}");
        assert_eq!(list(&self.dir), ["file"], "{case}");
        let m = std::fs::symlink_metadata(self.dir.join("file")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600, "{case}");
        assert_eq!((m.uid(), m.gid(), m.nlink()), (0, 0, 1), "{case}");
        assert_eq!(
            std::fs::read(self.dir.join("file")).unwrap(),
            b"host data",
            "{case}"
        );
        let d = std::fs::symlink_metadata(&self.dir).unwrap();
        assert_eq!(d.permissions().mode() & 0o7777, 0o700, "{case}");
        for p in ["/pwned", "/tmp/pwned", "/etc/pwned"] {
            assert!(!Path::new(p).exists(), "{case}: {p} was created");
        }
    }
}

/// One hostile case: the layers below (accepted) and the hostile layer,
/// the entry the error must name and a phrase of the reason.
struct Case {
    what: &'static str,
    lower: Option<Layer>,
    hostile: Layer,
    entry: String,
    reason: &'static str,
}

fn corpus(s: &Sentinel) -> Vec<Case> {
    let host = s.path();
    let rel_up = "../../../../../../../../../..";
    let mut cases = Vec::new();
    let mut one = |what, lower: Option<Layer>, hostile: Layer, entry: String, reason| {
        cases.push(Case {
            what,
            lower,
            hostile,
            entry,
            reason,
        })
    };
    let mk = |f: &dyn Fn(&mut Layer)| {
        let mut l = Layer::new();
        f(&mut l);
        l
    };
    // Alone in one layer.
    one(
        "absolute name",
        None,
        mk(&|l| {
            l.file(&format!("{host}/pwned"), b"x");
        }),
        format!("{host}/pwned"),
        "is absolute",
    );
    one(
        "dotdot name",
        None,
        mk(&|l| {
            l.file(&format!("{rel_up}{host}/pwned"), b"x");
        }),
        format!("{rel_up}{host}/pwned"),
        "contains `..`",
    );
    one(
        "symlinked parent dir (absolute, to the host)",
        None,
        mk(&|l| {
            l.symlink("s", host).file("s/pwned", b"x");
        }),
        "s/pwned".into(),
        "does not exist in the image",
    );
    one(
        "symlinked parent dir (relative, climbing out)",
        None,
        mk(&|l| {
            l.symlink("up", rel_up)
                .file(&format!("up{host}/pwned"), b"x");
        }),
        format!("up{host}/pwned"),
        "outside the image root",
    );
    one(
        "symlink then the host file through it",
        None,
        mk(&|l| {
            l.symlink("ln", host).file("ln/file", b"overwritten");
        }),
        "ln/file".into(),
        "does not exist in the image",
    );
    one(
        "hardlink to an absolute host path",
        None,
        mk(&|l| {
            l.hardlink("stolen", &format!("{host}/file"));
        }),
        "stolen".into(),
        "is absolute",
    );
    one(
        "hardlink climbing out",
        None,
        mk(&|l| {
            l.hardlink("stolen", &format!("{rel_up}{host}/file"));
        }),
        "stolen".into(),
        "contains `..`",
    );
    one(
        "hardlink through a symlink to the host",
        None,
        mk(&|l| {
            l.symlink("h", host).hardlink("stolen", "h/file");
        }),
        "stolen".into(),
        "does not exist in the image",
    );
    one(
        "whiteout climbing out",
        None,
        mk(&|l| {
            l.file(&format!("{rel_up}{host}/.wh.file"), b"");
        }),
        format!("{rel_up}{host}/.wh.file"),
        "contains `..`",
    );
    one(
        "whiteout through a symlink to the host",
        None,
        mk(&|l| {
            l.symlink("w", host).file("w/.wh.file", b"");
        }),
        "w/.wh.file".into(),
        "does not exist in the image",
    );
    one(
        "opaque marker through a symlink climbing out",
        None,
        mk(&|l| {
            l.symlink("o", &format!("{rel_up}{host}"))
                .file("o/.wh..wh..opq", b"");
        }),
        "o/.wh..wh..opq".into(),
        "outside the image root",
    );
    // The same tricks spread over two layers: the symlink below, the use above.
    one(
        "two layers: symlink to the host, file through it",
        Some(mk(&|l| {
            l.symlink("s", host);
        })),
        mk(&|l| {
            l.file("s/file", b"overwritten");
        }),
        "s/file".into(),
        "does not exist in the image",
    );
    one(
        "two layers: symlink climbing out, file through it",
        Some(mk(&|l| {
            l.dir("d/").symlink("d/up", rel_up);
        })),
        mk(&|l| {
            l.file(&format!("d/up{host}/pwned"), b"x");
        }),
        format!("d/up{host}/pwned"),
        "outside the image root",
    );
    one(
        "two layers: hardlink through a lower symlink",
        Some(mk(&|l| {
            l.symlink("h", host);
        })),
        mk(&|l| {
            l.hardlink("stolen", "h/file");
        }),
        "stolen".into(),
        "does not exist in the image",
    );
    one(
        "two layers: whiteout through a lower symlink",
        Some(mk(&|l| {
            l.symlink("w", host);
        })),
        mk(&|l| {
            l.file("w/.wh.file", b"");
        }),
        "w/.wh.file".into(),
        "does not exist in the image",
    );
    one(
        "two layers: opaque marker through a lower symlink climbing out",
        Some(mk(&|l| {
            l.symlink("o", &format!("{rel_up}{host}"));
        })),
        mk(&|l| {
            l.file("o/.wh..wh..opq", b"");
        }),
        "o/.wh..wh..opq".into(),
        "outside the image root",
    );
    one(
        "two layers: absolute name",
        Some(mk(&|l| {
            l.dir("etc/");
        })),
        mk(&|l| {
            l.file(&format!("{host}/file"), b"overwritten");
        }),
        format!("{host}/file"),
        "is absolute",
    );
    cases
}

#[test]
fn hostile_layers_are_rejected_and_nothing_outside_is_touched() {
    require_runsc!();
    let r = Root::new();
    let s = Sentinel::new();
    let tmp = tempfile::tempdir().unwrap();
    let images_before = images_json(&r);
    let files_before = store_files(&r);
    let cases = corpus(&s);
    assert!(cases.len() >= 16);
    for (i, mut c) in cases.into_iter().enumerate() {
        let mut layers = Vec::new();
        if let Some(mut l) = c.lower.take() {
            layers.push((l.finish(), oci::MT_GZIP));
        }
        layers.push((c.hostile.finish(), oci::MT_GZIP));
        let img = Image::new(layers, &format!("test/hostile:{i}"));
        let hostile_blob = img.blob_digests().last().unwrap().clone();
        let layer_no = img.layers.len();
        let archive = write(tmp.path(), &format!("h{i}.tar"), &oci::oci_archive(&[img]));
        let o = r.gvpod(&["load", "-i", archive.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{}: {err}", c.what);
        assert_eq!(err.lines().count(), 1, "{}: one line: {err}", c.what);
        assert!(
            err.contains(&hostile_blob),
            "{}: names the layer: {err}",
            c.what
        );
        assert!(
            err.contains(&format!("layer {layer_no} of image")),
            "{}: {err}",
            c.what
        );
        assert!(
            err.contains(&format!("entry {:?}", c.entry)),
            "{}: names the entry: {err}",
            c.what
        );
        assert!(err.contains(c.reason), "{}: {err}", c.what);
        s.assert_untouched(c.what);
        assert_eq!(
            images_json(&r),
            images_before,
            "{}: nothing registered",
            c.what
        );
        assert_eq!(
            store_files(&r),
            files_before,
            "{}: nothing left behind",
            c.what
        );
    }
    // The image root itself is fine to write through a symlink to `/`.
    let mut l = Layer::new();
    l.symlink("root", "/").file("root/etc/contained", b"inside");
    let bb = std::fs::read(busybox_tarball()).unwrap();
    let img = Image::new(
        vec![(bb, oci::MT_TAR), (l.finish(), oci::MT_GZIP)],
        "test/contained:1",
    );
    let archive = write(tmp.path(), "ok.tar", &oci::oci_archive(&[img]));
    r.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        r.ok(&["run", "--rm", "test/contained:1", "cat", "/etc/contained"]),
        "inside"
    );
    s.assert_untouched("contained");
    r.assert_clean();
}
