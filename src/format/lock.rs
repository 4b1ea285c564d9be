//! Lock files.

use serde::{Deserialize, Serialize};

use super::{from_postcard, to_postcard, FormatError};

/// The plaintext of a file under `locks/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub time_ns: i64,
    pub expires_ns: i64,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    pub exclusive: bool,
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        to_postcard(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        from_postcard("lock", bytes)
    }
}
