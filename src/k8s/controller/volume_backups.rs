//! The pod volumes of a Backup: after its manifests are stored, one
//! VolumeBackup per selected volume (a claim mounted by several pods once),
//! on the node of the pod that mounts it, for that node's agent. A bound
//! claim no running pod mounts is mounted by a helper pod first
//! ([`super::volume_helpers`]). The Backup waits for them and counts them
//! in `status.volumeBackups`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::record::VolumeRecord;
use super::{volume_helpers, Context, Error};
use crate::k8s::agent::volumes::{plan_pod, Lookup, Plan};
use crate::k8s::crd::backup::Backup;
use crate::k8s::crd::volume_backup::{VolumeBackup, VolumePhase};
use crate::k8s::manifests::filter::{excluded_by_label, Filters};

/// Label of a VolumeBackup naming its Backup.
pub const LABEL_BACKUP_NAME: &str = "backup.cairn.io/backup-name";

/// How the volumes of a Backup stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u32,
    pub completed: u32,
    pub failed: u32,
    /// Volumes skipped with the reason (opt-in volumes that cannot be
    /// backed up), for the Backup's warnings.
    pub skipped: Vec<String>,
}

impl Counts {
    pub fn pending(&self) -> u32 {
        self.total - self.completed - self.failed
    }
}

/// A stable name for the VolumeBackup of `volume` of the pod with `uid`.
pub(super) fn name_for(backup: &str, uid: &str, volume: &str) -> String {
    let hash = blake3::hash(format!("{uid}/{volume}").as_bytes()).to_hex();
    let head: String = backup.chars().take(240).collect();
    format!("{head}-{}", &hash[..10])
}

/// One volume a Backup takes: the pod that mounts it and its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub node: String,
    pub volume: String,
    /// The claim's name and uid, for a PVC-backed volume.
    pub pvc: Option<(String, String)>,
}

impl Planned {
    /// The volume as the backup record lists it.
    pub fn record(&self) -> VolumeRecord {
        VolumeRecord {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            volume: self.volume.clone(),
            pvc: self.pvc.as_ref().map(|(name, _)| name.clone()),
        }
    }
}

/// The volumes `backup` takes from the Running pods it selects and from
/// the bound claims of its namespaces that no running pod mounts (whose
/// helper pods this starts), and the volumes it cannot take with the
/// reason.
pub async fn plan(ctx: &Context, backup: &Backup, filters: &Filters) -> Result<(Vec<Planned>, Vec<String>), Error> {
    let default_all = backup
        .spec
        .volumes
        .as_ref()
        .is_some_and(|v| v.default_volumes_to_backup);
    let running: Vec<Pod> = Api::<Pod>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        })
        .collect();
    // Claims some running pod mounts, selected or not: those are read
    // through that pod (or not at all), never through a helper.
    let mut mounted: BTreeSet<(String, String)> = BTreeSet::new();
    for p in &running {
        let ns = p.namespace().unwrap_or_default();
        for v in p.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(c) = &v.persistent_volume_claim {
                mounted.insert((ns.clone(), c.claim_name.clone()));
            }
        }
    }
    let pods: Vec<&Pod> = running
        .iter()
        .filter(|p| {
            let ns = p.namespace().unwrap_or_default();
            let value = serde_json::to_value(p).unwrap_or_default();
            filters.namespace_selected(&ns) && filters.label_selected(&value) && !excluded_by_label(&value)
        })
        .collect();
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    let all_claims: Vec<PersistentVolumeClaim> = Api::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let mut claims_by_ns: BTreeMap<String, Vec<PersistentVolumeClaim>> = BTreeMap::new();
    for c in &all_claims {
        claims_by_ns
            .entry(c.namespace().unwrap_or_default())
            .or_default()
            .push(c.clone());
    }
    let volumes: Vec<PersistentVolume> = if pods.is_empty() {
        Vec::new()
    } else {
        Api::all(ctx.client.clone()).list(&ListParams::default()).await?.items
    };
    let mut claims_seen: BTreeSet<(String, String)> = BTreeSet::new();
    for pod in pods {
        let ns = pod.namespace().unwrap_or_default();
        let claims = claims_by_ns.get(&ns).map(Vec::as_slice).unwrap_or_default();
        let lookup = Lookup {
            claims,
            volumes: &volumes,
            host_path_root: ctx.settings.host_path_root.as_deref(),
            ..Lookup::default()
        };
        let pod_name = pod.name_any();
        let plans = match plan_pod(pod, default_all, &lookup) {
            Ok(plans) => plans,
            Err(e) => {
                skipped.push(format!("pod {ns}/{pod_name}: its volumes are not backed up: {e}"));
                continue;
            }
        };
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        for p in plans {
            let target = match p {
                Plan::Backup(t) => t,
                Plan::Skip { volume, reason } => {
                    skipped.push(format!("pod {ns}/{pod_name} volume {volume}: {reason}"));
                    continue;
                }
            };
            // A claim mounted by several pods is backed up once.
            if let Some(pvc) = &target.pvc {
                if !claims_seen.insert((ns.clone(), pvc.clone())) {
                    continue;
                }
            }
            let pvc = target.pvc.as_ref().map(|c| {
                let uid = claims
                    .iter()
                    .find(|x| x.metadata.name.as_deref() == Some(c.as_str()))
                    .and_then(|x| x.metadata.uid.clone())
                    .unwrap_or_default();
                (c.clone(), uid)
            });
            planned.push(Planned {
                namespace: ns.clone(),
                pod: pod_name.clone(),
                pod_uid: pod_uid.clone(),
                node: node.clone(),
                volume: target.volume,
                pvc,
            });
        }
    }
    // Claims no running pod mounts: in both modes (no pod can opt them in
    // or out), unless a label excludes them.
    let idle = volume_helpers::unmounted(&all_claims, &mounted, |c| {
        let value = serde_json::to_value(c).unwrap_or_default();
        filters.namespace_selected(&c.namespace().unwrap_or_default())
            && filters.label_selected(&value)
            && !excluded_by_label(&value)
    });
    planned.extend(volume_helpers::start(ctx, backup, &idle).await?);
    Ok((planned, skipped))
}

/// Creates the VolumeBackups of `planned` that do not exist yet (an
/// earlier, killed run may have made some). Volumes of helper pods that
/// are not running yet (no node) wait for [`volume_helpers::advance`].
pub async fn create(ctx: &Context, backup: &Backup, planned: &[Planned]) -> Result<(), Error> {
    for p in planned.iter().filter(|p| !p.node.is_empty()) {
        create_one(ctx, backup, p).await?;
    }
    Ok(())
}

/// Creates the VolumeBackup of a volume that cannot be read, marked
/// Failed with `message`.
pub async fn create_failed(ctx: &Context, backup: &Backup, planned: &Planned, message: &str) -> Result<(), Error> {
    let name = create_one(ctx, backup, planned).await?;
    let vbs: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    super::status::patch_status(
        &vbs,
        &name,
        json!({"phase": VolumePhase::Failed, "message": message,
               "completionTimestamp": super::backup_steps::now()}),
    )
    .await?;
    Ok(())
}

/// Creates one VolumeBackup (made already is fine); its name.
async fn create_one(ctx: &Context, backup: &Backup, p: &Planned) -> Result<String, Error> {
    let namespace = backup.namespace().unwrap_or_default();
    let name = backup.name_any();
    let vbs: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    let vb_name = name_for(&name, &p.pod_uid, &p.volume);
    let pvc = p
        .pvc
        .as_ref()
        .map(|(c, uid)| json!({"namespace": p.namespace, "name": c, "uid": uid}));
    let owner = backup.controller_owner_ref(&());
    let vb: VolumeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.cairn.io/v1alpha1",
        "kind": "VolumeBackup",
        "metadata": {"name": vb_name, "namespace": namespace,
                     "labels": {LABEL_BACKUP_NAME: name},
                     "ownerReferences": owner.into_iter().collect::<Vec<_>>()},
        "spec": {"node": p.node, "pod": {"namespace": p.namespace, "name": p.pod, "uid": p.pod_uid},
                 "volume": p.volume, "pvc": pvc,
                 "repository": backup.spec.repository_name(), "backupName": name},
    }))
    .map_err(|e| Error::Invalid(format!("VolumeBackup {vb_name}: {e}")))?;
    match vbs.create(&PostParams::default(), &vb).await {
        Ok(_) => {}
        // Made by an earlier run of this Backup.
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(vb_name)
}

/// The VolumeBackups of `backup`: labelled with its name and owned by it
/// (not by a former Backup of the same name).
pub async fn of_backup(ctx: &Context, backup: &Backup) -> Result<Vec<VolumeBackup>, Error> {
    let namespace = backup.namespace().unwrap_or_default();
    let vbs: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = format!("{LABEL_BACKUP_NAME}={}", backup.name_any());
    let uid = backup.meta().uid.clone();
    let mut ours = vbs.list(&ListParams::default().labels(&selector)).await?.items;
    ours.retain(|vb| {
        vb.metadata
            .owner_references
            .as_ref()
            .is_some_and(|refs| refs.iter().any(|r| Some(&r.uid) == uid.as_ref()))
    });
    Ok(ours)
}

/// Counts the VolumeBackups of `backup` by phase, after moving its helper
/// pods along (those not running yet count as pending); `skipped` are the
/// volumes it could not take, carried into the counts for its warnings.
pub async fn count(ctx: &Context, backup: &Backup, skipped: Vec<String>) -> Result<Counts, Error> {
    let waiting = volume_helpers::advance(ctx, backup).await?;
    let mut counts = Counts {
        skipped,
        total: waiting,
        ..Counts::default()
    };
    for vb in of_backup(ctx, backup).await? {
        counts.total += 1;
        match vb.status.as_ref().and_then(|s| s.phase) {
            Some(VolumePhase::Completed) => counts.completed += 1,
            Some(VolumePhase::Failed | VolumePhase::Canceled) => counts.failed += 1,
            _ => {}
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_stable_and_short_enough() {
        let a = super::name_for("nightly", "u-1", "data");
        assert_eq!(a, super::name_for("nightly", "u-1", "data"));
        assert_ne!(a, super::name_for("nightly", "u-1", "logs"));
        assert!(a.starts_with("nightly-"));
        assert!(super::name_for(&"x".repeat(300), "u", "v").len() <= 253);
    }
}
