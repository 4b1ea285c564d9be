//! The repository config.

use serde::{Deserialize, Serialize};

use super::{from_postcard, limits, to_postcard, FormatError};
use crate::id::RepoId;

/// FastCDC size bounds in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// min = avg / 2, max = avg * 8, as the defaults (512 KiB / 1 MiB / 8 MiB).
    pub fn from_avg(avg: u32) -> Result<Self, FormatError> {
        let p = Self {
            min_size: avg / 2,
            avg_size: avg,
            max_size: avg.saturating_mul(8),
        };
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), FormatError> {
        let ok = self.min_size >= limits::MIN_CHUNK / 2
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.max_size <= limits::MAX_CHUNK
            && self.avg_size.is_power_of_two();
        if ok {
            Ok(())
        } else {
            Err(FormatError::Limit {
                what: "config",
                reason: format!(
                    "chunker sizes {}/{}/{} (avg must be a power of two)",
                    self.min_size, self.avg_size, self.max_size
                ),
            })
        }
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            min_size: 512 << 10,
            avg_size: 1 << 20,
            max_size: 8 << 20,
        }
    }
}

/// The plaintext of `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: RepoId,
    pub created_ns: i64,
    pub chunker: ChunkerParams,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
    /// zstd level for new blobs; `None` stores them uncompressed.
    pub compression: Option<i32>,
    /// Object lock retention every object but locks is written with.
    pub object_lock: Option<ObjectLockConfig>,
}

/// The object lock a repository was created with: every object but lock
/// files is written with a retention of `days` days, in compliance mode
/// (nobody can shorten it) or governance mode (a privileged user can).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockConfig {
    pub days: u32,
    pub compliance: bool,
}

impl ObjectLockConfig {
    /// The longest retention accepted: 100 years.
    pub const MAX_DAYS: u32 = 36_500;

    pub fn validate(&self) -> Result<(), FormatError> {
        if (1..=Self::MAX_DAYS).contains(&self.days) {
            Ok(())
        } else {
            Err(FormatError::Limit {
                what: "config",
                reason: format!("object lock of {} days (1 to {} allowed)", self.days, Self::MAX_DAYS),
            })
        }
    }
}

impl Config {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let c: Self = from_postcard("config", bytes)?;
        c.chunker.validate()?;
        if let Some(lock) = &c.object_lock {
            lock.validate()?;
        }
        Ok(c)
    }
}
