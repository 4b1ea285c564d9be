//! Typed 32-byte identifiers.
//!
//! Every object in a repository is named by a 32-byte BLAKE3 hash. Blob ids
//! are keyed hashes of a blob's plaintext; file ids (packs, indexes,
//! snapshots, keys) are unkeyed hashes of the stored bytes. Each kind has its
//! own type so that a tree id cannot be passed where a pack id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

/// Number of hex characters shown by `short()`.
pub const SHORT_LEN: usize = 8;

/// A hex string that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {input:?}: expected {expected} hex characters")]
pub struct ParseIdError {
    pub input: String,
    pub expected: usize,
}

/// Parse exactly 64 hex characters into 32 bytes.
pub fn parse_hex32(s: &str) -> Result<[u8; ID_LEN], ParseIdError> {
    let err = || ParseIdError {
        input: s.to_owned(),
        expected: ID_LEN * 2,
    };
    if s.len() != ID_LEN * 2 {
        return Err(err());
    }
    let mut out = [0u8; ID_LEN];
    hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
    Ok(out)
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// Full lowercase hex, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first eight hex characters, for humans.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..SHORT_LEN / 2])
            }

            /// The unkeyed BLAKE3 hash of `data`, for ids of stored files.
            pub fn hash_of(data: &[u8]) -> Self {
                Self(*blake3::hash(data).as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// Keyed BLAKE3 of a data blob's plaintext.
    BlobId
);
typed_id!(
    /// Keyed BLAKE3 of a tree blob's plaintext.
    TreeId
);
typed_id!(
    /// BLAKE3 of a pack file's bytes; its name under `data/`.
    PackId
);
typed_id!(
    /// BLAKE3 of an index file's bytes; its name under `index/`.
    IndexId
);
typed_id!(
    /// BLAKE3 of a snapshot file's bytes; its name under `snapshots/`.
    SnapshotId
);
typed_id!(
    /// BLAKE3 of a key file's bytes; its name under `keys/`.
    KeyId
);
typed_id!(
    /// BLAKE3 of a lock file's bytes; its name under `locks/`.
    LockId
);
typed_id!(
    /// Random identity of a repository, stored in its config.
    RepoId
);

impl From<TreeId> for BlobId {
    fn from(t: TreeId) -> Self {
        BlobId(t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short_form() {
        let id = PackId::hash_of(b"cairn");
        let hex = id.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<PackId>().unwrap(), id);
        assert_eq!(id.short(), &hex[..8]);
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("abc".parse::<BlobId>().is_err());
        let bad = "g".repeat(64);
        let err = bad.parse::<BlobId>().unwrap_err();
        assert!(err.to_string().contains("invalid id"));
    }
}
