//! The snapshot archive reader (`gvpod snapshot import`): never panics, and
//! an archive it refuses leaves nothing in the store (no temp directory,
//! no registered snapshot). One that it accepts is removed again at once.
//!
//! Input: a flag byte, then the archive. With the flag's low bit clear the
//! rest is a tar that this target compresses with zstd first (so that the
//! fuzzer mutates the tar structure, as the committed seeds are); with it
//! set the rest is taken as the archive file as is (zstd framing, magic).
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

struct Scratch {
    root: PathBuf,
    import: gvpod::fuzzing::SnapshotImport,
}

static SCRATCH: Mutex<Option<Scratch>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let Some((flag, rest)) = data.split_first() else {
        return;
    };
    let mut guard = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    let s = guard.get_or_insert_with(|| {
        let root = std::env::temp_dir().join(format!("gvpod-fuzz-snapshot-{}", std::process::id()));
        fs::create_dir_all(&root).expect("create the scratch data root");
        let import = gvpod::fuzzing::SnapshotImport::new(&root).expect("open the scratch store");
        Scratch { root, import }
    });
    let archive = if flag & 1 == 0 {
        zstd::encode_all(rest, 1).expect("zstd compresses in memory")
    } else {
        rest.to_vec()
    };
    let path = s.root.join("in.snap");
    fs::write(&path, archive).expect("write the archive");
    let _ = s.import.import(&path, "fuzz");
    let left: Vec<String> = fs::read_dir(s.root.join("snapshots"))
        .expect("list the store")
        .map(|e| {
            e.expect("read a store entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(left.is_empty(), "the import left {left:?} in the store");
});
