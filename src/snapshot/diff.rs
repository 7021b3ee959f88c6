//! A pod's filesystem changes as an OCI layer tarball.
//!
//! Pods write to the upper directory of their overlay rootfs (runsc runs
//! with `--overlay2=none`, DESIGN.md fact 8), so the upper directory *is* the
//! pod's diff, in overlayfs' on-disk format. This turns it into the OCI
//! layer format (image-spec `layer.md`), like podman's `rootfs-diff.tar`:
//!
//! * a character device 0/0 (an overlay whiteout) becomes an empty file
//!   `DIR/.wh.NAME`;
//! * a directory with `trusted.overlay.opaque=y` gets a `DIR/.wh..wh..opq`
//!   entry right after its own;
//! * hard links within the diff stay hard links; other xattrs (`user.*`,
//!   `security.capability`) go into PAX `SCHILY.xattr.*` records, except
//!   `trusted.*` (overlay's own metadata);
//! * a redirect or metacopy xattr (overlay features gvpod does not turn on)
//!   is refused rather than written as a wrong layer.
//!
//! The same tarball is the snapshot's `rootfs-diff.tar` (restored through
//! the image store's secure layer unpacker) and the layer `gvpod commit`
//! adds, except that the commit leaves out the files gvpod writes for the
//! pod's runtime ([`RUNTIME_FILES`], as docker commit leaves out the ones
//! it binds). Entries are sorted by name, so an unchanged pod gives the
//! same bytes.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{io, Result, SnapshotError};

/// What a diff contained.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiffStats {
    pub entries: u64,
    pub whiteouts: u64,
    pub bytes: u64,
}

const OPAQUE: &str = "trusted.overlay.opaque";

/// The pod's runtime files gvpod may write into its rootfs
/// (`bundle::etc`), and gvpod's helpers (`pod::helpers`, a lower layer a
/// pod's own writes can copy up), relative to the upper dir: never part of
/// a committed image, whoever changed them last (a pod's edits of its
/// bound /etc/hosts never reach docker's images either).
pub const RUNTIME_FILES: &[&str] = &[".gvpod", "etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// Writes the diff held in the overlay upper directory `upper` to `out` as
/// an uncompressed OCI layer tarball: everything, as a snapshot needs it.
pub fn write_diff<W: Write>(upper: &Path, out: W) -> Result<DiffStats> {
    write_diff_with(upper, out, crate::sys::lxattrs, &[])
}

/// [`write_diff`] without [`RUNTIME_FILES`] (nor their whiteouts): the
/// layer `gvpod commit` adds to an image.
pub fn write_commit_layer<W: Write>(upper: &Path, out: W) -> Result<DiffStats> {
    write_diff_with(upper, out, crate::sys::lxattrs, RUNTIME_FILES)
}

/// How the diff reads a file's extended attributes: `sys::lxattrs`, or in
/// unit tests a wrapper that adds the `trusted.*` ones only root can set.
type ReadXattrs = fn(&Path) -> std::io::Result<Vec<(String, Vec<u8>)>>;

fn write_diff_with<W: Write>(
    upper: &Path,
    out: W,
    xattrs: ReadXattrs,
    skip: &'static [&'static str],
) -> Result<DiffStats> {
    let mut w = Writer {
        skip,
        tar: tar::Builder::new(out),
        upper: upper.to_owned(),
        links: HashMap::new(),
        stats: DiffStats::default(),
        xattrs,
    };
    w.tar.follow_symlinks(false);
    w.dir(Path::new(""))?;
    w.tar
        .into_inner()
        .and_then(|mut o| o.flush())
        .map_err(io("cannot write layer for", upper))?;
    Ok(w.stats)
}

struct Writer<W: Write> {
    xattrs: ReadXattrs,
    /// Paths (relative to the upper dir) left out, with what is below them.
    skip: &'static [&'static str],
    tar: tar::Builder<W>,
    upper: PathBuf,
    /// (dev, ino) of multiply-linked files already written → their path.
    links: HashMap<(u64, u64), PathBuf>,
    stats: DiffStats,
}

impl<W: Write> Writer<W> {
    fn err(&self, rel: &Path, why: impl std::fmt::Display) -> SnapshotError {
        SnapshotError::Io {
            what: "cannot capture",
            path: self.upper.join(rel),
            source: std::io::Error::other(why.to_string()),
        }
    }

    /// Writes the children of directory `rel` (relative to the upper dir).
    fn dir(&mut self, rel: &Path) -> Result<()> {
        let abs = self.upper.join(rel);
        let mut names: Vec<OsString> = std::fs::read_dir(&abs)
            .map_err(io("cannot read", &abs))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io("cannot read", &abs))?;
        names.sort();
        for name in names {
            let path = rel.join(&name);
            if self.skip.iter().any(|s| Path::new(s) == path) {
                continue;
            }
            self.entry(&path, &name)?;
        }
        Ok(())
    }

    fn entry(&mut self, rel: &Path, name: &OsStr) -> Result<()> {
        let abs = self.upper.join(rel);
        let meta = std::fs::symlink_metadata(&abs).map_err(io("cannot stat", &abs))?;
        let ft = meta.file_type();
        let xattrs = (self.xattrs)(&abs).map_err(io("cannot read xattrs of", &abs))?;
        for (k, _) in &xattrs {
            if k == "trusted.overlay.redirect" || k == "trusted.overlay.metacopy" {
                return Err(self.err(rel, format!("overlay feature {k} is not supported")));
            }
        }
        if ft.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: NAME is deleted.
            let mut wh_name = OsString::from(".wh.");
            wh_name.push(name);
            let wh = rel.parent().unwrap_or(Path::new("")).join(wh_name);
            self.empty_file(&wh)?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        let pax: Vec<(String, Vec<u8>)> = xattrs
            .iter()
            .filter(|(k, _)| !k.starts_with("trusted."))
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
            .collect();
        if !pax.is_empty() {
            self.tar
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io("cannot write layer entry for", &abs))?;
        }
        let werr = io("cannot write layer entry for", &abs);
        self.stats.entries += 1;
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            self.tar
                .append_data(&mut h, rel, std::io::empty())
                .map_err(werr)?;
            if xattrs.iter().any(|(k, v)| k == OPAQUE && v == b"y") {
                self.empty_file(&rel.join(".wh..wh..opq"))?;
                self.stats.whiteouts += 1;
            }
            return self.dir(rel);
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(&abs).map_err(io("cannot read link", &abs))?;
            h.set_entry_type(tar::EntryType::Symlink);
            return self.tar.append_link(&mut h, rel, &target).map_err(werr);
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    let first = first.clone();
                    h.set_entry_type(tar::EntryType::Link);
                    return self.tar.append_link(&mut h, rel, &first).map_err(werr);
                }
                self.links.insert(key, rel.to_owned());
            }
            let f = File::open(&abs).map_err(io("cannot open", &abs))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            self.stats.bytes += meta.len();
            // A file that changes size while it is read is a tar error, not a corrupt layer.
            return self.tar.append_data(&mut h, rel, f).map_err(werr);
        }
        if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
            h.set_device_major(major).map_err(io("bad device", &abs))?;
            h.set_device_minor(minor).map_err(io("bad device", &abs))?;
            return self
                .tar
                .append_data(&mut h, rel, std::io::empty())
                .map_err(werr);
        }
        // Sockets are not part of a filesystem image.
        self.stats.entries -= 1;
        Ok(())
    }

    fn empty_file(&mut self, rel: &Path) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(0);
        self.stats.entries += 1;
        let abs = self.upper.join(rel);
        self.tar
            .append_data(&mut h, rel, std::io::empty())
            .map_err(io("cannot write layer entry for", &abs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    /// The real xattrs, plus overlay's opaque mark on every directory named
    /// `opq` (a `trusted.*` xattr, which only root can set for real).
    fn with_opaque(p: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        let mut x = crate::sys::lxattrs(p)?;
        if p.file_name().is_some_and(|n| n == "opq") {
            x.push((OPAQUE.to_string(), b"y".to_vec()));
        }
        Ok(x)
    }

    #[test]
    fn overlay_whiteouts_become_oci_whiteouts() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path();
        std::fs::create_dir_all(u.join("etc/opq")).unwrap();
        std::fs::write(u.join("etc/new"), b"hello").unwrap();
        std::fs::hard_link(u.join("etc/new"), u.join("etc/new2")).unwrap();
        std::os::unix::fs::symlink("/etc/new", u.join("link")).unwrap();
        nix::sys::stat::mknod(
            &u.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o000),
            0,
        )
        .unwrap();
        let mut out = vec![];
        let st = write_diff_with(u, &mut out, with_opaque, &[]).unwrap();
        assert_eq!(st.whiteouts, 2);
        assert_eq!(st.bytes, 5);
        let n = names(&out);
        let has = |p: &str, t: tar::EntryType| n.iter().any(|(q, u)| q == p && *u == t);
        assert!(has("etc/.wh.gone", tar::EntryType::Regular), "{n:?}");
        assert!(
            has("etc/opq/.wh..wh..opq", tar::EntryType::Regular),
            "{n:?}"
        );
        assert!(has("etc/new2", tar::EntryType::Link), "{n:?}");
        assert!(has("link", tar::EntryType::Symlink), "{n:?}");
        assert!(!n.iter().any(|(q, _)| q == "etc/gone"));
        // Deterministic.
        let mut again = vec![];
        write_diff_with(u, &mut again, with_opaque, &[]).unwrap();
        assert_eq!(out, again);
    }

    #[test]
    fn a_commit_layer_leaves_out_the_runtime_files() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path();
        std::fs::create_dir_all(u.join("etc")).unwrap();
        std::fs::write(u.join("etc/hostname"), b"web\n").unwrap();
        std::fs::write(u.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
        std::fs::write(u.join("etc/motd"), b"kept").unwrap();
        // gvpod's relay, copied up by the pod's own write.
        std::fs::create_dir_all(u.join(".gvpod")).unwrap();
        std::fs::write(u.join(".gvpod/gvpod-relay"), b"changed").unwrap();
        // A deleted /etc/resolv.conf: its whiteout is left out too.
        nix::sys::stat::mknod(
            &u.join("etc/resolv.conf"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o000),
            0,
        )
        .unwrap();
        let mut layer = vec![];
        let st = write_commit_layer(u, &mut layer).unwrap();
        let n: Vec<String> = names(&layer).into_iter().map(|(p, _)| p).collect();
        assert_eq!(n, ["etc", "etc/motd"], "{n:?}");
        assert_eq!((st.bytes, st.whiteouts), (4, 0));
        // A snapshot keeps them all: its spec does not bind them.
        let mut snap = vec![];
        write_diff(u, &mut snap).unwrap();
        let n: Vec<String> = names(&snap).into_iter().map(|(p, _)| p).collect();
        for p in [
            ".gvpod/gvpod-relay",
            "etc/hostname",
            "etc/hosts",
            "etc/.wh.resolv.conf",
            "etc/motd",
        ] {
            assert!(n.iter().any(|q| q == p), "{p} in {n:?}");
        }
    }
}
