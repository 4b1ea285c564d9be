//! Errors of the format layer.

/// A stored structure that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("unsupported format version {found} (this cairn reads version {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("unknown object kind byte {0}")]
    UnknownKind(u8),
    #[error("expected a {expected} object, found a {found}")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("{what} is truncated: {reason}")]
    Truncated { what: &'static str, reason: String },
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("{what} exceeds a limit: {reason}")]
    Limit { what: &'static str, reason: String },
    #[error("cannot decompress: {0}")]
    Decompress(String),
}
