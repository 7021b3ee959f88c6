//! `snapshot export` / `snapshot import`: one portable, zstd-compressed tar.
//!
//! Members, in this order: `snapshot.json`, `config.json`,
//! `rootfs-diff.tar`, `checkpoint.img`, then `SHA256SUMS` (sha256sum format,
//! computed while exporting, so a checkpoint never pays for hashing). The
//! image the pod is built on is not included: it is named by reference and
//! id, and a restore says so when it is missing.
//!
//! Import reads the archive once, writes each member into a locked temp
//! directory while hashing it, checks the sums, and only then moves the
//! directory into place and registers it: a corrupt or truncated archive
//! registers nothing and leaves nothing (zstd's frame checksum, the tar
//! structure and the sums each catch a different kind of damage).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    io, validate_name, Result, SnapshotError, SnapshotMeta, SnapshotStore, DIFF, FORMAT, IMAGE,
    META, SPEC,
};
use crate::state::{Db, SnapshotRow, StateError};
use crate::util::{copy, CopyError};

const SUMS: &str = "SHA256SUMS";
const MEMBERS: [&str; 4] = [META, SPEC, DIFF, IMAGE];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Largest metadata member read into memory.
const MAX_SMALL: u64 = 16 << 20;

/// Hashes what passes through.
struct HashRead<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes snapshot `row` to `out` (temp file beside it, renamed when
/// complete). Returns the archive's size.
pub fn export(store: &SnapshotStore, row: &SnapshotRow, out: &Path) -> Result<u64> {
    let dir = store.path(&row.id);
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .ok_or_else(|| SnapshotError::Io {
            what: "cannot write",
            path: out.to_owned(),
            source: std::io::Error::other("not a file name"),
        })?
        .to_string_lossy()
        .into_owned();
    let prefix = format!(".{file_name}.tmp-");
    sweep_dead_exports(&parent, &prefix);
    let tmp = parent.join(crate::util::owned_temp_name(&prefix));
    let res = (|| -> Result<u64> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("cannot create", &tmp))?;
        let mut zw = zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, f), 3)
            .map_err(io("cannot compress into", &tmp))?;
        zw.include_checksum(true)
            .map_err(io("cannot compress into", &tmp))?;
        let mut tar = tar::Builder::new(zw);
        let mut sums = String::new();
        let _progress = super::Progress::watch(format!("exporting {}", row.name), tmp.clone());
        for m in MEMBERS {
            let p = dir.join(m);
            let f = File::open(&p).map_err(io("cannot open", &p))?;
            let len = f.metadata().map_err(io("cannot stat", &p))?.len();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(len);
            h.set_mtime(0);
            let mut r = HashRead {
                inner: BufReader::with_capacity(1 << 20, f),
                hash: Sha256::new(),
            };
            tar.append_data(&mut h, m, &mut r)
                .map_err(io("cannot write", &tmp))?;
            // Mid-archive: a killed export leaves only its temp file.
            crate::failpoint::hit("snapshot-export:member");
            sums.push_str(&format!("{}  {m}\n", hex::encode(r.hash.finalize())));
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(sums.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, SUMS, sums.as_bytes())
            .map_err(io("cannot write", &tmp))?;
        let zw = tar.into_inner().map_err(io("cannot write", &tmp))?;
        let bw = zw.finish().map_err(io("cannot write", &tmp))?;
        let f = bw
            .into_inner()
            .map_err(|e| io("cannot write", &tmp)(e.into_error()))?;
        f.sync_all().map_err(io("cannot sync", &tmp))?;
        let len = f.metadata().map_err(io("cannot stat", &tmp))?.len();
        std::fs::rename(&tmp, out).map_err(io("cannot write", out))?;
        Ok(len)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Removes the temp files an export to the same path left when it was
/// killed (`.<file>.tmp-<pid>-*` whose pid is gone): they sit beside the
/// user's output, outside the data root, where no gc looks.
fn sweep_dead_exports(parent: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::util::temp_owner_gone(&name, prefix) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Imports the archive at `path` as a new snapshot (named `name`, else the
/// name it was exported with). Returns its metadata.
pub fn import(
    store: &SnapshotStore,
    db: &mut Db,
    path: &Path,
    name: Option<&str>,
) -> Result<SnapshotMeta> {
    if let Some(n) = name {
        validate_name(n)?;
    }
    let bad = |why: String| SnapshotError::BadArchive {
        path: path.to_owned(),
        why,
    };
    let mut f = File::open(path).map_err(io("cannot open", path))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(io("cannot read", path))?;
    if n < 4 || magic != ZSTD_MAGIC {
        return Err(bad(
            "not a gvpod snapshot archive (expected a zstd-compressed tar from `gvpod snapshot export`)"
                .into(),
        ));
    }
    let f = std::io::Cursor::new(magic).chain(f);
    let zr = zstd::stream::read::Decoder::new(f).map_err(io("cannot read", path))?;
    let mut archive = tar::Archive::new(zr);
    let mut t = store.temp()?;
    let _progress =
        super::Progress::watch(format!("importing {}", path.display()), t.dir.join(IMAGE));
    let mut hashes: Vec<(String, String)> = vec![];
    let mut sums: Option<String> = None;
    let mut meta: Option<SnapshotMeta> = None;
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("corrupt or truncated: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt or truncated: {e}")))?;
        let member = entry
            .path()
            .map_err(|e| bad(format!("corrupt or truncated: {e}")))?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(format!(
                "unexpected member {member:?} (not a regular file)"
            )));
        }
        if member == SUMS {
            let mut s = String::new();
            (&mut entry)
                .take(MAX_SMALL)
                .read_to_string(&mut s)
                .map_err(|e| bad(format!("corrupt or truncated: {e}")))?;
            sums = Some(s);
            continue;
        }
        if !MEMBERS.contains(&member.as_str()) || hashes.iter().any(|(m, _)| *m == member) {
            return Err(bad(format!("unexpected member {member:?}")));
        }
        let dest = t.dir.join(&member);
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .map_err(io("cannot create", &dest))?;
        let mut w = BufWriter::with_capacity(1 << 20, out);
        let mut r = HashRead {
            inner: &mut entry,
            hash: Sha256::new(),
        };
        copy(&mut r, &mut w, 1 << 20).map_err(|e| match e {
            CopyError::Read(e) => bad(format!("corrupt or truncated: {e}")),
            CopyError::Write(e) => io("cannot write", &dest)(e),
        })?;
        let out = w
            .into_inner()
            .map_err(|e| io("cannot write", &dest)(e.into_error()))?;
        out.sync_all().map_err(io("cannot sync", &dest))?;
        hashes.push((member.clone(), hex::encode(r.hash.finalize())));
        crate::failpoint::hit("snapshot-import:member");
        if member == META {
            let m = read_meta(&dest).map_err(bad)?;
            // Fail before reading the (large) memory image when the name is taken.
            let wanted = name.unwrap_or(&m.name);
            if db.snapshot_name_taken(wanted)? {
                return Err(StateError::SnapshotNameInUse(wanted.to_string()).into());
            }
            meta = Some(m);
        }
    }
    let sums = sums.ok_or_else(|| {
        bad("corrupt or truncated: the archive ends before its SHA256SUMS member".into())
    })?;
    for m in MEMBERS {
        let got = hashes
            .iter()
            .find(|(n, _)| n == m)
            .map(|(_, h)| h.as_str())
            .ok_or_else(|| bad(format!("member {m} is missing")))?;
        let want = sums
            .lines()
            .find_map(|l| l.strip_suffix(&format!("  {m}")))
            .ok_or_else(|| bad(format!("SHA256SUMS has no line for {m}")))?;
        if got != want {
            return Err(bad(format!(
                "member {m} is corrupt: sha256 {got}, expected {want}"
            )));
        }
    }
    let mut meta = meta.ok_or_else(|| bad(format!("member {META} is missing")))?;
    meta.id = crate::util::random_hex(32);
    if let Some(n) = name {
        meta.name = n.to_string();
    }
    let meta_path = t.dir.join(META);
    crate::util::write_atomic(
        &meta_path,
        &serde_json::to_vec_pretty(&meta).expect("snapshot metadata serialises"),
    )
    .map_err(io("cannot write", &meta_path))?;
    store.put_in_place(&mut t, &meta.id)?;
    crate::failpoint::hit("snapshot-import:placed");
    // An import has no speed target: it is on disk before it is registered.
    super::sync_dir(store.dir())?;
    store.register(db, t, &meta)?;
    Ok(meta)
}

/// Reads and checks `snapshot.json`.
pub fn read_meta(path: &Path) -> std::result::Result<SnapshotMeta, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| format!("{META} is not valid JSON: {e}"))?;
    let format = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
    if format != FORMAT as u64 {
        return Err(format!(
            "snapshot format {format} is not supported by this gvpod (it reads format {FORMAT})"
        ));
    }
    serde_json::from_value(v)
        .map_err(|e| format!("{META} is not a gvpod snapshot description: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ImageInfo, NetworkInfo, PodInfo, RunscInfo};

    fn meta(id: &str, name: &str) -> SnapshotMeta {
        SnapshotMeta {
            format: FORMAT,
            id: id.into(),
            name: name.into(),
            created: "2026-01-01T00:00:00.000000000Z".into(),
            pod: PodInfo {
                id: "p".repeat(64),
                name: "web".into(),
                hostname: "web".into(),
                auto_remove: false,
            },
            image: ImageInfo {
                id: "sha256:00".into(),
                reference: "busybox".into(),
            },
            runsc: RunscInfo {
                version: "runsc version test".into(),
                release: 20221219,
                platform: "ptrace".into(),
                network: "none".into(),
                overlay2: Some("none".into()),
                extra: vec![],
            },
            network: NetworkInfo {
                mode: "none".into(),
                ports: vec![],
                ip: None,
            },
            options: Default::default(),
            process: serde_json::json!({"args": ["sh"]}),
            leave_running: false,
            memory_image_bytes: 3,
            rootfs_diff_bytes: 0,
            checkpoint_ms: 1,
        }
    }

    /// A registered snapshot with small stand-in files.
    fn registered(store: &SnapshotStore, db: &mut Db, name: &str) -> SnapshotMeta {
        let mut t = store.temp().unwrap();
        let m = meta(&crate::util::random_hex(32), name);
        std::fs::write(t.dir.join(META), serde_json::to_vec(&m).unwrap()).unwrap();
        std::fs::write(t.dir.join(SPEC), b"{}").unwrap();
        std::fs::write(t.dir.join(DIFF), vec![0u8; 1024]).unwrap();
        std::fs::write(
            t.dir.join(IMAGE),
            (0..200_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        store.put_in_place(&mut t, &m.id).unwrap();
        store.register(db, t, &m).unwrap();
        m
    }

    #[test]
    fn export_import_round_trip_and_damage() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::open(d.path()).unwrap();
        let store = SnapshotStore::new(d.path()).unwrap();
        let m = registered(&store, &mut db, "s");
        let row = store.lookup(&db, "s").unwrap();
        let out = d.path().join("s.snap");
        export(&store, &row, &out).unwrap();

        // A name clash is refused; another name is imported with a new id.
        let e = import(&store, &mut db, &out, None).unwrap_err();
        assert!(e.to_string().contains("\"s\" already exists"), "{e}");
        let got = import(&store, &mut db, &out, Some("t")).unwrap();
        assert_ne!(got.id, m.id);
        assert_eq!(got.name, "t");
        for f in [SPEC, DIFF, IMAGE] {
            assert_eq!(
                std::fs::read(store.path(&got.id).join(f)).unwrap(),
                std::fs::read(store.path(&m.id).join(f)).unwrap(),
                "{f}"
            );
        }

        // Truncated or flipped bytes: one error naming the archive, nothing left.
        let bytes = std::fs::read(&out).unwrap();
        let bad = d.path().join("bad.snap");
        for (i, damaged) in [
            bytes[..bytes.len() / 2].to_vec(),
            bytes[..bytes.len() - 20].to_vec(),
            {
                let mut b = bytes.clone();
                let k = b.len() / 2;
                b[k] ^= 0x55;
                b
            },
        ]
        .into_iter()
        .enumerate()
        {
            std::fs::write(&bad, damaged).unwrap();
            let e = import(&store, &mut db, &bad, Some(&format!("bad{i}"))).unwrap_err();
            assert!(matches!(e, SnapshotError::BadArchive { .. }), "{i}: {e}");
            assert!(e.to_string().contains("bad.snap"), "{e}");
        }
        assert_eq!(db.snapshots().unwrap().len(), 2);
        let entries = std::fs::read_dir(store.dir()).unwrap().count();
        assert_eq!(entries, 2, "partial import left behind");
    }
}
