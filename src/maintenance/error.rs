//! Errors of copy and repair.

use crate::id::SnapshotId;
use crate::repo::RepoError;

/// Why a copy or a repair stopped.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("snapshot {snapshot}: {source}")]
    Snapshot {
        snapshot: SnapshotId,
        #[source]
        source: Box<RepoError>,
    },
    #[error("source and destination are the same repository ({0})")]
    SameRepository(String),
    #[error(
        "the index names {count} pack(s) that are not in storage (first: {first}); run `cairn repair index` first"
    )]
    IndexAheadOfStorage { count: usize, first: String },
    #[error("a storage task failed: {0}")]
    Task(String),
}

impl From<crate::storage::StorageError> for MaintenanceError {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::Repo(e.into())
    }
}

impl MaintenanceError {
    /// The process exit code this error maps to (see README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Repo(e) => e.exit_code(),
            _ => 1,
        }
    }
}

pub type Result<T, E = MaintenanceError> = std::result::Result<T, E>;
