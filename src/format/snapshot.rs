//! Snapshot documents.

use serde::{Deserialize, Serialize};

use super::{from_postcard, to_postcard, FormatError};
use crate::id::{SnapshotId, TreeId};

/// What a backup did, stored with its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub backup_start_ns: i64,
    pub backup_end_ns: i64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unchanged: u64,
    /// Entries that could not be read and were left out.
    pub errors: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of blobs added to the repository.
    pub data_added: u64,
    /// Stored (compressed, sealed) bytes of blobs added.
    pub data_added_packed: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
}

/// The plaintext of a file under `snapshots/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started, nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    pub tree: TreeId,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    /// The snapshot this one was copied or rewritten from (by `copy` or
    /// `repair snapshots`); `None` for a snapshot made by a backup.
    pub original: Option<SnapshotId>,
    pub excludes: Vec<String>,
    pub program_version: String,
    /// Some entries could not be read (see `summary.errors`).
    pub partial: bool,
    pub summary: Summary,
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        from_postcard("snapshot", bytes)
    }
}
