//! Retry, read-only and fault-injection decorators.
//!
//! Each wraps any backend and implements [`Storage`] itself, so they stack:
//! `RetryStorage::new(FaultStorage::new(MemoryStorage::new()))` is a backend
//! that fails now and then and recovers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileKind, Keep, ObjectInfo, Result, Retention, Spool, Storage, StorageError};

mod fault;
#[cfg(test)]
pub mod simlock;

pub use fault::{FaultRule, FaultStorage, Operation};

/// Retries transient failures with exponential backoff and jitter.
///
/// Permanent errors (not found, already exists, out of range, …) pass
/// through at once. A put whose earlier attempt failed transiently may have
/// stored the object before the failure was reported; if a later attempt
/// then finds the object present, the put succeeds only when the stored
/// bytes are the ones being put.
#[derive(Debug)]
pub struct RetryStorage<S> {
    inner: S,
    attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    retries: AtomicU64,
}

impl<S: Storage> RetryStorage<S> {
    /// Five attempts, 200 ms before the first retry, at most 10 s between two.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            retries: AtomicU64::new(0),
        }
    }

    /// Total attempts per request, the first included (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Delay before the first retry; each further retry doubles it.
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Upper bound of the delay between two attempts.
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Retries made so far, over all requests.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The pause after failed attempt number `attempt` (1-based): the
    /// doubled base delay, capped, then drawn uniformly from its upper half.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        let full = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let nanos = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        // Without a random source the pause is simply the full delay.
        let jitter = getrandom::u64().map_or(half, |r| r % (half + 1));
        Duration::from_nanos(nanos - half + jitter)
    }

    /// Waits before the next attempt if `err` is transient and attempts
    /// remain; otherwise hands the error back. A store's transient error
    /// that outlasted every attempt says so, so that the one line a command
    /// ends with shows the failure was retried.
    async fn pause_or_fail(&self, attempt: u32, err: StorageError) -> Result<()> {
        if !err.is_transient() {
            return Err(err);
        }
        if attempt < self.attempts {
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.delay(attempt)).await;
            return Ok(());
        }
        Err(match err {
            StorageError::Backend { message, transient } if attempt > 1 => StorageError::Backend {
                message: format!("{message}; gave up after {attempt} attempts"),
                transient,
            },
            other => other,
        })
    }

    /// `put` or (`keep`) `put_keep`, retried. Whether an earlier attempt
    /// may have stored the object decides what a later `AlreadyExists`
    /// means.
    async fn put_with(&self, kind: FileKind, name: &str, data: Bytes, keep: bool) -> Result<()> {
        let mut uncertain = false;
        let mut attempt = 1;
        loop {
            let result = if keep {
                self.inner.put_keep(kind, name, data.clone()).await
            } else {
                self.inner.put(kind, name, data.clone()).await
            };
            match result {
                Ok(()) => return Ok(()),
                Err(exists @ StorageError::AlreadyExists { .. }) if uncertain => {
                    return self.stored_is(kind, name, &data, exists).await;
                }
                Err(e) => self.pause_or_fail(attempt, e).await?,
            }
            uncertain = true;
            attempt += 1;
        }
    }

    /// After an uncertain put ran into `exists`: Ok if the stored object
    /// is `data` (the earlier attempt stored it), else `exists`. Read as a
    /// range, so the comparison is not refused for an object over its
    /// kind's cap for whole reads.
    async fn stored_is(&self, kind: FileKind, name: &str, data: &Bytes, exists: StorageError) -> Result<()> {
        match self.size(kind, name).await {
            Ok(size) if size == data.len() as u64 => {}
            Ok(_) => return Err(exists),
            Err(e) if e.is_not_found() => return Err(exists),
            Err(e) => return Err(e),
        }
        match self.get_range(kind, name, 0, data.len() as u64).await {
            Ok(stored) if stored == *data => Ok(()),
            Ok(_) => Err(exists),
            Err(e) if e.is_not_found() => Err(exists),
            Err(e) => Err(e),
        }
    }

    async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => self.pause_or_fail(attempt, e).await?,
            }
            attempt += 1;
        }
    }
}

#[async_trait]
impl<S: Storage> Storage for RetryStorage<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> Result<()> {
        self.retry(|| self.inner.create()).await
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.put_with(kind, name, data, false).await
    }

    fn spool(&self, kind: FileKind) -> Result<Spool> {
        self.inner.spool(kind)
    }

    /// Retried like `put`; every attempt reads the spool from its start.
    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, keep: bool) -> Result<()> {
        let mut uncertain = false;
        let mut attempt = 1;
        loop {
            match self.inner.put_file(kind, name, spool, keep).await {
                Ok(()) => return Ok(()),
                Err(exists @ StorageError::AlreadyExists { .. }) if uncertain => {
                    let ours = spool.read_all_async(kind, name).await?;
                    return self.stored_is(kind, name, &ours, exists).await;
                }
                Err(e) => self.pause_or_fail(attempt, e).await?,
            }
            uncertain = true;
            attempt += 1;
        }
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.put_with(kind, name, data, true).await
    }

    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        self.retry(|| self.inner.get(kind, name)).await
    }

    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.retry(|| self.inner.get_range(kind, name, offset, len)).await
    }

    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.retry(|| self.inner.size(kind, name)).await
    }

    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        self.retry(|| self.inner.list(kind)).await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.retry(|| self.inner.delete(kind, name)).await
    }

    async fn check_object_lock(&self) -> Result<()> {
        self.retry(|| self.inner.check_object_lock()).await
    }

    fn set_retention(&self, retention: Retention) -> Result<()> {
        self.inner.set_retention(retention)
    }

    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        self.retry(|| self.inner.locked_until(kind, name)).await
    }

    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()> {
        self.retry(|| self.inner.extend_lock(kind, name, until)).await
    }

    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, keep: Keep) -> Result<Bytes> {
        self.retry(|| self.inner.get_range_keep(kind, name, offset, len, keep))
            .await
    }

    async fn preferred(&self, kind: FileKind) -> Option<String> {
        self.inner.preferred(kind).await
    }

    async fn set_preferred(&self, kind: FileKind, name: &str) {
        self.inner.set_preferred(kind, name).await;
    }
}

/// A view that reads and never writes: `create`, `put` and `delete` fail
/// with [`StorageError::ReadOnly`] without reaching the backend.
#[derive(Debug)]
pub struct ReadOnlyStorage<S> {
    inner: S,
}

impl<S: Storage> ReadOnlyStorage<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: Storage> Storage for ReadOnlyStorage<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> Result<()> {
        Err(StorageError::ReadOnly("create a repository"))
    }

    async fn put(&self, _kind: FileKind, _name: &str, _data: Bytes) -> Result<()> {
        Err(StorageError::ReadOnly("store an object"))
    }

    fn spool(&self, _kind: FileKind) -> Result<Spool> {
        Err(StorageError::ReadOnly("store an object"))
    }

    async fn put_file(&self, _kind: FileKind, _name: &str, _spool: &Spool, _keep: bool) -> Result<()> {
        Err(StorageError::ReadOnly("store an object"))
    }

    async fn put_keep(&self, _kind: FileKind, _name: &str, _data: Bytes) -> Result<()> {
        Err(StorageError::ReadOnly("store an object"))
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

    async fn delete(&self, _kind: FileKind, _name: &str) -> Result<()> {
        Err(StorageError::ReadOnly("delete an object"))
    }

    async fn check_object_lock(&self) -> Result<()> {
        self.inner.check_object_lock().await
    }

    /// A view that never writes has nothing to lock.
    fn set_retention(&self, _retention: Retention) -> Result<()> {
        Ok(())
    }

    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        self.inner.locked_until(kind, name).await
    }

    async fn extend_lock(&self, _kind: FileKind, _name: &str, _until: i64) -> Result<()> {
        Err(StorageError::ReadOnly("extend an object lock"))
    }

    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, keep: Keep) -> Result<Bytes> {
        self.inner.get_range_keep(kind, name, offset, len, keep).await
    }

    async fn preferred(&self, kind: FileKind) -> Option<String> {
        self.inner.preferred(kind).await
    }

    async fn set_preferred(&self, kind: FileKind, name: &str) {
        self.inner.set_preferred(kind, name).await;
    }
}

/// A repository whose config asks for an object lock, opened on a place
/// that has none (a copy on local disk, say): it reads, and takes lock
/// files, but refuses to write or delete anything else rather than store
/// objects without the protection the repository promises.
#[derive(Debug)]
pub struct UnlockableStorage {
    inner: super::DynStorage,
    reason: String,
}

impl UnlockableStorage {
    /// `refusal` is the error `set_retention` gave.
    pub fn new(inner: super::DynStorage, refusal: &StorageError) -> Self {
        Self {
            inner,
            reason: refusal.to_string(),
        }
    }

    fn refuse(&self, kind: FileKind) -> Result<()> {
        if Retention::applies_to(kind) {
            Err(StorageError::Backend {
                message: format!(
                    "the repository requires object lock, so cairn writes nothing here: {}",
                    self.reason
                ),
                transient: false,
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Storage for UnlockableStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> Result<()> {
        self.refuse(FileKind::Config)?;
        self.inner.create().await
    }

    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.refuse(kind)?;
        self.inner.put(kind, name, data).await
    }

    fn spool(&self, kind: FileKind) -> Result<Spool> {
        self.inner.spool(kind)
    }

    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, keep: bool) -> Result<()> {
        self.refuse(kind)?;
        self.inner.put_file(kind, name, spool, keep).await
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
        self.refuse(kind)?;
        self.inner.delete(kind, name).await
    }

    fn set_retention(&self, _retention: Retention) -> Result<()> {
        Ok(())
    }

    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, keep: Keep) -> Result<Bytes> {
        self.inner.get_range_keep(kind, name, offset, len, keep).await
    }

    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.refuse(kind)?;
        self.inner.put_keep(kind, name, data).await
    }

    async fn check_object_lock(&self) -> Result<()> {
        self.inner.check_object_lock().await
    }

    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        self.inner.locked_until(kind, name).await
    }

    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()> {
        self.inner.extend_lock(kind, name, until).await
    }

    async fn preferred(&self, kind: FileKind) -> Option<String> {
        self.inner.preferred(kind).await
    }

    async fn set_preferred(&self, kind: FileKind, name: &str) {
        self.inner.set_preferred(kind, name).await;
    }
}

#[cfg(test)]
mod forwarding;
#[cfg(test)]
pub(crate) mod reads;
#[cfg(test)]
mod tests;
