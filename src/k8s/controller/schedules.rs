//! The Schedule reconciler: creates Backups on time (see [`super::schedule`]
//! for when).
//!
//! Each reconciliation reads the Schedule and the Backups labelled with it
//! ([`LABEL_SCHEDULE`]), decides, and acts: create the Backup of a due run
//! (named after the run time, so that a restarted controller finds it by
//! name and a 409 AlreadyExists counts as created), or wait for the next
//! run, or wait for the running Backup to finish. Changes of those Backups
//! wake the Schedule up, so a finished Backup lets an overdue run start at
//! once.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use super::metrics::names;
use super::record::LABEL_SCHEDULE;
use super::schedule::{check_name, decide, Decision};
use super::status::patch_status;
use super::{drain, error_policy, log, Context, Error};
use crate::k8s::crd::backup::{Backup, BackupSpec, DEFAULT_TTL};
use crate::k8s::crd::schedule::{Schedule, SchedulePhase, ScheduleStatus};
use crate::k8s::cron::Cron;

/// How long a Schedule whose Backup still runs waits before looking again
/// if no change of that Backup wakes it first.
const BUSY_RECHECK: Duration = Duration::from_secs(300);

/// Watches every Schedule, and the Backups made by one, and reconciles
/// until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<Schedule> = Api::all(ctx.client.clone());
    // A change of a scheduled Backup wakes its Schedule; its labels are
    // all that is needed, so only metadata is watched.
    let backups: Api<PartialObjectMeta<Backup>> = Api::all(ctx.client.clone());
    let trigger = watcher(backups, watcher::Config::default().labels(LABEL_SCHEDULE))
        .default_backoff()
        .touched_objects();
    let stream = super::slim_controller(api, watcher::Config::default())
        .watches_stream(trigger, |b: PartialObjectMeta<Backup>| {
            let namespace = b.metadata.namespace.clone()?;
            let schedule = b.metadata.labels.as_ref()?.get(LABEL_SCHEDULE)?;
            Some(ObjectRef::<Schedule>::new(schedule).within(&namespace))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Schedule", stream).boxed()
}

/// What the Backups of one Schedule say.
#[derive(Debug, Default, PartialEq, Eq)]
struct Runs {
    /// The newest run time among the Backups' names.
    newest: Option<Timestamp>,
    /// A Backup that has not reached a final phase.
    running: Option<String>,
    /// When the newest Completed Backup completed.
    last_success: Option<Timestamp>,
}

/// The run time in the name of a Backup `<schedule>-<YYYYMMDDhhmmss>`.
fn run_time_of(schedule: &str, backup: &str) -> Option<Timestamp> {
    let digits = backup.strip_prefix(schedule)?.strip_prefix('-')?;
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let civil = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", digits).ok()?;
    civil.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
}

fn runs(schedule: &str, backups: &[Backup]) -> Runs {
    let mut out = Runs::default();
    for b in backups {
        let name = b.name_any();
        if let Some(t) = run_time_of(schedule, &name) {
            out.newest = out.newest.max(Some(t));
        }
        let phase = b.status.as_ref().and_then(|s| s.phase);
        let deleted = b.metadata.deletion_timestamp.is_some();
        if !deleted && !phase.is_some_and(|p| p.is_final()) {
            out.running = Some(name);
        }
        if phase == Some(crate::k8s::crd::backup::Phase::Completed) {
            let done = b.status.as_ref().and_then(|s| s.completion_timestamp);
            out.last_success = out.last_success.max(done);
        }
    }
    out
}

fn time_value(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.to_string()))
}

/// Writes the status fields that differ from `want`.
async fn write_status(api: &Api<Schedule>, obj: &Schedule, want: ScheduleStatus) -> Result<(), Error> {
    let have = obj.status.clone().unwrap_or_default();
    if have == want {
        return Ok(());
    }
    let patch = json!({
        "phase": want.phase,
        "lastBackup": time_value(want.last_backup),
        "nextBackup": time_value(want.next_backup),
        "message": want.message,
    });
    patch_status(api, &obj.name_any(), patch).await?;
    Ok(())
}

/// The spec of the Schedule's Backups: its template, with the default ttl
/// when the template gives none (a Schedule without a template has an
/// empty one).
fn template(schedule: &Schedule) -> BackupSpec {
    let mut spec = schedule.spec.template.clone();
    if spec.ttl.is_empty() {
        spec.ttl = DEFAULT_TTL.to_owned();
    }
    spec
}

/// The Backup of the run at `at`: the template's spec, the schedule's
/// label, and an owner reference when the Schedule asks for one.
fn backup_of(schedule: &Schedule, name: &str) -> Backup {
    let mut backup = Backup::new(name, template(schedule));
    backup.metadata.namespace = schedule.namespace();
    backup.metadata.labels = Some([(LABEL_SCHEDULE.to_owned(), schedule.name_any())].into());
    if schedule.spec.use_owner_references_in_backup {
        backup.metadata.owner_references = schedule.controller_owner_ref(&()).map(|r| vec![r]);
    }
    backup
}

/// How long until `t` (at least a moment, so that a timer that fires a
/// little early comes back after the run time).
fn until(t: Timestamp, now: Timestamp) -> Duration {
    let ms = t.as_millisecond().saturating_sub(now.as_millisecond()).max(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 200)
}

async fn reconcile(obj: Arc<Schedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<Schedule> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = obj.status.clone().unwrap_or_default();
    let cron = check_name(&name)
        .map_err(|why| format!("Schedule name: {why}"))
        .and_then(|()| Cron::parse(&obj.spec.schedule, None).map_err(|e| e.to_string()))
        .and_then(|cron| match template(&obj).ttl() {
            Ok(_) => Ok(cron),
            Err(e) => Err(format!("template.ttl: {e}")),
        });
    let cron = match cron {
        Ok(c) => c,
        Err(why) => {
            if status.phase != Some(SchedulePhase::FailedValidation) || status.message.as_deref() != Some(&why) {
                log::warn(&format!("Schedule {namespace}/{name}: {why}"));
                ctx.event(obj.as_ref(), true, "FailedValidation", why.clone()).await;
            }
            let want = ScheduleStatus {
                phase: Some(SchedulePhase::FailedValidation),
                last_backup: status.last_backup,
                next_backup: None,
                message: Some(why),
            };
            write_status(&api, &obj, want).await?;
            return Ok(Action::await_change());
        }
    };
    let enabled = |next: Option<Timestamp>, last: Option<Timestamp>, message: Option<String>| ScheduleStatus {
        phase: Some(SchedulePhase::Enabled),
        last_backup: last,
        next_backup: next,
        message,
    };
    if obj.spec.paused {
        write_status(&api, &obj, enabled(None, status.last_backup, None)).await?;
        return Ok(Action::await_change());
    }

    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = format!("{LABEL_SCHEDULE}={name}");
    let list = backups.list(&ListParams::default().labels(&selector)).await?;
    let runs = runs(&name, &list.items);
    if let Some(done) = runs.last_success {
        let label = format!("{namespace}/{name}");
        ctx.metrics()
            .set(names::LAST_SUCCESS, &[("schedule", &label)], done.as_second() as f64);
    }
    let appeared = obj
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let last_run = status.last_backup.max(runs.newest);
    let now = Timestamp::now();
    match decide(&cron, &name, appeared, last_run, runs.running.is_some(), now) {
        Decision::Create { at, name: backup } => {
            match backups.create(&PostParams::default(), &backup_of(&obj, &backup)).await {
                Ok(_) => {
                    log::info(&format!(
                        "Schedule {namespace}/{name}: created Backup {backup} for the run at {at}"
                    ));
                    ctx.event(
                        obj.as_ref(),
                        false,
                        "BackupCreated",
                        format!("Backup {backup} for the run at {at}"),
                    )
                    .await;
                }
                // Created before a restart: the name is the run's.
                Err(e) if crate::k8s::client::status_code(&e) == Some(409) => {}
                Err(e) => return Err(e.into()),
            }
            let next = cron.next_after(at.max(now));
            write_status(&api, &obj, enabled(next, Some(at), None)).await?;
            Ok(next.map_or_else(|| Action::requeue(BUSY_RECHECK), |t| Action::requeue(until(t, now))))
        }
        Decision::Busy { due } => {
            let running = runs.running.unwrap_or_default();
            let message = format!("the run at {due} waits for Backup {running} to finish");
            write_status(&api, &obj, enabled(Some(due), last_run, Some(message))).await?;
            Ok(Action::requeue(BUSY_RECHECK))
        }
        Decision::WaitUntil(next) => {
            write_status(&api, &obj, enabled(next, last_run, None)).await?;
            Ok(next.map_or_else(Action::await_change, |t| Action::requeue(until(t, now))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::controller::schedule::backup_name;
    use crate::k8s::crd::backup::{BackupStatus, Phase};

    fn backup(name: &str, phase: Option<Phase>) -> Backup {
        let mut b = Backup::new(name, Default::default());
        b.status = phase.map(|p| BackupStatus {
            phase: Some(p),
            completion_timestamp: Some("2026-12-01T00:02:00Z".parse().unwrap()),
            ..Default::default()
        });
        b
    }

    #[test]
    fn run_times_come_from_the_names_of_the_schedules_backups() {
        assert_eq!(
            run_time_of("nightly", "nightly-20261205110000"),
            Some("2026-12-05T11:00:00Z".parse().unwrap())
        );
        assert_eq!(run_time_of("nightly", "nightly-2026120511000"), None);
        assert_eq!(run_time_of("nightly", "nightly-x0261205110000"), None);
        assert_eq!(run_time_of("nightly", "other-20261205110000"), None);
        assert_eq!(run_time_of("nightly", "nightly-20261340110000"), None);
    }

    #[test]
    fn a_backup_without_a_final_phase_is_running() {
        let r = runs(
            "s",
            &[
                backup("s-20261201000000", Some(Phase::Completed)),
                backup("s-20261201000100", None),
                backup("manual", Some(Phase::Failed)),
            ],
        );
        assert_eq!(r.newest, Some("2026-12-01T00:01:00Z".parse().unwrap()));
        assert_eq!(r.running.as_deref(), Some("s-20261201000100"));
        assert_eq!(r.last_success, Some("2026-12-01T00:02:00Z".parse().unwrap()));
        let r = runs("s", &[backup("s-20261201000000", Some(Phase::PartiallyFailed))]);
        assert_eq!((r.running, r.last_success), (None, None));
    }

    #[test]
    fn backups_carry_the_template_the_label_and_maybe_an_owner() {
        let mut s = Schedule::new(
            "nightly",
            serde_json::from_value(json!({"schedule": "@daily", "template": {"includedNamespaces": ["shop"]}}))
                .unwrap(),
        );
        s.metadata.namespace = Some("team".into());
        s.metadata.uid = Some("u-1".into());
        let b = backup_of(&s, &backup_name("nightly", "2026-12-06T00:00:00Z".parse().unwrap()));
        assert_eq!(b.name_any(), "nightly-20261206000000");
        assert_eq!(b.namespace().as_deref(), Some("team"));
        assert_eq!(b.labels().get(LABEL_SCHEDULE).map(String::as_str), Some("nightly"));
        assert_eq!(b.spec.filters.included_namespaces, vec!["shop".to_owned()]);
        assert_eq!(b.spec.ttl, "720h");
        let bare: Schedule = Schedule::new("bare", serde_json::from_value(json!({"schedule": "@daily"})).unwrap());
        assert_eq!(template(&bare).ttl, "720h");
        assert!(b.metadata.owner_references.is_none());
        s.spec.use_owner_references_in_backup = true;
        let b = backup_of(&s, "nightly-20261206000000");
        let owner = &b.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Schedule", "nightly", "u-1")
        );
        assert_eq!(owner.controller, Some(true));
    }
}
