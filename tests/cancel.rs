//! Canceling a backup or a restore through the cancel flag of its options:
//! the work stops with `Canceled`, a backup leaves no snapshot and a
//! restore leaves no incomplete file.

mod cli_support;

use std::fs;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cairn::backup::progress::Progress;
use cairn::backup::{backup_paths, backup_reader, BackupError, BackupOptions};
use cairn::repo::{CancelToken, Repository};
use cairn::restore::{restore, Phase, RestoreError, RestoreOptions};
use cairn::source::Hook;
use cairn::storage::memory::MemoryStorage;
use cairn::storage::DynStorage;
use cli_support::pseudo_random;

fn small_repo() -> Repository {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    Repository::init(storage, b"pw", cli_support::small_repo_options()).unwrap()
}

fn tree_of_files(root: &std::path::Path, n: usize) {
    fs::create_dir_all(root).unwrap();
    for i in 0..n {
        fs::write(root.join(format!("f{i:03}")), pseudo_random(5_000, i as u64)).unwrap();
    }
}

#[test]
fn a_backup_canceled_between_files_leaves_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree_of_files(&src, 50);
    let repo = small_repo().load_index().unwrap();
    let cancel = CancelToken::new();
    let opened = Arc::new(AtomicUsize::new(0));
    let (flag, count) = (cancel.clone(), opened.clone());
    let opts = BackupOptions {
        cancel: Some(cancel.clone()),
        readers: 1,
        before_read: Hook::new(move |_| {
            if count.fetch_add(1, Ordering::SeqCst) == 3 {
                flag.cancel();
            }
        }),
        ..BackupOptions::default()
    };
    let err = backup_paths(&repo, std::slice::from_ref(&src), &opts, &Progress::default()).unwrap_err();
    assert!(matches!(err, BackupError::Canceled), "{err}");
    assert!(opened.load(Ordering::SeqCst) < 50, "the backup stopped early");
    assert!(repo.list_snapshots().unwrap().is_empty());

    // The same repository takes the next backup.
    let opts = BackupOptions::default();
    let done = backup_paths(&repo, std::slice::from_ref(&src), &opts, &Progress::default()).unwrap();
    assert!(done.id.is_some());
    assert_eq!(done.snapshot.summary.files_new, 50);
}

/// A reader that cancels the backup after it has handed out `after` bytes.
struct CancelingReader {
    data: std::io::Cursor<Vec<u8>>,
    after: u64,
    cancel: CancelToken,
}

impl Read for CancelingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.position() >= self.after {
            self.cancel.cancel();
        }
        let n = buf.len().min(64 << 10);
        self.data.read(&mut buf[..n])
    }
}

#[test]
fn a_backup_canceled_between_chunks_leaves_no_snapshot() {
    let repo = small_repo().load_index().unwrap();
    let cancel = CancelToken::new();
    let reader = CancelingReader {
        data: std::io::Cursor::new(pseudo_random(8 << 20, 3)),
        after: 1 << 20,
        cancel: cancel.clone(),
    };
    let opts = BackupOptions {
        cancel: Some(cancel),
        ..BackupOptions::default()
    };
    let err = backup_reader(&repo, reader, "big", &opts, &Progress::default()).unwrap_err();
    assert!(matches!(err, BackupError::Canceled), "{err}");
    assert!(repo.list_snapshots().unwrap().is_empty());
}

#[test]
fn a_restore_canceled_while_writing_stops_and_leaves_no_incomplete_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree_of_files(&src, 30);
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), b"pw", cli_support::small_repo_options())
        .unwrap()
        .load_index()
        .unwrap();
    let done = backup_paths(
        &repo,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    // Opened anew: the index now lists what the backup wrote.
    let repo = Repository::open(storage, b"pw").unwrap().load_index().unwrap();
    let snap = repo.load_snapshot(&done.id.unwrap()).unwrap();

    // Canceled before it starts: nothing is written.
    let cancel = CancelToken::new();
    cancel.cancel();
    let target = dir.path().join("early");
    let opts = RestoreOptions {
        target: target.clone(),
        cancel: Some(cancel),
        ..RestoreOptions::default()
    };
    let err = restore(&repo, snap.tree, &opts, None).unwrap_err();
    assert!(matches!(err, RestoreError::Canceled), "{err}");
    let written: Vec<_> = walk_files(&target);
    assert!(written.is_empty(), "{written:?}");

    // Canceled once writing begins: files created but not complete go.
    let cancel = CancelToken::new();
    let flag = cancel.clone();
    let on_progress = move |p: &cairn::restore::RestoreProgress| {
        if p.phase == Phase::Writing {
            flag.cancel();
        }
    };
    let target = dir.path().join("late");
    let opts = RestoreOptions {
        target: target.clone(),
        cancel: Some(cancel),
        ..RestoreOptions::default()
    };
    let err = restore(&repo, snap.tree, &opts, Some(&on_progress)).unwrap_err();
    assert!(matches!(err, RestoreError::Canceled), "{err}");
    let written = walk_files(&target);
    assert!(written.is_empty(), "{written:?}");

    // Without the flag the same restore completes.
    let target = dir.path().join("full");
    let opts = RestoreOptions {
        target: target.clone(),
        ..RestoreOptions::default()
    };
    restore(&repo, snap.tree, &opts, None).unwrap();
    assert_eq!(walk_files(&target).len(), 30);
}

/// Regular files below `root` (none when it does not exist).
fn walk_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
