//! Every outcome of `gvpod checkpoint` through the fakes, on both runsc
//! styles: a snapshot (the pod stopped, or running on with
//! `--leave-running`), or a one-line refusal with the pod as it was. The
//! pure decisions behind the monitor's side are in `checkpoint::outcome`.

use super::{no_network, world, World};
use crate::pod::{checkpoint, CheckpointRequest, PodError};
use crate::runsc::fake::Release;
use crate::state::{CheckpointState, PodStatus};

fn req(leave_running: bool) -> CheckpointRequest {
    CheckpointRequest {
        pod: "web".into(),
        name: Some("snap1".into()),
        leave_running,
        tcp_close: false,
    }
}

fn running_pod(release: Release) -> (World, String) {
    let mut w = world(release);
    let p = w.pod("web", PodStatus::Running, no_network());
    w.runsc.set(&p.id, "running", 0);
    // Its monitor lives: the status needs no runsc call.
    w.ctx.db.set_pod_monitor(&p.id, 4242).unwrap();
    w.host.live(4242, &p.id);
    (w, p.id)
}

fn registered(w: &World) -> Vec<String> {
    w.ctx
        .db
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

#[test]
fn in_place_release_saves_paused_then_stops_the_pod() {
    let (mut w, id) = running_pod(Release::R20240729);
    let meta = checkpoint(&mut w.ctx, req(false)).unwrap();
    assert_eq!(meta.name, "snap1");
    assert_eq!(registered(&w), ["snap1"]);
    // Paused, saved with --leave-running (a failure could not end it),
    // then stopped by gvpod: the container is gone.
    let calls = w.runsc.calls();
    let subs: Vec<&str> = calls.iter().map(|c| c.sub.as_str()).collect();
    assert_eq!(subs, ["pause", "checkpoint", "state", "delete"]);
    assert!(calls[1].args.iter().any(|a| a == "--leave-running"));
    assert_eq!(w.runsc.status(&id), None);
    let c = w.ctx.db.checkpoint_of(&id).unwrap().unwrap();
    assert_eq!((c.state, c.leave_running), (CheckpointState::Done, false));
    // The snapshot is whole: memory image, diff, spec and metadata.
    let dir = std::path::PathBuf::from(&c.dir);
    for f in [
        "checkpoint.img",
        "rootfs-diff.tar",
        "config.json",
        "snapshot.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
}

#[test]
fn in_place_release_with_leave_running_resumes_the_pod() {
    let (mut w, id) = running_pod(Release::R20240729);
    checkpoint(&mut w.ctx, req(true)).unwrap();
    assert_eq!(w.runsc.subs(), ["pause", "checkpoint", "resume"]);
    assert_eq!(w.runsc.status(&id).as_deref(), Some("running"));
    let c = w.ctx.db.checkpoint_of(&id).unwrap().unwrap();
    assert_eq!(c.state, CheckpointState::Resumed);
    assert_eq!(registered(&w), ["snap1"]);
}

#[test]
fn a_refused_save_leaves_the_pod_running_where_runsc_allows_it() {
    let (mut w, id) = running_pod(Release::R20240729);
    w.runsc.fail_next(
        "checkpoint",
        "saving: save rejected due to unsupported networking state: endpoint cannot be saved in connected state: local 198.18.0.2:80",
    );
    let e = checkpoint(&mut w.ctx, req(false)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("save rejected due to unsupported networking state"),
        "{msg}"
    );
    assert!(msg.contains("pod web is still running as it was"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert_eq!(w.runsc.status(&id).as_deref(), Some("running"));
    assert!(registered(&w).is_empty());
    assert!(w.ctx.db.checkpoint_of(&id).unwrap().is_none());
    // The pod can be checkpointed again at once.
    checkpoint(&mut w.ctx, req(true)).unwrap();
}

#[test]
fn a_refused_save_on_20221219_says_the_pod_has_stopped() {
    let (mut w, id) = running_pod(Release::R20221219);
    w.runsc
        .fail_next("checkpoint", "checkpoint failed: no space left on device");
    let e = checkpoint(&mut w.ctx, req(false)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("runsc 20221219 ended the sandbox, so pod web has stopped"),
        "{msg}"
    );
    assert_eq!(w.runsc.status(&id).as_deref(), Some("stopped"));
    assert!(registered(&w).is_empty());
    assert!(w.ctx.db.checkpoint_of(&id).unwrap().is_none());
}

#[test]
fn a_20221219_save_ends_the_sandbox_and_registers_the_snapshot() {
    let (mut w, id) = running_pod(Release::R20221219);
    checkpoint(&mut w.ctx, req(false)).unwrap();
    let calls = w.runsc.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].sub, "checkpoint");
    assert!(!calls[0].args.iter().any(|a| a == "--leave-running"));
    assert_eq!(w.runsc.status(&id).as_deref(), Some("stopped"));
    assert_eq!(registered(&w), ["snap1"]);
    let c = w.ctx.db.checkpoint_of(&id).unwrap().unwrap();
    assert_eq!(c.state, CheckpointState::Done);
}

#[test]
fn a_pause_that_fails_changes_nothing() {
    let (mut w, id) = running_pod(Release::R20240729);
    w.runsc
        .fail_next("pause", "cannot pause: container is stopping");
    let e = checkpoint(&mut w.ctx, req(false)).unwrap_err();
    assert!(e.to_string().contains("cannot pause it"), "{e}");
    assert_eq!(w.runsc.subs(), ["pause"]);
    assert_eq!(w.runsc.status(&id).as_deref(), Some("running"));
    assert!(w.ctx.db.checkpoint_of(&id).unwrap().is_none());
}

#[test]
fn pods_that_cannot_be_saved_are_refused_before_runsc_is_asked() {
    for (opts, says) in [
        (
            crate::bundle::PodOptions {
                tty: true,
                ..no_network()
            },
            "has a terminal",
        ),
        (
            crate::bundle::PodOptions {
                network: "host".into(),
                ..no_network()
            },
            "--network host",
        ),
    ] {
        let mut w = world(Release::R20240729);
        let p = w.pod("web", PodStatus::Running, opts);
        w.runsc.set(&p.id, "running", 0);
        let e = checkpoint(&mut w.ctx, req(false)).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(
            w.runsc.subs().iter().all(|s| s == "state"),
            "{:?}",
            w.runsc.subs()
        );
    }
    let mut w = world(Release::R20240729);
    w.pod("web", PodStatus::Exited, no_network());
    let e = checkpoint(&mut w.ctx, req(false)).unwrap_err();
    assert!(matches!(e, PodError::BadState { .. }), "{e}");
}

#[test]
fn open_connections_are_named_and_the_save_is_not_tried() {
    let mut w = world(Release::R20221219);
    let p = w.pod(
        "web",
        PodStatus::Running,
        crate::bundle::PodOptions {
            network: "bridge".into(),
            ..Default::default()
        },
    );
    w.runsc.set(&p.id, "running", 0);
    // One listener (0A) and one established connection (01).
    w.runsc.set_tcp(
        "  sl  local_address rem_address   st\n   0: 00000000:0050 00000000:0000 0A\n   1: 021212C6:0050 011212C6:D2A4 01\n",
    );
    let e = checkpoint(&mut w.ctx, req(false)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("198.18.18.2:80"), "{msg}");
    assert_eq!(e.exit_code(), 2, "{msg}");
    assert!(!w.runsc.subs().contains(&"checkpoint".to_string()));
    assert_eq!(w.runsc.status(&p.id).as_deref(), Some("running"));
}
