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
//! The async functions here talk to the cluster only; the caller moves the
//! files into and out of the repository (see [`crate::backup::backup_files`]
//! and [`stored::load_objects`]) outside of any async context.

pub mod backup;
pub mod client;
pub mod crd;
pub mod cron;
pub mod discovery;
pub mod filter;
pub mod install;
pub mod normalise;
pub mod order;
pub mod restore;
pub mod stored;
pub mod transform;

use crate::backup::BackupError;
use crate::repo::RepoError;
use crate::restore::RestoreError;

/// The directory of the snapshot that holds the manifests.
pub const ROOT: &str = "resources";

/// Label whose value `true` keeps an object out of backups and restores.
pub const EXCLUDE_LABEL: &str = "backup.cairn.io/exclude";
/// Label naming the snapshot a restored object came from.
pub const SNAPSHOT_LABEL: &str = "backup.cairn.io/snapshot";
/// Label naming the restore that created or updated an object.
pub const RESTORE_LABEL: &str = "backup.cairn.io/restore";

/// Errors of manifest backup and restore.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot reach the Kubernetes API server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("Kubernetes API server {server}: {what}: {reason}")]
    Api {
        server: String,
        what: String,
        reason: String,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("snapshot file {path}: {reason}")]
    InvalidObject { path: String, reason: String },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

impl K8sError {
    /// A bad option or filter, as opposed to a failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::InvalidOption(_))
    }
}

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
