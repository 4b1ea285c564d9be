//! When a Schedule runs: pure decisions from its cron, when it appeared,
//! the run time of its last Backup and whether that Backup still runs.
//!
//! The first run is the first cron time after the Schedule appeared. A
//! controller that was down for several runs creates one Backup for the
//! latest of them, not one per missed run. A run whose Backup is still
//! going waits for it: never two at once for one schedule. Backups are
//! named after the run time in UTC (`<schedule>-<YYYYMMDDhhmmss>`), so a
//! controller that restarts after creating one finds it by name instead of
//! creating another.

use jiff::Timestamp;

use crate::k8s::cron::Cron;

/// The longest name of a Kubernetes object that is a DNS subdomain.
pub const MAX_NAME: usize = 253;
/// `-` and fourteen digits.
const SUFFIX: usize = 15;

/// What a Schedule's reconciler does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Create the Backup of the run at `at`, named `name`.
    Create { at: Timestamp, name: String },
    /// A run is due but the schedule's last Backup has not finished.
    Busy { due: Timestamp },
    /// Nothing is due before `at` (`None`: the cron never runs again).
    WaitUntil(Option<Timestamp>),
}

/// The name of the Backup of `schedule`'s run at `at`.
pub fn backup_name(schedule: &str, at: Timestamp) -> String {
    format!("{schedule}-{}", at.strftime("%Y%m%d%H%M%S"))
}

/// Whether a Schedule's name leaves room for the run time in its Backups'
/// names; the reason when not.
pub fn check_name(schedule: &str) -> Result<(), String> {
    if schedule.len() + SUFFIX > MAX_NAME {
        return Err(format!(
            "the name is {} characters long; Backups are named <schedule>-<YYYYMMDDhhmmss>, so it may have at most {}",
            schedule.len(),
            MAX_NAME - SUFFIX
        ));
    }
    Ok(())
}

/// Decides the next step of a schedule.
///
/// `appeared` is the Schedule's creation time, `last_run` the run time of
/// the newest Backup it created (if any), `running` whether that Backup is
/// still New or InProgress.
pub fn decide(
    cron: &Cron,
    schedule: &str,
    appeared: Timestamp,
    last_run: Option<Timestamp>,
    running: bool,
    now: Timestamp,
) -> Decision {
    let base = last_run.map_or(appeared, |l| l.max(appeared));
    match cron.last_between(base, now) {
        Some(due) if running => Decision::Busy { due },
        Some(at) => Decision::Create {
            at,
            name: backup_name(schedule, at),
        },
        None => Decision::WaitUntil(cron.next_after(base.max(now))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_run_is_the_first_cron_time_after_the_schedule_appeared() {
        let cron = Cron::parse("0 * * * *", None).unwrap();
        let appeared = ts("2026-12-05T10:00:00Z");
        // At 10:00 exactly nothing is due: the run at 10:00 is not after it.
        assert_eq!(
            decide(&cron, "nightly", appeared, None, false, ts("2026-12-05T10:30:00Z")),
            Decision::WaitUntil(Some(ts("2026-12-05T11:00:00Z")))
        );
        assert_eq!(
            decide(&cron, "nightly", appeared, None, false, ts("2026-12-05T11:00:01Z")),
            Decision::Create {
                at: ts("2026-12-05T11:00:00Z"),
                name: "nightly-20261205110000".into()
            }
        );
    }

    #[test]
    fn missed_runs_give_one_catch_up_for_the_latest() {
        let cron = Cron::parse("*/5 * * * *", None).unwrap();
        let appeared = ts("2026-12-01T00:00:00Z");
        let last = Some(ts("2026-12-01T00:05:00Z"));
        // Down from 00:07 to 03:02: one Backup, for 03:00.
        let d = decide(&cron, "s", appeared, last, false, ts("2026-12-01T03:02:00Z"));
        assert_eq!(
            d,
            Decision::Create {
                at: ts("2026-12-01T03:00:00Z"),
                name: "s-20261201030000".into()
            }
        );
        // Once that one exists, nothing more until 03:05.
        let d = decide(
            &cron,
            "s",
            appeared,
            Some(ts("2026-12-01T03:00:00Z")),
            false,
            ts("2026-12-01T03:02:00Z"),
        );
        assert_eq!(d, Decision::WaitUntil(Some(ts("2026-12-01T03:05:00Z"))));
    }

    #[test]
    fn a_running_backup_holds_the_next_run() {
        let cron = Cron::parse("* * * * *", None).unwrap();
        let appeared = ts("2026-12-01T00:00:00Z");
        let d = decide(
            &cron,
            "s",
            appeared,
            Some(ts("2026-12-01T00:01:00Z")),
            true,
            ts("2026-12-01T00:03:30Z"),
        );
        assert_eq!(
            d,
            Decision::Busy {
                due: ts("2026-12-01T00:03:00Z")
            }
        );
    }

    #[test]
    fn long_names_are_refused_before_any_backup() {
        assert!(check_name(&"a".repeat(238)).is_ok());
        let why = check_name(&"a".repeat(239)).unwrap_err();
        assert!(why.contains("at most 238"), "{why}");
        assert_eq!(backup_name("x", ts("2027-01-02T03:04:05Z")), "x-20270102030405");
    }
}
