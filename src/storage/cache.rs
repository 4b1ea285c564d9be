//! A local cache of a remote repository's metadata: index files,
//! snapshots, packs of trees and pack headers.
//!
//! Index files, snapshots and packs are named by the BLAKE3 hash of their
//! bytes, so a cached copy is checked against its name before it is used,
//! and a copy that fails the check is dropped and fetched again. Because
//! names are content hashes, a name can only ever stand for one content;
//! each repository still has a directory of its own, named by the hash of
//! its sealed config (see [`CacheStorage::for_repository`]).
//!
//! Index files and snapshots are kept whenever they are read or written.
//! Packs are kept only when the caller asks through [`Keep`]: a whole pack
//! ([`Keep::Whole`], packs of trees) is fetched once and then served from
//! its local copy, checked against its name the first time this process
//! uses it; a range ([`Keep::Range`], a pack header) is kept on its own
//! with a BLAKE3 hash beside it, checked on every read. Plain reads of
//! packs always go to the repository, so data packs never fill the cache
//! and `check` reads what is really stored.
//!
//! Listing a kind removes cached objects the repository no longer has;
//! deleting removes the cached copy too. The cache is an optimisation
//! only: when it cannot be read or written, requests go to the repository
//! as if it were absent.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{FileKind, Keep, ObjectInfo, Result, Spool, Storage, StorageError};

/// The kinds the cache keeps on every read: read by every command, never changed.
const CACHED: [FileKind; 2] = [FileKind::Index, FileKind::Snapshot];

/// Directory of kept pack ranges, one subdirectory per pack.
const RANGES: &str = "ranges";

/// File naming the key file that last opened the repository.
const LAST_KEY: &str = "last-key";

/// Bytes of the hash in front of a kept range.
const HASH_LEN: usize = 32;

/// A read-through cache in a local directory in front of `inner`.
#[derive(Debug)]
pub struct CacheStorage<S> {
    inner: S,
    dir: PathBuf,
    /// Packs whose cached copy this process has checked against its name.
    verified: Mutex<HashSet<String>>,
    /// One download per pack at a time: concurrent readers of trees in the
    /// same pack wait for the first instead of fetching it again.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The sealed config, when it was read before the cache was stacked:
    /// it never changes, so opening the repository need not fetch it again.
    config: Option<Bytes>,
}

/// The default cache root: `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`.
pub fn default_root() -> Option<PathBuf> {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    nonempty("XDG_CACHE_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))
        .map(|base| base.join("cairn"))
}

fn is_content_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn matches_name(name: &str, data: &[u8]) -> bool {
    blake3::hash(data).to_hex().as_str() == name
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded sets stay consistent whatever panicked while holding them.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `len` bytes at `offset` of a whole object, or `OutOfRange`.
fn slice(kind: FileKind, name: &str, data: &Bytes, offset: u64, len: u64) -> Result<Bytes> {
    let size = data.len() as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(data.slice(offset as usize..end as usize)),
        _ => Err(out_of_range(kind, name, offset, len, size)),
    }
}

fn out_of_range(kind: FileKind, name: &str, offset: u64, len: u64, size: u64) -> StorageError {
    StorageError::OutOfRange {
        kind,
        name: name.to_owned(),
        offset,
        len,
        size,
    }
}

/// The hash kept in front of a range: it binds the bytes to the pack,
/// offset and length they were read at.
fn range_hash(name: &str, offset: u64, data: &[u8]) -> [u8; HASH_LEN] {
    let mut h = blake3::Hasher::new();
    h.update(name.as_bytes());
    h.update(&offset.to_le_bytes());
    h.update(&(data.len() as u64).to_le_bytes());
    h.update(data);
    *h.finalize().as_bytes()
}

impl<S: Storage> CacheStorage<S> {
    /// Caches `inner` in a directory of its own below `root`, chosen by the
    /// repository's location.
    pub fn new(inner: S, root: &Path) -> Self {
        let key = blake3::hash(inner.location().as_bytes());
        Self::in_dir(inner, root, &key)
    }

    /// Caches `inner` in the directory of the repository whose sealed
    /// `config` is given: the config is written once, when the repository
    /// is created, and sealed under a random nonce, so its hash names that
    /// one repository wherever it is reached from (two URLs of one bucket,
    /// a renamed endpoint). Without a config (before `init`) the location
    /// names the directory.
    pub fn for_repository(inner: S, root: &Path, config: Option<Bytes>) -> Self {
        match config {
            Some(sealed) => {
                let key = blake3::hash(&sealed);
                Self {
                    config: Some(sealed),
                    ..Self::in_dir(inner, root, &key)
                }
            }
            None => Self::new(inner, root),
        }
    }

    fn in_dir(inner: S, root: &Path, key: &blake3::Hash) -> Self {
        let dir = root.join(&key.to_hex().as_str()[..32]);
        Self {
            inner,
            dir,
            verified: Mutex::new(HashSet::new()),
            fetching: Mutex::new(HashMap::new()),
            config: None,
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The directory of this repository's cached objects.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: FileKind, name: &str) -> Option<PathBuf> {
        (CACHED.contains(&kind) && is_content_name(name)).then(|| self.dir.join(kind.dir()).join(name))
    }

    /// Where a whole pack is kept.
    fn pack_path(&self, name: &str) -> PathBuf {
        self.dir.join(FileKind::Pack.dir()).join(name)
    }

    /// Where the ranges kept of a pack are.
    fn ranges_dir(&self, name: &str) -> PathBuf {
        self.dir.join(RANGES).join(name)
    }

    /// The cached copy, if there is one that matches its name.
    async fn cached(&self, kind: FileKind, name: &str) -> Option<Bytes> {
        let path = self.path(kind, name)?;
        let data = tokio::fs::read(&path).await.ok()?;
        if matches_name(name, &data) {
            Some(Bytes::from(data))
        } else {
            let _ = tokio::fs::remove_file(&path).await;
            None
        }
    }

    /// Keeps a copy of what was read, when it matches its name.
    async fn keep(&self, kind: FileKind, name: &str, data: &Bytes) {
        let Some(path) = self.path(kind, name) else { return };
        if !matches_name(name, data) {
            return;
        }
        let _ = write_atomically(&path, data).await;
    }

    /// Keeps a whole pack, when it matches its name.
    async fn keep_pack(&self, name: &str, data: &[u8]) {
        if is_content_name(name)
            && matches_name(name, data)
            && write_atomically(&self.pack_path(name), data).await.is_ok()
        {
            lock(&self.verified).insert(name.to_owned());
        }
    }

    /// Forgets a cached pack and the ranges kept of it.
    async fn drop_pack(&self, name: &str) {
        lock(&self.verified).remove(name);
        let _ = tokio::fs::remove_file(self.pack_path(name)).await;
        let _ = tokio::fs::remove_dir_all(self.ranges_dir(name)).await;
    }

    /// A range of the cached copy of a whole pack, if there is a good one.
    /// The first use in this process checks the copy against its name; a
    /// copy that fails is removed.
    async fn pack_range(&self, name: &str, offset: u64, len: u64) -> Option<Result<Bytes>> {
        let path = self.pack_path(name);
        if lock(&self.verified).contains(name) {
            match read_at(&path, offset, len).await {
                Ok(Some(bytes)) => return Some(Ok(bytes)),
                Ok(None) => {
                    let size = tokio::fs::metadata(&path).await.ok()?.len();
                    return Some(Err(out_of_range(FileKind::Pack, name, offset, len, size)));
                }
                // Gone (another process cleaned it up): fetch it again.
                Err(_) => {
                    lock(&self.verified).remove(name);
                    return None;
                }
            }
        }
        let data = tokio::fs::read(&path).await.ok()?;
        if !matches_name(name, &data) {
            let _ = tokio::fs::remove_file(&path).await;
            return None;
        }
        lock(&self.verified).insert(name.to_owned());
        Some(slice(FileKind::Pack, name, &Bytes::from(data), offset, len))
    }

    /// A range of a pack, served from its local copy; the first read
    /// fetches the whole pack and keeps it.
    async fn get_whole_pack_range(&self, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        if !is_content_name(name) {
            return self.inner.get_range(FileKind::Pack, name, offset, len).await;
        }
        if let Some(got) = self.pack_range(name, offset, len).await {
            return got;
        }
        let gate = lock(&self.fetching).entry(name.to_owned()).or_default().clone();
        let result = async {
            let _turn = gate.lock().await;
            // Someone else may have fetched it while this one waited.
            if let Some(got) = self.pack_range(name, offset, len).await {
                return got;
            }
            let data = self.inner.get(FileKind::Pack, name).await?;
            self.keep_pack(name, &data).await;
            slice(FileKind::Pack, name, &data, offset, len)
        }
        .await;
        let mut fetching = lock(&self.fetching);
        // Only the map's reference and this one left: nobody else waits.
        if Arc::strong_count(&gate) <= 2 && fetching.get(name).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            fetching.remove(name);
        }
        result
    }

    /// A range of a pack kept on its own with its hash, fetched and kept
    /// when it is not there or fails its check.
    async fn get_kept_range(&self, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        if !is_content_name(name) {
            return self.inner.get_range(FileKind::Pack, name, offset, len).await;
        }
        if let Some(got) = self.pack_range(name, offset, len).await {
            return got;
        }
        let path = self.ranges_dir(name).join(format!("{offset}-{len}"));
        if let Ok(kept) = tokio::fs::read(&path).await {
            if kept.len() >= HASH_LEN {
                let (hash, data) = kept.split_at(HASH_LEN);
                if data.len() as u64 == len && range_hash(name, offset, data) == hash {
                    return Ok(Bytes::copy_from_slice(data));
                }
            }
            let _ = tokio::fs::remove_file(&path).await;
        }
        let data = self.inner.get_range(FileKind::Pack, name, offset, len).await?;
        let mut kept = Vec::with_capacity(HASH_LEN + data.len());
        kept.extend_from_slice(&range_hash(name, offset, &data));
        kept.extend_from_slice(&data);
        let _ = write_atomically(&path, &kept).await;
        Ok(data)
    }

    /// Removes cached packs and kept ranges of packs not in `live`.
    async fn clean_packs(&self, live: &HashSet<&str>) {
        for sub in [FileKind::Pack.dir(), RANGES] {
            let Ok(mut entries) = tokio::fs::read_dir(self.dir.join(sub)).await else {
                continue;
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name();
                if name.to_str().is_some_and(|n| live.contains(n)) {
                    continue;
                }
                if let Some(n) = name.to_str() {
                    lock(&self.verified).remove(n);
                }
                let path = entry.path();
                if tokio::fs::remove_file(&path).await.is_err() {
                    let _ = tokio::fs::remove_dir_all(&path).await;
                }
            }
        }
    }
}

/// Reads `len` bytes at `offset` of a file; `None` when the file is
/// shorter than that.
async fn read_at(path: &Path, offset: u64, len: u64) -> io::Result<Option<Bytes>> {
    let mut file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    match offset.checked_add(len) {
        Some(end) if end <= size => {}
        _ => return Ok(None),
    }
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    file.seek(io::SeekFrom::Start(offset)).await?;
    let mut buf = vec![0; len];
    file.read_exact(&mut buf).await?;
    Ok(Some(Bytes::from(buf)))
}

/// Writes a temporary file beside `path` and renames it into place, so a
/// reader never sees half a file. What the cache holds is the owner's only:
/// directories are made 0700 and files 0600 (the umask can only take bits
/// away).
async fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .await?;
    let unique = getrandom::u64().unwrap_or(u64::from(std::process::id()));
    let tmp = dir.join(format!(".tmp-{unique:016x}"));
    let written = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .await?;
        file.write_all(data).await?;
        file.flush().await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let renamed = tokio::fs::rename(&tmp, path).await;
    if renamed.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    renamed
}

#[async_trait]
impl<S: Storage> Storage for CacheStorage<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> Result<()> {
        self.inner.create().await
    }

    /// Spools are made in the cache's directory, which is on a disk the
    /// process may write to (in the cluster an emptyDir, where the root
    /// file system and `/tmp` may be read-only); the inner storage's
    /// place is the fallback.
    fn spool(&self, kind: FileKind) -> Result<Spool> {
        // A new cache has no directory yet; a failure here only means the
        // fallback.
        if !self.dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir);
        }
        Spool::create_in(&self.dir).or_else(|_| self.inner.spool(kind))
    }

    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, keep: bool) -> Result<()> {
        self.inner.put_file(kind, name, spool, keep).await?;
        // Only what the cache keeps is read back: objects it always keeps,
        // and packs it is asked to keep.
        let whole_pack = keep && kind == FileKind::Pack;
        if self.path(kind, name).is_some() || whole_pack {
            if let Ok(data) = spool.read_all_async(kind, name).await {
                self.keep(kind, name, &data).await;
                if whole_pack {
                    self.keep_pack(name, &data).await;
                }
            }
        }
        Ok(())
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.inner.put(kind, name, data.clone()).await?;
        self.keep(kind, name, &data).await;
        Ok(())
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        if let (FileKind::Config, Some(config)) = (kind, &self.config) {
            return Ok(config.clone());
        }
        if let Some(data) = self.cached(kind, name).await {
            return Ok(data);
        }
        let data = self.inner.get(kind, name).await?;
        self.keep(kind, name, &data).await;
        Ok(data)
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        if let Some(data) = self.cached(kind, name).await {
            return slice(kind, name, &data, offset, len);
        }
        self.inner.get_range(kind, name, offset, len).await
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.inner.size(kind, name).await
    }

    /// Lists the repository, and drops cached objects it no longer has.
    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        let listed = self.inner.list(kind).await?;
        let live: HashSet<&str> = listed.iter().map(|o| o.name.as_str()).collect();
        if kind == FileKind::Pack {
            self.clean_packs(&live).await;
        } else if CACHED.contains(&kind) {
            if let Ok(mut entries) = tokio::fs::read_dir(self.dir.join(kind.dir())).await {
                while let Ok(Some(entry)) = entries.next_entry().await {
                    let name = entry.file_name();
                    let stale = name.to_str().is_none_or(|n| !live.contains(n));
                    if stale {
                        let _ = tokio::fs::remove_file(entry.path()).await;
                    }
                }
            }
        }
        Ok(listed)
    }

    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.inner.delete(kind, name).await?;
        if let Some(path) = self.path(kind, name) {
            let _ = tokio::fs::remove_file(path).await;
        }
        if kind == FileKind::Pack && is_content_name(name) {
            self.drop_pack(name).await;
        }
        Ok(())
    }

    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, keep: Keep) -> Result<Bytes> {
        match (kind, keep) {
            (FileKind::Pack, Keep::Whole) => self.get_whole_pack_range(name, offset, len).await,
            (FileKind::Pack, Keep::Range) => self.get_kept_range(name, offset, len).await,
            _ => match self.cached(kind, name).await {
                Some(data) => slice(kind, name, &data, offset, len),
                None => self.inner.get_range_keep(kind, name, offset, len, keep).await,
            },
        }
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.inner.put_keep(kind, name, data.clone()).await?;
        self.keep(kind, name, &data).await;
        if kind == FileKind::Pack {
            self.keep_pack(name, &data).await;
        }
        Ok(())
    }

    async fn check_object_lock(&self) -> Result<()> {
        self.inner.check_object_lock().await
    }

    /// The key file that last opened the repository, from `last-key` in
    /// the cache directory (a key id, never a password).
    async fn preferred(&self, kind: FileKind) -> Option<String> {
        if kind != FileKind::Key {
            return None;
        }
        let text = tokio::fs::read_to_string(self.dir.join(LAST_KEY)).await.ok()?;
        let name = text.trim();
        is_content_name(name).then(|| name.to_owned())
    }

    async fn set_preferred(&self, kind: FileKind, name: &str) {
        if kind == FileKind::Key && is_content_name(name) {
            let _ = write_atomically(&self.dir.join(LAST_KEY), name.as_bytes()).await;
        }
    }

    fn set_retention(&self, retention: super::Retention) -> Result<()> {
        self.inner.set_retention(retention)
    }

    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        self.inner.locked_until(kind, name).await
    }

    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()> {
        self.inner.extend_lock(kind, name, until).await
    }
}

#[cfg(test)]
mod tests;
