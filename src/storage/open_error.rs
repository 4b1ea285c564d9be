//! Why a repository location could not be opened.

use super::url::UrlError;
use super::StorageError;

/// Why a repository's storage could not be opened. Each names the
/// location; the command line gives each its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no repository location given")]
    NoLocation,
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("{location}: {message}")]
    Config { location: String, message: String },
    #[error("{location}: {word} {bucket} does not exist ({detail})")]
    NoBucket {
        location: String,
        word: &'static str,
        bucket: String,
        detail: String,
    },
    #[error("{location}: access denied, check the credentials ({detail})")]
    AccessDenied { location: String, detail: String },
    #[error("{location}: no usable credentials found; {hint} ({detail})")]
    NoCredentials {
        location: String,
        hint: &'static str,
        detail: String,
    },
    #[error("{location}: cannot reach {endpoint} ({detail})")]
    Unreachable {
        location: String,
        endpoint: String,
        detail: String,
    },
    #[error("{location}: starting the I/O runtime: {source}")]
    Runtime { location: String, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
}
