//! Layer tarballs for the image unit tests (the only tar builder they use;
//! `tests/common/oci.rs` is the integration tests' own, since they cannot
//! share crate code).
//!
//! Headers are written raw (GNU format, names copied byte for byte), so the
//! hostile names that `tar::Builder`'s path setters refuse (`..`, absolute
//! paths) get through. Every entry is owned by 0:0 with mtime [`MTIME`]
//! unless said otherwise; names and link targets must fit the 100-byte
//! ustar fields.

use tar::{Builder, EntryType, Header};

/// The mtime of every entry.
pub(crate) const MTIME: u64 = 1_000_000_000;

/// Builds a tarball entry by entry; [`TarBuilder::finish`] returns it.
pub(crate) struct TarBuilder {
    b: Builder<Vec<u8>>,
}

impl TarBuilder {
    pub(crate) fn new() -> Self {
        TarBuilder {
            b: Builder::new(Vec::new()),
        }
    }

    /// A header with the name written as is, owner 0:0, mtime [`MTIME`].
    pub(crate) fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> Header {
        assert!(path.len() <= 100, "test entry names fit the ustar field");
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h
    }

    /// Appends `h` (checksum set here) followed by `data`.
    pub(crate) fn raw(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.raw(Self::header(EntryType::Directory, path, mode, 0), &[])
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(
            Self::header(EntryType::Regular, path, mode, data.len() as u64),
            data,
        )
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, path, target)
    }

    pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, path, target)
    }

    fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Self {
        assert!(target.len() <= 100, "test link targets fit the ustar field");
        let mut h = Self::header(kind, path, 0o777, 0);
        let l = &mut h.as_old_mut().linkname;
        l.fill(0);
        l[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, &[])
    }

    /// An entry without content owned by `uid:gid`.
    pub(crate) fn owned(
        &mut self,
        kind: EntryType,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = Self::header(kind, path, mode, 0);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, &[])
    }

    /// A device node (or fifo) `major:minor`, mode 0640.
    pub(crate) fn dev(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, path, 0o640, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }

    /// A PAX extended header with `records`, then the entry `then` with `data`.
    pub(crate) fn pax(
        &mut self,
        records: &[(&str, &[u8])],
        then: Header,
        data: &[u8],
    ) -> &mut Self {
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

    /// The tarball so far, with its end-of-archive blocks; the builder
    /// starts over empty.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.b, Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

/// A tarball of regular files (mode 0644) and, for names ending in `/`,
/// directories (mode 0755).
pub(crate) fn simple_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    for (name, data) in entries {
        if name.ends_with('/') {
            t.dir(name, 0o755);
        } else {
            t.file(name, 0o644, data);
        }
    }
    t.finish()
}
