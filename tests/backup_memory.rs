//! `backup_files`: in-memory files as one snapshot tree, on the memory
//! backend.

mod cli_support;

use std::sync::Arc;

use cairn::backup::progress::Progress;
use cairn::backup::{backup_files, BackupError, BackupOptions, MemoryFile};
use cairn::format::tree::{Content, NodeKind};
use cairn::format::BlobKind;
use cairn::repo::{IndexedRepository, Repository};
use cairn::storage::memory::MemoryStorage;
use cairn::storage::DynStorage;

fn storage() -> DynStorage {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    Repository::init(storage.clone(), b"pw", cli_support::small_repo_options()).unwrap();
    storage
}

/// The repository with its index as it is now (as the next command sees it).
fn open(storage: &DynStorage) -> IndexedRepository {
    Repository::open(storage.clone(), b"pw").unwrap().load_index().unwrap()
}

fn file(path: &str, data: &[u8]) -> MemoryFile {
    MemoryFile {
        path: path.into(),
        data: data.to_vec(),
    }
}

fn opts() -> BackupOptions {
    BackupOptions {
        hostname: Some("cluster-a".into()),
        ..BackupOptions::default()
    }
}

fn back(storage: &DynStorage, files: &[MemoryFile], errors: u64) -> cairn::backup::BackupOutcome {
    backup_files(
        &open(storage),
        files,
        vec!["/resources".into()],
        errors,
        &opts(),
        &Progress::default(),
    )
    .unwrap()
}

#[test]
fn files_land_in_nested_trees_and_read_back() {
    let storage = storage();
    let big = cli_support::pseudo_random(100_000, 7);
    let files = [
        file("resources/core/configmaps/namespaces/web/a.json", b"{}\n"),
        file("resources/x/big.bin", &big),
    ];
    let out = back(&storage, &files, 0);
    let repo = open(&storage);
    let id = out.id.unwrap();
    let snap = repo.load_snapshot(&id).unwrap();
    assert_eq!(snap.path_strings(), ["/resources"]);
    assert_eq!(snap.hostname, "cluster-a");
    assert!(!snap.partial);
    assert_eq!(snap.summary.files_new, 2);
    let mut tree = repo.load_tree(&snap.tree).unwrap();
    for dir in ["resources", "x"] {
        let node = tree.find(dir.as_bytes()).unwrap();
        assert_eq!(node.kind, NodeKind::Dir);
        tree = repo.load_tree(&node.subtree.unwrap()).unwrap();
    }
    let node = tree.find(b"big.bin").unwrap();
    assert_eq!(node.size, big.len() as u64);
    let mut read = Vec::new();
    for c in &node.content {
        if let Content::Blob(id) = c {
            read.extend(repo.read_blob(BlobKind::Data, id).unwrap());
        }
    }
    assert_eq!(read, big);
}

#[test]
fn an_unchanged_set_gives_the_same_tree_and_stores_nothing_new() {
    let repo = storage();
    let files = [file("r/a.json", b"one"), file("r/b/c.json", b"two")];
    let first = back(&repo, &files, 0);
    let second = back(&repo, &files, 0);
    assert_eq!(first.snapshot.tree, second.snapshot.tree);
    assert_eq!(second.snapshot.summary.files_unchanged, 2);
    assert_eq!(second.snapshot.summary.data_added, 0);
    assert_eq!(second.snapshot.parent, first.id);
    let changed = [file("r/a.json", b"one!"), file("r/b/c.json", b"two")];
    let third = back(&repo, &changed, 0);
    assert_ne!(third.snapshot.tree, second.snapshot.tree);
    assert_eq!(third.snapshot.summary.files_changed, 1);
    assert_eq!(third.snapshot.summary.files_unchanged, 1);
    assert_eq!(third.snapshot.summary.dirs_unchanged, 1);
}

#[test]
fn errors_mark_the_snapshot_partial_and_bad_paths_are_refused() {
    let storage = storage();
    let out = back(&storage, &[file("a", b"x")], 2);
    let repo = open(&storage);
    assert!(out.snapshot.partial);
    assert_eq!(out.snapshot.summary.errors, 2);
    let before = repo.list_snapshots().unwrap().len();
    let err = backup_files(
        &repo,
        &[file("a/../b", b"x")],
        vec!["/r".into()],
        0,
        &opts(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, BackupError::InvalidOption(ref m) if m.contains("a/../b")),
        "{err}"
    );
    assert_eq!(repo.list_snapshots().unwrap().len(), before);
}

#[test]
fn a_parent_written_after_the_index_was_loaded_is_passed_over() {
    let storage = storage();
    back(&storage, &[file("resources/a.json", b"1")], 0);
    // This backup loads the index now; another one finishes meanwhile.
    let late = open(&storage);
    let concurrent = back(&storage, &[file("resources/a.json", b"2")], 0);
    let outcome = backup_files(
        &late,
        &[file("resources/a.json", b"3")],
        vec!["/resources".into()],
        0,
        &opts(),
        &Progress::default(),
    )
    .unwrap();
    let parent = outcome.snapshot.parent;
    assert!(parent.is_some());
    assert_ne!(
        parent, concurrent.id,
        "the concurrent snapshot's trees are not in this index"
    );
}
