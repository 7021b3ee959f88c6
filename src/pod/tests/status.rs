//! Pod status transitions as `Ctx::refresh` reconciles a row with the host
//! (through the fakes): every command that looks at a pod goes through it.

use super::{no_network, world};
use crate::runsc::fake::Release;
use crate::state::PodStatus;

#[test]
fn a_running_pod_whose_monitor_lives_is_taken_at_its_word() {
    let mut w = world(Release::R20221219);
    let p = w.pod("web", PodStatus::Running, no_network());
    w.ctx.db.set_pod_monitor(&p.id, 4242).unwrap();
    w.host.live(4242, &p.id);
    let got = w.ctx.refresh(w.row(&p.id).unwrap()).unwrap();
    assert_eq!(got.status, PodStatus::Running);
    assert_eq!(got.monitor_pid, Some(4242));
    // No runsc call was needed to know.
    assert!(w.runsc.calls().is_empty(), "{:?}", w.runsc.calls());
}

#[test]
fn a_running_pod_without_monitor_runs_while_runsc_says_so() {
    for status in ["running", "created"] {
        let mut w = world(Release::R20240729);
        let p = w.pod("web", PodStatus::Running, no_network());
        w.runsc.set(&p.id, status, 77);
        let got = w.ctx.refresh(p.clone()).unwrap();
        assert_eq!(got.status, PodStatus::Running, "runsc says {status}");
        assert_eq!(w.runsc.subs(), ["state"]);
    }
}

#[test]
fn a_running_pod_whose_monitor_and_sandbox_are_gone_has_exited_with_no_code() {
    for runsc_says in [None, Some("stopped")] {
        let mut w = world(Release::R20221219);
        let p = w.pod("web", PodStatus::Running, no_network());
        // The monitor was SIGKILLed: its pid is recorded, nothing runs.
        w.ctx.db.set_pod_monitor(&p.id, 4242).unwrap();
        if let Some(s) = runsc_says {
            w.runsc.set(&p.id, s, 0);
        }
        let got = w.ctx.refresh(w.row(&p.id).unwrap()).unwrap();
        assert_eq!(got.status, PodStatus::Exited, "runsc says {runsc_says:?}");
        assert_eq!(
            (got.exit_code, got.pid, got.monitor_pid),
            (None, None, None)
        );
        assert!(got.finished.is_some());
        // And it is recorded so: the next look agrees without runsc.
        let again = w.row(&p.id).unwrap();
        assert_eq!((again.status, again.monitor_pid), (PodStatus::Exited, None));
    }
}

#[test]
fn a_monitor_that_died_is_forgotten_but_a_live_sandbox_keeps_the_pod_running() {
    let mut w = world(Release::R20240729);
    let p = w.pod("web", PodStatus::Running, no_network());
    w.ctx.db.set_pod_monitor(&p.id, 4242).unwrap();
    w.runsc.set(&p.id, "running", 99);
    let got = w.ctx.refresh(w.row(&p.id).unwrap()).unwrap();
    assert_eq!((got.status, got.monitor_pid), (PodStatus::Running, None));
}

#[test]
fn pid_reuse_does_not_pass_for_the_monitor() {
    let mut w = world(Release::R20221219);
    let p = w.pod("web", PodStatus::Running, no_network());
    w.ctx.db.set_pod_monitor(&p.id, 4242).unwrap();
    // Pid 4242 now belongs to another pod's monitor.
    w.host.live(4242, "someone-else");
    let got = w.ctx.refresh(w.row(&p.id).unwrap()).unwrap();
    assert_eq!(got.status, PodStatus::Exited);
}

#[test]
fn created_and_exited_pods_are_left_alone() {
    for status in [PodStatus::Created, PodStatus::Exited] {
        let mut w = world(Release::R20221219);
        let p = w.pod("web", status, no_network());
        let got = w.ctx.refresh(p).unwrap();
        assert_eq!(got.status, status);
        assert!(w.runsc.calls().is_empty());
    }
}

#[test]
fn a_pod_stopped_by_its_checkpoint_is_recorded_as_checkpointed() {
    use crate::state::{CheckpointEvent, CheckpointRow, CheckpointState};
    let mut w = world(Release::R20221219);
    let p = w.pod("web", PodStatus::Running, no_network());
    let c = CheckpointRow {
        pod_id: p.id.clone(),
        snapshot_id: "sid".into(),
        snapshot_name: "web-snap".into(),
        dir: "/nowhere".into(),
        leave_running: false,
        state: CheckpointState::Saving,
        at: chrono::Utc::now(),
    };
    assert!(w.ctx.db.begin_checkpoint(&c).unwrap());
    w.ctx
        .db
        .advance_checkpoint(&p.id, CheckpointEvent::ImageWritten, None)
        .unwrap();
    w.ctx
        .db
        .advance_checkpoint(&p.id, CheckpointEvent::Registered, None)
        .unwrap();
    // The monitor recorded the exit: the pod shows which snapshot it went to.
    w.ctx
        .db
        .set_pod_exited(&p.id, &crate::util::now_rfc3339(), Some(0))
        .unwrap();
    let row = w.row(&p.id).unwrap();
    assert_eq!(
        crate::pod::checkpoint::checkpointed_to(&w.ctx, &row).as_deref(),
        Some("web-snap")
    );
    // Started again since: that launch is not the checkpoint's.
    std::thread::sleep(std::time::Duration::from_millis(2));
    w.ctx
        .db
        .set_pod_started(&p.id, &crate::util::now_rfc3339(), Some(5), 6)
        .unwrap();
    let row = w.row(&p.id).unwrap();
    assert_eq!(crate::pod::checkpoint::checkpointed_to(&w.ctx, &row), None);
}
