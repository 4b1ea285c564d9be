//! The volume data of a Restore, written back before its workloads start.
//!
//! The Backup's volume snapshots are found in its repository by the tag
//! `backup-uid=<uid>`. Each snapshot of a claim (tag `pvc=`) whose claim
//! the Restore selects makes that claim "fresh": it is created without its
//! binding, so it is provisioned anew, and its old PersistentVolume is not
//! restored. Snapshots of other volumes (emptyDir) are not restored in the
//! cluster; `cairn restore` writes them back by hand.
//!
//! Per claim the Restore created, a helper pod in the claim's namespace
//! mounts it and runs `cairn k8s restore-wait` (no service account token,
//! no credentials). Once the pod runs on a node, a VolumeRestore for that
//! node's agent (in the Restore's namespace, owned by the Restore) writes
//! the snapshot into the pod's volume and then the marker the helper waits
//! for. The helper removes the marker and exits; the controller deletes it.
//! Everything is found again by name, so a restarted controller resumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::record::TAG_BACKUP_UID;
use super::{Context, Error};
use crate::k8s::crd::restore::{Restore, RestoredVolume};
use crate::k8s::crd::volume_backup::VolumePhase;
use crate::k8s::crd::volume_restore::VolumeRestore;
use crate::k8s::jobs::{self, RepositoryAccess};
use crate::k8s::manifests::filter::Filters;
use crate::k8s::restore_wait::marker_name;
use crate::k8s::{K8sError, EXCLUDE_LABEL};

/// Label naming the Restore on its helper pods and VolumeRestores.
pub const LABEL_RESTORE_NAME: &str = "backup.cairn.io/restore-name";
/// Label with the Restore's uid on its helper pods.
pub const LABEL_RESTORE_UID: &str = "backup.cairn.io/restore-uid";

/// The finalizer of a Restore with helper pods: they live in other
/// namespaces (no owner reference reaches them), so they are deleted
/// before the Restore goes.
pub const FINALIZER: &str = "backup.cairn.io/delete-helper-pods";

/// The helper pod's volume, and where it is mounted.
const HELPER_VOLUME: &str = "restore";
const HELPER_MOUNT: &str = "/restore";

/// A volume snapshot of the Backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSnapshot {
    pub id: String,
    pub namespace: String,
    /// The claim (None for other volume types).
    pub pvc: Option<String>,
    pub pod: String,
    pub volume: String,
}

/// The volume snapshots tagged with the Backup's uid `uid`, the newest
/// per claim or pod volume.
pub async fn find_snapshots(access: RepositoryAccess, uid: &str) -> Result<Vec<VolumeSnapshot>, K8sError> {
    let tag = format!("{TAG_BACKUP_UID}={uid}");
    jobs::with_repository(access, move |repo| {
        let mut newest: BTreeMap<(String, String), (i64, VolumeSnapshot)> = BTreeMap::new();
        for (id, snap) in repo.list_snapshots()? {
            if !snap.tags.contains(&tag) {
                continue;
            }
            let value = |name: &str| {
                snap.tags
                    .iter()
                    .find_map(|t| t.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                    .map(str::to_owned)
            };
            let (Some(namespace), Some(volume)) = (value("namespace"), value("volume")) else {
                continue;
            };
            let found = VolumeSnapshot {
                id: id.to_hex(),
                namespace,
                pvc: value("pvc"),
                pod: value("pod").unwrap_or_default(),
                volume,
            };
            let key = match &found.pvc {
                Some(pvc) => (found.namespace.clone(), pvc.clone()),
                None => (found.namespace.clone(), format!("{}/{}", found.pod, found.volume)),
            };
            let time = snap.time_ns;
            if newest.get(&key).is_none_or(|(t, _)| time >= *t) {
                newest.insert(key, (time, found));
            }
        }
        Ok(newest.into_values().map(|(_, s)| s).collect())
    })
    .await
}

/// The snapshots of the claims the Restore's filters select (namespaces
/// as in the backup), and a warning line per other selected volume.
pub fn select(snapshots: Vec<VolumeSnapshot>, filters: &Filters) -> (Vec<VolumeSnapshot>, Vec<String>) {
    let mut claims = Vec::new();
    let mut warnings = Vec::new();
    for s in snapshots {
        if !filters.namespace_selected(&s.namespace) {
            continue;
        }
        if s.pvc.is_some() {
            claims.push(s);
        } else {
            warnings.push(format!(
                "volume {} of pod {}/{} (snapshot {}) is not a claim: its data is not restored in the cluster; \
                 restore it by hand with `cairn restore {}`",
                s.volume,
                s.namespace,
                s.pod,
                &s.id[..8.min(s.id.len())],
                &s.id[..8.min(s.id.len())]
            ));
        }
    }
    (claims, warnings)
}

/// Where the volumes of a Restore are.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub total: u32,
    pub completed: u32,
    pub failed: u32,
    /// One line per failed volume, naming its claim.
    pub failures: Vec<String>,
}

impl Counts {
    pub fn pending(&self) -> u32 {
        self.total.saturating_sub(self.completed + self.failed)
    }
}

/// The helper pod of the `index`th volume of Restore `restore`.
fn helper_name(restore: &Restore, index: usize) -> String {
    let uid = restore.metadata.uid.as_deref().unwrap_or_default();
    format!("cairn-restore-{}-{index}", &uid[..8.min(uid.len())])
}

/// The VolumeRestore of the `index`th volume.
fn volume_restore_name(restore: &Restore, index: usize) -> String {
    format!("{}-{index}", restore.name_any())
}

/// Moves each volume of the Restore one step on (helper pod created,
/// VolumeRestore created, helper deleted) and counts where they are.
pub async fn advance(
    ctx: &Context,
    restore: &Restore,
    repository: &str,
    volumes: &[RestoredVolume],
) -> Result<Counts, Error> {
    let namespace = restore.namespace().unwrap_or_default();
    let vrs: Api<VolumeRestore> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut counts = Counts {
        total: volumes.len() as u32,
        ..Counts::default()
    };
    for (index, v) in volumes.iter().enumerate() {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
        let pod_name = helper_name(restore, index);
        let vr_name = volume_restore_name(restore, index);
        let pod = pods.get_opt(&pod_name).await?;
        let vr = vrs.get_opt(&vr_name).await?;
        let pod_phase = pod
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let claim = format!("{}/{}", v.namespace, v.claim);
        match vr {
            Some(vr) => {
                let status = vr.status.clone().unwrap_or_default();
                match status.phase {
                    Some(VolumePhase::Completed) => {
                        if pod.is_none() || pod_phase == "Succeeded" {
                            delete_helper(&pods, pod.as_ref()).await?;
                            counts.completed += 1;
                        } else if pod_phase == "Failed" {
                            delete_helper(&pods, pod.as_ref()).await?;
                            counts.failed += 1;
                            counts.failures.push(format!(
                                "claim {claim}: the helper pod {pod_name} failed waiting for the restored data"
                            ));
                        }
                    }
                    Some(phase) if phase.is_final() => {
                        delete_helper(&pods, pod.as_ref()).await?;
                        counts.failed += 1;
                        let why = status.message.unwrap_or_else(|| phase_text(phase));
                        counts.failures.push(format!("claim {claim}: {why}"));
                    }
                    _ => {}
                }
            }
            None => match pod {
                None => {
                    if let Some(refused) = create_helper(ctx, restore, &pods, &pod_name, v).await? {
                        let why = format!("the helper pod {pod_name} was refused: {refused}");
                        let vr = (repository, &vrs, vr_name.as_str());
                        fail_volume(restore, vr, (&pod_name, None), v, &why).await?;
                        counts.failed += 1;
                        counts.failures.push(format!("claim {claim}: {why}"));
                    }
                }
                Some(pod) if pod_phase == "Running" => {
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
                    if !node.is_empty() {
                        let uid = pod.metadata.uid.as_deref();
                        create_volume_restore(restore, repository, &vrs, &vr_name, (&pod_name, uid), &node, v).await?;
                    }
                }
                Some(pod) if pod_phase == "Failed" || pod_phase == "Succeeded" => {
                    let why = format!("the helper pod {pod_name} ended before its data came");
                    let vr = (repository, &vrs, vr_name.as_str());
                    fail_volume(restore, vr, (&pod_name, pod.metadata.uid.as_deref()), v, &why).await?;
                    delete_helper(&pods, Some(&pod)).await?;
                    counts.failed += 1;
                    counts.failures.push(format!("claim {claim}: {why}"));
                }
                Some(pod) => {
                    if let Some(stuck) = not_started(&pod) {
                        let why = format!("the helper pod {pod_name} {stuck}");
                        let vr = (repository, &vrs, vr_name.as_str());
                        fail_volume(restore, vr, (&pod_name, pod.metadata.uid.as_deref()), v, &why).await?;
                        delete_helper(&pods, Some(&pod)).await?;
                        counts.failed += 1;
                        counts.failures.push(format!("claim {claim}: {why}"));
                    }
                }
            },
        }
    }
    Ok(counts)
}

/// How long a helper pod may take to run before its volume fails.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a helper pod that is not running yet is given up, if it is: it has
/// waited longer than [`START_TIMEOUT`] (unschedulable, a claim that never
/// binds, an image that cannot be pulled).
fn not_started(pod: &Pod) -> Option<String> {
    let created = pod.metadata.creation_timestamp.as_ref()?;
    let waited = jiff::Timestamp::now().duration_since(created.0);
    if waited.as_secs() < START_TIMEOUT.as_secs() as i64 {
        return None;
    }
    let why = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.status == "False" && c.message.is_some()))
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| "no reason given".to_owned());
    Some(format!("did not run within {}s: {why}", START_TIMEOUT.as_secs()))
}

/// Records a volume that cannot be restored as a VolumeRestore ended
/// Failed with `why` (no node takes it), so that the next pass counts it
/// failed instead of starting its helper again.
async fn fail_volume(
    restore: &Restore,
    (repository, vrs, name): (&str, &Api<VolumeRestore>, &str),
    pod: (&str, Option<&str>),
    volume: &RestoredVolume,
    why: &str,
) -> Result<(), Error> {
    create_volume_restore(restore, repository, vrs, name, pod, "", volume).await?;
    super::status::patch_status(
        vrs,
        name,
        json!({"phase": VolumePhase::Failed, "message": why, "completionTimestamp": jiff::Timestamp::now()}),
    )
    .await?;
    Ok(())
}

fn phase_text(phase: VolumePhase) -> String {
    format!("the VolumeRestore ended {phase:?}")
}

/// The helper pod of a claim: mounts it at `/restore` and waits there for
/// the marker; runs with no API token and no credentials.
pub fn helper_pod(image: &str, restore: &Restore, name: &str, volume: &RestoredVolume) -> serde_json::Value {
    let uid = restore.metadata.uid.clone().unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": volume.namespace,
                     "labels": {LABEL_RESTORE_NAME: restore.name_any(), LABEL_RESTORE_UID: uid,
                                "app.kubernetes.io/managed-by": "cairn",
                                // Never part of a backup taken meanwhile.
                                EXCLUDE_LABEL: "true",
                                "app.kubernetes.io/component": "restore-helper"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "restore-wait",
                "image": image,
                "command": ["cairn", "k8s", "restore-wait", "--dir", HELPER_MOUNT, "--marker", marker_name(&uid)],
                "volumeMounts": [{"name": HELPER_VOLUME, "mountPath": HELPER_MOUNT}],
                // Root with only the capabilities to remove the marker from a
                // volume root owned by anyone (the data's owners are kept).
                "securityContext": {"runAsUser": 0, "runAsGroup": 0, "allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"], "add": ["DAC_OVERRIDE", "FOWNER"]}},
            }],
            "volumes": [{"name": HELPER_VOLUME, "persistentVolumeClaim": {"claimName": volume.claim}}],
        },
    })
}

/// Creates the helper pod; the reason when the API server refuses it (an
/// admission policy, a quota), which ends that volume failed.
async fn create_helper(
    ctx: &Context,
    restore: &Restore,
    pods: &Api<Pod>,
    name: &str,
    volume: &RestoredVolume,
) -> Result<Option<String>, Error> {
    let pod: Pod = serde_json::from_value(helper_pod(&ctx.settings.image, restore, name, volume))
        .map_err(|e| Error::Invalid(format!("helper pod {name}: {e}")))?;
    match pods.create(&PostParams::default(), &pod).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => Ok(Some(s.message)),
        Err(e) => Err(e.into()),
    }
}

async fn create_volume_restore(
    restore: &Restore,
    repository: &str,
    vrs: &Api<VolumeRestore>,
    name: &str,
    pod: (&str, Option<&str>),
    node: &str,
    volume: &RestoredVolume,
) -> Result<(), Error> {
    let owner = restore.controller_owner_ref(&());
    let uid = restore.metadata.uid.clone().unwrap_or_default();
    let vr: VolumeRestore = serde_json::from_value(json!({
        "apiVersion": "backup.cairn.io/v1alpha1",
        "kind": "VolumeRestore",
        "metadata": {"name": name, "namespace": restore.namespace(),
                     "labels": {LABEL_RESTORE_NAME: restore.name_any()},
                     "ownerReferences": owner.into_iter().collect::<Vec<_>>()},
        "spec": {"node": node,
                 "pod": {"namespace": volume.namespace, "name": pod.0, "uid": pod.1.unwrap_or_default()},
                 "volume": HELPER_VOLUME,
                 "pvc": {"namespace": volume.namespace, "name": volume.claim},
                 "repository": repository,
                 "restoreName": restore.name_any(),
                 "snapshotID": volume.snapshot_id,
                 "marker": marker_name(&uid)},
    }))
    .map_err(|e| Error::Invalid(format!("VolumeRestore {name}: {e}")))?;
    match vrs.create(&PostParams::default(), &vr).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn delete_helper(pods: &Api<Pod>, pod: Option<&Pod>) -> Result<(), Error> {
    let Some(pod) = pod else {
        return Ok(());
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    match pods.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every helper pod of `restore` (found by its uid label) and
/// then lets the Restore go (its finalizer removed).
pub async fn release(ctx: &Context, api: &Api<Restore>, restore: &Restore) -> Result<(), Error> {
    if !restore.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let uid = restore.metadata.uid.clone().unwrap_or_default();
    let all: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("{LABEL_RESTORE_UID}={uid}");
    for pod in all.list(&ListParams::default().labels(&selector)).await?.items {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        delete_helper(&pods, Some(&pod)).await?;
    }
    super::status::remove_finalizer(api, restore, FINALIZER).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_pod_that_never_runs_is_given_up_after_its_start_timeout() {
        let pod = |created: String| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(json!({"metadata": {"name": "h", "creationTimestamp": created},
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                    "message": "0/2 nodes are available: volume node affinity conflict"}]}}))
            .unwrap()
        };
        let old = pod("2026-01-01T00:00:00Z".to_owned());
        let why = super::not_started(&old).unwrap();
        assert!(why.starts_with("did not run within 300s"), "{why}");
        assert!(why.ends_with("volume node affinity conflict"), "{why}");
        assert_eq!(super::not_started(&pod(jiff::Timestamp::now().to_string())), None);
    }

    #[test]
    fn the_helper_pod_mounts_the_claim_and_carries_no_token() {
        let mut restore = Restore::new("r1", Default::default());
        restore.metadata.namespace = Some("cairn-system".into());
        restore.metadata.uid = Some("0b6f8a52-9d6e".into());
        let volume = RestoredVolume {
            namespace: "web-copy".into(),
            claim: "data-web-0".into(),
            snapshot_id: "abc".into(),
        };
        let pod = helper_pod("cairn:1", &restore, &helper_name(&restore, 0), &volume);
        assert_eq!(pod["metadata"]["name"], "cairn-restore-0b6f8a52-0");
        assert_eq!(pod["metadata"]["namespace"], "web-copy");
        assert_eq!(pod["metadata"]["labels"][LABEL_RESTORE_NAME], "r1");
        assert_eq!(pod["metadata"]["labels"][EXCLUDE_LABEL], "true");
        assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(
            c["command"],
            json!([
                "cairn",
                "k8s",
                "restore-wait",
                "--dir",
                "/restore",
                "--marker",
                ".cairn-restore-0b6f8a52-9d6e"
            ])
        );
        assert!(c.get("env").is_none() && c.get("envFrom").is_none());
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(
            c["securityContext"]["capabilities"],
            json!({"drop": ["ALL"], "add": ["DAC_OVERRIDE", "FOWNER"]})
        );
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "data-web-0"
        );
        assert!(pod.get("ownerReferences").is_none());
    }

    #[test]
    fn only_claims_are_restored_and_other_volumes_are_named() {
        let s = |pvc: Option<&str>, ns: &str| VolumeSnapshot {
            id: "0123456789abcdef".into(),
            namespace: ns.into(),
            pvc: pvc.map(Into::into),
            pod: "web-0".into(),
            volume: "v".into(),
        };
        let filters = Filters::new(
            &["shop".into()],
            &[],
            &[],
            &[],
            None,
            crate::k8s::manifests::filter::ClusterResources::Auto,
        )
        .unwrap();
        let (claims, warnings) = select(
            vec![s(Some("data"), "shop"), s(None, "shop"), s(Some("x"), "other")],
            &filters,
        );
        assert_eq!(claims, vec![s(Some("data"), "shop")]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("cairn restore 01234567"), "{}", warnings[0]);
    }
}
