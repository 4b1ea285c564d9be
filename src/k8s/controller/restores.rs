//! The Restore reconciler (see the module documentation of `controller`).
//!
//! A new Restore is marked `InProgress` with its `startTimestamp`; then its
//! Backup (in the Restore's namespace) is looked up, and its manifest
//! snapshot restored into this cluster with the Restore's filters,
//! namespace mapping and existing-resource policy, in two passes around the
//! volume data ([`restore_volumes`]):
//!
//! 1. the claims with volume snapshots are found, and everything but the
//!    workloads restored, those claims created anew; `status.step` becomes
//!    `Volumes` with the claims in `status.volumes`;
//! 2. each claim gets a helper pod and a VolumeRestore, polled until all
//!    have ended (`status.volumeRestores`);
//! 3. the workloads are restored, and the status finished with the counts
//!    of both passes.
//!
//! A restore is safe to run again: objects that exist are skipped or
//! updated by the policy. So a Restore found `InProgress` (the controller
//! was killed during it) resumes at its recorded step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::backup_steps::{full_name, now, option_message, resolve, Resolve};
use super::record::snapshot_uid;
use super::restore_volumes::{self, VolumeSnapshot};
use super::retry::{message, transient, within_retry_window};
use super::status::{add_finalizer, patch_status};
use super::{drain, error_policy, log, metrics, Context, Error};
use crate::k8s::crd::backup::{Backup, Phase};
use crate::k8s::crd::duration;
use crate::k8s::crd::restore::{ExistingResourcePolicy, ObjectCounts, Restore, RestoreStep, RestoredVolume};
use crate::k8s::jobs;
use crate::k8s::manifests::restore::{ExistingPolicy, Outcome, Pass};
use crate::k8s::manifests::run::{ManifestRestoreOptions, ManifestRestoreReport};

/// How often a Restore waiting for its volumes looks at them.
const VOLUME_POLL: Duration = Duration::from_secs(2);

/// Watches every Restore and reconciles it until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<Restore> = Api::all(ctx.client.clone());
    let stream = super::slim_controller(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Restore", stream).boxed()
}

async fn reconcile(obj: Arc<Restore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Restore> = Api::namespaced(ctx.client.clone(), &namespace);
    if obj.metadata.deletion_timestamp.is_some() {
        restore_volumes::release(&ctx, &api, &obj).await?;
        return Ok(Action::await_change());
    }
    match obj.status.as_ref().and_then(|s| s.phase) {
        None | Some(Phase::New) => start(&ctx, &api, &obj).await,
        Some(Phase::InProgress) => restore(&ctx, &api, &obj).await,
        Some(_) => Ok(Action::await_change()),
    }
}

/// Writes `InProgress` with the start time.
async fn start(ctx: &Context, api: &Api<Restore>, obj: &Restore) -> Result<Action, Error> {
    let obj = patch_status(
        api,
        &obj.name_any(),
        json!({"phase": Phase::InProgress, "startTimestamp": now(), "message": null}),
    )
    .await?;
    log::info(&format!(
        "Restore {}: started from Backup {}",
        full_name(&obj),
        obj.spec.backup_name
    ));
    ctx.event(
        &obj,
        false,
        "Started",
        format!("restoring Backup {}", obj.spec.backup_name),
    )
    .await;
    Ok(Action::await_change())
}

/// Runs (or runs again, after a restart) the restore of an `InProgress`
/// Restore.
async fn restore(ctx: &Context, api: &Api<Restore>, obj: &Restore) -> Result<Action, Error> {
    let Some(obj) = api.get_opt(&obj.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if obj.metadata.deletion_timestamp.is_some() || obj.status.as_ref().and_then(|s| s.phase) != Some(Phase::InProgress)
    {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let start = obj.status.as_ref().and_then(|s| s.start_timestamp).unwrap_or_else(now);
    let namespace = obj.namespace().unwrap_or_default();
    let backup_name = &obj.spec.backup_name;
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(backup) = backups.get_opt(backup_name).await? else {
        return fail(
            ctx,
            api,
            &obj,
            format!("Backup {namespace}/{backup_name} does not exist"),
        )
        .await;
    };
    let phase = backup.status.as_ref().and_then(|s| s.phase);
    if !matches!(phase, Some(Phase::Completed | Phase::PartiallyFailed)) {
        let phase = phase.map_or_else(|| "not started".to_owned(), |p| p.to_string());
        return fail(
            ctx,
            api,
            &obj,
            format!("Backup {namespace}/{backup_name} is {phase}: only a Completed or PartiallyFailed Backup can be restored"),
        )
        .await;
    }
    let Some(snapshot) = backup.status.as_ref().and_then(|s| s.manifest_snapshot.clone()) else {
        return fail(
            ctx,
            api,
            &obj,
            format!("Backup {namespace}/{backup_name} has no status.manifestSnapshot"),
        )
        .await;
    };
    let filters = match obj.spec.filters.to_filters() {
        Ok(f) => f,
        Err(e) => return fail(ctx, api, &obj, option_message(&e)).await,
    };
    let modifiers = match super::restore_modifiers::load(ctx, &namespace, &obj.spec).await {
        Ok(m) => m,
        Err(super::restore_modifiers::LoadError::Retry(e)) => return Err(e),
        Err(super::restore_modifiers::LoadError::Fail(message)) => return fail(ctx, api, &obj, message).await,
    };
    let (repository, access) = match resolve(ctx, &backup).await {
        Ok(found) => found,
        Err(Resolve::Retry(e)) => return Err(e),
        Err(Resolve::Fail(message)) => return fail(ctx, api, &obj, message).await,
    };
    let namespace_timeout = match obj.spec.namespace_timeout.as_deref().map(duration::parse) {
        None => crate::k8s::manifests::namespaces::DEFAULT_TIMEOUT,
        Some(Ok(t)) => t,
        Some(Err(e)) => return fail(ctx, api, &obj, format!("spec.namespaceTimeout: {e}")).await,
    };
    let status = obj.status.clone().unwrap_or_default();
    let opts = ManifestRestoreOptions {
        namespace_timeout,
        access: ctx.settings.access.clone(),
        snapshot: snapshot.clone(),
        filters: filters.clone(),
        namespace_mapping: obj.spec.namespace_mapping.clone(),
        policy: match obj.spec.existing_resource_policy {
            ExistingResourcePolicy::None => ExistingPolicy::None,
            ExistingResourcePolicy::Update => ExistingPolicy::Update,
        },
        name: Some(obj.name_any()),
        preserve_node_ports: obj.spec.preserve_node_ports,
        modifiers,
        ..ManifestRestoreOptions::default()
    };
    if status.step.is_none() {
        // First the claims with data are found, and everything but the
        // workloads restored.
        let (claims, warnings) = if obj.spec.restore_volumes {
            match restore_volumes::find_snapshots(access.clone(), &snapshot_uid(&backup)).await {
                Ok(found) => restore_volumes::select(found, &filters),
                Err(e) if transient(&e) && within_retry_window(start) => {
                    ctx.event(&obj, true, "Retrying", format!("will try again: {e}")).await;
                    return Err(e.into());
                }
                Err(e) => return fail(ctx, api, &obj, message(&repository, &e)).await,
            }
        } else {
            (Vec::new(), Vec::new())
        };
        let opts = ManifestRestoreOptions {
            pass: Pass::WithoutWorkloads,
            fresh_claims: claims
                .iter()
                .filter_map(|c| Some((c.namespace.clone(), c.pvc.clone()?)))
                .collect(),
            ..opts
        };
        return match jobs::restore_manifests(access, opts).await {
            Ok(report) => {
                let mapping = &obj.spec.namespace_mapping;
                wait_for_volumes_first(ctx, api, &obj, &snapshot, report, claims, warnings, mapping).await
            }
            Err(e) if transient(&e) && within_retry_window(start) => {
                ctx.event(&obj, true, "Retrying", format!("will try again: {e}")).await;
                Err(e.into())
            }
            Err(e) => fail(ctx, api, &obj, message(&repository, &e)).await,
        };
    }
    // Then the volumes are restored, and once none is pending the workloads.
    let volumes = restore_volumes::advance(ctx, &obj, backup.spec.repository_name(), &status.volumes).await?;
    if volumes.pending() > 0 {
        let message = format!(
            "waiting for {} of {} volume restores before the workloads",
            volumes.pending(),
            volumes.total
        );
        patch_status(
            api,
            &obj.name_any(),
            json!({"volumeRestores": {"total": volumes.total, "completed": volumes.completed, "failed": volumes.failed},
                   "message": message}),
        )
        .await?;
        return Ok(Action::requeue(VOLUME_POLL));
    }
    let opts = ManifestRestoreOptions {
        pass: Pass::Workloads,
        ..opts
    };
    match jobs::restore_manifests(access, opts).await {
        Ok(report) => finish(ctx, api, &obj, &snapshot, report, &volumes).await,
        Err(e) if transient(&e) && within_retry_window(start) => {
            ctx.event(&obj, true, "Retrying", format!("will try again: {e}")).await;
            Err(e.into())
        }
        Err(e) => fail(ctx, api, &obj, message(&repository, &e)).await,
    }
}

/// Records the first pass (everything but the workloads) and the claims
/// whose data is restored: those of `claims` this restore created.
#[allow(clippy::too_many_arguments)]
async fn wait_for_volumes_first(
    ctx: &Context,
    api: &Api<Restore>,
    obj: &Restore,
    snapshot: &str,
    report: ManifestRestoreReport,
    claims: Vec<VolumeSnapshot>,
    mut warnings: Vec<String>,
    mapping: &BTreeMap<String, String>,
) -> Result<Action, Error> {
    let (counts, errors) = summarize(&report);
    let mut volumes = Vec::new();
    for c in claims {
        let Some(pvc) = c.pvc else { continue };
        let namespace = mapping.get(&c.namespace).cloned().unwrap_or(c.namespace);
        let outcome = report.report.results.iter().find(|r| {
            r.resource == "persistentvolumeclaims"
                && r.namespace.as_deref() == Some(namespace.as_str())
                && r.name == pvc
        });
        match outcome.map(|r| &r.outcome) {
            Some(Outcome::Created) => volumes.push(RestoredVolume {
                namespace,
                claim: pvc,
                snapshot_id: c.id,
            }),
            Some(Outcome::Skipped(why)) => warnings.push(format!(
                "claim {namespace}/{pvc} was not created ({why}): its data is not restored"
            )),
            Some(_) => {}
            None => warnings.push(format!(
                "claim {namespace}/{pvc} is not restored (filtered out): its data is not restored"
            )),
        }
    }
    warnings.extend(report.report.warnings.iter().cloned());
    let message = format!(
        "restored snapshot {} but the workloads; restoring {} volume(s)",
        report.snapshot_id.short(),
        volumes.len()
    );
    let total = volumes.len();
    if total > 0 {
        add_finalizer(api, obj, restore_volumes::FINALIZER).await?;
    }
    patch_status(
        api,
        &obj.name_any(),
        json!({
            "step": RestoreStep::Volumes,
            "manifestSnapshot": snapshot,
            "objects": counts,
            "errors": errors,
            "warnings": warnings,
            "volumes": volumes,
            "volumeRestores": {"total": total, "completed": 0, "failed": 0},
            "message": message,
        }),
    )
    .await?;
    log::info(&format!("Restore {}: {message}", full_name(obj)));
    if total > 0 {
        ctx.event(obj, false, "RestoringVolumes", message).await;
    }
    Ok(Action::requeue(Duration::from_millis(200)))
}

/// The counts and the lines of failed objects of a restore report.
fn summarize(report: &ManifestRestoreReport) -> (ObjectCounts, Vec<String>) {
    let mut counts = ObjectCounts::default();
    let mut errors = Vec::new();
    for r in &report.report.results {
        match &r.outcome {
            Outcome::Created | Outcome::WouldCreate => counts.created += 1,
            Outcome::Updated | Outcome::WouldUpdate => counts.updated += 1,
            Outcome::Merged(_) | Outcome::WouldMerge => counts.merged += 1,
            Outcome::Skipped(_) => counts.skipped += 1,
            Outcome::Failed(why) => {
                counts.failed += 1;
                let name = match &r.namespace {
                    Some(ns) => format!("{ns}/{}", r.name),
                    None => r.name.clone(),
                };
                errors.push(format!("{} {name}: {why}", r.resource));
            }
        }
    }
    (counts, errors)
}

/// Writes the final status of a restore whose workloads were restored
/// last (`report`), after its volumes.
async fn finish(
    ctx: &Context,
    api: &Api<Restore>,
    obj: &Restore,
    snapshot: &str,
    report: ManifestRestoreReport,
    volumes: &restore_volumes::Counts,
) -> Result<Action, Error> {
    let before = obj.status.clone().unwrap_or_default();
    let (workloads, workload_errors) = summarize(&report);
    let first = before.objects.unwrap_or_default();
    let counts = ObjectCounts {
        created: first.created + workloads.created,
        updated: first.updated + workloads.updated,
        merged: first.merged + workloads.merged,
        skipped: first.skipped + workloads.skipped,
        failed: first.failed + workloads.failed,
    };
    let mut errors = before.errors.clone();
    errors.extend(volumes.failures.iter().cloned());
    errors.extend(workload_errors);
    let mut warnings = before.warnings.clone();
    warnings.extend(report.report.warnings.iter().cloned());
    let phase = if counts.failed > 0 || volumes.failed > 0 {
        Phase::PartiallyFailed
    } else {
        Phase::Completed
    };
    let mut message = format!(
        "restored snapshot {}: {} created, {} updated, {} merged, {} skipped, {} failed",
        report.snapshot_id.short(),
        counts.created,
        counts.updated,
        counts.merged,
        counts.skipped,
        counts.failed
    );
    if volumes.total > 0 {
        message.push_str(&format!(
            "; {} of {} volumes restored",
            volumes.completed, volumes.total
        ));
    }
    for failure in &volumes.failures {
        message.push_str(&format!("; {failure}"));
    }
    patch_status(
        api,
        &obj.name_any(),
        json!({
            "phase": phase,
            "completionTimestamp": now(),
            "manifestSnapshot": snapshot,
            "objects": counts,
            "volumeRestores": {"total": volumes.total, "completed": volumes.completed, "failed": volumes.failed},
            "errors": errors,
            "warnings": warnings,
            "message": message,
        }),
    )
    .await?;
    restore_volumes::release(ctx, api, obj).await?;
    let phase_text = phase.to_string();
    ctx.metrics()
        .add(metrics::names::RESTORES, &[("phase", &phase_text)], 1.0);
    log::info(&format!("Restore {}: {phase}: {message}", full_name(obj)));
    ctx.event(obj, phase != Phase::Completed, &phase_text, message).await;
    Ok(Action::await_change())
}

/// Ends the Restore `Failed` with `message`.
async fn fail(ctx: &Context, api: &Api<Restore>, obj: &Restore, message: String) -> Result<Action, Error> {
    patch_status(
        api,
        &obj.name_any(),
        json!({
            "phase": Phase::Failed,
            "completionTimestamp": now(),
            "message": message,
            "errors": [message],
        }),
    )
    .await?;
    restore_volumes::release(ctx, api, obj).await?;
    log::warn(&format!("Restore {}: failed: {message}", full_name(obj)));
    let phase = Phase::Failed.to_string();
    ctx.metrics().add(metrics::names::RESTORES, &[("phase", &phase)], 1.0);
    ctx.event(obj, true, "Failed", message).await;
    Ok(Action::await_change())
}
