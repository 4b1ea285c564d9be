//! The Backup reconciler (see the module documentation of `controller`).
//!
//! - No phase (or `New`): the spec is checked (ttl, filters, the
//!   BackupRepository and its Secrets); a spec that cannot work ends
//!   `Failed` with a message naming the field or object. Otherwise the
//!   finalizer goes on and `InProgress` is written, with `startTimestamp`
//!   and `expiration`, before any work ([`backup_run`](super::backup_run)
//!   does the work on the next reconciliation).
//! - A final phase: the finalizer is kept; at `expiration` the object is
//!   deleted, and until then the reconciler comes back at the expiry.
//! - Deleted: the finalizer forgets every snapshot tagged with the
//!   Backup's uid, then lets the object go. A BackupRepository or Secret
//!   that is gone, or a repository that refuses for good, does not block
//!   the deletion: a warning event says what was left behind.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::backup_steps::{expiry, fail, full_name, now, option_message, resolve, Resolve};
use super::record::{snapshot_uid, TAG_BACKUP_UID};
use super::retry::transient;
use super::status::{add_finalizer, patch_status, remove_finalizer, FINALIZER};
use super::{backup_run, drain, error_policy, log, Context, Error};
use crate::forget::forget_matching;
use crate::k8s::crd::backup::{Backup, Phase};
use crate::k8s::jobs::{self, RepositoryAccess};
use crate::repo::snapshots::SnapshotFilter;

/// The longest a final Backup waits before its expiry is looked at again
/// (a clock that jumps is noticed within this).
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How long forgetting waits for a conflicting repository lock.
const FORGET_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Watches every Backup and reconciles it until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<Backup> = Api::all(ctx.client.clone());
    let stream = super::slim_controller(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Backup", stream).boxed()
}

async fn reconcile(obj: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &namespace);
    if obj.metadata.deletion_timestamp.is_some() {
        return finalize(&ctx, &api, &obj).await;
    }
    match obj.status.as_ref().and_then(|s| s.phase) {
        None | Some(Phase::New) => start(&ctx, &api, &obj).await,
        Some(Phase::InProgress) => backup_run::run(&ctx, &api, &obj).await,
        Some(_) => keep(&ctx, &api, &obj).await,
    }
}

/// Checks the spec and writes `InProgress`, or ends `Failed` saying why.
async fn start(ctx: &Context, api: &Api<Backup>, obj: &Backup) -> Result<Action, Error> {
    let now = now();
    let ttl = match obj.spec.ttl() {
        Ok(ttl) => ttl,
        Err(e) => return fail(ctx, api, obj, format!("spec.ttl: {e}")).await,
    };
    let expiration = expiry(now, ttl);
    if let Err(e) = obj.spec.filters.to_filters() {
        return fail(ctx, api, obj, option_message(&e)).await;
    }
    let repository = match resolve(ctx, obj).await {
        Ok((name, _)) => name,
        Err(Resolve::Retry(e)) => return Err(e),
        Err(Resolve::Fail(message)) => return fail(ctx, api, obj, message).await,
    };
    let obj = add_finalizer(api, obj, FINALIZER).await?;
    let obj = patch_status(
        api,
        &obj.name_any(),
        json!({
            "phase": Phase::InProgress,
            "startTimestamp": now,
            "expiration": expiration,
            "message": null,
        }),
    )
    .await?;
    log::info(&format!(
        "Backup {}: started into BackupRepository {repository}",
        full_name(&obj)
    ));
    ctx.event(
        &obj,
        false,
        "Started",
        format!("backing up into BackupRepository {repository}"),
    )
    .await;
    // The status change brings the Backup back, now InProgress.
    Ok(Action::await_change())
}

/// A final Backup: keeps its finalizer, and goes at its expiration.
async fn keep(ctx: &Context, api: &Api<Backup>, obj: &Backup) -> Result<Action, Error> {
    let obj = add_finalizer(api, obj, FINALIZER).await?;
    let Some(expiration) = obj.status.as_ref().and_then(|s| s.expiration) else {
        return Ok(Action::await_change());
    };
    let left = expiration.duration_since(Timestamp::now());
    if left.is_positive() {
        let wait = Duration::try_from(left).unwrap_or(MAX_WAIT).min(MAX_WAIT);
        // A little after the expiry, so that it has passed when we look.
        return Ok(Action::requeue(wait + Duration::from_millis(200)));
    }
    let name = obj.name_any();
    log::info(&format!(
        "Backup {}: expired at {expiration}, deleting it",
        full_name(&obj)
    ));
    ctx.event(&obj, false, "Expired", format!("expired at {expiration}; deleting"))
        .await;
    let params = DeleteParams {
        // Never a newer Backup that took the name meanwhile.
        preconditions: Some(Preconditions {
            uid: obj.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if crate::k8s::client::status_code(&e) == Some(404) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// A deleted Backup: forgets its snapshots, then removes the finalizer.
async fn finalize(ctx: &Context, api: &Api<Backup>, obj: &Backup) -> Result<Action, Error> {
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let uid = snapshot_uid(obj);
    let outcome = if uid.is_empty() {
        Err("it has no uid to find its snapshots by".to_owned())
    } else {
        match resolve(ctx, obj).await {
            Err(Resolve::Retry(e)) => return Err(e),
            Err(Resolve::Fail(message)) => Err(message),
            Ok((repository, access)) => match forget_snapshots(access, &uid).await {
                Ok(count) => Ok((repository, count)),
                Err(e) if transient(&e) => return Err(e.into()),
                Err(e) => Err(super::retry::message(&repository, &e)),
            },
        }
    };
    match outcome {
        Ok((repository, count)) => {
            let note = format!(
                "forgot {count} snapshot{} tagged {TAG_BACKUP_UID}={uid} in BackupRepository {repository}",
                if count == 1 { "" } else { "s" }
            );
            log::info(&format!("Backup {}: {note}", full_name(obj)));
            ctx.event(obj, false, "SnapshotsForgotten", note).await;
        }
        Err(why) => {
            let note = format!("snapshots tagged {TAG_BACKUP_UID}={uid} were not forgotten: {why}");
            log::warn(&format!("Backup {}: {note}", full_name(obj)));
            ctx.event(obj, true, "ForgetSkipped", note).await;
        }
    }
    // Helper pods of a Backup deleted while it ran have no owner to take
    // them along.
    super::volume_helpers::delete_all(ctx, &uid).await?;
    remove_finalizer(api, obj, FINALIZER).await?;
    Ok(Action::await_change())
}

/// Forgets every snapshot tagged `backup-uid=<uid>`; how many there were.
pub(super) async fn forget_snapshots(access: RepositoryAccess, uid: &str) -> Result<usize, crate::k8s::K8sError> {
    let filter = SnapshotFilter {
        tags: vec![format!("{TAG_BACKUP_UID}={uid}")],
        ..SnapshotFilter::default()
    };
    jobs::with_repository(access, move |repo| {
        Ok(forget_matching(&repo, &filter, FORGET_LOCK_WAIT, 4)?.len())
    })
    .await
}
