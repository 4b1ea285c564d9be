//! Repository maintenance as Jobs: `cairn prune` on `maintenance.schedule`
//! and `cairn check --read-data-subset` on `maintenance.checkSchedule`, in
//! the controller's namespace ([`job`] builds them).
//!
//! A controller of its own over BackupRepositories, woken also by changes
//! of the Jobs it owns. For each kind a repository asks for, a
//! reconciliation: records the newest finished Job in the status
//! (`lastMaintenance` / `lastCheck`, merge-patched: the BackupRepository
//! reconciler owns `phase` and `message`), counts it in the metrics and
//! makes an event; deletes finished Jobs beyond `keepJobs`; then starts the
//! Job of a due run unless one of that kind still runs. When runs were
//! missed (the controller was down) one Job catches up, for the latest.
//!
//! The rule of namespaces: a Job reads the repository's Secrets through
//! references, and a pod can only reference Secrets of its own namespace,
//! so maintenance runs only for BackupRepositories in the controller's
//! namespace. Others get a status saying so, and no Jobs. A Job's pod
//! reaches the repository by its URL alone: object stores work, a local
//! path works only if the image sees it at that path.

pub mod job;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use self::job::{Kind, LABEL_MAINTENANCE, LABEL_REPOSITORY};
use super::metrics::names;
use super::schedule::{decide, Decision};
use super::status::patch_status;
use super::{drain, error_policy, log, Context, Error};
use crate::k8s::client::status_code;
use crate::k8s::crd::repository::{BackupRepository, JobResult, Maintenance, MaintenanceResult};
use crate::k8s::cron::Cron;

/// Starts maintenance Jobs when due and records their results, until
/// shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<BackupRepository> = Api::all(ctx.client.clone());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let stream = super::slim_controller(api, watcher::Config::default())
        .watches(jobs, watcher::Config::default().labels(LABEL_REPOSITORY), |j: Job| {
            let namespace = j.namespace()?;
            let owner = j
                .owner_references()
                .iter()
                .find(|r| r.kind == "BackupRepository" && r.controller == Some(true))?;
            Some(ObjectRef::<BackupRepository>::new(&owner.name).within(&namespace))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("BackupRepository maintenance", stream).boxed()
}

async fn reconcile(repo: Arc<BackupRepository>, ctx: Arc<Context>) -> Result<Action, Error> {
    if repo.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // The cache may not hold this reconciler's own last status write yet
    // (a reconcile queued while the previous one ran): a result it already
    // recorded would be recorded, counted and announced again.
    let api: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &repo.namespace().unwrap_or_default());
    let Some(repo) = api.get_opt(&repo.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if repo.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(maintenance) = repo.spec.maintenance.clone() else {
        return Ok(Action::await_change());
    };
    let namespace = repo.namespace().unwrap_or_default();
    let mut wake: Option<Timestamp> = None;
    for kind in Kind::ALL {
        let Some(schedule) = kind.schedule(&maintenance) else {
            continue;
        };
        let next = if namespace == ctx.settings.namespace {
            reconcile_kind(&ctx, &repo, &maintenance, kind, schedule).await?
        } else {
            let why = format!(
                "not run: maintenance Jobs run in the controller's namespace {} and read the repository's Secrets there; create the BackupRepository in {} to have it maintained",
                ctx.settings.namespace, ctx.settings.namespace
            );
            refuse(&ctx, &repo, kind, why).await?;
            None
        };
        wake = match (wake, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let now = Timestamp::now();
    Ok(wake.map_or_else(Action::await_change, |t| {
        let ms = t.as_millisecond().saturating_sub(now.as_millisecond()).max(0);
        Action::requeue(std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 200))
    }))
}

/// The result of `kind` in the repository's status.
fn last_result(repo: &BackupRepository, kind: Kind) -> Option<MaintenanceResult> {
    let status = repo.status.as_ref()?;
    match kind {
        Kind::Prune => status.last_maintenance.clone(),
        Kind::Check => status.last_check.clone(),
    }
}

/// Merge-patches `lastMaintenance` or `lastCheck`, every field given (so
/// that nothing of an earlier result stays).
async fn write_result(
    ctx: &Context,
    repo: &BackupRepository,
    kind: Kind,
    result: &MaintenanceResult,
) -> Result<(), Error> {
    let api: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &repo.namespace().unwrap_or_default());
    let value = json!({
        "time": result.time.map_or(Value::Null, |t| json!(t.to_string())),
        "job": result.job,
        "result": result.result,
        "message": result.message,
    });
    patch_status(&api, &repo.name_any(), json!({ kind.status_field(): value })).await?;
    Ok(())
}

/// Says in the status (once) why `kind` does not run.
async fn refuse(ctx: &Context, repo: &BackupRepository, kind: Kind, why: String) -> Result<(), Error> {
    let last = last_result(repo, kind);
    if last
        .as_ref()
        .is_some_and(|l| l.job.is_none() && l.message.as_deref() == Some(&why))
    {
        return Ok(());
    }
    let who = format!(
        "BackupRepository {}/{}",
        repo.namespace().unwrap_or_default(),
        repo.name_any()
    );
    log::warn(&format!("{who}: {}: {why}", kind.schedule_field()));
    ctx.event(
        repo,
        true,
        "MaintenanceNotRun",
        format!("{}: {why}", kind.schedule_field()),
    )
    .await;
    let result = MaintenanceResult {
        time: None,
        job: None,
        result: Some(JobResult::Failed),
        message: Some(why),
    };
    write_result(ctx, repo, kind, &result).await
}

/// One kind of maintenance of one repository; the time to look again.
async fn reconcile_kind(
    ctx: &Context,
    repo: &BackupRepository,
    maintenance: &Maintenance,
    kind: Kind,
    schedule: &str,
) -> Result<Option<Timestamp>, Error> {
    let cron = match Cron::parse(schedule, None) {
        Ok(c) => c,
        Err(e) => {
            refuse(ctx, repo, kind, format!("{}: {e}", kind.schedule_field())).await?;
            return Ok(None);
        }
    };
    let repo_name = repo.name_any();
    let who = format!("BackupRepository {}/{repo_name}", repo.namespace().unwrap_or_default());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let selector = format!(
        "{LABEL_REPOSITORY}={},{LABEL_MAINTENANCE}={}",
        job::repository_label(&repo_name),
        kind.as_str()
    );
    let mut list = jobs.list(&ListParams::default().labels(&selector)).await?.items;
    // Jobs of another repository whose name was cut to the same label.
    let uid = repo.uid().unwrap_or_default();
    list.retain(|j| j.owner_references().iter().any(|r| r.uid == uid));

    let mut running = false;
    let mut newest_run: Option<Timestamp> = None;
    let mut finished = Vec::new();
    for j in &list {
        let run = job::run_time(j);
        newest_run = newest_run.max(run);
        match job::outcome(j) {
            Some(outcome) => finished.push((j.name_any(), run, outcome)),
            None => running |= j.metadata.deletion_timestamp.is_none(),
        }
    }

    // The newest finished Job is the result, unless the status has it.
    let last = last_result(repo, kind);
    let newest_finished = finished.iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    if let Some((name, _, outcome)) = newest_finished {
        if last.as_ref().and_then(|l| l.job.as_deref()) != Some(name.as_str()) {
            let result = MaintenanceResult {
                time: outcome.time,
                job: Some(name.clone()),
                result: Some(outcome.result),
                message: outcome.message.clone(),
            };
            write_result(ctx, repo, kind, &result).await?;
            let result_label = match outcome.result {
                JobResult::Succeeded => "Succeeded",
                JobResult::Failed => "Failed",
            };
            let label = format!("{}/{repo_name}", repo.namespace().unwrap_or_default());
            ctx.metrics().add(
                names::MAINTENANCE,
                &[
                    ("repository", &label),
                    ("kind", kind.as_str()),
                    ("result", result_label),
                ],
                1.0,
            );
            let failed = outcome.result == JobResult::Failed;
            let note = format!(
                "Job {name} ({}) {}{}",
                kind.as_str(),
                if failed { "failed" } else { "succeeded" },
                outcome.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            );
            log::info(&format!("{who}: {note}"));
            let reason = match (kind, failed) {
                (Kind::Prune, false) => "PruneSucceeded",
                (Kind::Prune, true) => "PruneFailed",
                (Kind::Check, false) => "CheckSucceeded",
                (Kind::Check, true) => "CheckFailed",
            };
            ctx.event(repo, failed, reason, note).await;
        }
    }

    // Keep the newest `keepJobs` finished Jobs.
    let done: Vec<(String, Option<Timestamp>)> = finished.iter().map(|(n, r, _)| (n.clone(), *r)).collect();
    for name in job::to_delete(done, maintenance.keep_jobs) {
        match jobs.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }

    // The last run: the newest Job's, or the recorded result's when its
    // Job is gone.
    let recorded = last.filter(|l| l.job.is_some()).and_then(|l| l.time);
    let last_run = newest_run.or(recorded);
    let appeared = repo
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let now = Timestamp::now();
    match decide(&cron, &repo_name, appeared, last_run, running, now) {
        Decision::Create { at, .. } => {
            let job = job::job(repo, kind, at, &ctx.settings.namespace, &ctx.settings.image).map_err(Error::Invalid)?;
            let name = job.name_any();
            match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => {
                    let note = format!("Job {name} runs cairn {} for the run at {at}", kind.as_str());
                    log::info(&format!("{who}: {note}"));
                    ctx.event(repo, false, "MaintenanceStarted", note).await;
                }
                // Started before a restart: the name is the run's.
                Err(e) if status_code(&e) == Some(409) => {}
                Err(e) => return Err(e.into()),
            }
            // Its changes wake the repository up.
            Ok(None)
        }
        Decision::Busy { .. } => Ok(None),
        Decision::WaitUntil(next) => Ok(next),
    }
}
