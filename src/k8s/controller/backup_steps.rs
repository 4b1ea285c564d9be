//! What the Backup and Restore reconcilers share: times, names, the
//! repository of a Backup, and how a Backup ends Failed.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::access::{get_repository, repository_access, AccessError};
use super::status::patch_status;
use super::{log, metrics, Context, Error};
use crate::k8s::crd::backup::{Backup, Phase};
use crate::k8s::crd::common::Time;
use crate::k8s::jobs::RepositoryAccess;

/// `namespace/name` of an object, for messages.
pub(super) fn full_name<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Now, to the second (as Kubernetes writes times).
pub(super) fn now() -> Time {
    let t = Timestamp::now();
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The time `ttl` after `start` (None when it does not fit).
pub(super) fn expiry(start: Time, ttl: Duration) -> Option<Time> {
    let ttl = SignedDuration::try_from(ttl).ok()?;
    start.checked_add(ttl).ok()
}

/// The text of an option error without its "invalid option: " head.
pub(super) fn option_message(e: &crate::k8s::K8sError) -> String {
    match e {
        crate::k8s::K8sError::InvalidOption(text) => text.clone(),
        e => e.to_string(),
    }
}

/// Why a Backup's repository cannot be used.
pub(super) enum Resolve {
    /// The API server failed for now: retry.
    Retry(Error),
    /// Someone must fix an object: the message names it.
    Fail(String),
}

/// The Backup's BackupRepository (`namespace/name`) and how to open it.
pub(super) async fn resolve(ctx: &Context, obj: &Backup) -> Result<(String, RepositoryAccess), Resolve> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.spec.repository_name();
    let classify = |e: AccessError| {
        if e.is_transient() {
            Resolve::Retry(e.into())
        } else {
            Resolve::Fail(e.to_string())
        }
    };
    let repo = get_repository(ctx, &namespace, name).await.map_err(classify)?;
    let access = repository_access(ctx, &repo).await.map_err(classify)?;
    Ok((format!("{namespace}/{name}"), access))
}

/// Ends the Backup `Failed` with `message`, counted and announced.
pub(super) async fn fail(ctx: &Context, api: &Api<Backup>, obj: &Backup, message: String) -> Result<Action, Error> {
    let now = now();
    let status = obj.status.clone().unwrap_or_default();
    let start = status.start_timestamp.unwrap_or(now);
    let expiration = status
        .expiration
        .or_else(|| obj.spec.ttl().ok().and_then(|ttl| expiry(start, ttl)));
    patch_status(
        api,
        &obj.name_any(),
        json!({
            "phase": Phase::Failed,
            "startTimestamp": start,
            "completionTimestamp": now,
            "expiration": expiration,
            "message": message,
            "errors": [message],
        }),
    )
    .await?;
    log::warn(&format!("Backup {}: failed: {message}", full_name(obj)));
    let phase = Phase::Failed.to_string();
    ctx.metrics().add(metrics::names::BACKUPS, &[("phase", &phase)], 1.0);
    ctx.event(obj, true, "Failed", message).await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_the_start_plus_the_ttl() {
        let start: Time = "2026-12-06T01:00:00Z".parse().unwrap();
        let end = expiry(start, Duration::from_secs(720 * 3600)).unwrap();
        assert_eq!(end.to_string(), "2027-01-05T01:00:00Z");
        assert!(expiry(start, Duration::from_secs(u64::MAX)).is_none());
    }
}
