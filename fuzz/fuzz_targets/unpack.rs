//! The layer unpacker against hostile tarballs: it must never panic and
//! never write outside the root it is given.
//!
//! Each input is applied to a fresh empty root `<scratch>/a/b/root`; the
//! directories above it hold sentinels that must be untouched afterwards
//! (an entry that climbed with `..` or followed a symlink out of the root
//! would land there first). A GNU sparse entry can claim a file far larger
//! than its input: scripts/fuzz.sh runs this target under `ulimit -f` with
//! SIGXFSZ ignored, so such a write fails with EFBIG instead of filling the
//! disk.
#![no_main]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const SENTINEL: &[u8] = b"gvpod fuzz sentinel\n";

/// `<tmp>/gvpod-fuzz-unpack-<pid>/a/b`, with a sentinel file at each level.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let top = std::env::temp_dir().join(format!("gvpod-fuzz-unpack-{}", std::process::id()));
        let inner = top.join("a").join("b");
        fs::create_dir_all(&inner).expect("create the scratch directory");
        for d in [&top, &top.join("a"), &inner] {
            fs::write(d.join("sentinel"), SENTINEL).expect("write a sentinel");
        }
        inner
    })
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("list a scratch directory")
        .map(|e| {
            e.expect("read a scratch entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let inner = scratch();
    let root = inner.join("root");
    fs::create_dir(&root).expect("create the root");
    let _ = gvpod::fuzzing::unpack_layer(data, &root);
    let mut levels = vec![inner.clone()];
    levels.push(inner.parent().unwrap().to_path_buf());
    levels.push(inner.parent().unwrap().parent().unwrap().to_path_buf());
    for (i, d) in levels.iter().enumerate() {
        let want: BTreeSet<String> = match i {
            0 => ["root", "sentinel"].iter().map(|s| s.to_string()).collect(),
            1 => ["b", "sentinel"].iter().map(|s| s.to_string()).collect(),
            _ => ["a", "sentinel"].iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            names(d),
            want,
            "the unpacker wrote outside its root, in {}",
            d.display()
        );
        assert_eq!(
            fs::read(d.join("sentinel")).ok().as_deref(),
            Some(SENTINEL),
            "the unpacker changed {}",
            d.join("sentinel").display()
        );
    }
    fs::remove_dir_all(&root).expect("remove the root");
});
