//! What a backup reads from the local file system.
//!
//! - [`walk`]: a deterministic depth-first walk over one or more roots, with
//!   restic-style exclusion patterns, reported as enter/item/leave events.
//! - [`meta`]: turns an entry's `lstat` result into a tree [`Node`](crate::format::tree::Node).
//! - [`sparse`]: finds the data regions of a sparse file.
//!
//! Nothing here knows about the repository; the backup layer drives these
//! pieces and fills in content and subtrees.

use std::io;
use std::path::PathBuf;

pub mod meta;
pub mod sparse;
pub mod walk;

/// Errors of the source layer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path given to back up does not exist.
    #[error("{}: no such file or directory", crate::format::escape::path(path))]
    NotFound { path: PathBuf },
    /// Reading a path or its metadata failed.
    #[error("{}: {source}", crate::format::escape::path(path))]
    Io { path: PathBuf, source: io::Error },
    /// Listing or reading the extended attributes of a path failed.
    #[error("{}: cannot read extended attributes: {source}", crate::format::escape::path(path))]
    Xattr { path: PathBuf, source: io::Error },
    /// An exclusion pattern is not a valid glob.
    #[error("invalid exclude pattern {pattern:?}: {source}")]
    Pattern { pattern: String, source: globset::Error },
    /// An exclude file cannot be read.
    #[error("cannot read exclude file {}: {source}", crate::format::escape::path(path))]
    ExcludeFile { path: PathBuf, source: io::Error },
}
