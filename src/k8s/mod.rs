//! Kubernetes resource manifests: backup and restore through the API.
//!
//! A manifest backup discovers every listable resource the cluster serves,
//! lists the selected objects (with pagination), normalises them and stores
//! each as a JSON file in a snapshot tree:
//! `resources/<group>/<resource>/namespaces/<ns>/<name>.json` or
//! `resources/<group>/<resource>/cluster/<name>.json` (`core` is the group
//! of the legacy API). A restore reads those files back, filters, orders and
//! rewrites them, and creates them through the API.
//!
//! [`manifests`] holds that work; [`manifests::run`] runs it from start to
//! end for the command line and the controller alike.

pub mod agent;
pub mod client;
pub mod controller;
pub mod crd;
pub mod cron;
mod error;
pub mod hooks;
pub mod install;
pub mod jobs;
pub mod manifests;
pub mod restore_wait;
pub mod retry;

pub use error::K8sError;

/// The directory of the snapshot that holds the manifests.
pub const ROOT: &str = "resources";

/// Label whose value `true` keeps an object out of backups and restores.
pub const EXCLUDE_LABEL: &str = "backup.cairn.io/exclude";
/// Label naming the snapshot a restored object came from.
pub const SNAPSHOT_LABEL: &str = "backup.cairn.io/snapshot";
/// Label naming the restore that created or updated an object.
pub const RESTORE_LABEL: &str = "backup.cairn.io/restore";

/// See [`crate::install_crypto_provider`].
pub use crate::install_crypto_provider;

/// A runtime for the Kubernetes client, separate from the repository's.
pub fn runtime() -> Result<tokio::runtime::Runtime, K8sError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(K8sError::Runtime)
}
