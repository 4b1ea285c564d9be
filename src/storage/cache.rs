//! A local cache of a remote repository's index files and snapshots.
//!
//! Index files and snapshots are named by the BLAKE3 hash of their bytes,
//! so a cached copy is checked against its name before it is used, and a
//! copy that fails the check is dropped and fetched again. Because names
//! are content hashes, one cache directory per repository location is
//! always safe: a name can only ever stand for one content. Listing a kind
//! removes cached objects the repository no longer has; deleting removes
//! the cached copy too. The cache is an optimisation only: when it cannot
//! be read or written, requests go to the repository as if it were absent.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileKind, ObjectInfo, Result, Storage};

/// The kinds the cache keeps: read by every command, never changed.
const CACHED: [FileKind; 2] = [FileKind::Index, FileKind::Snapshot];

/// A read-through cache in a local directory in front of `inner`.
#[derive(Debug)]
pub struct CacheStorage<S> {
    inner: S,
    dir: PathBuf,
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

impl<S: Storage> CacheStorage<S> {
    /// Caches `inner` in a directory of its own below `root`, chosen by the
    /// repository's location.
    pub fn new(inner: S, root: &Path) -> Self {
        let key = blake3::hash(inner.location().as_bytes()).to_hex();
        let dir = root.join(&key.as_str()[..32]);
        Self { inner, dir }
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
}

/// Writes a temporary file beside `path` and renames it into place, so a
/// reader never sees half a file.
async fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await?;
    let unique = getrandom::u64().unwrap_or(u64::from(std::process::id()));
    let tmp = dir.join(format!(".tmp-{unique:016x}"));
    tokio::fs::write(&tmp, data).await?;
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

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.inner.put(kind, name, data.clone()).await?;
        self.keep(kind, name, &data).await;
        Ok(())
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        if let Some(data) = self.cached(kind, name).await {
            return Ok(data);
        }
        let data = self.inner.get(kind, name).await?;
        self.keep(kind, name, &data).await;
        Ok(data)
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        if let Some(data) = self.cached(kind, name).await {
            let size = data.len() as u64;
            return match offset.checked_add(len) {
                Some(end) if end <= size => Ok(data.slice(offset as usize..end as usize)),
                _ => Err(super::StorageError::OutOfRange {
                    kind,
                    name: name.to_owned(),
                    offset,
                    len,
                    size,
                }),
            };
        }
        self.inner.get_range(kind, name, offset, len).await
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.inner.size(kind, name).await
    }

    /// Lists the repository, and drops cached objects it no longer has.
    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        let listed = self.inner.list(kind).await?;
        if CACHED.contains(&kind) {
            let live: std::collections::HashSet<&str> = listed.iter().map(|o| o.name.as_str()).collect();
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
        Ok(())
    }

    async fn check_object_lock(&self) -> Result<()> {
        self.inner.check_object_lock().await
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
mod tests {
    use super::*;
    use crate::storage::conformance;
    use crate::storage::decorators::{FaultStorage, Operation};
    use crate::storage::memory::MemoryStorage;

    fn object(tag: &str) -> (String, Bytes) {
        let data = conformance::content(tag, 300);
        (blake3::hash(&data).to_hex().to_string(), data)
    }

    #[tokio::test]
    async fn cache_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run_all(&CacheStorage::new(MemoryStorage::new(), dir.path())).await;
    }

    #[tokio::test]
    async fn a_second_read_is_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FaultStorage::new(MemoryStorage::new());
        let (name, data) = object("index");
        backend.put(FileKind::Index, &name, data.clone()).await.unwrap();
        let first = CacheStorage::new(backend, dir.path());
        assert_eq!(first.get(FileKind::Index, &name).await.unwrap(), data);
        assert_eq!(first.get(FileKind::Index, &name).await.unwrap(), data);
        assert_eq!(
            first.get_range(FileKind::Index, &name, 10, 5).await.unwrap(),
            data.slice(10..15)
        );
        assert_eq!(first.inner().count(Operation::Get), 1);
        assert!(first.dir().join("index").join(&name).is_file());
    }

    #[tokio::test]
    async fn a_damaged_copy_is_dropped_and_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let (name, data) = object("snapshot");
        let cache = CacheStorage::new(FaultStorage::new(MemoryStorage::new()), dir.path());
        cache.put(FileKind::Snapshot, &name, data.clone()).await.unwrap();
        let path = cache.dir().join("snapshots").join(&name);
        assert!(path.is_file(), "a put keeps a copy");
        std::fs::write(&path, b"tampered").unwrap();
        assert_eq!(cache.get(FileKind::Snapshot, &name).await.unwrap(), data);
        assert_eq!(cache.inner().count(Operation::Get), 1);
        assert_eq!(std::fs::read(&path).unwrap(), data.to_vec(), "the copy is restored");
    }

    #[tokio::test]
    async fn objects_gone_from_the_repository_leave_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let backend = MemoryStorage::new();
        let (a, data_a) = object("a");
        let (b, data_b) = object("b");
        let cache = CacheStorage::new(backend, dir.path());
        cache.put(FileKind::Index, &a, data_a).await.unwrap();
        cache.put(FileKind::Index, &b, data_b).await.unwrap();
        // Another client removes `a` from the repository.
        cache.inner().delete(FileKind::Index, &a).await.unwrap();
        let listed = cache.list(FileKind::Index).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!cache.dir().join("index").join(&a).exists(), "stale copy kept");
        assert!(cache.dir().join("index").join(&b).exists());
        cache.delete(FileKind::Index, &b).await.unwrap();
        assert!(!cache.dir().join("index").join(&b).exists());
    }

    #[tokio::test]
    async fn other_kinds_and_names_are_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheStorage::new(MemoryStorage::new(), dir.path());
        let (name, data) = object("pack");
        cache.put(FileKind::Pack, &name, data.clone()).await.unwrap();
        cache.put(FileKind::Snapshot, "not-a-hash", data.clone()).await.unwrap();
        // A name that is a hash, but not of these bytes.
        let (other, _) = object("other");
        cache.put(FileKind::Index, &other, data).await.unwrap();
        assert!(!cache.dir().exists() || walk_files(cache.dir()) == 0);
    }

    fn walk_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| if e.path().is_dir() { walk_files(&e.path()) } else { 1 })
                    .sum()
            })
            .unwrap_or(0)
    }
}
