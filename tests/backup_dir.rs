//! Backups of an open directory under a logical path (how the node agent
//! backs up a pod volume): the snapshot is stored at the logical path, the
//! next backup of that path finds its parent wherever the files came from,
//! and nothing is resolved by path, so a directory swapped after it was
//! opened does not lead the backup elsewhere.

mod cli_support;

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use cairn::backup::progress::Progress;
use cairn::backup::{backup_dir, BackupOptions, BackupOutcome, ParentChoice};
use cairn::format::tree::Tree;
use cairn::repo::{IndexedRepository, Repository};
use cairn::source::walk::WalkOptions;
use cairn::storage::memory::MemoryStorage;
use cairn::storage::DynStorage;

const LOGICAL: &str = "/volumes/shop/data";

fn repo() -> Repository {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    Repository::init(storage, b"pw", cli_support::small_repo_options()).unwrap()
}

fn open_dir(path: &Path) -> OwnedFd {
    cairn::source::open::open_dir_path(path).unwrap()
}

fn backup(repo: &Repository, dir: &Path, opts: &BackupOptions) -> BackupOutcome {
    let indexed = repo.clone().load_index().unwrap();
    backup_dir(&indexed, open_dir(dir), Path::new(LOGICAL), opts, &Progress::default()).unwrap()
}

/// The names in the snapshot's tree at `path` (absolute).
fn names_at(repo: &Repository, outcome: &BackupOutcome, path: &str) -> Vec<String> {
    let repo: IndexedRepository = repo.clone().load_index().unwrap();
    let mut tree: Tree = repo.load_tree(&outcome.snapshot.tree).unwrap();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let node = tree
            .find(part.as_bytes())
            .unwrap_or_else(|| panic!("{part} missing in {path}"))
            .clone();
        tree = repo.load_tree(&node.subtree.unwrap()).unwrap();
    }
    tree.nodes
        .iter()
        .map(|n| String::from_utf8_lossy(&n.name).into_owned())
        .collect()
}

fn options() -> BackupOptions {
    BackupOptions {
        hostname: Some("cluster-a".into()),
        ..BackupOptions::default()
    }
}

#[test]
fn an_open_directory_is_stored_at_its_logical_path() {
    let repo = repo();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a.txt"), b"alpha").unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    fs::write(src.path().join("sub/b.txt"), b"beta").unwrap();
    let outcome = backup(&repo, src.path(), &options());
    assert_eq!(outcome.snapshot.paths, vec![std::path::PathBuf::from(LOGICAL)]);
    assert_eq!(names_at(&repo, &outcome, "/"), ["volumes"]);
    assert_eq!(names_at(&repo, &outcome, "/volumes/shop"), ["data"]);
    assert_eq!(names_at(&repo, &outcome, LOGICAL), ["a.txt", "sub"]);
    assert_eq!(names_at(&repo, &outcome, "/volumes/shop/data/sub"), ["b.txt"]);
}

#[test]
fn the_next_backup_of_the_logical_path_has_the_first_as_parent_from_another_directory() {
    let repo = repo();
    let first_dir = tempfile::tempdir().unwrap();
    fs::write(first_dir.path().join("a.txt"), b"alpha").unwrap();
    let first = backup(&repo, first_dir.path(), &options());
    // The pod moved: the same volume's files, elsewhere on another node.
    let second_dir = tempfile::tempdir().unwrap();
    fs::write(second_dir.path().join("a.txt"), b"alpha").unwrap();
    let opts = BackupOptions {
        parent: ParentChoice::Latest,
        ..options()
    };
    let second = backup(&repo, second_dir.path(), &opts);
    assert_eq!(second.snapshot.parent, first.id);
    // Known from the parent (other inode, so read again), and no new data.
    let summary = &second.snapshot.summary;
    assert_eq!((summary.files_new, summary.data_blobs), (0, 0), "{summary:?}");
}

#[test]
fn a_directory_swapped_after_it_was_opened_is_not_followed() {
    let repo = repo();
    let base = tempfile::tempdir().unwrap();
    let volume = base.path().join("volume");
    fs::create_dir(&volume).unwrap();
    fs::write(volume.join("mine.txt"), b"volume data").unwrap();
    let secret = base.path().join("secret");
    fs::create_dir(&secret).unwrap();
    fs::write(secret.join("shadow"), b"not yours").unwrap();
    let dir = open_dir(&volume);
    // A pod swaps the volume's directory for a link to the node's files.
    fs::rename(&volume, base.path().join("moved")).unwrap();
    symlink(&secret, &volume).unwrap();
    let indexed = repo.clone().load_index().unwrap();
    let outcome = backup_dir(&indexed, dir, Path::new(LOGICAL), &options(), &Progress::default()).unwrap();
    assert_eq!(names_at(&repo, &outcome, LOGICAL), ["mine.txt"]);
}

#[test]
fn excludes_match_below_the_logical_path() {
    let repo = repo();
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("tmp")).unwrap();
    fs::write(src.path().join("tmp/x"), b"x").unwrap();
    fs::write(src.path().join("keep"), b"k").unwrap();
    let opts = BackupOptions {
        walk: WalkOptions {
            excludes: vec![format!("{LOGICAL}/tmp")],
            ..WalkOptions::default()
        },
        ..options()
    };
    let outcome = backup(&repo, src.path(), &opts);
    assert_eq!(names_at(&repo, &outcome, LOGICAL), ["keep"]);
}

#[test]
fn a_logical_path_must_be_absolute_and_normal() {
    let repo = repo();
    let src = tempfile::tempdir().unwrap();
    let repo = repo.load_index().unwrap();
    for bad in ["volumes/x", "/volumes/../etc", "/"] {
        let err = backup_dir(
            &repo,
            open_dir(src.path()),
            Path::new(bad),
            &options(),
            &Progress::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(bad.trim_end_matches('/')), "{bad}: {err}");
    }
}

#[test]
fn a_restore_into_an_open_directory_writes_only_there() {
    use cairn::restore::{restore, subtree, RestoreOptions};
    let repo = repo();
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    fs::write(src.path().join("sub/b.txt"), b"beta").unwrap();
    let outcome = backup(&repo, src.path(), &options());

    let base = tempfile::tempdir().unwrap();
    let volume = base.path().join("volume");
    fs::create_dir(&volume).unwrap();
    let elsewhere = base.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let dir = open_dir(&volume);
    // Swapped after the agent opened it: the restore must not follow.
    fs::rename(&volume, base.path().join("moved")).unwrap();
    symlink(&elsewhere, &volume).unwrap();
    let opts = RestoreOptions {
        target: volume.clone(),
        target_dir: Some(Arc::new(dir)),
        subpath: LOGICAL.into(),
        ..RestoreOptions::default()
    };
    let indexed = repo.clone().load_index().unwrap();
    let tree = subtree(&indexed, outcome.snapshot.tree, Path::new(LOGICAL)).unwrap();
    restore(&indexed, tree, &opts, None).unwrap();
    let listing = |p: &Path| {
        fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listing(&base.path().join("moved")),
        ["sub"],
        "elsewhere: {:?}",
        listing(&elsewhere)
    );
    assert_eq!(fs::read(base.path().join("moved/sub/b.txt")).unwrap(), b"beta");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}
