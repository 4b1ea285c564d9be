//! Errors of the restore layer.

use std::path::PathBuf;

use super::fsmeta::RestoreFsError;
use super::plan::PlanError;
use crate::id::{BlobId, PackId};
use crate::repo::RepoError;
use crate::storage::StorageError;

/// Everything that can stop a restore.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the restore was canceled; files not yet complete were removed")]
    Canceled,
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Fs(#[from] RestoreFsError),
    #[error("reading pack {pack}: {source}")]
    ReadPack {
        pack: PackId,
        #[source]
        source: StorageError,
    },
    #[error("reading pack {pack}: asked for {expected} bytes at {offset}, got {got}")]
    ShortRead {
        pack: PackId,
        offset: u64,
        expected: u64,
        got: u64,
    },
    #[error("{}: {source}", crate::format::escape::path(path))]
    Blob {
        path: PathBuf,
        #[source]
        source: RepoError,
    },
    #[error("{}: cannot {op}: {source}", crate::format::escape::path(path))]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: cannot link to {}: {source}",
        crate::format::escape::path(path),
        crate::format::escape::path(original)
    )]
    Link {
        path: PathBuf,
        original: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", crate::format::escape::path(path))]
    Blocked { path: PathBuf, reason: &'static str },
    #[error("{path} not found in the snapshot: it has no entry {component:?}")]
    PathNotFound { path: String, component: String },
    #[error("{path} in the snapshot is not a directory")]
    NotADirectory { path: String },
    #[error("invalid snapshot path {0:?}: '..' is not allowed")]
    InvalidSubpath(String),
    #[error("invalid {option} pattern {pattern:?}: {source}")]
    Pattern {
        option: &'static str,
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("tree {tree}: directory {name:?} has no subtree")]
    BadTree { tree: String, name: String },
    #[error("cannot start {0} restore threads: {1}")]
    Pool(usize, String),
    #[error("verification failed for {} file(s); first: {}", failures.len(), first_failure(failures))]
    Verify { failures: Vec<VerifyFailure> },
}

/// A restored file whose content does not match the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyFailure {
    pub path: PathBuf,
    /// Offset of the mismatching blob (0 for a length or read problem).
    pub offset: u64,
    /// The blob expected there, if the problem is a blob.
    pub blob: Option<BlobId>,
    pub reason: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", crate::format::escape::path(&self.path))?;
        if let Some(blob) = &self.blob {
            write!(f, " at offset {} (blob {blob})", self.offset)?;
        }
        write!(f, ": {}", self.reason)
    }
}

fn first_failure(failures: &[VerifyFailure]) -> String {
    failures.first().map(ToString::to_string).unwrap_or_default()
}

impl RestoreError {
    /// The process exit code this error maps to (see README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Repo(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// Wraps an I/O error with the path and the operation that failed.
pub(crate) fn io_err<'a>(
    path: &'a std::path::Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> RestoreError + 'a {
    move |source| RestoreError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}
