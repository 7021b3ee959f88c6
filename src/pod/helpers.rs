//! gvpod's own helpers in pods (issue 11's relay, issue 8's startup):
//! the static relay (src/router/relay.c) that routes, `gvpod ports`,
//! service probes and the init of a pod of services run with `runsc exec`.
//!
//! Where a pod sees it: `/.gvpod/gvpod-relay`, from a read-only top lower
//! layer of its rootfs overlay: `helpers/layer-DIGEST/` ([`layer`]), which
//! holds nothing but `.gvpod/gvpod-relay` and is named after the digest of
//! the relay this binary embeds (build.rs). Not a bind mount any more:
//! runsc sets up every spec mount itself, and the read-only bind of
//! `helpers/` at /dev/gvpod cost runsc about 4.5 ms of a pod's start
//! (measured on 20240729: 139.2 against 134.7 ms, the largest item of
//! gvpod's share; issue 8 item 5), while one more lower layer costs the
//! host's overlayfs nothing measurable. One layer serves every pod, so a
//! create makes no file for it (metadata operations cost ~0.1 ms each on
//! the test VM's ext4): one `stat` finds it.
//!
//! Invariants:
//! - A layer is never changed once it is in place (overlayfs forbids
//!   changing a mounted lower layer): it is made in a temporary directory
//!   and renamed into place whole, and another relay gets another name.
//!   So an upgrade gives new pods the new relay and leaves each running
//!   pod the one it was started with.
//! - A layer is removed only by `gvpod system gc`, and only when no mounted
//!   overlay names it and it is older than [`STALE_AFTER`] (a create of
//!   another gvpod binary may be about to mount it).
//! - The relay is never in an upper dir unless the pod itself wrote there:
//!   `commit` leaves `.gvpod` out (`snapshot::diff::RUNTIME_FILES`).
//!   A pod can replace its own copy (a copy-up), as root in it could mount
//!   over /dev/gvpod; that reaches only its own routes and probes, which
//!   run inside its sandbox with its own rights.
//! - Pods made before the layer keep their /dev/gvpod bind (their
//!   config.json, their snapshots' specs) of the data root's `helpers/`,
//!   kept up to date by [`install_relay_in`], and are reached there:
//!   [`relay_of`] reads the pod's spec.

use std::path::{Path, PathBuf};

use super::{io, Result};
use crate::runsc::{LEGACY_RELAY_IN_POD, RELAY_IN_POD};

/// The digest of [`RELAY`] (build.rs), which names its layer.
const RELAY_DIGEST: &str = env!("GVPOD_RELAY_DIGEST");
/// Layers' directory names in `helpers/`: this prefix and a digest.
const LAYER_PREFIX: &str = "layer-";
/// A layer being made ([`crate::util::owned_temp_name`]).
const TMP_PREFIX: &str = ".layer-tmp-";
/// How old an unmounted layer of another relay must be before gc removes it.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// The relay (src/router/relay.c, built static by build.rs).
static RELAY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gvpod-relay"));

/// The data root's helpers directory: the relay's layers ([`layer`]), and
/// the relay itself for pods made before them, which see the directory
/// bound read-only at /dev/gvpod.
pub fn helpers_dir(root: &Path) -> PathBuf {
    root.join("helpers")
}

/// Writes the relay into the helpers directory `dir` (for pods that bind
/// it at /dev/gvpod) unless the same bytes are there (atomically: a pod
/// starting meanwhile sees the old file or the new).
///
/// "The same bytes" is decided without reading them: a stamp beside the
/// relay names the gvpod binary (path, size, mtime) that wrote it, and
/// that binary embeds exactly one relay. Reading and comparing the 700 KB
/// on every create was ~6 % of the `run` client's CPU time (perf). A
/// missing or different stamp, or a relay of another length, rewrites
/// both (the relay first, so a crash between leaves a stamp that no longer
/// matches and the next create rewrites again).
pub(super) fn install_relay_in(dir: &Path) -> Result<()> {
    let path = dir.join("gvpod-relay");
    let stamp_path = dir.join(".gvpod-relay.stamp");
    let stamp = writer_stamp();
    let current = || {
        std::fs::metadata(&path).is_ok_and(|m| m.len() == RELAY.len() as u64)
            && stamp
                .as_deref()
                .is_some_and(|s| std::fs::read_to_string(&stamp_path).is_ok_and(|t| t == s))
    };
    if current() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    if !std::fs::read(&path).is_ok_and(|b| b == RELAY) {
        crate::util::write_atomic(&path, RELAY).map_err(io("cannot write", &path))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(io("cannot make executable", &path))?;
    }
    if let Some(s) = stamp {
        crate::util::write_atomic(&stamp_path, s.as_bytes())
            .map_err(io("cannot write", &stamp_path))?;
    }
    Ok(())
}

/// This gvpod binary as the stamp of the relay it embeds; `None` when it
/// cannot be told (then the bytes are compared, as before the stamp).
fn writer_stamp() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::env::current_exe().ok()?;
    let m = std::fs::metadata(&exe).ok()?;
    Some(format!(
        "{}\n{}\n{}.{}\n{}\n",
        exe.display(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        RELAY.len()
    ))
}

/// The helpers layer of this binary's relay in data root `root`, made if
/// missing: the top lower layer of every pod's rootfs overlay.
pub(super) fn layer(root: &Path) -> Result<PathBuf> {
    let helpers = helpers_dir(root);
    let layer = helpers.join(format!("{LAYER_PREFIX}{RELAY_DIGEST}"));
    if layer.join(in_layer(RELAY_IN_POD)).is_file() {
        return Ok(layer);
    }
    // Made aside, then renamed into place whole: a pod never mounts half a
    // layer, and two creates racing both end with the one that won.
    // The writer's pid in the name: gc removes a killed writer's at once.
    let tmp = helpers.join(crate::util::owned_temp_name(TMP_PREFIX));
    let made = write_layer(&tmp);
    let placed = made.and_then(|()| match std::fs::rename(&tmp, &layer) {
        Ok(()) => Ok(()),
        Err(_) if layer.join(in_layer(RELAY_IN_POD)).is_file() => Ok(()),
        Err(e) => Err(io("cannot put in place", &layer)(e)),
    });
    let _ = crate::sys::remove_path(&tmp);
    placed.map(|()| layer)
}

/// Writes a layer holding the relay at `dir` (synced: it is never
/// rewritten, so a power cut must not leave it empty).
fn write_layer(dir: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let sub = dir.join(in_layer(crate::runsc::HELPERS_IN_POD));
    std::fs::create_dir_all(&sub).map_err(io("cannot create", &sub))?;
    let path = dir.join(in_layer(RELAY_IN_POD));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&path)
        .map_err(io("cannot create", &path))?;
    f.write_all(RELAY)
        .and_then(|()| f.sync_all())
        .map_err(io("cannot write", &path))
}

/// The relay's path inside the pod whose bundle is `bundle`: the old one
/// when its spec binds /dev/gvpod (a pod made before the layer, or
/// restored from a snapshot of one), else the layer's.
///
/// Not what the host sees in the pod's rootfs: a clone of an old snapshot
/// has the layer in its overlay, but its restored sandbox still holds the
/// directory of `/` it saved, without `/.gvpod` (seen on 20221219: `ls
/// /.gvpod` fails in such a clone while the host lists the file).
pub fn relay_of(bundle: &Path) -> &'static str {
    let spec = std::fs::read(bundle.join("config.json")).unwrap_or_default();
    if crate::bundle::spec_mounts_at(&spec, crate::runsc::LEGACY_HELPERS_IN_POD) == Some(true) {
        LEGACY_RELAY_IN_POD
    } else {
        RELAY_IN_POD
    }
}

/// What in `root`'s helpers `gvpod system gc` may remove: layers being
/// made by a process that is gone, and the layers of other relays that no
/// mounted overlay names (`mountinfo`, the text of /proc/self/mountinfo)
/// and older than [`STALE_AFTER`]. No layer when the data root's path is
/// one mountinfo would escape (then a substring cannot tell), so nothing a
/// pod uses is ever taken.
pub(super) fn stale_layers(root: &Path, mountinfo: &str) -> Vec<PathBuf> {
    let helpers = helpers_dir(root);
    let mut stale: Vec<PathBuf> = std::fs::read_dir(&helpers)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| crate::util::temp_owner_gone(&e.file_name().to_string_lossy(), TMP_PREFIX))
        .map(|e| e.path())
        .collect();
    stale.extend(unused_layers(&helpers, mountinfo));
    stale
}

fn unused_layers(helpers: &Path, mountinfo: &str) -> Vec<PathBuf> {
    let Some(h) = helpers.to_str() else {
        return vec![];
    };
    if h.contains(|c: char| c.is_whitespace() || c == '\\' || c == ',' || c == ':') {
        return vec![];
    }
    let current = format!("{LAYER_PREFIX}{RELAY_DIGEST}");
    let Ok(entries) = std::fs::read_dir(helpers) else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(LAYER_PREFIX) && name != current.as_str()
        })
        .map(|e| e.path())
        .filter(|p| {
            let old = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= STALE_AFTER));
            let named = p.to_str().is_some_and(|s| {
                mountinfo.match_indices(s).any(|(i, _)| {
                    !mountinfo[i + s.len()..]
                        .starts_with(|c: char| c != ',' && c != ':' && !c.is_whitespace())
                })
            });
            old && !named
        })
        .collect()
}

fn in_layer(path_in_pod: &str) -> &str {
    path_in_pod.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn the_relay_is_rewritten_only_when_its_stamp_or_length_differs() {
        let root = std::env::temp_dir().join(format!("gvpod-helpers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let helpers = helpers_dir(&root);
        install_relay_in(&helpers).unwrap();
        let relay = helpers.join("gvpod-relay");
        let stamp = helpers.join(".gvpod-relay.stamp");
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        assert_eq!(
            std::fs::read_to_string(&stamp).unwrap(),
            writer_stamp().unwrap()
        );
        // Same length, same stamp: trusted without reading it.
        let mut same_len = RELAY.to_vec();
        same_len[0] ^= 1;
        std::fs::write(&relay, &same_len).unwrap();
        install_relay_in(&helpers).unwrap();
        assert_eq!(std::fs::read(&relay).unwrap(), same_len);
        // Another writer's stamp: compared and rewritten.
        std::fs::write(&stamp, "another gvpod\n").unwrap();
        install_relay_in(&helpers).unwrap();
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        assert_eq!(
            std::fs::read_to_string(&stamp).unwrap(),
            writer_stamp().unwrap()
        );
        // A cut relay: rewritten whatever the stamp says.
        std::fs::write(&relay, &RELAY[..10]).unwrap();
        install_relay_in(&helpers).unwrap();
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn one_layer_per_relay_made_once_and_found_by_pods() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let layer = layer(root).unwrap();
        assert_eq!(
            layer,
            helpers_dir(root).join(format!("layer-{RELAY_DIGEST}"))
        );
        let relay = layer.join(".gvpod/gvpod-relay");
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&relay).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Found again, not rewritten; nothing left aside.
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&relay).unwrap());
        assert_eq!(super::layer(root).unwrap(), layer);
        let ino2 = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&relay).unwrap());
        assert_eq!(ino, ino2);
        let names: Vec<String> = std::fs::read_dir(helpers_dir(root))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("layer-{RELAY_DIGEST}")]);
        // A pod whose spec binds /dev/gvpod is reached there, any other at
        // the layer's path.
        let bundle = root.join("bundles/p");
        std::fs::create_dir_all(&bundle).unwrap();
        let spec = bundle.join("config.json");
        std::fs::write(
            &spec,
            r#"{"mounts":[{"destination":"/proc","type":"proc"},{"destination":"/dev/gvpod","type":"bind","source":"/r/helpers","options":["ro"]}]}"#,
        )
        .unwrap();
        assert_eq!(relay_of(&bundle), LEGACY_RELAY_IN_POD);
        std::fs::write(
            &spec,
            r#"{"mounts":[{"destination":"/proc","type":"proc"}]}"#,
        )
        .unwrap();
        assert_eq!(relay_of(&bundle), RELAY_IN_POD);
    }

    #[test]
    fn gc_takes_only_old_unmounted_layers_of_other_relays() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let current = layer(root).unwrap();
        let h = helpers_dir(root);
        let old = SystemTime::now() - STALE_AFTER - std::time::Duration::from_secs(5);
        let mk = |name: &str, aged: bool| {
            let d = h.join(name);
            std::fs::create_dir_all(d.join(".gvpod")).unwrap();
            if aged {
                std::fs::File::open(&d).unwrap().set_modified(old).unwrap();
            }
            d
        };
        let stale = mk("layer-00000000000000aa", true);
        let young = mk("layer-00000000000000bb", false);
        let mounted = mk("layer-00000000000000cc", true);
        let prefix_only = mk("layer-00000000000000c", true);
        if let Ok(f) = std::fs::File::open(&current) {
            f.set_modified(old).unwrap();
        }
        let info = format!(
            "90 30 0:50 / /r/bundles/x/rootfs rw - overlay overlay rw,lowerdir={}:/r/images/layers/a,upperdir=/u,workdir=/w\n",
            mounted.display()
        );
        // A writer killed while making a layer (pid 0x7fffffff: none), and
        // one at work (this test).
        let dead = mk(".layer-tmp-2147483647-0a0b", false);
        let live = mk(&crate::util::owned_temp_name(TMP_PREFIX), false);
        let mut got = stale_layers(root, &info);
        got.sort();
        assert!(!got.contains(&live));
        let mut want = vec![stale, prefix_only, dead];
        want.sort();
        assert_eq!(got, want);
        assert!(!got.contains(&young) && !got.contains(&current));
        // A root mountinfo would escape: nothing is taken.
        let odd = tempfile::Builder::new().prefix("a b").tempdir().unwrap();
        layer(odd.path()).unwrap();
        let h2 = helpers_dir(odd.path()).join("layer-00000000000000aa");
        std::fs::create_dir_all(&h2).unwrap();
        std::fs::File::open(&h2).unwrap().set_modified(old).unwrap();
        assert!(stale_layers(odd.path(), "").is_empty());
    }
}
