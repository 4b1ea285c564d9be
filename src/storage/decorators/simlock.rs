//! An object lock in front of any backend, for tests: what an S3 bucket
//! with Object Lock does, on a clock the test sets.
//!
//! Objects written after [`Storage::set_retention`] are locked for the
//! retention period from the simulated now. Deleting a locked object hides
//! it, as a delete marker does in a versioned bucket, and is recorded, so a
//! test can assert that nothing tried to delete a locked pack.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;

use crate::storage::{FileKind, ObjectInfo, Result, Retention, Spool, Storage, StorageError};

#[derive(Debug)]
pub struct SimulatedLock<S> {
    inner: S,
    /// Simulated time, Unix seconds.
    now: AtomicI64,
    retention: OnceLock<Retention>,
    until: Mutex<HashMap<(FileKind, String), i64>>,
    locked_deletes: Mutex<Vec<(FileKind, String)>>,
}

impl<S: Storage> SimulatedLock<S> {
    pub fn new(inner: S, now_secs: i64) -> Self {
        Self {
            inner,
            now: AtomicI64::new(now_secs),
            retention: OnceLock::new(),
            until: Mutex::new(HashMap::new()),
            locked_deletes: Mutex::new(Vec::new()),
        }
    }

    pub fn set_now(&self, secs: i64) {
        self.now.store(secs, Ordering::SeqCst);
    }

    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    fn locks(&self) -> MutexGuard<'_, HashMap<(FileKind, String), i64>> {
        self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Until when an object is locked, if it is.
    pub fn until(&self, kind: FileKind, name: &str) -> Option<i64> {
        self.locks().get(&(kind, name.to_owned())).copied()
    }

    /// Deletes asked for while the object was still locked.
    pub fn locked_deletes(&self) -> Vec<(FileKind, String)> {
        self.locked_deletes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl<S: Storage> SimulatedLock<S> {
    /// Locks a new object under the retention, if one is set.
    fn lock_new(&self, kind: FileKind, name: &str) {
        if let Some(r) = self.retention.get() {
            if Retention::applies_to(kind) {
                let until = self.now() + r.period_secs();
                self.locks().insert((kind, name.to_owned()), until);
            }
        }
    }
}

#[async_trait]
impl<S: Storage> Storage for SimulatedLock<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> Result<()> {
        self.inner.create().await
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.inner.put(kind, name, data).await?;
        self.lock_new(kind, name);
        Ok(())
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.inner.put_keep(kind, name, data).await?;
        self.lock_new(kind, name);
        Ok(())
    }

    fn spool(&self, kind: FileKind) -> Result<Spool> {
        self.inner.spool(kind)
    }

    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, keep: bool) -> Result<()> {
        self.inner.put_file(kind, name, spool, keep).await?;
        self.lock_new(kind, name);
        Ok(())
    }

    async fn get_range_keep(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        len: u64,
        keep: crate::storage::Keep,
    ) -> Result<Bytes> {
        self.inner.get_range_keep(kind, name, offset, len, keep).await
    }

    async fn preferred(&self, kind: FileKind) -> Option<String> {
        self.inner.preferred(kind).await
    }

    async fn set_preferred(&self, kind: FileKind, name: &str) {
        self.inner.set_preferred(kind, name).await;
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        self.inner.get(kind, name).await
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.inner.get_range(kind, name, offset, len).await
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.inner.size(kind, name).await
    }

    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        self.inner.list(kind).await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        if self.until(kind, name).is_some_and(|u| u > self.now()) {
            self.locked_deletes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((kind, name.to_owned()));
        }
        self.inner.delete(kind, name).await
    }

    async fn check_object_lock(&self) -> Result<()> {
        Ok(())
    }

    fn set_retention(&self, retention: Retention) -> Result<()> {
        let _ = self.retention.set(retention);
        Ok(())
    }

    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        self.inner.size(kind, name).await?;
        Ok(self.until(kind, name))
    }

    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()> {
        self.inner.size(kind, name).await?;
        let mut locks = self.locks();
        let entry = locks.entry((kind, name.to_owned())).or_insert(until);
        if *entry > until {
            return Err(StorageError::Backend {
                message: format!("{kind} {name}: a lock cannot be shortened"),
                transient: false,
            });
        }
        *entry = until;
        Ok(())
    }
}
