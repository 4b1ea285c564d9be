//! BackupRepository: where backups go, and how the repository is kept.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{time, Resources, SecretKeyRef, SecretRef, Time};

/// A cairn repository the controller backs up into and restores from.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "backup.cairn.io",
    version = "v1alpha1",
    kind = "BackupRepository",
    plural = "backuprepositories",
    singular = "backuprepository",
    namespaced,
    status = "BackupRepositoryStatus",
    shortname = "brepo",
    category = "cairn",
    derive = "PartialEq",
    doc = "A cairn repository (object storage or a path) that Backups write to and Restores read from.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Last Maintenance",
        type_ = "date",
        json_path = ".status.lastMaintenance.time"
    ),
    printcolumn(name = "Last Check", type_ = "date", json_path = ".status.lastCheck.time"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepositorySpec {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `azblob://container/prefix`,
    /// or a local path (tests, NFS).
    pub url: String,
    /// The Secret key holding the repository's password.
    pub password_secret_ref: SecretKeyRef,
    /// A Secret whose keys become the environment of the process that opens
    /// the repository (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Object store options, as `cairn -o KEY=VALUE` takes them
    /// (`s3.endpoint`, `s3.region`, `s3.path-style`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Whether a missing repository is created (IfMissing) or reported (Never).
    #[serde(default)]
    pub initialize: Initialize,
    /// When and how the repository is pruned and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

/// What to do when the repository does not exist yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Initialize {
    /// Create it (with the password of `passwordSecretRef`).
    #[default]
    IfMissing,
    /// Report it missing.
    Never,
}

/// Repository maintenance, run as Jobs in the controller's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// When to prune (cron, optionally `CRON_TZ=Zone ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// When to check the repository (cron).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_schedule: Option<String>,
    /// What part of the data the check reads (`cairn check --read-data-subset`:
    /// `10%`, `1/5`, `500MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data_subset: Option<String>,
    /// How many finished maintenance Jobs are kept.
    #[serde(default = "default_keep_jobs")]
    pub keep_jobs: u32,
    /// Requests and limits of the maintenance Jobs' container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

fn default_keep_jobs() -> u32 {
    3
}

/// Whether the repository can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RepositoryPhase {
    Ready,
    NotReady,
}

/// What the controller found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepositoryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RepositoryPhase>,
    /// Why the repository is not ready, or what was last done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_maintenance: Option<MaintenanceResult>,
    /// The last check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<MaintenanceResult>,
}

/// How a maintenance Job ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceResult {
    /// When the Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub time: Option<Time>,
    /// The Job's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// What the Job reported (a summary line, or why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The end of a maintenance Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JobResult {
    Succeeded,
    Failed,
}
