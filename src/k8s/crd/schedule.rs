//! Schedule: Backups created on a cron schedule.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup::BackupSpec;
use super::common::{time, Time};

/// Backups on a schedule, named `<schedule>-<YYYYMMDDhhmmss>` (UTC).
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "backup.cairn.io",
    version = "v1alpha1",
    kind = "Schedule",
    plural = "schedules",
    singular = "schedule",
    namespaced,
    status = "ScheduleStatus",
    shortname = "sched",
    category = "cairn",
    derive = "PartialEq",
    doc = "Backups created on a cron schedule from a template.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.lastBackup"),
    printcolumn(name = "Next Backup", type_ = "string", json_path = ".status.nextBackup"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Cron (five fields or `@daily`), optionally with a time zone:
    /// `CRON_TZ=Europe/Berlin 0 3 * * *`.
    pub schedule: String,
    /// The spec of each Backup created.
    #[serde(default)]
    pub template: BackupSpec,
    /// No Backups while true.
    #[serde(default)]
    pub paused: bool,
    /// Backups created carry an owner reference to the Schedule (and are
    /// deleted with it).
    #[serde(default)]
    pub use_owner_references_in_backup: bool,
}

/// Whether the schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SchedulePhase {
    New,
    Enabled,
    /// The cron expression or the template is invalid (see `message`).
    FailedValidation,
}

/// What the controller did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SchedulePhase>,
    /// When the last Backup was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub last_backup: Option<Time>,
    /// When the next Backup will be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "time")]
    pub next_backup: Option<Time>,
    /// Why validation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
