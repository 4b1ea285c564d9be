//! Named byte objects by kind: the only thing a backend knows.
//!
//! A backend stores immutable objects under the repository layout
//! (`config`, `keys/<id>`, `data/<xx>/<id>`, `index/<id>`, `snapshots/<id>`,
//! `locks/<id>`). It never learns what the bytes mean. Behaviour that is not
//! storage itself (retries, fault injection, read-only views) is stacked on
//! top as decorators that implement the same trait.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use spool::Spool;

pub mod cache;
pub mod decorators;
pub mod local;
pub mod memory;
pub mod object;
pub mod open;
mod open_error;
pub mod s3lock;
pub mod spool;
pub mod url;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

/// The kinds of object in a repository, each with its own place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
}

impl FileKind {
    pub const ALL: [FileKind; 6] = [
        Self::Config,
        Self::Key,
        Self::Pack,
        Self::Index,
        Self::Snapshot,
        Self::Lock,
    ];

    /// Directory of this kind under the repository root (`""` for config).
    pub fn dir(self) -> &'static str {
        match self {
            Self::Config => "",
            Self::Key => "keys",
            Self::Pack => "data",
            Self::Index => "index",
            Self::Snapshot => "snapshots",
            Self::Lock => "locks",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Key => "key",
            Self::Pack => "pack",
            Self::Index => "index",
            Self::Snapshot => "snapshot",
            Self::Lock => "lock",
        }
    }

    /// Largest object of this kind a whole read accepts (format.md §14): a
    /// backend checks the size before it reads and reads at most one byte
    /// more, so a hostile or broken store cannot make a reader allocate
    /// without bound.
    pub fn max_size(self) -> u64 {
        use crate::format::limits;
        match self {
            Self::Config => limits::MAX_CONFIG_FILE,
            Self::Key => limits::MAX_KEY_FILE,
            Self::Pack => limits::MAX_PACK,
            Self::Index => limits::MAX_INDEX_FILE,
            Self::Snapshot => limits::MAX_SNAPSHOT_FILE,
            Self::Lock => limits::MAX_LOCK_FILE,
        }
    }

    /// Relative path of an object: `config`, `data/ab/abcd…`, `keys/<name>`, …
    pub fn path(self, name: &str) -> String {
        match self {
            Self::Config => "config".to_owned(),
            Self::Pack => {
                let prefix = name.get(..2).unwrap_or("00");
                format!("data/{prefix}/{name}")
            }
            other => format!("{}/{name}", other.dir()),
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name and size of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// Errors of the storage layer. Each says whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{kind} {name} not found")]
    NotFound { kind: FileKind, name: String },
    #[error("{kind} {name} already exists and is never overwritten")]
    AlreadyExists { kind: FileKind, name: String },
    #[error("reading {len} bytes at {offset} of {kind} {name}: the object has {size} bytes")]
    OutOfRange {
        kind: FileKind,
        name: String,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("{kind} {name} has more than {max} bytes; refusing to read it")]
    TooLarge { kind: FileKind, name: String, max: u64 },
    #[error("{kind} {name} at {path} is not a regular file ({what})")]
    NotAFile {
        kind: FileKind,
        name: String,
        path: String,
        what: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Backend { message: String, transient: bool },
    #[error("the repository is opened read-only; refusing to {0}")]
    ReadOnly(&'static str),
    #[error("injected fault: {0}")]
    Injected(String),
    #[error("{kind} name {name:?} is not a valid object name")]
    InvalidName { kind: FileKind, name: String },
    #[error("{location} cannot lock objects: {reason}")]
    NoObjectLock { location: String, reason: String },
    #[error("{kind} {name} is under object lock until {until}")]
    StillLocked {
        kind: FileKind,
        name: String,
        until: String,
    },
}

impl StorageError {
    /// Whether the same request may succeed if repeated.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ),
            Self::Backend { transient, .. } => *transient,
            Self::Injected(_) => true,
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Checks that `name` can name an object of `kind` on any backend: ASCII
/// letters, digits, `-`, `_` and `.`, not starting with `.`, at most 255
/// bytes, and for packs at least two characters (the shard prefix). The
/// config is the one object whose name is fixed; any name given for it is
/// accepted and ignored.
pub fn check_name(kind: FileKind, name: &str) -> Result<()> {
    if kind == FileKind::Config {
        return Ok(());
    }
    let valid = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && (kind != FileKind::Pack || name.len() >= 2)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(StorageError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Fails with `TooLarge` when `size` is above the cap of `kind`.
pub fn check_size(kind: FileKind, name: &str, size: u64) -> Result<()> {
    if size > kind.max_size() {
        Err(StorageError::TooLarge {
            kind,
            name: name.to_owned(),
            max: kind.max_size(),
        })
    } else {
        Ok(())
    }
}

/// What a local cache (see [`cache`]) may keep of a read: the caller
/// knows what the bytes are, the storage does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The whole object, fetched once and served locally after: it holds
    /// metadata that is read again and again (a pack of trees).
    Whole,
    /// Only the bytes asked for, under their offset and length (a pack
    /// header).
    Range,
}

/// A place that stores immutable named objects.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Where the objects live, for messages (a path or URL).
    fn location(&self) -> String;

    /// Prepares an empty repository location (directories where needed).
    /// Fails with `AlreadyExists` if a `config` is already there.
    async fn create(&self) -> Result<()>;

    /// Stores a new object. Fails with `AlreadyExists` rather than replace
    /// one. When it returns Ok the object is durable.
    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()>;

    /// A new empty file to write an object of `kind` into before
    /// [`put_file`](Self::put_file) stores it, made where that is cheapest:
    /// beside the objects of a local directory (storing is then a link),
    /// in the temporary directory otherwise.
    fn spool(&self, kind: FileKind) -> Result<Spool>;

    /// Stores the bytes written to `spool` as a new object, as `put` does
    /// (`AlreadyExists` rather than replace, durable on Ok). The spool is
    /// read from its start on every call, so a failed put can be repeated.
    /// With `keep`, a local cache may keep a copy, as with `put_keep` (a
    /// new pack of trees); storage without a cache simply stores it.
    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, keep: bool) -> Result<()>;

    /// Reads a whole object; fails with `TooLarge` rather than read more
    /// than [`FileKind::max_size`] bytes.
    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes>;

    /// Reads `len` bytes at `offset`; fails with `OutOfRange` past the end.
    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes>;

    /// Size of an object in bytes; `NotFound` if it does not exist.
    async fn size(&self, kind: FileKind, name: &str) -> Result<u64>;

    /// All objects of a kind, in no particular order.
    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>>;

    /// Removes an object; removing one that is already gone succeeds.
    async fn delete(&self, kind: FileKind, name: &str) -> Result<()>;

    /// Checks that the place can lock objects against deletion (an S3
    /// bucket with Object Lock enabled). Makes no change. Backends without
    /// an object lock fail with [`no_object_lock`].
    async fn check_object_lock(&self) -> Result<()>;

    /// From now on writes every object but lock files under `retention`.
    /// Backends without an object lock refuse.
    fn set_retention(&self, retention: Retention) -> Result<()>;

    /// Until when (Unix seconds) the object is locked against deletion;
    /// `None` when it is not locked.
    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>>;

    /// Extends the lock of an object to `until` (Unix seconds). A lock is
    /// never shortened.
    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()>;

    /// Like `get_range`, and lets a local cache keep what `keep` says.
    /// Storage without a cache simply reads the range.
    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, keep: Keep) -> Result<Bytes>;

    /// Like `put`, and lets a local cache keep a copy of the whole object
    /// (a new pack of trees). Storage without a cache simply stores it.
    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()>;

    /// The object of `kind` a local cache remembers as the one to try first
    /// (the key file that last opened the repository). Storage without a
    /// cache remembers nothing.
    async fn preferred(&self, kind: FileKind) -> Option<String>;

    /// Lets a local cache remember `name` as the object of `kind` to try
    /// first. Never fails: the cache is only an optimisation.
    async fn set_preferred(&self, kind: FileKind, name: &str);
}

// Every method of `Storage` is required: a decorator that forgot one would
// otherwise silently skip what its inner storage does (see
// `decorators::forwarding` for the test that each one forwards).

/// The refusal of a backend that cannot lock objects against deletion.
pub fn no_object_lock(location: String) -> StorageError {
    StorageError::NoObjectLock {
        location,
        reason: "only S3 buckets with Object Lock enabled can".into(),
    }
}

/// Object lock retention for new objects: how long, and whether nobody
/// (compliance) or only a privileged user (governance) may shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u32,
    pub compliance: bool,
}

impl Retention {
    /// The lock period in seconds.
    pub fn period_secs(&self) -> i64 {
        i64::from(self.days) * 86_400
    }

    /// Whether objects of `kind` are written under the lock. Lock files are
    /// not: they are deleted minutes after they are written.
    pub fn applies_to(kind: FileKind) -> bool {
        kind != FileKind::Lock
    }
}

/// A shared handle to any backend.
pub type DynStorage = Arc<dyn Storage>;
