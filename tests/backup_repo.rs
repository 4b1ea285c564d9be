//! Backups through the library on the memory backend.

mod cli_support;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use cairn::backup::progress::{Message, Progress};
use cairn::backup::{backup_command, backup_paths, backup_reader, BackupError, BackupOptions};
use cairn::format::tree::{Content, NodeKind, Tree};
use cairn::format::BlobKind;
use cairn::repo::{IndexedRepository, Repository};
use cairn::storage::memory::MemoryStorage;
use cairn::storage::{DynStorage, FileKind};
use cli_support::pseudo_random;

fn small_repo() -> (DynStorage, Repository) {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let opts = cli_support::small_repo_options();
    let repo = Repository::init(storage.clone(), b"pw", opts).unwrap();
    (storage, repo)
}

/// Reads a file's content back through the repository.
fn read_back(repo: &IndexedRepository, content: &[Content]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in content {
        match c {
            Content::Blob(id) => out.extend(repo.read_blob(BlobKind::Data, id).unwrap()),
            Content::Hole(n) => out.resize(out.len() + *n as usize, 0),
        }
    }
    out
}

/// Follows `path` (absolute) from the root tree to its tree node.
fn lookup(repo: &IndexedRepository, root: &Tree, path: &Path) -> cairn::format::tree::Node {
    let mut tree = root.clone();
    let comps: Vec<_> = path.components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        let name = c.as_os_str().to_str().unwrap().as_bytes();
        let node = tree
            .find(name)
            .unwrap_or_else(|| panic!("{} missing at {:?}", path.display(), c))
            .clone();
        if i + 1 == comps.len() {
            return node;
        }
        tree = repo.load_tree(&node.subtree.unwrap()).unwrap();
    }
    unreachable!()
}

#[test]
fn backup_twice_dedups_and_reuses_unchanged_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let big = pseudo_random(300_000, 7);
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("copy.bin"), &big).unwrap();
    fs::write(src.join("sub/small.txt"), b"hello").unwrap();
    fs::write(src.join("sub/deeper/empty"), b"").unwrap();
    std::os::unix::fs::symlink("small.txt", src.join("sub/link")).unwrap();

    let (_storage, repo) = small_repo();
    let indexed = repo.clone().load_index().unwrap();
    let progress = Progress::default();
    let first = backup_paths(
        &indexed,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &progress,
    )
    .unwrap();
    let s = &first.snapshot.summary;
    assert_eq!(s.files_new, 4, "{s:?}");
    assert_eq!(s.files_unchanged, 0);
    assert!(!first.snapshot.partial);
    assert_eq!(first.snapshot.paths, vec![src.clone()]);
    // The duplicate file adds nothing: stored plaintext is about one copy.
    assert!(s.data_added < 300_000 + 60_000, "data added {}", s.data_added);

    let indexed = repo.clone().load_index().unwrap();
    let root = indexed.load_tree(&first.snapshot.tree).unwrap();
    let node = lookup(&indexed, &root, &src.join("big.bin"));
    assert_eq!(read_back(&indexed, &node.content), big);
    assert_eq!(
        lookup(&indexed, &root, &src.join("sub/link")).link_target.as_deref(),
        Some(&b"small.txt"[..])
    );
    assert_eq!(
        lookup(&indexed, &root, &src.join("sub/deeper/empty")).kind,
        NodeKind::File
    );

    // Unchanged second run: nothing read, nothing added, parent recorded.
    let second = backup_paths(
        &indexed,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &progress,
    )
    .unwrap();
    assert_eq!(second.snapshot.parent, first.id);
    assert_eq!(second.snapshot.summary.files_new, 0);
    assert_eq!(second.snapshot.summary.data_blobs, 0);
    assert_eq!(
        second.snapshot.summary.files_new + second.snapshot.summary.files_changed,
        0
    );
    // Reading files and listing directories leave their access times alone,
    // so a directory without symlinks (reading a symlink updates its atime)
    // yields the same tree again.
    assert_eq!(
        second.snapshot.summary.dirs_unchanged, 1,
        "{:?}",
        second.snapshot.summary
    );
    let indexed = repo.clone().load_index().unwrap();
    let deeper = |tree| lookup(&indexed, &indexed.load_tree(tree).unwrap(), &src.join("sub/deeper")).subtree;
    assert_eq!(deeper(&first.snapshot.tree), deeper(&second.snapshot.tree));
    assert_eq!(
        lookup(
            &indexed,
            &indexed.load_tree(&first.snapshot.tree).unwrap(),
            &src.join("big.bin")
        )
        .atime_ns,
        lookup(
            &indexed,
            &indexed.load_tree(&second.snapshot.tree).unwrap(),
            &src.join("big.bin")
        )
        .atime_ns,
        "reading a file must not change its atime"
    );

    // A changed file is read again; only its new chunks are stored.
    let mut changed = big.clone();
    changed[150_000..150_010].copy_from_slice(b"0123456789");
    fs::write(src.join("big.bin"), &changed).unwrap();
    let indexed = repo.clone().load_index().unwrap();
    let third = backup_paths(
        &indexed,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &progress,
    )
    .unwrap();
    assert_eq!(third.snapshot.summary.files_changed, 1);
    assert!(
        third.snapshot.summary.data_added < 100_000,
        "{:?}",
        third.snapshot.summary
    );
    let indexed = repo.clone().load_index().unwrap();
    let root = indexed.load_tree(&third.snapshot.tree).unwrap();
    assert_eq!(
        read_back(&indexed, &lookup(&indexed, &root, &src.join("big.bin")).content),
        changed
    );
    assert_eq!(indexed.list_snapshots().unwrap().len(), 3);
}

/// A regular file that the test process cannot read: a mode-000 file for a
/// normal user; for root (who reads those), a write-only sysfs attribute.
fn unreadable_file(dir: &Path) -> std::path::PathBuf {
    if !nix::unistd::geteuid().is_root() {
        let p = dir.join("secret");
        fs::write(&p, b"no").unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        return p;
    }
    fn find(dir: &Path, depth: usize) -> Option<std::path::PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        for entry in fs::read_dir(dir).ok()?.flatten() {
            let md = entry.path().symlink_metadata().ok()?;
            if md.is_file() && md.permissions().mode() & 0o777 == 0o200 {
                return Some(entry.path());
            }
            if md.is_dir() && depth > 0 {
                if let Some(p) = find(&entry.path(), depth - 1) {
                    return Some(p);
                }
            }
        }
        None
    }
    find(Path::new("/sys/class"), 2)
        .or_else(|| find(Path::new("/sys/devices"), 3))
        .expect("no unreadable file found for root (no write-only sysfs attribute)")
}

#[test]
fn unreadable_file_marks_snapshot_partial() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ok"), b"fine").unwrap();
    let bad = unreadable_file(dir.path());
    let (_s, repo) = small_repo();
    let indexed = repo.load_index().unwrap();
    let progress = Progress::default();
    let paths = [dir.path().to_path_buf(), bad.clone()];
    let out = backup_paths(&indexed, &paths, &BackupOptions::default(), &progress).unwrap();
    assert!(out.snapshot.partial);
    assert_eq!(out.snapshot.summary.errors, 1);
    assert_eq!(out.snapshot.summary.files_new, 1, "only the readable file is stored");
    let messages = progress.take_messages();
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, Message::Error { path, .. } if *path == bad)),
        "{messages:?}"
    );
}

#[test]
fn missing_source_path_is_named() {
    let (_s, repo) = small_repo();
    let indexed = repo.load_index().unwrap();
    let missing = Path::new("/nonexistent/cairn-test").to_path_buf();
    let err = backup_paths(&indexed, &[missing], &BackupOptions::default(), &Progress::default()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cairn-test"), "{err}");
}

#[test]
fn stdin_and_command_backups() {
    let (storage, repo) = small_repo();
    let indexed = repo.clone().load_index().unwrap();
    let progress = Progress::default();
    let data = pseudo_random(100_000, 3);
    let out = backup_reader(&indexed, &data[..], "dump.sql", &BackupOptions::default(), &progress).unwrap();
    assert_eq!(out.snapshot.path_strings(), ["/dump.sql"]);
    let indexed = repo.clone().load_index().unwrap();
    let root = indexed.load_tree(&out.snapshot.tree).unwrap();
    assert_eq!(read_back(&indexed, &root.nodes[0].content), data);

    let cmd = vec!["sh".to_string(), "-c".to_string(), "printf hello".to_string()];
    let out = backup_command(&indexed, &cmd, "hello.txt", &BackupOptions::default(), &progress).unwrap();
    let indexed = repo.clone().load_index().unwrap();
    let root = indexed.load_tree(&out.snapshot.tree).unwrap();
    assert_eq!(read_back(&indexed, &root.nodes[0].content), b"hello");

    let before = cairn::repo::Repository::block_on(&repo, storage.list(FileKind::Snapshot))
        .unwrap()
        .len();
    let failing = vec!["sh".to_string(), "-c".to_string(), "echo partial; exit 3".to_string()];
    let err = backup_command(&indexed, &failing, "x", &BackupOptions::default(), &progress).unwrap_err();
    assert!(matches!(err, BackupError::Command { .. }), "{err}");
    let after = repo.block_on(storage.list(FileKind::Snapshot)).unwrap().len();
    assert_eq!(before, after, "a failed command must not leave a snapshot");
}

#[test]
fn dry_run_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), pseudo_random(50_000, 9)).unwrap();
    let (storage, repo) = small_repo();
    let indexed = repo.clone().load_index().unwrap();
    let opts = BackupOptions {
        dry_run: true,
        ..BackupOptions::default()
    };
    let out = backup_paths(&indexed, &[dir.path().to_path_buf()], &opts, &Progress::default()).unwrap();
    assert!(out.id.is_none());
    assert!(out.snapshot.summary.data_added > 0);
    for kind in [FileKind::Pack, FileKind::Index, FileKind::Snapshot] {
        assert!(
            repo.block_on(storage.list(kind)).unwrap().is_empty(),
            "{kind} written in a dry run"
        );
    }
}

#[test]
fn failed_pack_upload_fails_the_backup_without_a_snapshot() {
    use cairn::storage::decorators::{FaultRule, FaultStorage, Operation};

    let dir = tempfile::tempdir().unwrap();
    // Several megabytes of incompressible data: many 1 MiB packs, so savers
    // wait for pack buffers while the uploads fail.
    for i in 0..4 {
        fs::write(dir.path().join(format!("f{i}")), pseudo_random(2_000_000, 40 + i)).unwrap();
    }
    let fault = Arc::new(FaultStorage::new(MemoryStorage::new()));
    let storage: DynStorage = fault.clone();
    let repo = Repository::init(storage.clone(), b"pw", cli_support::small_repo_options()).unwrap();
    fault.add_rule(FaultRule::on(Operation::Put).kind(FileKind::Pack).after(2).permanent());
    let indexed = repo.clone().load_index().unwrap();
    let err = backup_paths(
        &indexed,
        &[dir.path().to_path_buf()],
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("upload failed"), "{err}");
    assert!(
        repo.block_on(storage.list(FileKind::Snapshot)).unwrap().is_empty(),
        "no snapshot may reference data that was not stored"
    );
    // What was stored is still a readable repository.
    let reopened = Repository::open(storage, b"pw").unwrap().load_index().unwrap();
    assert!(reopened.list_snapshots().unwrap().is_empty());
}

/// Every file under `dir`, recursively, by path below it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let name = entry.file_name().into_string().unwrap();
            out.extend(files_under(&entry.path()).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(entry.file_name().into_string().unwrap());
        }
    }
    out.sort();
    out
}

#[test]
fn a_failed_upload_to_a_local_repository_leaves_only_whole_packs_and_no_temporary_file() {
    use cairn::storage::decorators::{FaultRule, FaultStorage, Operation};
    use cairn::storage::local::LocalStorage;

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..4 {
        fs::write(src.join(format!("f{i}")), pseudo_random(2_000_000, 60 + i)).unwrap();
    }
    let root = dir.path().join("repo");
    let fault = Arc::new(FaultStorage::new(LocalStorage::new(root.clone())));
    let storage: DynStorage = fault.clone();
    let repo = Repository::init(storage.clone(), b"pw", cli_support::small_repo_options()).unwrap();
    // The third pack's store fails after it was done (its reply is lost),
    // every later one before.
    fault.add_rule(
        FaultRule::on(Operation::Put)
            .kind(FileKind::Pack)
            .after(2)
            .times(1)
            .after_effect()
            .permanent(),
    );
    fault.add_rule(FaultRule::on(Operation::Put).kind(FileKind::Pack).after(3).permanent());
    let indexed = repo.clone().load_index().unwrap();
    let err = backup_paths(&indexed, &[src], &BackupOptions::default(), &Progress::default()).unwrap_err();
    assert!(err.to_string().contains("upload failed"), "{err}");

    // Only packs, each whole under its name: no temporary file anywhere.
    let packs = repo.block_on(storage.list(FileKind::Pack)).unwrap();
    assert!(
        packs.len() >= 3,
        "the packs before the failure and the one whose reply was lost: {packs:?}"
    );
    let mut want: Vec<String> = packs.iter().map(|p| format!("{}/{}", &p.name[..2], p.name)).collect();
    want.sort();
    assert_eq!(files_under(&root.join("data")), want);
    for pack in &packs {
        let bytes = repo.block_on(storage.get(FileKind::Pack, &pack.name)).unwrap();
        assert_eq!(cairn::id::PackId::hash_of(&bytes).to_hex(), pack.name);
    }
    // The repository is still readable.
    let reopened = Repository::open(storage, b"pw").unwrap().load_index().unwrap();
    assert!(reopened.list_snapshots().unwrap().is_empty());
}

#[test]
fn a_backup_to_a_local_repository_links_its_packs_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..3 {
        fs::write(src.join(format!("f{i}")), pseudo_random(1_500_000, 80 + i)).unwrap();
    }
    let root = dir.path().join("repo");
    let storage: DynStorage = Arc::new(cairn::storage::local::LocalStorage::new(root.clone()));
    let repo = Repository::init(storage.clone(), b"pw", cli_support::small_repo_options()).unwrap();
    let indexed = repo.clone().load_index().unwrap();
    let done = backup_paths(
        &indexed,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    let packs = repo.block_on(storage.list(FileKind::Pack)).unwrap();
    assert!(packs.len() > 3, "{packs:?}");
    for pack in &packs {
        let path = root.join(FileKind::Pack.path(&pack.name));
        let meta = fs::metadata(&path).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.permissions().mode() & 0o777, 0o400, "{}", path.display());
        assert_eq!(meta.nlink(), 1, "{}: no other name is left", path.display());
        let bytes = fs::read(&path).unwrap();
        assert_eq!(cairn::id::PackId::hash_of(&bytes).to_hex(), pack.name);
    }
    let names: Vec<String> = files_under(&root.join("data"));
    assert_eq!(names.len(), packs.len(), "{names:?}");
    // Every pack reads back whole and every blob as it was saved.
    let opts = cairn::check::CheckOptions {
        read_data: cairn::check::ReadData::All,
        ..Default::default()
    };
    let report = cairn::check::check(&repo, &opts).unwrap();
    assert_eq!((report.errors, report.warnings), (0, 0), "{:?}", report.problems);
    assert!(!done.snapshot.tree.to_hex().is_empty());
}

#[test]
fn invalid_stdin_filename_is_named() {
    let (_s, repo) = small_repo();
    let indexed = repo.load_index().unwrap();
    let err = backup_reader(
        &indexed,
        &b"x"[..],
        "a/b",
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(matches!(err, BackupError::InvalidOption(_)), "{err}");
    assert!(err.to_string().contains("\"a/b\""), "{err}");
}

#[test]
fn a_backup_whose_lock_was_lost_writes_no_snapshot() {
    use cairn::repo::{LockKind, LockOptions, RepoError};
    use std::time::{Duration, Instant};

    let (storage, repo) = small_repo();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"data").unwrap();
    let opts = LockOptions {
        ttl: Duration::from_secs(60),
        refresh: Duration::from_millis(20),
        poll: Duration::from_millis(20),
    };
    let lock = repo.lock_with(LockKind::Shared, Duration::ZERO, &opts).unwrap();
    // Someone runs `unlock --remove-all`; the next refresh notices.
    assert_eq!(repo.remove_all_locks().unwrap(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock.ensure_held().is_ok() {
        assert!(Instant::now() < deadline, "lost lock not noticed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let indexed = repo.clone().load_index().unwrap();
    let backup = BackupOptions {
        lock: Some(lock.watch()),
        ..BackupOptions::default()
    };
    let err = backup_paths(&indexed, &[dir.path().to_path_buf()], &backup, &Progress::default()).unwrap_err();
    assert!(matches!(err, BackupError::Repo(RepoError::LockLost(_))), "{err}");
    assert!(repo.block_on(storage.list(FileKind::Snapshot)).unwrap().is_empty());
}

/// Reads `data`, then runs `at_end` once, when the data is all read: after
/// the last read the backup only seals the last blobs and writes the
/// snapshot.
struct ThenRun<F: FnMut()> {
    data: std::io::Cursor<Vec<u8>>,
    at_end: Option<F>,
}

impl<F: FnMut()> std::io::Read for ThenRun<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::io::Read::read(&mut self.data, buf)?;
        if n == 0 {
            if let Some(mut f) = self.at_end.take() {
                f();
            }
        }
        Ok(n)
    }
}

#[test]
fn a_backup_whose_lock_file_is_removed_just_before_its_snapshot_writes_none() {
    use cairn::repo::{LockKind, LockOptions, RepoError};
    use std::time::Duration;

    let (storage, repo) = small_repo();
    // The lock is refreshed every 30 s: far too late to notice by itself.
    let opts = LockOptions {
        ttl: Duration::from_secs(60),
        refresh: Duration::from_secs(30),
        poll: Duration::from_millis(20),
    };
    let lock = repo.lock_with(LockKind::Shared, Duration::ZERO, &opts).unwrap();
    let indexed = repo.clone().load_index().unwrap();
    let backup = BackupOptions {
        lock: Some(lock.watch()),
        ..BackupOptions::default()
    };
    let remover = repo.clone();
    let reader = ThenRun {
        data: std::io::Cursor::new(pseudo_random(200_000, 3)),
        // Someone runs `unlock --remove-all`.
        at_end: Some(move || assert_eq!(remover.remove_all_locks().unwrap(), 1)),
    };
    let err = backup_reader(&indexed, reader, "data", &backup, &Progress::default()).unwrap_err();
    assert!(matches!(err, BackupError::Repo(RepoError::LockLost(_))), "{err}");
    assert!(err.to_string().contains("removed by another process"), "{err}");
    assert!(repo.block_on(storage.list(FileKind::Snapshot)).unwrap().is_empty());
}

/// Loads every tree below `tree`; returns the packs they live in.
fn walk_trees(repo: &IndexedRepository, tree: cairn::id::TreeId, packs: &mut std::collections::BTreeSet<String>) {
    let loc = repo.index().get(BlobKind::Tree, &tree.into()).unwrap();
    packs.insert(loc.pack.to_hex());
    for node in repo.load_tree(&tree).unwrap().nodes {
        if let Some(sub) = node.subtree {
            walk_trees(repo, sub, packs);
        }
    }
}

#[test]
fn a_local_cache_serves_trees_after_the_first_read() {
    use cairn::storage::cache::CacheStorage;
    use cairn::storage::decorators::{FaultStorage, Operation};

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for d in ["a/b/c", "a/d", "e"] {
        fs::create_dir_all(src.join(d)).unwrap();
        fs::write(src.join(d).join("f"), pseudo_random(50_000, d.len() as u64)).unwrap();
    }
    let cache_root = dir.path().join("cache");
    let cached = Arc::new(CacheStorage::new(FaultStorage::new(MemoryStorage::new()), &cache_root));
    let reads = || cached.inner().count(Operation::Get) + cached.inner().count(Operation::GetRange);
    let storage: DynStorage = cached.clone();
    let repo = Repository::init(storage, b"pw", cli_support::small_repo_options()).unwrap();
    let indexed = repo.clone().load_index().unwrap();
    let opts = BackupOptions::default();
    let first = backup_paths(&indexed, std::slice::from_ref(&src), &opts, &Progress::default()).unwrap();

    // The backup kept the packs of trees it wrote: listing reads nothing.
    let indexed = repo.clone().load_index().unwrap();
    let before = reads();
    let mut tree_packs = std::collections::BTreeSet::new();
    walk_trees(&indexed, first.snapshot.tree, &mut tree_packs);
    assert_eq!(reads(), before, "trees of a new backup were read from the store");

    // Without its copies, the first walk fetches each tree pack once, whole;
    // the second reads nothing from the store.
    fs::remove_dir_all(cached.dir().join("data")).unwrap();
    let (gets, ranges) = (
        cached.inner().count(Operation::Get),
        cached.inner().count(Operation::GetRange),
    );
    walk_trees(&indexed, first.snapshot.tree, &mut tree_packs);
    assert_eq!(cached.inner().count(Operation::Get) - gets, tree_packs.len() as u64);
    assert_eq!(cached.inner().count(Operation::GetRange), ranges);
    let before = reads();
    walk_trees(&indexed, first.snapshot.tree, &mut tree_packs);
    assert_eq!(reads(), before, "the second walk read the store");

    // An unchanged incremental backup reads no pack at all.
    let second = backup_paths(&indexed, std::slice::from_ref(&src), &opts, &Progress::default()).unwrap();
    assert_eq!(second.snapshot.summary.files_new, 0);
    assert_eq!(reads(), before, "the incremental backup read packs");

    // Data read back is never kept: the cache holds the packs of trees of
    // both snapshots only (the second may have written trees of its own).
    let indexed = repo.clone().load_index().unwrap();
    walk_trees(&indexed, second.snapshot.tree, &mut tree_packs);
    let root = indexed.load_tree(&first.snapshot.tree).unwrap();
    let node = lookup(&indexed, &root, &src.join("e/f"));
    assert_eq!(read_back(&indexed, &node.content), pseudo_random(50_000, 1));
    let kept: std::collections::BTreeSet<String> = fs::read_dir(cached.dir().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept, tree_packs);
}
