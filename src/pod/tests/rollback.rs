//! The undo of a pod's host resources: newest first, each kind by its one
//! idempotent undo, a failed undo kept on record (and reported) while the
//! rest go, and the runsc container deleted with the flags it was made with.

use super::{no_network, world};
use crate::pod::cleanup;
use crate::runsc::fake::Release;
use crate::state::{PodStatus, ResourceKind};

#[test]
fn resources_are_undone_newest_first() {
    let mut w = world(Release::R20240729);
    let p = w.pod("web", PodStatus::Exited, no_network());
    let ns = crate::pod::network::netns_path(&w.ctx, &p.id);
    let made = [
        (ResourceKind::Path, "/d/bundles/web".to_string()),
        (ResourceKind::Mount, "/d/bundles/web/rootfs".to_string()),
        (ResourceKind::Netns, ns.display().to_string()),
        (ResourceKind::Veth, "gv-web".to_string()),
        (ResourceKind::Cgroup, "gvpod/web".to_string()),
        (ResourceKind::Runsc, p.id.clone()),
    ];
    for (k, v) in &made {
        w.ctx.db.add_resource(&p.id, *k, v).unwrap();
    }
    w.runsc.set(&p.id, "stopped", 0);
    cleanup::release(&mut w.ctx, &p.id).unwrap();
    // runsc first (newest), then the host in reverse order; the veth of a
    // gone namespace is deleted by name.
    assert_eq!(w.runsc.subs(), ["state", "delete"]);
    assert_eq!(
        w.host.calls(),
        [
            "cgroup gvpod/web".to_string(),
            "link gv-web".to_string(),
            format!("netns {}", ns.display()),
            "unmount /d/bundles/web/rootfs".to_string(),
            "remove /d/bundles/web".to_string(),
        ]
    );
    assert!(w.ctx.db.resources(Some(&p.id)).unwrap().is_empty());
    // Idempotent: a second release has nothing left to do.
    cleanup::release(&mut w.ctx, &p.id).unwrap();
    assert_eq!(w.host.calls().len(), 5);
}

#[test]
fn a_failed_undo_stays_recorded_and_the_rest_still_go() {
    let mut w = world(Release::R20221219);
    let p = w.pod("web", PodStatus::Exited, no_network());
    for (k, v) in [
        (ResourceKind::Path, "/d/b"),
        (ResourceKind::Mount, "/d/b/rootfs"),
        (ResourceKind::Cgroup, "gvpod/web"),
    ] {
        w.ctx.db.add_resource(&p.id, k, v).unwrap();
    }
    w.host.fail("unmount");
    let e = cleanup::release(&mut w.ctx, &p.id).unwrap_err();
    assert!(e.to_string().contains("/d/b/rootfs"), "{e}");
    assert_eq!(
        w.host.calls(),
        ["cgroup gvpod/web", "unmount /d/b/rootfs", "remove /d/b"]
    );
    let left = w.ctx.db.resources(Some(&p.id)).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].kind, left[0].value.as_str()),
        (ResourceKind::Mount, "/d/b/rootfs")
    );
    // `rm` fails the same way and keeps the row, so nothing is forgotten.
    assert!(cleanup::remove_pod(&mut w.ctx, &p.id).is_err());
    assert!(w.row(&p.id).is_some());
}

#[test]
fn removing_a_pod_releases_then_deletes_its_row() {
    let mut w = world(Release::R20221219);
    let p = w.pod("web", PodStatus::Exited, no_network());
    w.ctx
        .db
        .add_resource(&p.id, ResourceKind::Path, "/d/b")
        .unwrap();
    cleanup::remove_pod(&mut w.ctx, &p.id).unwrap();
    assert!(w.row(&p.id).is_none());
    assert_eq!(w.host.calls(), ["remove /d/b"]);
}

#[test]
fn a_runsc_container_already_gone_is_not_deleted_again() {
    let mut w = world(Release::R20240729);
    let p = w.pod("web", PodStatus::Exited, no_network());
    w.ctx
        .db
        .add_resource(&p.id, ResourceKind::Runsc, &p.id)
        .unwrap();
    cleanup::release(&mut w.ctx, &p.id).unwrap();
    assert_eq!(w.runsc.subs(), ["state"]);
    assert!(w.ctx.db.resources(Some(&p.id)).unwrap().is_empty());
}

#[test]
fn rm_force_kills_a_running_pod_then_removes_it() {
    let mut w = world(Release::R20221219);
    let p = w.pod("web", PodStatus::Running, no_network());
    w.runsc.set(&p.id, "running", 10);
    w.ctx
        .db
        .add_resource(&p.id, ResourceKind::Runsc, &p.id)
        .unwrap();
    let e = cleanup::remove(&mut w.ctx, "web", false).unwrap_err();
    assert!(e.to_string().contains("rm -f"), "{e}");
    assert_eq!(w.row(&p.id).unwrap().status, PodStatus::Running);
    cleanup::remove(&mut w.ctx, "web", true).unwrap();
    assert!(w.row(&p.id).is_none());
    assert_eq!(w.runsc.status(&p.id), None);
    let subs = w.runsc.subs();
    assert!(subs.contains(&"kill".to_string()), "{subs:?}");
    assert_eq!(subs.last().map(String::as_str), Some("delete"));
}

#[test]
fn rm_force_removes_a_pod_whose_runsc_flags_are_corrupt() {
    let mut w = world(Release::R20240729);
    let p = w.pod("web", PodStatus::Running, no_network());
    w.ctx
        .db
        .add_resource(&p.id, ResourceKind::Path, "/d/b")
        .unwrap();
    w.ctx
        .db
        .conn()
        .execute(
            "UPDATE pods SET runsc_json='{not json' WHERE id=?1",
            [&p.id],
        )
        .unwrap();
    // Its monitor is gone too: the status cannot be checked with runsc.
    w.ctx.db.set_pod_monitor(&p.id, 4242).unwrap();
    let e = w
        .ctx
        .lookup("web")
        .unwrap()
        .flags()
        .unwrap_err()
        .to_string();
    assert!(e.contains("runsc_json") && e.contains("rm -f web"), "{e}");
    cleanup::remove(&mut w.ctx, "web", true).unwrap();
    assert!(w.row(&p.id).is_none());
    assert_eq!(w.host.calls(), ["remove /d/b"]);
}

#[test]
fn a_removal_with_an_answer_to_give_renames_the_bundle_aside() {
    let mut w = world(Release::R20240729);
    let p = w.pod("web", PodStatus::Exited, no_network());
    let bundle = w.ctx.bundle_dir(&p.id);
    let rootfs = bundle.join("rootfs").display().to_string();
    w.ctx
        .db
        .add_resource(&p.id, ResourceKind::Path, &bundle.display().to_string())
        .unwrap();
    w.ctx
        .db
        .add_resource(&p.id, ResourceKind::Mount, &rootfs)
        .unwrap();
    let later = cleanup::remove_pod_deferring(&mut w.ctx, &p.id).unwrap();
    // The mount is undone first, then the directory is renamed, not removed.
    assert_eq!(w.host.calls(), [format!("unmount {rootfs}")]);
    let gone = bundle.with_file_name(format!("{}{}", cleanup::GONE_PREFIX, p.id));
    assert_eq!(later, std::slice::from_ref(&gone));
    assert!(gone.join("config.json").is_file() && !bundle.exists());
    assert!(w.row(&p.id).is_none());
    assert!(w.ctx.db.resources(Some(&p.id)).unwrap().is_empty());
    // Left behind by a killed monitor: `system gc`'s sweep removes it.
    let swept = cleanup::sweep_paths(&w.ctx, &Default::default()).unwrap();
    assert!(swept.contains(&gone.display().to_string()), "{swept:?}");
    assert!(w
        .host
        .calls()
        .contains(&format!("remove {}", gone.display())));
}
