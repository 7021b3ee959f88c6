//! gvpod's own helpers in pods (issue 11's relay, issue 8's startup):
//! the static relay (src/router/relay.c) that routes, `gvpod ports`,
//! service probes and the init of a pod of services run with `runsc exec`.
//!
//! Where a pod sees it: `/.gvpod/gvpod-relay`, from a read-only top lower
//! layer of its rootfs overlay, `bundles/ID/helpers-layer/` ([`layer`]),
//! which holds nothing but `.gvpod/gvpod-relay`, a hard link to the data
//! root's `helpers/gvpod-relay`. Not a bind mount any more: runsc sets up
//! every spec mount itself, and the read-only bind of `helpers/` at
//! /dev/gvpod cost runsc about 4.5 ms of a pod's start (measured on
//! 20240729: 139.2 against 134.7 ms, the largest item of gvpod's share;
//! issue 8 item 5), while one more lower layer costs the host's overlayfs
//! nothing measurable.
//!
//! Invariants:
//! - `helpers/gvpod-relay` is never written in place, only replaced by a
//!   rename ([`install_helpers`]): every pod's layer links its inode, so an
//!   upgrade gives new pods the new relay and leaves each older pod the one
//!   it was made with (overlayfs forbids changing a mounted lower layer).
//! - A layer is made before the overlay that names it and lives in the
//!   pod's bundle, so it goes with the bundle (one recorded path, no undo
//!   of its own), and a remount (after a reboot, an in-place restore)
//!   finds it again.
//! - The relay is never in an upper dir unless the pod itself wrote there:
//!   `commit` leaves `.gvpod` out (`snapshot::diff::RUNTIME_FILES`).
//!   A pod can replace its own copy (a copy-up), as root in it can mount
//!   over /dev/gvpod; that reaches only its own routes and probes, which
//!   run inside its sandbox with its own rights.
//! - Pods made before the layer keep their /dev/gvpod bind (their
//!   config.json, their snapshots' specs) and are reached there:
//!   [`relay_of`] tells the two apart by the layer in the bundle.

use std::path::{Path, PathBuf};

use super::{io, Result};
use crate::runsc::{LEGACY_RELAY_IN_POD, RELAY_IN_POD};

/// The layer's directory in a pod's bundle.
const LAYER: &str = "helpers-layer";

/// The relay (src/router/relay.c, built static by build.rs).
static RELAY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gvpod-relay"));

/// The data root's helpers directory (where [`layer`] links the relay from;
/// pods made before the layer see it bound read-only at /dev/gvpod).
pub fn helpers_dir(root: &Path) -> PathBuf {
    root.join("helpers")
}

/// Writes the relay into `helpers/` unless the same bytes are there
/// (atomically: a pod starting meanwhile sees the old file or the new).
///
/// "The same bytes" is decided without reading them: a stamp beside the
/// relay names the gvpod binary (path, size, mtime) that wrote it, and
/// that binary embeds exactly one relay. Reading and comparing the 700 KB
/// on every create was ~6 % of the `run` client's CPU time (perf). A
/// missing or different stamp, or a relay of another length, rewrites
/// both (the relay first, so a crash between leaves a stamp that no longer
/// matches and the next create rewrites again).
pub fn install_helpers(root: &Path) -> Result<PathBuf> {
    let dir = helpers_dir(root);
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
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
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
    Ok(dir)
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

/// The pod's helpers layer in `bundle` (made if missing): the top lower
/// layer of its rootfs overlay.
pub(super) fn layer(root: &Path, bundle: &Path) -> Result<PathBuf> {
    let layer = bundle.join(LAYER);
    let dir = layer.join(in_layer(crate::runsc::HELPERS_IN_POD));
    let relay = layer.join(in_layer(RELAY_IN_POD));
    if relay.is_file() {
        return Ok(layer);
    }
    let helpers = install_helpers(root)?;
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    let source = helpers.join("gvpod-relay");
    match std::fs::hard_link(&source, &relay) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // Another filesystem under bundles/: a copy of its own.
        Err(_) => {
            let tmp = dir.join(".gvpod-relay.tmp");
            std::fs::copy(&source, &tmp).map_err(io("cannot copy the relay to", &tmp))?;
            std::fs::rename(&tmp, &relay).map_err(io("cannot write", &relay))?;
        }
    }
    Ok(layer)
}

/// The relay's path inside the pod whose bundle is `bundle`: the layer's,
/// else the /dev/gvpod bind of a pod made before it.
pub fn relay_of(bundle: &Path) -> &'static str {
    if bundle.join(LAYER).join(in_layer(RELAY_IN_POD)).is_file() {
        RELAY_IN_POD
    } else {
        LEGACY_RELAY_IN_POD
    }
}

fn in_layer(path_in_pod: &str) -> &str {
    path_in_pod.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_is_rewritten_only_when_its_stamp_or_length_differs() {
        let root = std::env::temp_dir().join(format!("gvpod-helpers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let relay = install_helpers(&root).unwrap().join("gvpod-relay");
        let stamp = helpers_dir(&root).join(".gvpod-relay.stamp");
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        assert_eq!(
            std::fs::read_to_string(&stamp).unwrap(),
            writer_stamp().unwrap()
        );
        // Same length, same stamp: trusted without reading it.
        let mut same_len = RELAY.to_vec();
        same_len[0] ^= 1;
        std::fs::write(&relay, &same_len).unwrap();
        install_helpers(&root).unwrap();
        assert_eq!(std::fs::read(&relay).unwrap(), same_len);
        // Another writer's stamp: compared and rewritten.
        std::fs::write(&stamp, "another gvpod\n").unwrap();
        install_helpers(&root).unwrap();
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        assert_eq!(
            std::fs::read_to_string(&stamp).unwrap(),
            writer_stamp().unwrap()
        );
        // A cut relay: rewritten whatever the stamp says.
        std::fs::write(&relay, &RELAY[..10]).unwrap();
        install_helpers(&root).unwrap();
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_layer_links_the_relay_and_survives_an_upgrade_of_it() {
        let root = std::env::temp_dir().join(format!("gvpod-layer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let bundle = root.join("bundles").join("p");
        std::fs::create_dir_all(&bundle).unwrap();
        assert_eq!(relay_of(&bundle), LEGACY_RELAY_IN_POD);
        let layer = layer(&root, &bundle).unwrap();
        let relay = layer.join(".gvpod/gvpod-relay");
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        assert_eq!(relay_of(&bundle), RELAY_IN_POD);
        use std::os::unix::fs::MetadataExt;
        let helpers_relay = helpers_dir(&root).join("gvpod-relay");
        let ino = std::fs::metadata(&relay).unwrap().ino();
        assert_eq!(ino, std::fs::metadata(&helpers_relay).unwrap().ino());
        // Another gvpod's relay replaces the helper; the pod keeps its own.
        std::fs::write(helpers_dir(&root).join(".gvpod-relay.stamp"), "other\n").unwrap();
        crate::util::write_atomic(&helpers_relay, b"a newer relay").unwrap();
        install_helpers(&root).unwrap();
        assert_eq!(std::fs::metadata(&relay).unwrap().ino(), ino);
        assert_eq!(std::fs::read(&relay).unwrap(), RELAY);
        // A remount finds the layer as it was.
        assert_eq!(super::layer(&root, &bundle).unwrap(), layer);
        assert_eq!(std::fs::metadata(&relay).unwrap().ino(), ino);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
