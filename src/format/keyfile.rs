//! Key files: the master key wrapped by a password-derived key.
//!
//! ```text
//! keyfile = version:u8 || kind:u8 (= Key) || postcard(KeyFile)
//! KeyFile.wrapped = envelope(kind Key, framed master key) under Argon2id(password, salt)
//! ```

use serde::{Deserialize, Serialize};

use super::{envelope, from_postcard, to_postcard, FormatError, ObjectKind};

/// Argon2id cost parameters, stored so they can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Smallest Argon2id memory cost a key file may have (8 MiB): no reader
/// uses, and no writer makes, a key cheaper to attack than this.
pub const MIN_KDF_MEMORY_KIB: u32 = 8 << 10;
/// Largest Argon2id memory cost a key file may have (1 GiB).
pub const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
/// Largest Argon2id time cost.
pub const MAX_KDF_ITERATIONS: u32 = 16;
/// Largest number of Argon2id lanes.
pub const MAX_KDF_LANES: u32 = 64;
/// Largest memory x iterations product, in KiB: the work of one attempt
/// (4 GiB of memory passes, e.g. 1 GiB x 4 or 256 MiB x 16).
pub const MAX_KDF_WORK_KIB: u64 = 4 << 20;

impl KdfParams {
    /// The work of one derivation: memory x iterations, in KiB.
    pub fn work_kib(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }

    /// Checks the parameters against the bounds of format.md §5 (floor and
    /// caps), before anything runs Argon2id with them.
    pub fn validate(&self) -> Result<(), FormatError> {
        let reason = if self.memory_kib < MIN_KDF_MEMORY_KIB {
            format!(
                "Argon2id memory {} KiB is below the minimum of {} KiB",
                self.memory_kib, MIN_KDF_MEMORY_KIB
            )
        } else if self.memory_kib > MAX_KDF_MEMORY_KIB {
            format!(
                "Argon2id memory {} KiB is above the maximum of {} KiB",
                self.memory_kib, MAX_KDF_MEMORY_KIB
            )
        } else if !(1..=MAX_KDF_ITERATIONS).contains(&self.iterations) {
            format!(
                "Argon2id iterations {} are outside 1 to {MAX_KDF_ITERATIONS}",
                self.iterations
            )
        } else if !(1..=MAX_KDF_LANES).contains(&self.parallelism) {
            format!(
                "Argon2id parallelism {} is outside 1 to {MAX_KDF_LANES}",
                self.parallelism
            )
        } else if self.work_kib() > MAX_KDF_WORK_KIB {
            format!(
                "Argon2id memory x iterations {} KiB is above the maximum of {MAX_KDF_WORK_KIB} KiB",
                self.work_kib()
            )
        } else {
            return Ok(());
        };
        Err(FormatError::Limit { what: "key", reason })
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            memory_kib: 64 << 10,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The body of a key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub created_ns: i64,
    pub hostname: String,
    pub username: String,
    pub kdf: KdfParams,
    pub salt: [u8; 32],
    pub wrapped: Vec<u8>,
}

impl KeyFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = envelope::header(ObjectKind::Key).to_vec();
        out.extend_from_slice(&to_postcard(self));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < envelope::HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "key",
                reason: format!("{} bytes", bytes.len()),
            });
        }
        if bytes[0] != super::FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: bytes[0],
                supported: super::FORMAT_VERSION,
            });
        }
        let kind = ObjectKind::from_u8(bytes[1])?;
        if kind != ObjectKind::Key {
            return Err(FormatError::WrongKind {
                expected: "key",
                found: kind.name(),
            });
        }
        let k: Self = from_postcard("key", &bytes[envelope::HEADER_LEN..])?;
        k.kdf.validate()?;
        Ok(k)
    }
}
