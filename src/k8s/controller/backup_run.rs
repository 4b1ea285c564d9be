//! The work of an `InProgress` Backup, on its first run or after the
//! controller was killed during one.
//!
//! First the repository is asked for manifest snapshots tagged
//! `backup-uid=<uid>`: a killed run may have written one. The newest is
//! adopted and any others forgotten, so that exactly one remains. Without
//! one the manifest backup runs, with the backup record stored beside the
//! manifests, and stops if the Backup is deleted meanwhile. The status is
//! finished from the snapshot either way.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::backup_steps::{expiry, fail, full_name, now, option_message, resolve, Resolve};
use super::record::{
    snapshot_uid, BackupRecord, LABEL_SCHEDULE, RECORD_VERSION, TAG_BACKUP, TAG_BACKUP_UID, TAG_MANIFESTS,
};
use super::retry::{message, transient, within_retry_window};
use super::{hooks_run, log, metrics, volume_backups, Context, Error};
use crate::backup::BackupError;
use crate::forget::forget_ids;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::k8s::crd::backup::{Backup, Phase};
use crate::k8s::crd::common::Time;
use crate::k8s::jobs::{self, RepositoryAccess};
use crate::k8s::manifests::run::ManifestBackupOptions;
use crate::k8s::K8sError;
use crate::repo::CancelToken;

/// How often a Backup waiting for its volumes looks at them.
const VOLUME_POLL: Duration = Duration::from_secs(3);

/// How often a running backup checks whether its Backup was deleted.
const DELETION_POLL: Duration = Duration::from_secs(2);

/// How long a backup waits for a conflicting repository lock (a prune's)
/// before the reconciler tries again later.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What the repository says about a Backup's snapshot.
struct Stored {
    id: SnapshotId,
    snapshot: Snapshot,
    /// Resource lists that could not be read (one line each).
    errors: Vec<String>,
    /// API groups that could not be discovered (one line each).
    warnings: Vec<String>,
    /// Objects stored (None when adopted: not recorded).
    objects: Option<usize>,
    /// Whether a killed run wrote it.
    adopted: bool,
}

/// Runs (or resumes) the backup of an `InProgress` Backup.
pub async fn run(ctx: &Context, api: &Api<Backup>, obj: &Backup) -> Result<Action, Error> {
    // The cache may be behind: work only from what the server holds now.
    let Some(obj) = api.get_opt(&obj.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let phase = obj.status.as_ref().and_then(|s| s.phase);
    if obj.metadata.deletion_timestamp.is_some() || phase != Some(Phase::InProgress) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let status = obj.status.clone().unwrap_or_default();
    let start = status.start_timestamp.unwrap_or_else(now);
    let expiration = status
        .expiration
        .or_else(|| obj.spec.ttl().ok().and_then(|ttl| expiry(start, ttl)));
    let filters = match obj.spec.filters.to_filters() {
        Ok(f) => f,
        Err(e) => return fail(ctx, api, &obj, option_message(&e)).await,
    };
    // Manifests stored and VolumeBackups made on an earlier pass: while
    // they run, only count them; the repository is opened again once they
    // are all done.
    let waited = status.manifest_snapshot.is_some();
    if waited {
        let volumes = volume_backups::count(ctx, &obj, status.warnings.clone()).await?;
        // Post hooks of the pods whose volumes all ended (counted first: a
        // pod counted done is seen done).
        hooks_run::post(ctx, api, &obj).await?;
        if volumes.pending() > 0 {
            let snapshot = status.manifest_snapshot.clone().unwrap_or_default();
            return wait_for_volumes(api, &obj, &snapshot, &volumes).await;
        }
    }
    let (repository, access) = match resolve(ctx, &obj).await {
        Ok(found) => found,
        Err(Resolve::Retry(e)) => return Err(e),
        Err(Resolve::Fail(message)) => return fail(ctx, api, &obj, message).await,
    };
    let uid = snapshot_uid(&obj);
    if uid.is_empty() {
        return fail(ctx, api, &obj, "the Backup has no uid".to_owned()).await;
    }
    // Which volumes go with it: listed in the record (their snapshots carry
    // the Backup's uid too), then made into VolumeBackups.
    let (planned, skipped) = if waited {
        (Vec::new(), Vec::new())
    } else {
        volume_backups::plan(ctx, &obj, &filters).await?
    };
    let stored = match adopt(access.clone(), &uid).await {
        Ok(Some(stored)) => Ok(stored),
        Ok(None) => {
            let volumes = planned.iter().map(volume_backups::Planned::record).collect();
            let record = BackupRecord {
                version: RECORD_VERSION,
                name: obj.name_any(),
                namespace: obj.namespace().unwrap_or_default(),
                uid: uid.clone(),
                cluster: ctx.settings.cluster_name.clone(),
                labels: obj.labels().clone(),
                spec: obj.spec.clone(),
                start_timestamp: start,
                expiration,
                volumes,
            };
            let opts = ManifestBackupOptions {
                access: ctx.settings.access.clone(),
                filters: filters.clone(),
                tags: vec![
                    format!("{TAG_BACKUP}={}", obj.name_any()),
                    format!("{TAG_BACKUP_UID}={uid}"),
                ],
                host: Some(ctx.settings.cluster_name.clone()),
                connections: 4,
                retry_lock: LOCK_WAIT,
                extra_files: vec![record.to_file()],
                ..ManifestBackupOptions::default()
            };
            backup(api, &obj, access, opts).await
        }
        Err(e) => Err(e),
    };
    match stored {
        Ok(mut stored) => {
            // Our own snapshot, found again once the volumes were done: not
            // a restart's leftover.
            if stored.adopted && status.manifest_snapshot.as_deref() == Some(stored.id.to_hex().as_str()) {
                stored.adopted = false;
            }
            let volumes = if waited {
                volume_backups::count(ctx, &obj, status.warnings.clone()).await?
            } else {
                // Pre hooks end before a pod's VolumeBackups exist.
                let planned = hooks_run::pre(ctx, api, &obj, &filters, planned).await?;
                volume_backups::create(ctx, &obj, &planned).await?;
                // The manifests' warnings go with the volumes' into the
                // status, kept there while the volumes run.
                let notes = stored.warnings.iter().cloned().chain(skipped).collect();
                let volumes = volume_backups::count(ctx, &obj, notes).await?;
                hooks_run::post(ctx, api, &obj).await?;
                volumes
            };
            if volumes.pending() > 0 {
                return wait_for_volumes(api, &obj, &stored.id.to_hex(), &volumes).await;
            }
            finish(ctx, api, &obj, &repository, start, stored, volumes).await
        }
        Err(K8sError::Backup(BackupError::Canceled)) => {
            log::info(&format!(
                "Backup {}: deleted while running; the backup stopped",
                full_name(&obj)
            ));
            Ok(Action::await_change())
        }
        Err(e) if transient(&e) && within_retry_window(start) => {
            ctx.event(&obj, true, "Retrying", format!("will try again: {e}")).await;
            Err(e.into())
        }
        Err(e) => fail(ctx, api, &obj, message(&repository, &e)).await,
    }
}

/// The newest manifest snapshot a killed run left for `uid`, the others
/// forgotten; None when there is none.
async fn adopt(access: RepositoryAccess, uid: &str) -> Result<Option<Stored>, K8sError> {
    let tag = format!("{TAG_BACKUP_UID}={uid}");
    jobs::with_repository(access, move |repo| {
        let mut found: Vec<(SnapshotId, Snapshot)> = repo
            .list_snapshots()?
            .into_iter()
            .filter(|(_, s)| s.tags.contains(&tag) && s.tags.iter().any(|t| t == TAG_MANIFESTS))
            .collect();
        // Newest last; the id breaks ties so that every run picks the same.
        found.sort_by_key(|a| (a.1.time_ns, a.0));
        let Some((id, snapshot)) = found.pop() else {
            return Ok(None);
        };
        let extra: Vec<SnapshotId> = found.into_iter().map(|(id, _)| id).collect();
        forget_ids(&repo, &extra, LOCK_WAIT, 4)?;
        Ok(Some(Stored {
            id,
            errors: if snapshot.partial {
                vec![format!(
                    "{} resource list(s) could not be read",
                    snapshot.summary.errors
                )]
            } else {
                Vec::new()
            },
            snapshot,
            warnings: Vec::new(),
            objects: None,
            adopted: true,
        }))
    })
    .await
}

/// Runs the manifest backup, canceled if the Backup is deleted meanwhile.
async fn backup(
    api: &Api<Backup>,
    obj: &Backup,
    access: RepositoryAccess,
    mut opts: ManifestBackupOptions,
) -> Result<Stored, K8sError> {
    let cancel = CancelToken::new();
    opts.cancel = Some(cancel.clone());
    let job = jobs::backup_manifests(access, opts);
    let name = obj.name_any();
    let uid = obj.metadata.uid.clone();
    let watch = async {
        loop {
            tokio::time::sleep(DELETION_POLL).await;
            match api.get_opt(&name).await {
                Ok(Some(b)) if b.metadata.deletion_timestamp.is_none() && b.metadata.uid == uid => {}
                // Gone, being deleted, or replaced by another of the name.
                Ok(_) => break,
                // The API server may be away for a moment; the backup goes on.
                Err(_) => {}
            }
        }
        cancel.cancel();
        futures::future::pending::<()>().await;
    };
    let report = tokio::select! {
        report = job => report,
        () = watch => unreachable!("the deletion watch never ends"),
    };
    // Whatever stopped a canceled backup (it may have been waiting for a
    // lock), the Backup is gone.
    let report = match report {
        Err(_) if cancel.is_canceled() => return Err(BackupError::Canceled.into()),
        report => report?,
    };
    let Some(id) = report.snapshot_id else {
        return Err(K8sError::Job("the backup wrote no snapshot".to_owned()));
    };
    Ok(Stored {
        id,
        errors: report.errors,
        warnings: report.warnings,
        objects: Some(report.objects),
        snapshot: report.snapshot,
        adopted: false,
    })
}

/// Records that the manifests are in `snapshot` (full id) and the Backup waits for
/// its VolumeBackups (the skipped volumes as warnings), and looks again
/// soon.
async fn wait_for_volumes(
    api: &Api<Backup>,
    obj: &Backup,
    snapshot: &str,
    volumes: &volume_backups::Counts,
) -> Result<Action, Error> {
    let message = format!(
        "manifests stored in snapshot {}; waiting for {} of {} volume backups",
        &snapshot[..8.min(snapshot.len())],
        volumes.pending(),
        volumes.total
    );
    let mut status = json!({
        "volumeBackups": {"total": volumes.total, "completed": volumes.completed, "failed": volumes.failed},
        "message": message,
        "warnings": volumes.skipped,
    });
    status["manifestSnapshot"] = json!(snapshot);
    super::status::patch_status(api, &obj.name_any(), status).await?;
    Ok(Action::requeue(VOLUME_POLL))
}

/// Writes the final status of a Backup whose snapshot is stored.
async fn finish(
    ctx: &Context,
    api: &Api<Backup>,
    obj: &Backup,
    repository: &str,
    start: Time,
    stored: Stored,
    volumes: volume_backups::Counts,
) -> Result<Action, Error> {
    let hooks = hooks_run::summary(api, obj).await?;
    let partial =
        stored.snapshot.partial || !stored.errors.is_empty() || volumes.failed > 0 || !hooks.errors.is_empty();
    let phase = if partial {
        Phase::PartiallyFailed
    } else {
        Phase::Completed
    };
    let summary = &stored.snapshot.summary;
    // With volumes, the Backup ends when the last of them does: now.
    let completion = Timestamp::from_nanosecond(i128::from(summary.backup_end_ns))
        .ok()
        .filter(|t| t.as_second() > 0 && volumes.total == 0)
        .unwrap_or_else(now);
    let short = stored.id.short();
    let mut message = match (stored.objects, stored.adopted) {
        (Some(n), _) => format!("backed up {n} objects into snapshot {short} in BackupRepository {repository}"),
        (None, true) => format!("adopted snapshot {short} in BackupRepository {repository}, written before a restart"),
        // Found again after waiting for the volumes.
        (None, false) => format!("backed up the objects into snapshot {short} in BackupRepository {repository}"),
    };
    if stored.snapshot.partial || !stored.errors.is_empty() {
        message.push_str(&format!(
            "; {} resource list(s) could not be read",
            stored.errors.len().max(1)
        ));
    }
    if volumes.total > 0 {
        message.push_str(&format!(
            "; {} of {} volume backups completed",
            volumes.completed, volumes.total
        ));
    }
    let mut warnings: Vec<String> = if stored.adopted {
        vec!["the controller restarted during this backup; its snapshot was adopted".to_owned()]
    } else {
        Vec::new()
    };
    warnings.extend(volumes.skipped.iter().cloned());
    warnings.extend(hooks.warnings);
    let mut errors = stored.errors.clone();
    errors.extend(hooks.errors);
    if volumes.failed > 0 {
        errors.push(format!(
            "{} volume backup(s) failed: kubectl get vbk -l backup.cairn.io/backup-name={}",
            volumes.failed,
            obj.name_any()
        ));
    }
    super::status::patch_status(
        api,
        &obj.name_any(),
        json!({
            "phase": phase,
            "completionTimestamp": completion,
            "manifestSnapshot": stored.id.to_hex(),
            "volumeBackups": {"total": volumes.total, "completed": volumes.completed, "failed": volumes.failed},
            "errors": errors,
            "warnings": warnings,
            "message": message,
        }),
    )
    .await?;
    let seconds = completion.duration_since(start).as_secs_f64().max(0.0);
    let phase_text = phase.to_string();
    let m = ctx.metrics();
    m.add(metrics::names::BACKUPS, &[("phase", &phase_text)], 1.0);
    m.add(metrics::names::BACKUP_SECONDS, &[("phase", &phase_text)], seconds);
    if !stored.adopted {
        m.add(metrics::names::BACKUP_BYTES, &[], summary.data_added as f64);
    }
    if phase == Phase::Completed {
        if let Some(schedule) = obj.labels().get(LABEL_SCHEDULE) {
            // As the Schedule reconciler labels it: `namespace/name`.
            let schedule = format!("{}/{schedule}", obj.namespace().unwrap_or_default());
            m.set(
                metrics::names::LAST_SUCCESS,
                &[("schedule", &schedule)],
                completion.as_second() as f64,
            );
        }
    }
    log::info(&format!("Backup {}: {phase}: {message}", full_name(obj)));
    ctx.event(obj, partial, &phase_text, message).await;
    // The final phase brings it back to wait for its expiry.
    Ok(Action::await_change())
}
