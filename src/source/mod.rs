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
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod meta;
pub mod open;
pub mod sparse;
pub mod walk;

/// A callback run at a point of the walk or of reading, so tests can change
/// the file system exactly there (for example between the walk's `lstat` of
/// a file and its opening). Empty in normal use; costs one branch then.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Hook(Option<Arc<HookFn>>);

/// The callback of a [`Hook`], given the path concerned.
type HookFn = dyn Fn(&Path) + Send + Sync;

impl Hook {
    pub fn new(f: impl Fn(&Path) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// Runs the callback, if any, with the path about to be opened.
    pub fn call(&self, path: &Path) {
        if let Some(f) = &self.0 {
            f(path);
        }
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Hook(set)" } else { "Hook(none)" })
    }
}

impl PartialEq for Hook {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Hook {}

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
