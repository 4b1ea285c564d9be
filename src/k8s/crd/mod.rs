//! cairn's custom resources (API group `backup.cairn.io`, version
//! `v1alpha1`, namespaced): one file per kind, each generated from its
//! Rust type. [`all`] gives their CustomResourceDefinitions, which `cairn
//! k8s crds` prints and `cairn k8s install` applies.
//!
//! Every field that may be unset is skipped when serialised, so a status
//! written with server-side apply claims only the fields it sets.

// kube's `printcolumn(...)` repeats `type_ = ...` in each column, which
// clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
pub mod backup;
pub mod common;
pub mod duration;
#[allow(clippy::duplicated_attributes)]
pub mod repository;
#[allow(clippy::duplicated_attributes)]
pub mod restore;
#[allow(clippy::duplicated_attributes)]
pub mod schedule;
#[allow(clippy::duplicated_attributes)]
pub mod volume_backup;
#[allow(clippy::duplicated_attributes)]
pub mod volume_restore;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use backup::{Backup, BackupSpec, BackupStatus, Phase};
pub use common::{ObjectFilters, ObjectRef, Progress, SecretKeyRef, SecretRef, VolumeCounts};
pub use repository::{BackupRepository, BackupRepositorySpec, BackupRepositoryStatus, RepositoryPhase};
pub use restore::{Restore, RestoreSpec, RestoreStatus};
pub use schedule::{Schedule, SchedulePhase, ScheduleSpec, ScheduleStatus};
pub use volume_backup::{VolumeBackup, VolumeBackupSpec, VolumeBackupStatus, VolumePhase};
pub use volume_restore::{VolumeRestore, VolumeRestoreSpec, VolumeRestoreStatus};

/// The API group of every cairn resource.
pub const GROUP: &str = "backup.cairn.io";
/// Their version.
pub const VERSION: &str = "v1alpha1";
/// The category every cairn resource is in (`kubectl get cairn`).
pub const CATEGORY: &str = "cairn";

/// Every CustomResourceDefinition of cairn, in a fixed order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        BackupRepository::crd(),
        Backup::crd(),
        Restore::crd(),
        Schedule::crd(),
        VolumeBackup::crd(),
        VolumeRestore::crd(),
    ]
}

#[cfg(test)]
mod tests;
