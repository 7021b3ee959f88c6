//! Restart policies as decisions, with docker's semantics (moby's
//! `restartmanager` and `daemon/monitor.go`), kept pure so they are
//! unit-tested without a sandbox. The pod's monitor carries them out
//! (`monitor::exit`) and `gvpod system boot` ([`super::boot`]) asks
//! [`at_boot`]. Invariants:
//! * a stop or kill by the user is never undone: no policy restarts a pod
//!   the user stopped (the row's `stopped_by_user`, written before the
//!   signal is sent);
//! * `always` and `unless-stopped` restart on any exit; `on-failure` only
//!   on a non-zero (or unknown) exit, and with `on-failure:N` at most N
//!   times since the user last started the pod (0: no limit);
//! * the back-off before a restart starts at [`FIRST_DELAY`], doubles with
//!   each restart up to [`MAX_DELAY`], and starts over once the pod ran
//!   [`RESET_AFTER`].

use std::time::Duration;

use crate::bundle::RestartPolicy;

/// The back-off before the first restart (docker's 100 ms).
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest back-off (docker's one minute).
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);
/// A launch that ran this long starts the back-off over (docker's 10 s).
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(10);

/// How a launch of the pod ended, as its restart policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    /// The pod's exit code (`None`: unknown, counted as a failure).
    pub code: Option<i32>,
    /// Restarts since the user last started the pod.
    pub restarts: u32,
    /// The user stopped or killed the pod.
    pub stopped_by_user: bool,
    /// How long the launch ran.
    pub ran_for: Duration,
    /// The back-off before this launch (`None`: it was not a restart).
    pub last_delay: Option<Duration>,
}

/// Whether `policy` restarts a pod whose launch ended as `e`, and after
/// how long.
pub(crate) fn after_exit(policy: RestartPolicy, e: &Ended) -> Option<Duration> {
    if e.stopped_by_user {
        return None;
    }
    let restart = match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            e.code != Some(0) && (max_retries == 0 || e.restarts < max_retries)
        }
    };
    restart.then(|| backoff(e.last_delay, e.ran_for))
}

/// The next back-off: the first after a launch that ran [`RESET_AFTER`]
/// (or that was no restart), else twice the last, at most [`MAX_DELAY`].
pub(crate) fn backoff(last: Option<Duration>, ran_for: Duration) -> Duration {
    match last {
        Some(d) if ran_for < RESET_AFTER => (d * 2).min(MAX_DELAY),
        _ => FIRST_DELAY,
    }
}

/// What `gvpod system boot` knows of a pod whose monitor and sandbox a
/// host reboot took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AtBoot {
    /// The pod was recorded running when the host went down.
    pub was_running: bool,
    /// It was ever started (a pod only created stays so).
    pub started_before: bool,
    /// The user stopped or killed it.
    pub stopped_by_user: bool,
}

/// Whether `system boot` starts the pod (docker's daemon start): `always`
/// whatever happened to it, `unless-stopped` unless the user stopped it,
/// `on-failure` if the reboot cut it short.
pub(crate) fn at_boot(policy: RestartPolicy, b: &AtBoot) -> bool {
    b.started_before
        && match policy {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !b.stopped_by_user,
            RestartPolicy::OnFailure { .. } => b.was_running && !b.stopped_by_user,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ended(code: Option<i32>, restarts: u32) -> Ended {
        Ended {
            code,
            restarts,
            stopped_by_user: false,
            ran_for: 50 * MS,
            last_delay: None,
        }
    }

    #[test]
    fn which_exits_restart() {
        let on_failure = |n| RestartPolicy::OnFailure { max_retries: n };
        // (policy, exit code, restarts so far, restarted?)
        let table = [
            (RestartPolicy::No, Some(1), 0, false),
            (RestartPolicy::No, Some(0), 0, false),
            (RestartPolicy::Always, Some(0), 0, true),
            (RestartPolicy::Always, Some(137), 50, true),
            (RestartPolicy::UnlessStopped, Some(0), 3, true),
            (RestartPolicy::UnlessStopped, None, 0, true),
            (on_failure(0), Some(0), 0, false),
            (on_failure(0), Some(3), 1000, true),
            (on_failure(0), None, 0, true),
            (on_failure(2), Some(3), 0, true),
            (on_failure(2), Some(3), 1, true),
            (on_failure(2), Some(3), 2, false),
            (on_failure(2), Some(0), 1, false),
        ];
        for (policy, code, restarts, want) in table {
            let got = after_exit(policy, &ended(code, restarts));
            assert_eq!(
                got.is_some(),
                want,
                "{policy:?} code {code:?} after {restarts} restarts"
            );
            if want {
                assert_eq!(got, Some(FIRST_DELAY), "the first back-off");
            }
        }
    }

    #[test]
    fn a_stop_by_the_user_is_never_undone() {
        for policy in [
            RestartPolicy::Always,
            RestartPolicy::UnlessStopped,
            RestartPolicy::OnFailure { max_retries: 0 },
        ] {
            for code in [Some(0), Some(143), Some(137), None] {
                let e = Ended {
                    stopped_by_user: true,
                    ..ended(code, 0)
                };
                assert_eq!(after_exit(policy, &e), None, "{policy:?} {code:?}");
            }
        }
    }

    #[test]
    fn the_back_off_doubles_caps_and_starts_over_after_10s() {
        let mut last = None;
        let mut seen = vec![];
        for _ in 0..12 {
            let e = Ended {
                last_delay: last,
                ..ended(Some(1), 0)
            };
            let d = after_exit(RestartPolicy::Always, &e).unwrap();
            seen.push(d.as_millis());
            last = Some(d);
        }
        assert_eq!(
            seen,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        // A launch that ran 10 s starts over; 9.9 s does not.
        assert_eq!(backoff(Some(MAX_DELAY), RESET_AFTER), FIRST_DELAY);
        assert_eq!(backoff(Some(400 * MS), 9900 * MS), 800 * MS);
        assert_eq!(backoff(None, MS), FIRST_DELAY);
    }

    #[test]
    fn which_pods_boot_starts() {
        let b = |was_running, started_before, stopped_by_user| AtBoot {
            was_running,
            started_before,
            stopped_by_user,
        };
        let of = RestartPolicy::OnFailure { max_retries: 1 };
        // (policy, was running, started before, stopped by user, started?)
        let table = [
            (RestartPolicy::No, true, true, false, false),
            (RestartPolicy::Always, true, true, false, true),
            (RestartPolicy::Always, false, true, true, true),
            (RestartPolicy::Always, false, false, false, false),
            (RestartPolicy::UnlessStopped, true, true, false, true),
            (RestartPolicy::UnlessStopped, false, true, false, true),
            (RestartPolicy::UnlessStopped, false, true, true, false),
            (of, true, true, false, true),
            (of, false, true, false, false),
            (of, false, true, true, false),
        ];
        for (policy, run, started, stopped, want) in table {
            assert_eq!(
                at_boot(policy, &b(run, started, stopped)),
                want,
                "{policy:?} running {run} started {started} stopped {stopped}"
            );
        }
    }
}
