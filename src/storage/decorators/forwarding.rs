//! Every decorator passes each `Storage` method on to the storage it
//! wraps, unless refusing or answering it is the decorator's job: a
//! recording inner storage shows which calls arrived.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::simlock::SimulatedLock;
use super::{FaultStorage, ReadOnlyStorage, RetryStorage, UnlockableStorage};
use crate::storage::cache::CacheStorage;
use crate::storage::{FileKind, Keep, ObjectInfo, Result, Retention, Spool, Storage, StorageError};

/// Every method of the trait.
const ALL: [&str; 18] = [
    "location",
    "create",
    "put",
    "spool",
    "put_file",
    "get",
    "get_range",
    "size",
    "list",
    "delete",
    "check_object_lock",
    "set_retention",
    "locked_until",
    "extend_lock",
    "get_range_keep",
    "put_keep",
    "preferred",
    "set_preferred",
];

/// Answers every call with success and records its name.
#[derive(Debug, Clone, Default)]
struct Recording(Arc<Mutex<BTreeSet<&'static str>>>);

impl Recording {
    fn record(&self, name: &'static str) {
        self.0.lock().unwrap().insert(name);
    }

    fn calls(&self) -> BTreeSet<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl Storage for Recording {
    fn location(&self) -> String {
        self.record("location");
        "recording".into()
    }
    async fn create(&self) -> Result<()> {
        self.record("create");
        Ok(())
    }
    async fn put(&self, _: FileKind, _: &str, _: Bytes) -> Result<()> {
        self.record("put");
        Ok(())
    }
    fn spool(&self, _: FileKind) -> Result<Spool> {
        self.record("spool");
        Spool::temporary()
    }
    async fn put_file(&self, _: FileKind, _: &str, _: &Spool, _: bool) -> Result<()> {
        self.record("put_file");
        Ok(())
    }
    async fn get(&self, _: FileKind, _: &str) -> Result<Bytes> {
        self.record("get");
        Ok(Bytes::from_static(b"0123456789"))
    }
    async fn get_range(&self, _: FileKind, _: &str, _: u64, len: u64) -> Result<Bytes> {
        self.record("get_range");
        Ok(Bytes::from(vec![0; len as usize]))
    }
    async fn size(&self, _: FileKind, _: &str) -> Result<u64> {
        self.record("size");
        Ok(10)
    }
    async fn list(&self, _: FileKind) -> Result<Vec<ObjectInfo>> {
        self.record("list");
        Ok(Vec::new())
    }
    async fn delete(&self, _: FileKind, _: &str) -> Result<()> {
        self.record("delete");
        Ok(())
    }
    async fn check_object_lock(&self) -> Result<()> {
        self.record("check_object_lock");
        Ok(())
    }
    fn set_retention(&self, _: Retention) -> Result<()> {
        self.record("set_retention");
        Ok(())
    }
    async fn locked_until(&self, _: FileKind, _: &str) -> Result<Option<i64>> {
        self.record("locked_until");
        Ok(None)
    }
    async fn extend_lock(&self, _: FileKind, _: &str, _: i64) -> Result<()> {
        self.record("extend_lock");
        Ok(())
    }
    async fn get_range_keep(&self, _: FileKind, _: &str, _: u64, len: u64, _: Keep) -> Result<Bytes> {
        self.record("get_range_keep");
        Ok(Bytes::from(vec![0; len as usize]))
    }
    async fn put_keep(&self, _: FileKind, _: &str, _: Bytes) -> Result<()> {
        self.record("put_keep");
        Ok(())
    }
    async fn preferred(&self, _: FileKind) -> Option<String> {
        self.record("preferred");
        None
    }
    async fn set_preferred(&self, _: FileKind, _: &str) {
        self.record("set_preferred");
    }
}

/// Calls every method once. Writes lock files, which every
/// decorator lets through (object lock never covers them).
async fn call_all(s: &dyn Storage) -> Vec<(&'static str, bool)> {
    let kind = FileKind::Lock;
    let name = "a".repeat(64);
    let data = Bytes::from_static(b"0123456789");
    let retention = Retention {
        days: 1,
        compliance: false,
    };
    let _ = s.location();
    vec![
        ("create", s.create().await.is_ok()),
        ("put", s.put(kind, &name, data.clone()).await.is_ok()),
        ("spool", s.spool(kind).is_ok()),
        ("put_file", {
            let spool = crate::storage::Spool::temporary().unwrap();
            s.put_file(kind, &name, &spool, false).await.is_ok()
        }),
        ("get", s.get(kind, &name).await.is_ok()),
        ("get_range", s.get_range(kind, &name, 0, 4).await.is_ok()),
        ("size", s.size(kind, &name).await.is_ok()),
        ("list", s.list(kind).await.is_ok()),
        ("delete", s.delete(kind, &name).await.is_ok()),
        ("check_object_lock", s.check_object_lock().await.is_ok()),
        ("set_retention", s.set_retention(retention).is_ok()),
        ("locked_until", s.locked_until(kind, &name).await.is_ok()),
        ("extend_lock", s.extend_lock(kind, &name, 1).await.is_ok()),
        (
            "get_range_keep",
            s.get_range_keep(kind, &name, 0, 4, Keep::Range).await.is_ok(),
        ),
        ("put_keep", s.put_keep(kind, &name, data).await.is_ok()),
        ("preferred", {
            let _ = s.preferred(kind).await;
            true
        }),
        ("set_preferred", {
            s.set_preferred(kind, &name).await;
            true
        }),
    ]
}

/// Calls every method of `outer` and checks that exactly the methods
/// not in `answered` reached the recording storage.
async fn check(what: &str, outer: &dyn Storage, inner: &Recording, answered: &[&str]) {
    call_all(outer).await;
    let want: BTreeSet<&str> = ALL.iter().copied().filter(|m| !answered.contains(m)).collect();
    assert_eq!(inner.calls(), want, "{what}: calls that reached the inner storage");
}

#[tokio::test]
async fn every_decorator_forwards_every_method_it_does_not_answer_itself() {
    let inner = Recording::default();
    check("retry", &RetryStorage::new(inner.clone()), &inner, &[]).await;

    let inner = Recording::default();
    check("fault", &FaultStorage::new(inner.clone()), &inner, &[]).await;

    let inner = Recording::default();
    let reads = super::reads::PackReads::new(Arc::new(inner.clone()));
    check("pack reads", &reads, &inner, &[]).await;

    // Read-only: refuses every write and has nothing to lock.
    let inner = Recording::default();
    let read_only = ReadOnlyStorage::new(inner.clone());
    check(
        "read-only",
        &read_only,
        &inner,
        &[
            "create",
            "put",
            "spool",
            "put_file",
            "put_keep",
            "delete",
            "extend_lock",
            "set_retention",
        ],
    )
    .await;
    assert!(matches!(
        read_only.put_keep(FileKind::Pack, "p", Bytes::new()).await,
        Err(StorageError::ReadOnly(_))
    ));

    // Without an object lock: refuses to create a repository, keeps its
    // retention to itself (there is none to set).
    let inner = Recording::default();
    let unlockable = UnlockableStorage::new(
        Arc::new(inner.clone()),
        &StorageError::NoObjectLock {
            location: "here".into(),
            reason: "none".into(),
        },
    );
    check("unlockable", &unlockable, &inner, &["create", "set_retention"]).await;

    // The simulated object lock answers the lock calls itself (it reads
    // the object's size to see that it exists).
    let inner = Recording::default();
    let simulated = SimulatedLock::new(inner.clone(), 0);
    check(
        "simulated lock",
        &simulated,
        &inner,
        &["check_object_lock", "set_retention", "locked_until", "extend_lock"],
    )
    .await;

    // The cache answers the preferred key itself: it is what remembers it.
    // It makes spools in its own directory (writable where /tmp may not be).
    let inner = Recording::default();
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheStorage::new(inner.clone(), dir.path());
    check("cache", &cache, &inner, &["preferred", "set_preferred", "spool"]).await;
    assert_eq!(cache.spool(FileKind::Pack).unwrap().dir(), cache.dir());
}
