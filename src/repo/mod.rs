//! The repository: open/init, keys, index, packer, blobs and snapshots.
//!
//! A [`Repository`] is opened with a password and knows the master key and
//! the config. Loading the index turns it into an [`IndexedRepository`], the
//! only type that can read or save blobs.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::MasterKey;
use crate::format::config::{ChunkerParams, Config, ObjectLockConfig};
use crate::format::keyfile::KdfParams;
use crate::format::{envelope, limits, ObjectKind};
use crate::id::RepoId;
use crate::storage::decorators::UnlockableStorage;
use crate::storage::{DynStorage, FileKind, Retention};

pub mod bitmap;
pub mod cancel;
pub mod error;
pub mod index;
pub mod keys;
pub mod lock;
pub mod packer;
pub mod recycle;
pub mod reserved;
pub mod saver;
pub mod snapshots;
pub mod treewalk;

pub use bitmap::Bitmap;
pub use cancel::CancelToken;
pub use error::{RepoError, Result};
pub use index::{BlobLocation, Index, IndexBuilder, IndexedRepository, Refresh, KEY_LEN};
pub use keys::{KeyInfo, SkippedKey};
pub use lock::{LockGuard, LockKind, LockOptions, LockWatch};
pub use treewalk::{TreeBudget, TreeLimits};

/// Default target size of a pack file.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;
/// Default zstd level.
pub const DEFAULT_COMPRESSION: i32 = 3;

/// Choices made once, at `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub pack_size: u32,
    pub compression: Option<i32>,
    pub kdf: KdfParams,
    /// Share chunker and id keys with this master key (see `MasterKey::generate_sharing_chunker`).
    pub share_chunker_with: Option<MasterKey>,
    /// Write every object under this object lock (S3 only).
    pub object_lock: Option<ObjectLockConfig>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            compression: Some(DEFAULT_COMPRESSION),
            kdf: KdfParams::default(),
            share_chunker_with: None,
            object_lock: None,
        }
    }
}

/// Repository options for fast unit tests: cheap Argon2id, 16 KiB chunks,
/// 1 MiB packs.
#[cfg(test)]
pub(crate) fn test_options() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: crate::format::keyfile::MIN_KDF_MEMORY_KIB,
            iterations: 1,
            parallelism: 1,
        },
        chunker: ChunkerParams::from_avg(16 << 10).unwrap_or_default(),
        pack_size: 1 << 20,
        ..InitOptions::default()
    }
}

/// Who is running: recorded in keys, snapshots and locks.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// The name of the current user, or an empty string.
pub fn username() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default()
}

/// Current time in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The storage's view of a config's object lock.
pub fn retention(lock: &ObjectLockConfig) -> Retention {
    Retention {
        days: lock.days,
        compliance: lock.compliance,
    }
}

fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("cairn-io")
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(RepoError::Runtime)
}

/// An open repository: storage, master key and config.
#[derive(Clone)]
pub struct Repository {
    storage: DynStorage,
    key: Arc<MasterKey>,
    config: Config,
    key_name: String,
    /// Key files passed over while opening (damaged, or out of bounds).
    skipped_keys: Vec<keys::SkippedKey>,
    rt: Arc<tokio::runtime::Runtime>,
    /// BLAKE3 of the sealed config: names the repository's cache directory.
    config_hash: [u8; 32],
    /// Where the local index table is kept (none: the index is held in
    /// memory).
    index_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.storage.location())
            .field("id", &self.config.id)
            .finish()
    }
}

impl Repository {
    /// Creates a new repository in `storage`, protected by `password`.
    pub fn init(storage: DynStorage, password: &[u8], opts: InitOptions) -> Result<Self> {
        opts.chunker
            .validate()
            .map_err(|e| RepoError::InvalidOption(e.to_string()))?;
        if opts.pack_size < (1 << 20) || u64::from(opts.pack_size) > limits::MAX_PACK / 2 {
            return Err(RepoError::InvalidOption(format!(
                "pack size {} (allowed: 1 MiB to 2 GiB)",
                opts.pack_size
            )));
        }
        let rt = runtime()?;
        if let Some(lock) = &opts.object_lock {
            lock.validate().map_err(|e| RepoError::InvalidOption(e.to_string()))?;
            rt.block_on(storage.check_object_lock())?;
            storage.set_retention(retention(lock))?;
        }
        match rt.block_on(storage.create()) {
            Ok(()) => {}
            Err(crate::storage::StorageError::AlreadyExists { .. }) => {
                return Err(RepoError::AlreadyExists {
                    location: storage.location(),
                })
            }
            Err(e) => return Err(e.into()),
        }
        let key = match &opts.share_chunker_with {
            Some(other) => MasterKey::generate_sharing_chunker(other)?,
            None => MasterKey::generate()?,
        };
        let mut id = [0u8; 32];
        crate::crypto::random_bytes(&mut id)?;
        let config = Config {
            id: RepoId::from_bytes(id),
            created_ns: now_ns(),
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            compression: opts.compression,
            object_lock: opts.object_lock,
        };
        let repo = Self {
            storage,
            key: Arc::new(key),
            config,
            key_name: String::new(),
            skipped_keys: Vec::new(),
            rt,
            config_hash: [0; 32],
            index_dir: None,
        };
        // The key goes first: a config without a key could never be opened.
        let key_name = repo.write_key(password, opts.kdf)?;
        let sealed = repo.key.seal(ObjectKind::Config, None, &repo.config.encode())?;
        let config_hash = *blake3::hash(&sealed).as_bytes();
        repo.block_on(repo.storage.put(FileKind::Config, "config", Bytes::from(sealed)))?;
        Ok(Self {
            key_name,
            config_hash,
            ..repo
        })
    }

    /// Opens the repository in `storage` with `password`.
    pub fn open(storage: DynStorage, password: &[u8]) -> Result<Self> {
        let rt = runtime()?;
        let sealed_config = match rt.block_on(storage.get(FileKind::Config, "config")) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(RepoError::NotARepository {
                    location: storage.location(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let keys::Found {
            name: key_name,
            key,
            skipped: skipped_keys,
        } = keys::find_key(&rt, &storage, password)?;
        let plain = key
            .open(ObjectKind::Config, &sealed_config, envelope::DEFAULT_LIMIT, None)
            .map_err(|source| RepoError::Crypto {
                kind: FileKind::Config,
                name: "config".into(),
                source,
            })?;
        let config = Config::decode(&plain).map_err(|source| RepoError::Format {
            kind: FileKind::Config,
            name: "config".into(),
            source,
        })?;
        let config_hash = *blake3::hash(&sealed_config).as_bytes();
        let storage = match &config.object_lock {
            Some(lock) => match storage.set_retention(retention(lock)) {
                Ok(()) => storage,
                Err(refusal) => Arc::new(UnlockableStorage::new(storage, &refusal)) as DynStorage,
            },
            None => storage,
        };
        Ok(Self {
            storage,
            key: Arc::new(key),
            config,
            key_name,
            skipped_keys,
            rt,
            config_hash,
            index_dir: None,
        })
    }

    /// Keeps the local index table (`format-spec/format.md`, "The local index table") in this
    /// repository's directory below the cache root `root`: the directory
    /// a cache of the repository's files uses, named by its sealed config,
    /// for local repositories too.
    pub fn with_index_cache(mut self, root: &std::path::Path) -> Self {
        let hex = blake3::Hash::from_bytes(self.config_hash).to_hex();
        self.index_dir = Some(root.join(&hex.as_str()[..32]).join("tables"));
        self
    }

    /// Where the local index table is kept, if anywhere.
    pub fn index_dir(&self) -> Option<&std::path::Path> {
        self.index_dir.as_deref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// A shared handle to the master key.
    pub fn key_arc(&self) -> Arc<MasterKey> {
        self.key.clone()
    }

    pub fn storage(&self) -> &DynStorage {
        &self.storage
    }

    /// Name of the key file that opened this repository.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Key files that were passed over while opening: damaged, out of the
    /// format's bounds or too costly for this machine. The caller warns.
    pub fn skipped_keys(&self) -> &[keys::SkippedKey] {
        &self.skipped_keys
    }

    /// The I/O runtime's handle, for spawning concurrent storage requests.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }

    /// Runs a storage future to completion from synchronous code.
    /// Must not be called from inside the I/O runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Seals `plaintext` as a file of `kind`, stores it under the hash of its
    /// bytes and returns that name.
    pub fn save_file(&self, kind: FileKind, plaintext: &[u8]) -> Result<String> {
        let object = object_kind(kind);
        let sealed = self.key.seal(object, self.config.compression, plaintext)?;
        let name = blake3::hash(&sealed).to_hex().to_string();
        self.block_on(self.storage.put(kind, &name, Bytes::from(sealed)))?;
        Ok(name)
    }

    /// Reads a sealed file, checks that its bytes hash to its name and opens it.
    pub fn load_file(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let bytes = self.block_on(self.storage.get(kind, name))?;
        self.open_file(kind, name, &bytes)
    }

    /// Verifies and opens the bytes of a sealed file already read.
    pub fn open_file(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        verify_name(kind, name, bytes)?;
        self.key
            .open(object_kind(kind), bytes, envelope::DEFAULT_LIMIT, None)
            .map_err(|source| RepoError::Crypto {
                kind,
                name: name.to_owned(),
                source,
            })
    }
}

/// Checks that stored bytes hash to their name (all files but `config`).
pub fn verify_name(kind: FileKind, name: &str, bytes: &[u8]) -> Result<()> {
    if kind == FileKind::Config {
        return Ok(());
    }
    let actual = blake3::hash(bytes).to_hex();
    if actual.as_str() != name {
        return Err(RepoError::NameMismatch {
            kind,
            name: name.to_owned(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// The envelope kind of each sealed file kind.
pub fn object_kind(kind: FileKind) -> ObjectKind {
    match kind {
        FileKind::Config => ObjectKind::Config,
        FileKind::Key => ObjectKind::Key,
        FileKind::Pack => ObjectKind::PackHeader,
        FileKind::Index => ObjectKind::Index,
        FileKind::Snapshot => ObjectKind::Snapshot,
        FileKind::Lock => ObjectKind::Lock,
    }
}
