//! Pure encoding and decoding of every structure cairn stores.
//!
//! Nothing here performs I/O. The normative description of every byte is in
//! `format-spec/`; this module follows it. Structures are encoded with
//! postcard 1.x (see the spec for the exact wire rules).

pub mod config;
pub mod envelope;
pub mod error;
pub mod escape;
pub mod index;
pub mod keyfile;
pub mod limits;
pub mod lock;
pub mod pack;
pub mod snapshot;
pub mod tree;

#[cfg(test)]
mod tests;

pub use error::FormatError;

/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u8 = 1;

/// What a sealed object holds. Its byte is the second byte of every envelope
/// and is authenticated, so one kind cannot be passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum ObjectKind {
    /// A chunk of file content, inside a pack.
    Data = 1,
    /// A directory listing, inside a pack.
    Tree = 2,
    /// The header at the end of a pack.
    PackHeader = 3,
    /// A file under `index/`.
    Index = 4,
    /// A file under `snapshots/`.
    Snapshot = 5,
    /// The `config` file.
    Config = 6,
    /// A file under `locks/`.
    Lock = 7,
    /// A file under `keys/` (wrapped with a password-derived key, not the master key).
    Key = 8,
}

impl ObjectKind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Result<Self, FormatError> {
        Ok(match b {
            1 => Self::Data,
            2 => Self::Tree,
            3 => Self::PackHeader,
            4 => Self::Index,
            5 => Self::Snapshot,
            6 => Self::Config,
            7 => Self::Lock,
            8 => Self::Key,
            other => return Err(FormatError::UnknownKind(other)),
        })
    }

    /// The lower-case name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data => "data blob",
            Self::Tree => "tree blob",
            Self::PackHeader => "pack header",
            Self::Index => "index",
            Self::Snapshot => "snapshot",
            Self::Config => "config",
            Self::Lock => "lock",
            Self::Key => "key",
        }
    }
}

/// The two kinds of blob a pack holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum BlobKind {
    Data,
    Tree,
}

impl BlobKind {
    pub fn object_kind(self) -> ObjectKind {
        match self {
            Self::Data => ObjectKind::Data,
            Self::Tree => ObjectKind::Tree,
        }
    }
}

/// Encodes a value with postcard.
pub(crate) fn to_postcard<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing into a Vec cannot fail for the plain data types used here.
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes a value with postcard, rejecting trailing bytes.
pub(crate) fn from_postcard<'a, T: serde::Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, FormatError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| FormatError::Decode {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(FormatError::Decode {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}
