//! Claims of a Backup that no running pod mounts. The agent can only read
//! a volume some pod on its node has mounted, so for each such claim the
//! controller starts a small helper pod in the claim's namespace that
//! mounts it read-only and waits (`cairn k8s hold`). Once the helper runs,
//! its node is known and the claim's VolumeBackup is made for that node's
//! agent; once that ends, the helper is deleted.
//!
//! The helper carries the exclude label, so it is never in a manifest
//! backup, and labels naming its Backup, so a rerun after a restart finds
//! it again instead of starting another (its name is derived from the
//! Backup's uid and the claim).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::record::{snapshot_uid, LABEL_BACKUP_UID};
use super::volume_backups::{self, Planned, LABEL_BACKUP_NAME};
use super::{Context, Error};
use crate::k8s::crd::backup::Backup;
use crate::k8s::crd::volume_backup::{VolumeBackup, VolumePhase};
use crate::k8s::EXCLUDE_LABEL;

/// Label marking a helper pod, with what it helps: `backup`.
pub const LABEL_HELPER: &str = "backup.cairn.io/helper";

/// The helper pod's volume: the claim, mounted read-only here.
pub const HELPER_VOLUME: &str = "data";
const MOUNT_PATH: &str = "/data";

/// How long a helper pod may take to start before its volume fails.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// The helper pod's name for `claim` in `namespace` of the Backup with
/// `uid`: stable, so that a rerun finds the one it made.
pub fn helper_name(uid: &str, namespace: &str, claim: &str) -> String {
    let hash = blake3::hash(format!("{uid}/{namespace}/{claim}").as_bytes()).to_hex();
    format!("cairn-backup-{}", &hash[..16])
}

/// The bound claims of the Backup's namespaces that no running pod mounts
/// (`mounted` holds the `(namespace, claim)`s that one does).
pub fn unmounted<'a>(
    claims: &'a [PersistentVolumeClaim],
    mounted: &std::collections::BTreeSet<(String, String)>,
    selected: impl Fn(&PersistentVolumeClaim) -> bool,
) -> Vec<&'a PersistentVolumeClaim> {
    claims
        .iter()
        .filter(|c| {
            let bound = c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let key = (c.namespace().unwrap_or_default(), c.name_any());
            bound && c.metadata.deletion_timestamp.is_none() && !mounted.contains(&key) && selected(c)
        })
        .collect()
}

/// The helper pod for `claim`, as created.
fn helper_pod(ctx: &Context, backup: &Backup, claim: &PersistentVolumeClaim) -> Result<Pod, Error> {
    let namespace = claim.namespace().unwrap_or_default();
    let claim_name = claim.name_any();
    let uid = snapshot_uid(backup);
    let name = helper_name(&uid, &namespace, &claim_name);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_HELPER: "backup",
                LABEL_BACKUP_NAME: backup.name_any(),
                LABEL_BACKUP_UID: uid,
                EXCLUDE_LABEL: "true",
                "app.kubernetes.io/name": "cairn",
                "app.kubernetes.io/component": "backup-helper",
            },
            "annotations": {
                "backup.cairn.io/backup": format!("{}/{}", backup.namespace().unwrap_or_default(), backup.name_any()),
                "backup.cairn.io/claim": claim_name,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "hold",
                "image": ctx.settings.image,
                "command": ["cairn", "k8s", "hold", "--dir", MOUNT_PATH],
                "volumeMounts": [{"name": HELPER_VOLUME, "mountPath": MOUNT_PATH, "readOnly": true}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [{"name": HELPER_VOLUME,
                         "persistentVolumeClaim": {"claimName": claim_name, "readOnly": true}}],
        },
    }))
    .map_err(|e| Error::Invalid(format!("helper pod {name}: {e}")))
}

/// Starts the helper pods of `claims` (or finds those an earlier run
/// started) and returns their volumes, the node still unknown.
pub async fn start(ctx: &Context, backup: &Backup, claims: &[&PersistentVolumeClaim]) -> Result<Vec<Planned>, Error> {
    let mut planned = Vec::new();
    for claim in claims {
        let namespace = claim.namespace().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        let pod = helper_pod(ctx, backup, claim)?;
        let made = match pods.create(&PostParams::default(), &pod).await {
            Ok(made) => made,
            Err(kube::Error::Api(s)) if s.code == 409 => pods.get(&pod.name_any()).await?,
            Err(e) => return Err(e.into()),
        };
        planned.push(Planned {
            namespace,
            pod: made.name_any(),
            pod_uid: made.metadata.uid.clone().unwrap_or_default(),
            node: String::new(),
            volume: HELPER_VOLUME.to_owned(),
            pvc: Some((claim.name_any(), claim.metadata.uid.clone().unwrap_or_default())),
        });
    }
    Ok(planned)
}

/// Why a helper pod will not run, if it will not.
fn broken(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref();
    if let Some("Failed" | "Succeeded") = status.and_then(|s| s.phase.as_deref()) {
        let why = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .map(|t| format!("exit code {}", t.exit_code))
            .unwrap_or_else(|| "no reason given".to_owned());
        return Some(format!("it ended ({why})"));
    }
    let created = pod.metadata.creation_timestamp.as_ref()?;
    let age = jiff::Timestamp::now().duration_since(created.0);
    if age.as_secs() as u64 >= START_TIMEOUT.as_secs() {
        let why = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.status == "False" && c.message.is_some()))
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| "still not running".to_owned());
        return Some(format!("it did not start within {}s: {why}", START_TIMEOUT.as_secs()));
    }
    None
}

/// Moves the helper pods of `backup` along: a running one gets its
/// VolumeBackup on its node, one that cannot run gets a Failed
/// VolumeBackup saying why, and one whose VolumeBackup ended is deleted.
/// Returns how many helpers still wait to run (volumes not yet counted
/// by their VolumeBackups).
pub async fn advance(ctx: &Context, backup: &Backup) -> Result<u32, Error> {
    let uid = snapshot_uid(backup);
    if uid.is_empty() {
        return Ok(0);
    }
    let selector = format!("{LABEL_HELPER}=backup,{LABEL_BACKUP_UID}={uid}");
    let helpers = Api::<Pod>::all(ctx.client.clone())
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    if helpers.is_empty() {
        return Ok(0);
    }
    let existing: BTreeMap<String, VolumeBackup> = volume_backups::of_backup(ctx, backup)
        .await?
        .into_iter()
        .map(|vb| (vb.name_any(), vb))
        .collect();
    let mut waiting = 0;
    for pod in helpers {
        let pod_ns = pod.namespace().unwrap_or_default();
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        let vb_name = volume_backups::name_for(&backup.name_any(), &pod_uid, HELPER_VOLUME);
        if let Some(vb) = existing.get(&vb_name) {
            if vb
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(VolumePhase::is_final)
            {
                delete(ctx, &pod).await?;
            }
            continue;
        }
        let claim = pod
            .annotations()
            .get("backup.cairn.io/claim")
            .cloned()
            .unwrap_or_default();
        let claim_uid = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &pod_ns)
            .get_opt(&claim)
            .await?
            .and_then(|c| c.metadata.uid)
            .unwrap_or_default();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let planned = Planned {
            namespace: pod_ns.clone(),
            pod: pod.name_any(),
            pod_uid,
            node,
            volume: HELPER_VOLUME.to_owned(),
            pvc: Some((claim.clone(), claim_uid)),
        };
        if running && !planned.node.is_empty() {
            volume_backups::create(ctx, backup, std::slice::from_ref(&planned)).await?;
        } else if let Some(why) = broken(&pod) {
            let message = format!(
                "claim {pod_ns}/{claim}: helper pod {pod_ns}/{} that mounts it for the agent: {why}",
                pod.name_any()
            );
            volume_backups::create_failed(ctx, backup, &planned, &message).await?;
            delete(ctx, &pod).await?;
        } else {
            waiting += 1;
        }
    }
    Ok(waiting)
}

/// Deletes a helper pod (gone already is fine).
async fn delete(ctx: &Context, pod: &Pod) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every helper pod of the Backup with `uid` (it was deleted, or
/// it ended).
pub async fn delete_all(ctx: &Context, uid: &str) -> Result<(), Error> {
    if uid.is_empty() {
        return Ok(());
    }
    let selector = format!("{LABEL_HELPER}=backup,{LABEL_BACKUP_UID}={uid}");
    let helpers = Api::<Pod>::all(ctx.client.clone())
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    for pod in helpers {
        delete(ctx, &pod).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use serde_json::json;

    fn claim(ns: &str, name: &str, phase: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                                      "status": {"phase": phase}}))
        .unwrap()
    }

    #[test]
    fn only_bound_selected_claims_no_pod_mounts() {
        let claims = vec![
            claim("app", "used", "Bound"),
            claim("app", "idle", "Bound"),
            claim("app", "pending", "Pending"),
            claim("other", "idle", "Bound"),
        ];
        let mounted: BTreeSet<(String, String)> = [("app".to_owned(), "used".to_owned())].into();
        let found = super::unmounted(&claims, &mounted, |c| c.metadata.namespace.as_deref() == Some("app"));
        let names: Vec<_> = found.iter().map(|c| c.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["idle"]);
    }

    #[test]
    fn a_helper_that_ended_or_never_started_is_broken_with_the_reason() {
        let pod = |v: serde_json::Value| -> k8s_openapi::api::core::v1::Pod { serde_json::from_value(v).unwrap() };
        let ended = pod(
            json!({"metadata": {"name": "h", "creationTimestamp": "2026-01-01T00:00:00Z"},
                               "status": {"phase": "Failed", "containerStatuses": [{"name": "hold", "image": "x",
                                   "imageID": "", "ready": false, "restartCount": 0,
                                   "state": {"terminated": {"exitCode": 2}}}]}}),
        );
        assert_eq!(super::broken(&ended).as_deref(), Some("it ended (exit code 2)"));
        let stuck = pod(
            json!({"metadata": {"name": "h", "creationTimestamp": "2026-01-01T00:00:00Z"},
                               "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
                                   "status": "False", "message": "0/3 nodes are available"}]}}),
        );
        assert!(super::broken(&stuck).unwrap().ends_with("0/3 nodes are available"));
        let fresh = pod(
            json!({"metadata": {"name": "h", "creationTimestamp": jiff::Timestamp::now().to_string()},
                               "status": {"phase": "Pending"}}),
        );
        assert_eq!(super::broken(&fresh), None);
    }

    #[test]
    fn helper_names_are_stable_and_valid() {
        let a = super::helper_name("uid-1", "app", "data");
        assert_eq!(a, super::helper_name("uid-1", "app", "data"));
        assert_ne!(a, super::helper_name("uid-2", "app", "data"));
        assert_ne!(a, super::helper_name("uid-1", "app", "logs"));
        assert!(
            a.len() <= 63
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
