//! VolumeRestore: one pod volume's data written back by the node agent on
//! `spec.node`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ObjectRef;
pub use super::volume_backup::VolumeBackupStatus as VolumeRestoreStatus;

/// The restore of one pod volume.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "backup.cairn.io",
    version = "v1alpha1",
    kind = "VolumeRestore",
    plural = "volumerestores",
    singular = "volumerestore",
    namespaced,
    status = "VolumeRestoreStatus",
    shortname = "vrst",
    category = "cairn",
    derive = "PartialEq",
    selectable = ".spec.node",
    doc = "The restore of one pod volume's data, done by the cairn agent on the pod's node.",
    printcolumn(name = "Restore", type_ = "string", json_path = ".spec.restoreName"),
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.node"),
    printcolumn(name = "Pod", type_ = "string", json_path = ".spec.pod.name"),
    printcolumn(name = "Volume", type_ = "string", json_path = ".spec.volume"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Snapshot", type_ = "string", json_path = ".spec.snapshotID"),
    printcolumn(name = "Bytes Done", type_ = "integer", json_path = ".status.progress.bytesDone"),
    printcolumn(name = "Total Bytes", type_ = "integer", json_path = ".status.progress.totalBytes"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreSpec {
    /// The node whose agent does the work (a selectable field).
    pub node: String,
    /// The pod whose volume is written (a helper pod of the restore).
    pub pod: ObjectRef,
    /// The volume's name in the pod.
    pub volume: String,
    /// The claim, when the volume is PVC-backed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<ObjectRef>,
    /// The BackupRepository (in this namespace).
    pub repository: String,
    /// The Restore this belongs to.
    pub restore_name: String,
    /// The volume snapshot to write back.
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    /// The file written at the volume's root once the data is in place
    /// (a name starting with `.cairn`, for the helper pod to wait for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// Stop the work; the phase becomes Canceled.
    #[serde(default)]
    pub cancel: bool,
}
