//! Copy and repair stop before they change a repository whose lock file
//! was removed under them.

use std::sync::Arc;
use std::time::Duration;

use super::copy::{copy, CopyOptions};
use super::repair_index::{repair_index, RepairIndexOptions};
use super::MaintenanceError;
use crate::backup::progress::Progress;
use crate::backup::{backup_reader, BackupOptions};
use crate::repo::{LockGuard, LockKind, LockOptions, RepoError, Repository};
use crate::storage::memory::MemoryStorage;
use crate::storage::{DynStorage, FileKind};

fn repo() -> (DynStorage, Repository) {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), b"pw", crate::repo::test_options()).unwrap();
    (storage, repo)
}

/// A lock refreshed only every 30 s whose file someone removed at once.
fn removed_lock(repo: &Repository) -> LockGuard {
    let opts = LockOptions {
        ttl: Duration::from_secs(60),
        refresh: Duration::from_secs(30),
        poll: Duration::from_millis(20),
    };
    let lock = repo.lock_with(LockKind::Shared, Duration::ZERO, &opts).unwrap();
    assert_eq!(repo.remove_all_locks().unwrap(), 1);
    lock
}

fn is_lock_lost(e: &MaintenanceError) -> bool {
    matches!(e, MaintenanceError::Repo(RepoError::LockLost(_)))
}

#[test]
fn copy_writes_no_snapshot_once_its_lock_file_is_gone() {
    let (src_storage, src) = repo();
    let indexed = src.load_index().unwrap();
    let saved = backup_reader(
        &indexed,
        &b"copied"[..],
        "f",
        &BackupOptions::default(),
        &Progress::default(),
    );
    saved.unwrap();
    let src = Repository::open(src_storage, b"pw").unwrap().load_index().unwrap();
    let (dst_storage, dst) = repo();
    let lock = removed_lock(&dst);
    let dst = dst.load_index().unwrap();
    let opts = CopyOptions {
        lock: Some(lock.watch()),
        ..CopyOptions::default()
    };
    let selected = src.list_snapshots().unwrap();
    let err = copy(&src, &dst, selected, &opts, &mut |_| {}).unwrap_err();
    assert!(is_lock_lost(&err), "{err}");
    assert!(dst.block_on(dst_storage.list(FileKind::Snapshot)).unwrap().is_empty());
}

#[test]
fn repair_index_writes_and_deletes_nothing_once_its_lock_file_is_gone() {
    let (storage, r) = repo();
    let indexed = r.clone().load_index().unwrap();
    backup_reader(
        &indexed,
        &b"indexed"[..],
        "f",
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    let before = r.block_on(storage.list(FileKind::Index)).unwrap();
    let lock = removed_lock(&r);
    let opts = RepairIndexOptions {
        lock: Some(lock.watch()),
        ..RepairIndexOptions::default()
    };
    let err = repair_index(&r, &opts).unwrap_err();
    assert!(is_lock_lost(&err), "{err}");
    assert_eq!(r.block_on(storage.list(FileKind::Index)).unwrap(), before);
}
