//! Restore: the objects (and pod volumes) of a Backup created again.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup::Phase;
use super::common::{time, ObjectFilters, Time, VolumeCounts};

/// One restore run.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "backup.cairn.io",
    version = "v1alpha1",
    kind = "Restore",
    plural = "restores",
    singular = "restore",
    namespaced,
    status = "RestoreStatus",
    shortname = "rst",
    category = "cairn",
    derive = "PartialEq",
    doc = "A restore of a Backup's objects and pod volumes into this cluster.",
    printcolumn(name = "Backup", type_ = "string", json_path = ".spec.backupName"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Created", type_ = "integer", json_path = ".status.objects.created"),
    printcolumn(name = "Updated", type_ = "integer", json_path = ".status.objects.updated"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.objects.failed"),
    printcolumn(name = "Volumes", type_ = "integer", json_path = ".status.volumeRestores.completed"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// The Backup (in the same namespace) to restore.
    pub backup_name: String,
    /// Which of the backup's objects are restored.
    #[serde(flatten)]
    pub filters: ObjectFilters,
    /// Restore namespace OLD as NEW.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_mapping: BTreeMap<String, String>,
    /// What to do with objects that exist: none (leave them) or update.
    /// Service accounts are merged either way.
    #[serde(default)]
    pub existing_resource_policy: ExistingResourcePolicy,
    /// Whether the backed-up pod volume data is written back.
    #[serde(default = "yes")]
    pub restore_volumes: bool,
    /// How long to wait for a namespace being deleted to go before it is
    /// created again (a Kubernetes duration; default 10m). Its objects
    /// fail if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$"))]
    pub namespace_timeout: Option<String>,
    /// Keep every node port of the backed-up Services (by default only
    /// those written in their last-applied configuration are kept; the
    /// cluster allocates the others anew).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_node_ports: bool,
    /// Storage class OLD restored as NEW (claims, volumes, StatefulSets'
    /// claim templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_class_mapping: BTreeMap<String, String>,
    /// Image OLD (a whole reference, or a registry or repository prefix)
    /// restored as NEW in pods and pod templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_mapping: BTreeMap<String, String>,
    /// A ConfigMap in the Restore's namespace whose one data key holds
    /// resource modifier rules (YAML or JSON, `version: v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_modifiers: Option<String>,
}

fn yes() -> bool {
    true
}

/// What a restore does with an object that exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExistingResourcePolicy {
    /// Leave it as it is (reported as skipped).
    #[default]
    None,
    /// Put the backed-up object in its place (fields added since removed).
    Update,
}

/// How many objects ended how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    #[serde(default)]
    pub created: u32,
    #[serde(default)]
    pub updated: u32,
    /// Merged into an object the cluster made (service accounts).
    #[serde(default)]
    pub merged: u32,
    #[serde(default)]
    pub skipped: u32,
    #[serde(default)]
    pub failed: u32,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub start_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub completion_timestamp: Option<Time>,
    /// The id of the manifest snapshot restored from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_snapshot: Option<String>,
    /// Objects created, updated, merged, skipped and failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectCounts>,
    /// The pod volumes' restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_restores: Option<VolumeCounts>,
    /// Where the restore is: absent until the objects other than the
    /// workloads are restored; then waiting for the volume data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<RestoreStep>,
    /// The claims whose data is written back, one VolumeRestore each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<RestoredVolume>,
    /// What went wrong without failing the restore, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Objects and volumes that failed, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// A line saying what happened (why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The steps of a Restore, recorded so that a restarted controller resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestoreStep {
    /// The objects but the workloads are restored; the volume data is
    /// being written; the workloads come next.
    Volumes,
}

/// A claim whose data a Restore writes back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoredVolume {
    /// The claim's namespace in this cluster (after the mapping).
    pub namespace: String,
    /// The claim's name.
    pub claim: String,
    /// The volume snapshot written into it.
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
}
