//! A test decorator that notes every read of a pack, so tests can see how
//! much of a pack a reader asked for at once.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::storage::{DynStorage, FileKind, Keep, ObjectInfo, Result, Retention, Spool, Storage};

/// One read of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PackRead {
    /// The whole pack, of this many bytes.
    Whole(u64),
    /// A range: offset and length.
    Range(u64, u64),
}

/// Passes every call on and notes the pack reads.
#[derive(Debug, Clone)]
pub(crate) struct PackReads {
    inner: DynStorage,
    reads: Arc<Mutex<Vec<PackRead>>>,
}

impl PackReads {
    pub(crate) fn new(inner: DynStorage) -> Self {
        Self {
            inner,
            reads: Arc::default(),
        }
    }

    /// The pack reads so far, in the order they were asked for.
    pub(crate) fn reads(&self) -> Vec<PackRead> {
        self.reads.lock().unwrap().clone()
    }

    /// The longest single read of a pack so far.
    pub(crate) fn longest(&self) -> u64 {
        self.reads()
            .iter()
            .map(|r| match *r {
                PackRead::Whole(n) | PackRead::Range(_, n) => n,
            })
            .max()
            .unwrap_or(0)
    }

    fn note(&self, kind: FileKind, read: PackRead) {
        if kind == FileKind::Pack {
            self.reads.lock().unwrap().push(read);
        }
    }
}

#[async_trait]
impl Storage for PackReads {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn create(&self) -> Result<()> {
        self.inner.create().await
    }
    async fn put(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.inner.put(kind, name, data).await
    }
    fn spool(&self, kind: FileKind) -> Result<Spool> {
        self.inner.spool(kind)
    }
    async fn put_file(&self, kind: FileKind, name: &str, spool: &Spool, keep: bool) -> Result<()> {
        self.inner.put_file(kind, name, spool, keep).await
    }
    async fn get(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        let got = self.inner.get(kind, name).await?;
        self.note(kind, PackRead::Whole(got.len() as u64));
        Ok(got)
    }
    async fn get_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Bytes> {
        self.note(kind, PackRead::Range(offset, len));
        self.inner.get_range(kind, name, offset, len).await
    }
    async fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.inner.size(kind, name).await
    }
    async fn list(&self, kind: FileKind) -> Result<Vec<ObjectInfo>> {
        self.inner.list(kind).await
    }
    async fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.inner.delete(kind, name).await
    }
    async fn check_object_lock(&self) -> Result<()> {
        self.inner.check_object_lock().await
    }
    fn set_retention(&self, retention: Retention) -> Result<()> {
        self.inner.set_retention(retention)
    }
    async fn locked_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>> {
        self.inner.locked_until(kind, name).await
    }
    async fn extend_lock(&self, kind: FileKind, name: &str, until: i64) -> Result<()> {
        self.inner.extend_lock(kind, name, until).await
    }
    async fn get_range_keep(&self, kind: FileKind, name: &str, offset: u64, len: u64, keep: Keep) -> Result<Bytes> {
        self.note(kind, PackRead::Range(offset, len));
        self.inner.get_range_keep(kind, name, offset, len, keep).await
    }
    async fn put_keep(&self, kind: FileKind, name: &str, data: Bytes) -> Result<()> {
        self.inner.put_keep(kind, name, data).await
    }
    async fn preferred(&self, kind: FileKind) -> Option<String> {
        self.inner.preferred(kind).await
    }
    async fn set_preferred(&self, kind: FileKind, name: &str) {
        self.inner.set_preferred(kind, name).await;
    }
}
