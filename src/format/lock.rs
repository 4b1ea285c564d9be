//! Lock files.

use serde::{Deserialize, Serialize};

use super::{from_postcard, to_postcard, FormatError};

/// What a lock allows others to do at the same time.
///
/// Encoded as a postcard enum discriminant (varint): 0 shared, 1 exclusive,
/// 2 prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockKind {
    /// Adds data or only reads: backup, copy into the repository, check, key add.
    Shared,
    /// Excludes every other lock: forget, repair, key remove and passwd.
    Exclusive,
    /// Prune: runs beside shared locks, excludes other prunes and exclusive locks.
    Prune,
}

impl LockKind {
    /// Whether a lock of this kind and one of `other` cannot be held at once.
    /// The relation is symmetric.
    pub fn conflicts_with(self, other: LockKind) -> bool {
        match (self, other) {
            (Self::Exclusive, _) | (_, Self::Exclusive) => true,
            (Self::Prune, Self::Prune) => true,
            (Self::Shared, _) | (_, Self::Shared) => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Exclusive => "exclusive",
            Self::Prune => "prune",
        }
    }
}

impl std::fmt::Display for LockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The plaintext of a file under `locks/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// When the lock was first taken; a refresh keeps it.
    pub time_ns: i64,
    /// When the lock stops counting unless refreshed.
    pub expires_ns: i64,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    pub kind: LockKind,
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        from_postcard("lock", bytes)
    }
}
