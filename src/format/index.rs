//! Index files: which blob lives in which pack.

use serde::{Deserialize, Serialize};

use super::{from_postcard, pack::PackEntry, to_postcard, FormatError};
use crate::id::{IndexId, PackId};

/// The blobs of one pack, as its header lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    /// Size of the whole pack file in bytes.
    pub size: u64,
    pub blobs: Vec<PackEntry>,
}

/// A pack marked for deletion by prune at `marked_ns` (Unix nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedPack {
    pub id: PackId,
    pub marked_ns: i64,
}

/// The plaintext of a file under `index/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files whose content this one replaces.
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<IndexPack>,
    /// Packs that prune has found unused and will delete later.
    pub marked: Vec<MarkedPack>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        from_postcard("index", bytes)
    }
}
