//! VolumeBackup: one pod volume's backup, done by the node agent on
//! `spec.node`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{time, ObjectRef, Progress, Time};

/// The backup of one pod volume.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "backup.cairn.io",
    version = "v1alpha1",
    kind = "VolumeBackup",
    plural = "volumebackups",
    singular = "volumebackup",
    namespaced,
    status = "VolumeBackupStatus",
    shortname = "vbk",
    category = "cairn",
    derive = "PartialEq",
    selectable = ".spec.node",
    doc = "The backup of one pod volume, done by the cairn agent on the pod's node.",
    printcolumn(name = "Backup", type_ = "string", json_path = ".spec.backupName"),
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.node"),
    printcolumn(name = "Pod", type_ = "string", json_path = ".spec.pod.name"),
    printcolumn(name = "Volume", type_ = "string", json_path = ".spec.volume"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Snapshot", type_ = "string", json_path = ".status.snapshotID"),
    printcolumn(name = "Bytes Done", type_ = "integer", json_path = ".status.progress.bytesDone"),
    printcolumn(name = "Total Bytes", type_ = "integer", json_path = ".status.progress.totalBytes"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupSpec {
    /// The node whose agent does the work (a selectable field).
    pub node: String,
    /// The pod the volume belongs to.
    pub pod: ObjectRef,
    /// The volume's name in the pod.
    pub volume: String,
    /// The claim, when the volume is PVC-backed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<ObjectRef>,
    /// The BackupRepository (in this namespace).
    pub repository: String,
    /// The Backup this belongs to.
    pub backup_name: String,
    /// Stop the work; the phase becomes Canceled.
    #[serde(default)]
    pub cancel: bool,
}

/// Where one volume's backup or restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VolumePhase {
    New,
    InProgress,
    Completed,
    Failed,
    Canceled,
}

impl VolumePhase {
    /// Whether nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// What the agent did with one volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<VolumePhase>,
    /// The snapshot written (backup) or read (restore).
    #[serde(default, rename = "snapshotID", skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// A line saying what happened (why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub start_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub completion_timestamp: Option<Time>,
}
