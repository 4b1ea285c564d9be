//! Backup: one backup of the cluster's objects (and, with the node agent,
//! its pod volumes) into a BackupRepository.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{time, ObjectFilters, Progress, Time, VolumeCounts};
use super::duration::{self, DurationError};

/// The BackupRepository used when a Backup names none.
pub const DEFAULT_REPOSITORY: &str = "default";
/// A Backup's time to live when it gives none (thirty days).
pub const DEFAULT_TTL: &str = "720h";

/// One backup run.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "backup.cairn.io",
    version = "v1alpha1",
    kind = "Backup",
    plural = "backups",
    singular = "backup",
    namespaced,
    status = "BackupStatus",
    shortname = "bkp",
    category = "cairn",
    derive = "PartialEq",
    doc = "A backup of the cluster's objects and pod volumes into a BackupRepository.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Repository", type_ = "string", json_path = ".spec.repository"),
    printcolumn(name = "Snapshot", type_ = "string", json_path = ".status.manifestSnapshot"),
    printcolumn(name = "Volumes", type_ = "integer", json_path = ".status.volumeBackups.completed"),
    printcolumn(name = "Bytes", type_ = "integer", json_path = ".status.progress.bytesDone"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1),
    printcolumn(name = "Expires", type_ = "date", json_path = ".status.expiration"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Which objects are backed up.
    #[serde(flatten)]
    pub filters: ObjectFilters,
    /// The BackupRepository (in the same namespace); `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// How long the backup is kept (a Kubernetes duration: `720h`, `1h30m`).
    #[serde(default = "default_ttl")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$"))]
    pub ttl: String,
    /// Which pod volumes are backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<VolumeSelection>,
    /// Commands run in pods around their volumes' backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
}

fn default_ttl() -> String {
    DEFAULT_TTL.to_owned()
}

impl BackupSpec {
    /// The BackupRepository's name.
    pub fn repository_name(&self) -> &str {
        self.repository.as_deref().unwrap_or(DEFAULT_REPOSITORY)
    }

    /// The time to live, parsed.
    pub fn ttl(&self) -> Result<std::time::Duration, DurationError> {
        duration::parse(&self.ttl)
    }
}

/// Which pod volumes a backup takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSelection {
    /// Back up every eligible pod volume unless the pod opts it out
    /// (`backup.cairn.io/volumes-excludes`); when false, only the
    /// volumes a pod names in `backup.cairn.io/volumes`.
    #[serde(default)]
    pub default_volumes_to_backup: bool,
    /// Paths inside volumes left out (globs, relative to the volume's root).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_paths: Vec<String>,
}

/// Hooks: commands run in the pods whose volumes are backed up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<HookSelector>,
}

/// Which pods a set of hooks applies to, and the hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookSelector {
    /// A name for messages and events.
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    /// Only pods whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Run before the pod's volumes are read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<ExecHook>,
    /// Run after the pod's volumes are read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<ExecHook>,
}

/// A command run in a container (no shell: the words as given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecHook {
    /// The container (default: the pod's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub command: Vec<String>,
    /// What a failing command does to the backup.
    #[serde(default)]
    pub on_error: HookErrorMode,
    /// How long the command may run (a Kubernetes duration; default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// What a failing hook does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HookErrorMode {
    /// The pod's volumes are not backed up; the backup ends PartiallyFailed.
    #[default]
    Fail,
    /// Logged as a warning; the backup goes on.
    Continue,
}

/// Where a Backup or Restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    New,
    InProgress,
    Completed,
    PartiallyFailed,
    Failed,
}

impl Phase {
    /// Whether nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::PartiallyFailed | Self::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::New => "New",
            Self::InProgress => "InProgress",
            Self::Completed => "Completed",
            Self::PartiallyFailed => "PartiallyFailed",
            Self::Failed => "Failed",
        })
    }
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub start_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub completion_timestamp: Option<Time>,
    /// The start plus the ttl: the backup is deleted and its snapshots
    /// forgotten then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub expiration: Option<Time>,
    /// The id of the snapshot holding the objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_snapshot: Option<String>,
    /// The pod volumes' backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_backups: Option<VolumeCounts>,
    /// Bytes of volume data read so far, of the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// What went wrong without failing the backup (resource lists that
    /// could not be read, hooks that failed with Continue), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What failed, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// A line saying what happened (why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The hooks run (or started) for this backup, one entry per hook per
    /// pod: a hook listed here is never run again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookStatus>,
}

/// Before or after a pod's volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookPhase {
    Pre,
    Post,
}

impl std::fmt::Display for HookPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pre => "pre",
            Self::Post => "post",
        })
    }
}

/// One hook of one pod: what ran and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub phase: HookPhase,
    /// The hook's place among the pod's hooks of its phase.
    pub index: u32,
    pub command: Vec<String>,
    /// What a failure does to the backup.
    pub on_error: HookErrorMode,
    /// The command's exit code, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Its stdout followed by its stderr (their last 4 KiB).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Why it failed (non-zero exit, timeout, no such container...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub start_timestamp: Option<Time>,
    /// Unset while it runs (or when the controller stopped during it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub completion_timestamp: Option<Time>,
}

impl HookStatus {
    /// Whether it ended badly (an unfinished entry counts as failed).
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.completion_timestamp.is_none()
    }
}
