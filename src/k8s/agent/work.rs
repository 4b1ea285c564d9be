//! What VolumeBackups and VolumeRestores share: the life of the object
//! (a fresh read first, cancel, InProgress, then Completed, Failed or
//! Canceled with a reason), finding the volume's directory, opening the
//! repository, and progress and cancellation while the work runs.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::CSIDriver;
use k8s_openapi::NamespaceResourceScope;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::locate::{open_volume, Roots};
use super::volumes::{plan_pod, Lookup, Plan, VolumeTarget};
use super::Agent;
use crate::backup::progress::Progress;
use crate::k8s::controller::access::{get_repository, repository_access};
use crate::k8s::controller::status::patch_status;
use crate::k8s::controller::{log, Error};
use crate::k8s::crd::common::ObjectRef;
use crate::k8s::crd::volume_backup::{VolumeBackup, VolumePhase};
use crate::k8s::crd::volume_restore::VolumeRestore;
use crate::k8s::jobs::RepositoryAccess;
use crate::k8s::K8sError;
use crate::repo::CancelToken;

/// How often progress reaches the status, and cancellation is looked for.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Why a volume's work ends Failed (as opposed to an error that is
/// retried). "canceled" ends it Canceled.
pub struct Failed(pub String);

/// The result of a step: `Ok(Err(..))` is a failure to report, `Err` one
/// to retry.
pub type Step<T> = Result<Result<T, Failed>, Error>;

/// What the agent reads of a VolumeBackup or VolumeRestore.
pub trait VolumeWork:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    fn phase(&self) -> Option<VolumePhase>;
    fn cancel_requested(&self) -> bool;
}

impl VolumeWork for VolumeBackup {
    fn phase(&self) -> Option<VolumePhase> {
        self.status.as_ref().and_then(|s| s.phase)
    }
    fn cancel_requested(&self) -> bool {
        self.spec.cancel
    }
}

impl VolumeWork for VolumeRestore {
    fn phase(&self) -> Option<VolumePhase> {
        self.status.as_ref().and_then(|s| s.phase)
    }
    fn cancel_requested(&self) -> bool {
        self.spec.cancel
    }
}

fn is_done<K: VolumeWork>(obj: &K) -> bool {
    obj.phase().is_some_and(VolumePhase::is_final) || obj.meta().deletion_timestamp.is_some()
}

pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// Runs `work` for `obj` once, from a fresh read, and records how it ended.
/// `work` returns the status fields of success (`snapshotID`, `progress`)
/// and a note for the event.
pub async fn reconcile<K, F, Fut>(obj: Arc<K>, agent: Arc<Agent>, work: F) -> Result<Action, Error>
where
    K: VolumeWork,
    F: FnOnce(K, Arc<Agent>, Api<K>) -> Fut,
    Fut: Future<Output = Step<(Value, String)>>,
{
    if is_done(obj.as_ref()) {
        return Ok(Action::await_change());
    }
    let kind = K::kind(&());
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(agent.ctx.client.clone(), &namespace);
    // The watch's copy may predate this agent's own last status write (a
    // reconcile queued while the previous one ran): decide on a fresh read.
    let Some(obj) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if is_done(&obj) {
        return Ok(Action::await_change());
    }
    if obj.cancel_requested() {
        let status = json!({"phase": "Canceled", "message": "canceled before it ran", "completionTimestamp": now()});
        patch_status(&api, &name, status).await?;
        return Ok(Action::await_change());
    }
    if obj.phase() == Some(VolumePhase::InProgress) {
        // Reconciles of one object never overlap, so only an agent that
        // stopped midway leaves one here: do the work again.
        log::info(&format!(
            "{kind} {namespace}/{name}: left InProgress by an earlier run; starting it again"
        ));
    }
    let status = json!({"phase": "InProgress", "startTimestamp": now(), "message": null});
    patch_status(&api, &name, status).await?;
    match work(obj.clone(), agent.clone(), api.clone()).await? {
        Ok((mut fields, note)) => {
            fields["phase"] = json!("Completed");
            fields["completionTimestamp"] = json!(now());
            patch_status(&api, &name, fields).await?;
            agent.ctx.event(&obj, false, "Completed", note).await;
        }
        Err(Failed(message)) => {
            let phase = if message == "canceled" { "Canceled" } else { "Failed" };
            let status = json!({"phase": phase, "message": message, "completionTimestamp": now()});
            patch_status(&api, &name, status).await?;
            agent.ctx.event(&obj, phase == "Failed", phase, message).await;
        }
    }
    Ok(Action::await_change())
}

/// A volume found and opened, and its repository.
pub struct Located {
    pub target: VolumeTarget,
    pub dir: OwnedFd,
    pub access: RepositoryAccess,
    /// The BackupRepository's uid and `namespace/name`.
    pub repository: (String, String),
    pub pod: Pod,
}

/// Finds volume `volume` of pod `pod` on this node, opens its directory,
/// and the repository `repository` (in `namespace`).
pub async fn locate(
    agent: &Agent,
    namespace: &str,
    pod_ref: &ObjectRef,
    volume: &str,
    repository: &str,
) -> Step<Located> {
    let ctx = &agent.ctx;
    let fail = |m: String| Ok(Err(Failed(m)));
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod_ref.namespace);
    let Some(pod) = pods.get_opt(&pod_ref.name).await? else {
        return fail(format!("pod {}/{} no longer exists", pod_ref.namespace, pod_ref.name));
    };
    if !pod_ref.uid.is_empty() && pod.metadata.uid.as_deref() != Some(pod_ref.uid.as_str()) {
        return fail(format!(
            "pod {}/{} was recreated meanwhile (uid {} is now {})",
            pod_ref.namespace,
            pod_ref.name,
            pod_ref.uid,
            pod.metadata.uid.as_deref().unwrap_or("none")
        ));
    }
    let claims: Vec<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &pod_ref.namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let volumes: Vec<PersistentVolume> = Api::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let drivers: BTreeSet<String> = match Api::<CSIDriver>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items.iter().map(ResourceExt::name_any).collect(),
        // Without the list a PV with spec.csi is still known as CSI.
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
    let target = match plans.into_iter().find(|p| match p {
        Plan::Backup(t) => t.volume == volume,
        Plan::Skip { volume: v, .. } => v == volume,
    }) {
        Some(Plan::Backup(t)) => t,
        Some(Plan::Skip { reason, .. }) => return fail(format!("volume {volume}: {reason}")),
        None => {
            return fail(format!(
                "pod {}/{} has no volume {volume}",
                pod_ref.namespace, pod_ref.name
            ))
        }
    };
    let roots = Roots {
        pods: agent.host_pods.as_fd(),
        pods_name: &agent.host_pods_name,
        host_path: agent
            .host_path_root
            .as_ref()
            .map(|fd| (fd.as_fd(), agent.host_path_root_name.as_deref().unwrap_or_default())),
    };
    let dir = match open_volume(&roots, &target.location) {
        Ok(d) => d,
        Err(e) => return fail(e.to_string()),
    };
    let repo = match get_repository(ctx, namespace, repository).await {
        Ok(r) => r,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => return fail(e.to_string()),
    };
    let access = match repository_access(ctx, &repo).await {
        Ok(a) => a,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => return fail(e.to_string()),
    };
    let repository = (
        repo.metadata.uid.clone().unwrap_or_default(),
        format!("{namespace}/{repository}"),
    );
    Ok(Ok(Located {
        target,
        dir,
        access,
        repository,
        pod,
    }))
}

/// Awaits `work` while writing its progress every few seconds and
/// cancelling it when the object asks for it or goes away.
pub async fn drive<K, T>(
    api: &Api<K>,
    name: &str,
    work: impl Future<Output = Result<T, K8sError>>,
    progress: &Progress,
    cancel: &CancelToken,
) -> Step<T>
where
    K: VolumeWork,
{
    tokio::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => {
                return match result {
                    Ok(done) => Ok(Ok(done)),
                    Err(K8sError::Backup(crate::backup::BackupError::Canceled)
                        | K8sError::Restore(crate::restore::RestoreError::Canceled)) => Ok(Err(Failed("canceled".into()))),
                    Err(e) if e.is_transient() => Err(e.into()),
                    Err(e) => Ok(Err(Failed(e.to_string()))),
                };
            }
            () = tokio::time::sleep(PROGRESS_EVERY) => {
                let done = Progress::get(&progress.bytes_done);
                let total = Progress::get(&progress.total_bytes).max(done);
                let status = json!({"progress": {"bytesDone": done, "totalBytes": total}});
                if let Err(e) = patch_status(api, name, status).await {
                    log::warn(&format!("{} {name}: progress: {e}", K::kind(&())));
                }
                match api.get_opt(name).await {
                    Ok(Some(now)) if now.cancel_requested() || now.meta().deletion_timestamp.is_some() => cancel.cancel(),
                    Ok(None) => cancel.cancel(),
                    _ => {}
                }
            }
        }
    }
}
