//! Errors of the command line, each with its exit code.

use crate::backup::BackupError;
use crate::forget::ForgetError;
use crate::maintenance::MaintenanceError;
use crate::prune::PruneError;
use crate::repo::RepoError;
use crate::restore::RestoreError;
use crate::storage::open::OpenError;

/// Exit codes (see README).
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const PARTIAL: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const LOCKED: i32 = 11;
    pub const WRONG_PASSWORD: i32 = 12;
    /// A repository URL or `-o` option that cannot be used.
    pub const BAD_LOCATION: i32 = 20;
    /// The bucket (or container) of an object store repository does not exist.
    pub const NO_BUCKET: i32 = 21;
    /// The object store refused the credentials, or none were found.
    pub const ACCESS_DENIED: i32 = 22;
    /// The object store's endpoint did not answer.
    pub const UNREACHABLE: i32 = 23;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no repository given: use -r/--repo or set CAIRN_REPOSITORY")]
    NoRepository,
    #[error("{0}")]
    Password(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("source repository: {0}")]
    FromRepo(RepoError),
    #[error(transparent)]
    Maintenance(#[from] MaintenanceError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error(transparent)]
    Forget(#[from] ForgetError),
    #[cfg(feature = "k8s")]
    #[error(transparent)]
    K8s(#[from] crate::k8s::K8sError),
    #[error("{0}")]
    Other(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

#[cfg(feature = "k8s")]
fn k8s_exit_code(e: &crate::k8s::K8sError) -> i32 {
    use crate::k8s::K8sError;
    match e {
        K8sError::InvalidOption(_)
        | K8sError::RestoreWait(crate::k8s::restore_wait::RestoreWaitError::BadMarker(_)) => exit::USAGE,
        K8sError::Repo(e) | K8sError::Backup(BackupError::Repo(e)) => e.exit_code(),
        K8sError::Restore(e) => e.exit_code(),
        _ => exit::ERROR,
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NoRepository | Self::Usage(_) => exit::USAGE,
            Self::Password(_) => exit::ERROR,
            Self::Open(e) => match e {
                OpenError::Url(_) | OpenError::Config { .. } => exit::BAD_LOCATION,
                OpenError::NoBucket { .. } => exit::NO_BUCKET,
                OpenError::AccessDenied { .. } | OpenError::NoCredentials { .. } => exit::ACCESS_DENIED,
                OpenError::Unreachable { .. } => exit::UNREACHABLE,
                OpenError::NoLocation => exit::USAGE,
                OpenError::Runtime { .. } | OpenError::Storage(_) => exit::ERROR,
            },
            Self::Repo(e) | Self::FromRepo(e) => e.exit_code(),
            Self::Maintenance(e) => e.exit_code(),
            Self::Backup(BackupError::Repo(e)) => e.exit_code(),
            Self::Restore(e) => e.exit_code(),
            Self::Prune(PruneError::Repo(e)) => e.exit_code(),
            Self::Forget(e) if e.is_usage() => exit::USAGE,
            Self::Forget(ForgetError::Repo(e)) => e.exit_code(),
            #[cfg(feature = "k8s")]
            Self::K8s(e) => k8s_exit_code(e),
            _ => exit::ERROR,
        }
    }
}
