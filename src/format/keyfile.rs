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
        if k.kdf.memory_kib > 4 << 20
            || k.kdf.iterations > 64
            || k.kdf.parallelism > 64
            || k.kdf.iterations == 0
            || k.kdf.parallelism == 0
        {
            return Err(FormatError::Limit {
                what: "key",
                reason: format!("Argon2id parameters {:?}", k.kdf),
            });
        }
        Ok(k)
    }
}
