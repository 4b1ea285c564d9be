//! Errors that stop a check. Damage found in the repository is never one of
//! them: it goes into the [`CheckReport`](super::CheckReport) and the check
//! continues.

use crate::storage::{FileKind, StorageError};

/// Why a check could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot list the {kind} files of {location}: {source}")]
    List {
        kind: FileKind,
        location: String,
        #[source]
        source: StorageError,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("a check task failed: {0}")]
    Task(String),
    #[error("no random numbers to choose the packs to read: {0}")]
    Random(#[source] crate::crypto::CryptoError),
}
