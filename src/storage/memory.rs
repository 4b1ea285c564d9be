//! In-memory backend, for tests and benchmarks.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    check_name, check_size, no_object_lock, FileKind, Keep, ObjectInfo, Result, Retention, Spool, Storage, StorageError,
};

/// Objects held in a map in memory; gone when dropped.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    objects: Mutex<HashMap<(FileKind, String), Bytes>>,
}

/// The map key of an object: the config has one fixed name.
fn key(kind: FileKind, name: &str) -> (FileKind, String) {
    match kind {
        FileKind::Config => (kind, "config".to_owned()),
        _ => (kind, name.to_owned()),
    }
}

/// `len` bytes at `offset` of a stored object, or `OutOfRange`.
pub(super) fn range_of(kind: FileKind, name: &str, data: &Bytes, offset: u64, len: u64) -> Result<Bytes> {
    let size = data.len() as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(data.slice(offset as usize..end as usize)),
        _ => Err(StorageError::OutOfRange {
            kind,
            name: name.to_owned(),
            offset,
            len,
            size,
        }),
    }
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inverts the byte at `offset` of a stored object, as storage rot
    /// would; returns false if there is no such object or byte.
    pub fn damage(&self, kind: FileKind, name: &str, offset: usize) -> bool {
        let mut map = self.objects();
        let Some(bytes) = map.get_mut(&key(kind, name)) else {
            return false;
        };
        let mut copy = bytes.to_vec();
        let Some(b) = copy.get_mut(offset) else { return false };
        *b ^= 0xff;
        *bytes = Bytes::from(copy);
        true
    }

    fn objects(&self) -> MutexGuard<'_, HashMap<(FileKind, String), Bytes>> {
        // Every update is a single map operation, so a panic elsewhere while
        // the lock was held cannot have left the map half changed.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        self.objects()
            .get(&key(kind, name))
            .cloned()
            .ok_or_else(|| StorageError::NotFound {
                kind,
                name: name.to_owned(),
            })
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    async fn create(&self) -> Result<()> {
        if self.objects().contains_key(&key(FileKind::Config, "config")) {
            return Err(StorageError::AlreadyExists {
                kind: FileKind::Config,
                name: "config".to_owned(),
            });
        }
        Ok(())
    }

    fn spool(&self, _kind: FileKind) -> Result<Spool> {
        Spool::temporary()
    }

    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, _keep: bool) -> Result<()> {
        let data = spool.read_all_async(kind, name).await?;
        self.put(kind, name, data).await
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        check_name(kind, name)?;
        match self.objects().entry(key(kind, name)) {
            std::collections::hash_map::Entry::Occupied(_) => Err(StorageError::AlreadyExists {
                kind,
                name: name.to_owned(),
            }),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(data);
                Ok(())
            }
        }
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        let data = self.lookup(kind, name)?;
        check_size(kind, name, data.len() as u64)?;
        Ok(data)
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        range_of(kind, name, &self.lookup(kind, name)?, offset, len)
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        Ok(self.lookup(kind, name)?.len() as u64)
    }

    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .objects()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), data)| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.objects().remove(&key(kind, name));
        Ok(())
    }

    async fn check_object_lock(&self) -> Result<()> {
        Err(no_object_lock(self.location()))
    }

    fn set_retention(&self, _retention: Retention) -> Result<()> {
        Err(no_object_lock(self.location()))
    }

    /// Nothing here is ever locked.
    async fn locked_until(&self, _kind: FileKind, _name: &str) -> Result<Option<i64>> {
        Ok(None)
    }

    async fn extend_lock(&self, _kind: FileKind, _name: &str, _until: i64) -> Result<()> {
        Err(no_object_lock(self.location()))
    }

    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, _keep: Keep) -> Result<Bytes> {
        self.get_range(kind, name, offset, len).await
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.put(kind, name, data).await
    }

    async fn preferred(&self, _kind: FileKind) -> Option<String> {
        None
    }

    async fn set_preferred(&self, _kind: FileKind, _name: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_passes_the_conformance_suite() {
        let storage = MemoryStorage::new();
        crate::storage::conformance::run_all(&storage).await;
    }

    #[tokio::test]
    async fn stored_bytes_are_shared_not_copied() {
        let storage = MemoryStorage::new();
        let data = Bytes::from(vec![5u8; 1000]);
        storage.put(FileKind::Index, "ab", data.clone()).await.unwrap();
        let back = storage.get(FileKind::Index, "ab").await.unwrap();
        assert_eq!(back.as_ptr(), data.as_ptr());
    }
}
