//! The agent's VolumeBackups: one pod volume each, read through the
//! directory descriptors the agent holds and stored as one snapshot under
//! the volume's logical path.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::locate::{open_volume, Roots};
use super::volumes::{exclude_paths, plan_pod, Lookup, Plan, VolumeTarget};
use super::Agent;
use crate::backup::progress::Progress;
use crate::backup::{backup_dir, BackupOptions, ParentChoice};
use crate::k8s::controller::access::{get_repository, repository_access};
use crate::k8s::controller::record::{snapshot_uid, TAG_BACKUP, TAG_BACKUP_UID};
use crate::k8s::controller::status::patch_status;
use crate::k8s::controller::{log, Error};
use crate::k8s::crd::backup::Backup;
use crate::k8s::crd::volume_backup::{VolumeBackup, VolumePhase};
use crate::k8s::{jobs, K8sError};
use crate::repo::{CancelToken, LockKind};
use crate::source::walk::WalkOptions;

/// How often progress reaches the status, and cancellation is looked for.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How long a backup waits for an exclusive lock (a prune) to go.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Why a volume backup ends Failed (as opposed to a transient error that
/// is retried).
struct Failed(String);

pub async fn reconcile(vb: Arc<VolumeBackup>, agent: Arc<Agent>) -> Result<Action, Error> {
    if is_done(&vb) {
        return Ok(Action::await_change());
    }
    let namespace = vb.namespace().unwrap_or_default();
    let name = vb.name_any();
    let api: Api<VolumeBackup> = Api::namespaced(agent.ctx.client.clone(), &namespace);
    // The watch's copy may predate this agent's own last status write (a
    // reconcile queued while the previous one ran): decide on a fresh read.
    let Some(vb) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if is_done(&vb) {
        return Ok(Action::await_change());
    }
    let phase = vb.status.as_ref().and_then(|s| s.phase);
    if vb.spec.cancel {
        patch_status(
            &api,
            &name,
            json!({"phase": "Canceled", "message": "canceled before it ran", "completionTimestamp": now()}),
        )
        .await?;
        return Ok(Action::await_change());
    }
    if phase == Some(VolumePhase::InProgress) {
        // Only a previous run of an agent on this node leaves one here:
        // this one reconciles each object once at a time.
        log::info(&format!(
            "VolumeBackup {namespace}/{name}: left InProgress by a previous run; backing it up again"
        ));
    }
    patch_status(
        &api,
        &name,
        json!({"phase": "InProgress", "startTimestamp": now(), "message": null}),
    )
    .await?;
    match run(&vb, &agent, &api).await {
        Ok(Ok((id, bytes))) => {
            patch_status(
                &api,
                &name,
                json!({"phase": "Completed", "snapshotID": id, "completionTimestamp": now(),
                       "progress": {"bytesDone": bytes, "totalBytes": bytes}}),
            )
            .await?;
            agent
                .ctx
                .event(&vb, false, "Completed", format!("snapshot {}", &id[..8.min(id.len())]))
                .await;
        }
        Ok(Err(Failed(message))) => {
            let canceled = message == "canceled";
            patch_status(
                &api,
                &name,
                json!({"phase": if canceled { "Canceled" } else { "Failed" }, "message": message,
                       "completionTimestamp": now()}),
            )
            .await?;
            agent
                .ctx
                .event(&vb, !canceled, if canceled { "Canceled" } else { "Failed" }, message)
                .await;
        }
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}

fn is_done(vb: &VolumeBackup) -> bool {
    vb.status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(VolumePhase::is_final)
        || vb.metadata.deletion_timestamp.is_some()
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// Plans, opens and backs up the volume. `Ok(Err(..))` is a failure to
/// report, `Err` one to retry.
async fn run(
    vb: &VolumeBackup,
    agent: &Agent,
    api: &Api<VolumeBackup>,
) -> Result<Result<(String, u64), Failed>, Error> {
    let ctx = &agent.ctx;
    let namespace = vb.namespace().unwrap_or_default();
    let spec = &vb.spec;
    let fail = |m: String| Ok(Err(Failed(m)));
    // The pod, as it is now: it must still be the one the Backup saw.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &spec.pod.namespace);
    let Some(pod) = pods.get_opt(&spec.pod.name).await? else {
        return fail(format!("pod {}/{} no longer exists", spec.pod.namespace, spec.pod.name));
    };
    if !spec.pod.uid.is_empty() && pod.metadata.uid.as_deref() != Some(spec.pod.uid.as_str()) {
        return fail(format!(
            "pod {}/{} was recreated since the backup started (uid {} is now {})",
            spec.pod.namespace,
            spec.pod.name,
            spec.pod.uid,
            pod.metadata.uid.as_deref().unwrap_or("none")
        ));
    }
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(backup) = backups.get_opt(&spec.backup_name).await? else {
        return fail(format!("Backup {namespace}/{} does not exist", spec.backup_name));
    };
    let claims: Vec<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &spec.pod.namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let volumes: Vec<PersistentVolume> = Api::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let drivers: BTreeSet<String> = match Api::<CSIDriver>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items.iter().map(ResourceExt::name_any).collect(),
        // Without the CSIDriver list a PV with spec.csi is still known.
        Err(_) => BTreeSet::new(),
    };
    let lookup = Lookup {
        claims: &claims,
        volumes: &volumes,
        csi_drivers: &drivers,
        host_path_root: agent.host_path_root_name.as_deref(),
    };
    let plans = match plan_pod(&pod, true, &lookup) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let target: VolumeTarget = match plans.into_iter().find(|p| match p {
        Plan::Backup(t) => t.volume == spec.volume,
        Plan::Skip { volume, .. } => *volume == spec.volume,
    }) {
        Some(Plan::Backup(t)) => t,
        Some(Plan::Skip { reason, .. }) => return fail(format!("volume {}: {reason}", spec.volume)),
        None => {
            return fail(format!(
                "pod {}/{} has no volume {}",
                spec.pod.namespace, spec.pod.name, spec.volume
            ))
        }
    };
    let roots = Roots {
        pods: std::os::fd::AsFd::as_fd(&agent.host_pods),
        pods_name: &agent.host_pods_name,
        host_path: agent.host_path_root.as_ref().map(|fd| {
            (
                std::os::fd::AsFd::as_fd(fd),
                agent.host_path_root_name.as_deref().unwrap_or_default(),
            )
        }),
    };
    let dir = match open_volume(&roots, &target.location) {
        Ok(d) => d,
        Err(e) => return fail(e.to_string()),
    };
    let repo = match get_repository(ctx, &namespace, &spec.repository).await {
        Ok(r) => r,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => return fail(e.to_string()),
    };
    let access = match repository_access(ctx, &repo).await {
        Ok(a) => a,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => return fail(e.to_string()),
    };
    let mut excludes: Vec<String> = backup
        .spec
        .volumes
        .as_ref()
        .map(|v| v.exclude_paths.clone())
        .unwrap_or_default();
    excludes.extend(exclude_paths(&pod));
    let logical = target.logical_path.clone();
    let mut tags = vec![
        format!("{TAG_BACKUP}={}", spec.backup_name),
        format!("{TAG_BACKUP_UID}={}", snapshot_uid(&backup)),
        format!("namespace={}", spec.pod.namespace),
        format!("pod={}", spec.pod.name),
        format!("volume={}", spec.volume),
    ];
    if let Some(pvc) = &target.pvc {
        tags.push(format!("pvc={pvc}"));
    }
    let cancel = CancelToken::default();
    let opts = BackupOptions {
        walk: WalkOptions {
            excludes: excludes.iter().map(|g| anchor(&logical, g)).collect(),
            ..WalkOptions::default()
        },
        tags,
        hostname: Some(ctx.settings.cluster_name.clone()),
        parent: ParentChoice::Latest,
        cancel: Some(cancel.clone()),
        ..BackupOptions::default()
    };
    let progress = Arc::new(Progress::default());
    let work_progress = progress.clone();
    let work = jobs::with_repository(access, move |repo| {
        // Shared: agents on every node write one repository at once.
        let lock = repo.lock(LockKind::Shared, LOCK_WAIT)?;
        let repo = repo.load_index()?;
        let opts = BackupOptions {
            lock: Some(lock.watch()),
            ..opts
        };
        let outcome = backup_dir(&repo, dir, &PathBuf::from(&logical), &opts, &work_progress)?;
        drop(lock);
        let id = outcome
            .id
            .map(|id| id.to_hex())
            .ok_or_else(|| K8sError::Job("the backup stored no snapshot".into()))?;
        Ok((id, outcome.snapshot.summary.total_bytes_processed))
    });
    tokio::pin!(work);
    let name = vb.name_any();
    loop {
        tokio::select! {
            result = &mut work => {
                return match result {
                    Ok(done) => Ok(Ok(done)),
                    Err(K8sError::Backup(crate::backup::BackupError::Canceled)) => fail("canceled".into()),
                    Err(e) if e.is_transient() => Err(e.into()),
                    Err(e) => fail(e.to_string()),
                };
            }
            () = tokio::time::sleep(PROGRESS_EVERY) => {
                let done = Progress::get(&progress.bytes_done);
                let total = Progress::get(&progress.total_bytes).max(done);
                let _ = patch_status(api, &name, json!({"progress": {"bytesDone": done, "totalBytes": total}})).await;
                match api.get_opt(&name).await {
                    Ok(Some(now)) if now.spec.cancel || now.metadata.deletion_timestamp.is_some() => cancel.cancel(),
                    Ok(None) => cancel.cancel(),
                    _ => {}
                }
            }
        }
    }
}

/// An exclude glob of a volume (relative to its root, or `/`-anchored at
/// it) as a pattern of the walk, which sees the logical path.
fn anchor(logical: &str, glob: &str) -> String {
    let glob = glob.trim_start_matches('/');
    format!("{}/{glob}", logical.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn excludes_are_anchored_at_the_logical_root() {
        assert_eq!(
            super::anchor("/volumes/shop/data", "tmp/**"),
            "/volumes/shop/data/tmp/**"
        );
        assert_eq!(
            super::anchor("/volumes/shop/data", "/cache"),
            "/volumes/shop/data/cache"
        );
    }
}
