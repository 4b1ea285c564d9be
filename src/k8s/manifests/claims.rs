//! Claims and their volumes in a cluster that has its own.
//!
//! The PV controller binds a claim that names a volume (`volumeName`) to
//! it only if the volume is free or reserved for that claim (its
//! `claimRef` names the claim, without a uid or with the claim's), and
//! marks a claim Lost when it says it is bound (the
//! `pv.kubernetes.io/bind-completed` annotation) to a volume that is
//! missing or whose `claimRef` carries another uid — which a restored
//! claim always has. So a restore:
//!
//! - does not recreate a volume with reclaim policy Delete whose data it
//!   does not restore: its disk went with its claim (or belongs to the
//!   cluster backed up); the claim is provisioned anew;
//! - creates every claim unbound (without the bind annotations), keeping
//!   `volumeName` only when its volume is restored with it or exists
//!   reserved for it;
//! - takes from a claim whose volume is not restored with it (not in the
//!   restore, or existing bound to another claim, as when a namespace is
//!   mapped in the same cluster) its `volumeName`, the bind, node and
//!   provisioner annotations and a `dataSource`/`dataSourceRef` naming a
//!   VolumeSnapshot, so that it is provisioned anew;
//! - makes a Released volume whose `claimRef` names the very claim being
//!   restored bindable again (its `claimRef` without uid and
//!   resourceVersion), so the claim finds its old data.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};

use super::normalise::ObjectPath;
use super::transform::UNBOUND_CLAIM_ANNOTATIONS;

/// The annotations saying a claim is bound (as opposed to naming the
/// volume it wants).
pub const BOUND_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
];

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn is_volume(at: &ObjectPath) -> bool {
    at.group.is_empty() && at.plural == "persistentvolumes"
}

fn is_claim(at: &ObjectPath) -> bool {
    at.group.is_empty() && at.plural == "persistentvolumeclaims"
}

/// Why a volume is not restored, if it is not: reclaim policy Delete.
/// (Volumes whose data the node agent restores are left out before.)
pub fn skip_reason(at: &ObjectPath, object: &Value) -> Option<String> {
    (is_volume(at) && str_at(object, "/spec/persistentVolumeReclaimPolicy") == "Delete").then(|| {
        "reclaim policy Delete and no volume data restored: its disk went with its claim, which is provisioned anew"
            .to_owned()
    })
}

/// Removes `keys` from the map at `pointer`, and the map when that leaves
/// it empty.
fn remove(object: &mut Value, pointer: &str, keys: &[&str]) {
    let emptied = match object.pointer_mut(pointer).and_then(Value::as_object_mut) {
        Some(map) => {
            let before = map.len();
            for k in keys {
                map.remove(*k);
            }
            map.is_empty() && before > 0
        }
        None => false,
    };
    if emptied {
        if let Some((parent, field)) = pointer.rsplit_once('/') {
            if let Some(p) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
                p.remove(field);
            }
        }
    }
}

/// A claim as created: never marked bound (the PV controller binds it).
pub fn unmark_bound(at: &ObjectPath, object: &mut Value) {
    if is_claim(at) {
        remove(object, "/metadata/annotations", BOUND_ANNOTATIONS);
    }
}

/// A claim without its volume, to be provisioned anew: no `volumeName`,
/// no bind, node or provisioner annotations, no snapshot to fill it from.
pub fn unbind(object: &mut Value) {
    remove(object, "/spec", &["volumeName"]);
    remove(object, "/metadata/annotations", UNBOUND_CLAIM_ANNOTATIONS);
    for field in ["dataSource", "dataSourceRef"] {
        if object.pointer(&format!("/spec/{field}/kind")).and_then(Value::as_str) == Some("VolumeSnapshot") {
            remove(object, "/spec", &[field]);
        }
    }
}

/// What a live volume means for the claim `namespace/name` (as restored)
/// that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveVolume {
    /// Free, or reserved for the claim: the claim keeps it.
    Keep,
    /// Released by an earlier claim of that name: made bindable, kept.
    Release,
    /// Bound to another claim, or going: the claim is provisioned anew.
    Elsewhere,
}

/// Judges a live volume for the claim `namespace/name`; `claim_exists`
/// says whether that claim exists in the cluster now.
pub fn judge(volume: &Value, namespace: &str, name: &str, claim_exists: bool) -> LiveVolume {
    let Some(claim_ref) = volume.pointer("/spec/claimRef").filter(|r| r.is_object()) else {
        return LiveVolume::Keep;
    };
    if str_at(claim_ref, "/namespace") != namespace || str_at(claim_ref, "/name") != name {
        return LiveVolume::Elsewhere;
    }
    if str_at(claim_ref, "/uid").is_empty() || claim_exists {
        return LiveVolume::Keep;
    }
    if str_at(volume, "/spec/persistentVolumeReclaimPolicy") == "Delete" {
        // The PV controller deletes it (and its disk).
        return LiveVolume::Elsewhere;
    }
    LiveVolume::Release
}

/// What the restore does with its claims, from the live volumes.
#[derive(Debug, Clone, Default)]
pub struct ClaimPlan {
    /// Claims (namespace as restored, name) provisioned anew.
    pub unbound: BTreeSet<(String, String)>,
    /// Live volumes the claims keep (to add to the restored ones).
    pub kept: BTreeSet<String>,
    /// Released volumes to make bindable.
    pub release: BTreeSet<String>,
}

fn core(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Plans the claims `claims` ((namespace as restored, name) -> volume
/// name) against the live volumes.
pub async fn plan(
    client: &kube::Client,
    claims: &BTreeMap<(String, String), String>,
    segment: impl Fn(&str) -> String,
) -> Result<ClaimPlan, kube::Error> {
    let volumes: Api<DynamicObject> = Api::all_with(client.clone(), &core("PersistentVolume", "persistentvolumes"));
    let mut plan = ClaimPlan::default();
    for ((ns, name), volume) in claims {
        let Some(live) = volumes.get_opt(&segment(volume)).await? else {
            continue;
        };
        let live = serde_json::to_value(&live).map_err(kube::Error::SerdeError)?;
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &segment(ns),
            &core("PersistentVolumeClaim", "persistentvolumeclaims"),
        );
        let exists = match api.get_opt(&segment(name)).await {
            Ok(found) => found.is_some(),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => false,
            Err(e) => return Err(e),
        };
        match judge(&live, ns, name, exists) {
            LiveVolume::Keep => {
                plan.kept.insert(volume.clone());
            }
            LiveVolume::Release => {
                plan.kept.insert(volume.clone());
                plan.release.insert(volume.clone());
            }
            LiveVolume::Elsewhere => {
                plan.unbound.insert((ns.clone(), name.clone()));
            }
        }
    }
    Ok(plan)
}

/// Makes a Released volume bindable again: its `claimRef` keeps the
/// claim's namespace and name, loses the old uid and resourceVersion.
pub async fn release(client: &kube::Client, volume: &str) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &core("PersistentVolume", "persistentvolumes"));
    let patch = json!({"spec": {"claimRef": {"uid": null, "resourceVersion": null}}});
    api.patch(volume, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(plural: &str) -> ObjectPath {
        ObjectPath {
            group: String::new(),
            plural: plural.into(),
            namespace: None,
            name: "x".into(),
        }
    }

    #[test]
    fn volumes_with_reclaim_policy_delete_are_not_restored() {
        let pv = |policy: &str| json!({"spec": {"persistentVolumeReclaimPolicy": policy}});
        assert!(skip_reason(&at("persistentvolumes"), &pv("Delete")).is_some());
        assert_eq!(skip_reason(&at("persistentvolumes"), &pv("Retain")), None);
        assert_eq!(skip_reason(&at("configmaps"), &pv("Delete")), None);
    }

    #[test]
    fn an_unbound_claim_loses_its_volume_and_snapshot_source() {
        let mut claim = json!({"metadata": {"annotations": {
                "pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/selected-node": "n1",
                "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com", "team": "shop"}},
            "spec": {"volumeName": "pvc-1", "storageClassName": "gp3",
                     "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "s"},
                     "dataSourceRef": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "s"}}});
        unbind(&mut claim);
        assert_eq!(
            claim,
            json!({"metadata": {"annotations": {"team": "shop"}}, "spec": {"storageClassName": "gp3"}})
        );
        // A clone of another claim is kept: that claim is restored too.
        let mut clone = json!({"spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": "a"}}});
        unbind(&mut clone);
        assert_eq!(clone["spec"]["dataSource"]["name"], "a");
        let mut kept = json!({"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes", "volume.kubernetes.io/selected-node": "n1"}},
            "spec": {"volumeName": "pv-1"}});
        unmark_bound(&at("persistentvolumeclaims"), &mut kept);
        assert_eq!(
            kept,
            json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n1"}}, "spec": {"volumeName": "pv-1"}})
        );
    }

    #[test]
    fn live_volumes_are_kept_released_or_left_to_their_claim() {
        let pv = |ns: &str, name: &str, uid: &str, policy: &str| {
            json!({"spec": {"persistentVolumeReclaimPolicy": policy,
                            "claimRef": {"namespace": ns, "name": name, "uid": uid}}})
        };
        assert_eq!(judge(&json!({"spec": {}}), "a", "c", false), LiveVolume::Keep);
        assert_eq!(judge(&pv("a", "c", "", "Retain"), "a", "c", false), LiveVolume::Keep);
        assert_eq!(judge(&pv("a", "c", "u1", "Retain"), "a", "c", true), LiveVolume::Keep);
        assert_eq!(
            judge(&pv("a", "c", "u1", "Retain"), "a", "c", false),
            LiveVolume::Release
        );
        assert_eq!(
            judge(&pv("a", "c", "u1", "Delete"), "a", "c", false),
            LiveVolume::Elsewhere
        );
        assert_eq!(
            judge(&pv("a", "c", "u1", "Retain"), "b", "c", false),
            LiveVolume::Elsewhere
        );
    }
}
