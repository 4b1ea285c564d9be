//! Errors of the repository layer.

use super::keys::SkippedKey;
use crate::crypto::CryptoError;
use crate::format::{BlobKind, FormatError};
use crate::id::{BlobId, PackId, TreeId};
use crate::storage::{FileKind, StorageError};

/// Everything that can go wrong opening, reading or writing a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{location} is not a cairn repository (no config found)")]
    NotARepository { location: String },
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    #[error("{location} has no key files")]
    NoKeys { location: String },
    #[error(
        "wrong password: no key file of {location} opened with this password ({tried} key file(s) tried, {} skipped{})",
        skipped.len(),
        skipped_list(skipped)
    )]
    WrongPassword {
        location: String,
        tried: usize,
        skipped: Vec<SkippedKey>,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{kind} {name} is corrupt: {source}")]
    Crypto {
        kind: FileKind,
        name: String,
        #[source]
        source: CryptoError,
    },
    #[error("{kind} {name} is corrupt: {source}")]
    Format {
        kind: FileKind,
        name: String,
        #[source]
        source: FormatError,
    },
    #[error("{kind} {name} is corrupt: its contents hash to {actual}")]
    NameMismatch {
        kind: FileKind,
        name: String,
        actual: String,
    },
    #[error("{} blob {id} in pack {pack} is corrupt: {reason}", kind_name(*kind))]
    BadBlob {
        kind: BlobKind,
        id: BlobId,
        pack: PackId,
        reason: String,
    },
    #[error("{} blob {id} is not in the index", kind_name(*kind))]
    BlobNotFound { kind: BlobKind, id: BlobId },
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {prefix:?} is ambiguous: it matches {count} snapshots")]
    AmbiguousSnapshot { prefix: String, count: usize },
    #[error("key {0} not found")]
    KeyNotFound(String),
    #[error("refusing to remove {0}: {1}")]
    KeyRemoval(String, &'static str),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Crypt(#[from] CryptoError),
    #[error("upload failed: {0}")]
    Upload(String),
    #[error("repository is locked: {holder}")]
    Locked { holder: String },
    #[error("lost the repository lock: {0}")]
    LockLost(String),
    #[error("cannot start the lock refresh thread: {0}")]
    LockThread(std::io::Error),
    #[error("the index is too large to load: {0}")]
    IndexTooLarge(String),
    #[error("the local index table {} is unusable: {reason}", path.display())]
    IndexTable { path: std::path::PathBuf, reason: String },
    #[error("tree {tree} holds entries more than {max} directories deep; refusing to walk further")]
    TreeTooDeep { tree: TreeId, max: usize },
    #[error(
        "tree {tree}: the walk reached more than {max} entries (set CAIRN_MAX_TREE_ENTRIES to allow more); \
         refusing to go on"
    )]
    TooManyEntries { tree: TreeId, max: u64 },
}

fn skipped_list(skipped: &[SkippedKey]) -> String {
    let parts: Vec<String> = skipped.iter().map(|s| format!("{}: {}", s.id, s.reason)).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Data => "data",
        BlobKind::Tree => "tree",
    }
}

impl RepoError {
    /// The process exit code this error maps to (see README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NotARepository { .. } => 10,
            Self::Locked { .. } => 11,
            Self::WrongPassword { .. } => 12,
            _ => 1,
        }
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;
