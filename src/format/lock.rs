//! Lock files.

use serde::{Deserialize, Serialize};

use super::{from_postcard, to_postcard, FormatError};

/// What a lock allows others to do at the same time.
///
/// Encoded as a postcard enum discriminant (varint): 0 shared, 1 exclusive,
/// 2 prune, 3 forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockKind {
    /// Adds data or only reads: backup, copy into the repository, check, key add.
    Shared,
    /// Excludes every other lock: repair, key remove and passwd, prune --instant-delete.
    Exclusive,
    /// Prune: runs beside shared and forget locks, excludes other prunes and exclusive locks.
    Prune,
    /// Forget: deletes snapshot files only; runs beside shared and prune
    /// locks, excludes other forgets and exclusive locks.
    Forget,
}

impl LockKind {
    /// Whether a lock of this kind and one of `other` cannot be held at once.
    /// The relation is symmetric.
    pub fn conflicts_with(self, other: LockKind) -> bool {
        matches!(
            (self, other),
            (Self::Exclusive, _) | (_, Self::Exclusive) | (Self::Prune, Self::Prune) | (Self::Forget, Self::Forget)
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Exclusive => "exclusive",
            Self::Prune => "prune",
            Self::Forget => "forget",
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
    /// The boot id of the holder's kernel
    /// (`/proc/sys/kernel/random/boot_id`), "" if unknown.
    pub boot_id: String,
    /// The inode number of the holder's pid namespace
    /// (`/proc/self/ns/pid`), 0 if unknown.
    pub pid_ns: u64,
}

/// A lock as written before `boot_id` and `pid_ns` existed.
#[derive(Deserialize)]
struct LockWithoutIdentity {
    time_ns: i64,
    expires_ns: i64,
    hostname: String,
    username: String,
    pid: u32,
    kind: LockKind,
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    /// Decodes a lock; one that ends after `kind` (written before the
    /// process identity was recorded) is read with an unknown identity.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let full = from_postcard::<Self>("lock", bytes);
        if full.is_ok() {
            return full;
        }
        match from_postcard::<LockWithoutIdentity>("lock", bytes) {
            Ok(old) => Ok(Self {
                time_ns: old.time_ns,
                expires_ns: old.expires_ns,
                hostname: old.hostname,
                username: old.username,
                pid: old.pid,
                kind: old.kind,
                boot_id: String::new(),
                pid_ns: 0,
            }),
            Err(_) => full,
        }
    }
}
