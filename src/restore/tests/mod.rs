//! Restores of hand-built snapshots from an in-memory repository.

mod races;
mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use support::{bytes, expected, Fixture, Item, Piece, MTIME};

use super::*;
use crate::id::TreeId;
use crate::repo::snapshots::SnapshotFilter;
use crate::storage::FileKind;

/// Contents of the test files, by name.
struct Data {
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    shared: Vec<u8>,
    small: Vec<u8>,
    deep: Vec<u8>,
}

impl Data {
    fn new() -> Self {
        Self {
            a: bytes(1, 70_000),
            b: bytes(2, 5_000),
            c: bytes(3, 123_457),
            shared: bytes(4, 40_000),
            small: bytes(5, 17),
            deep: bytes(6, 3_000),
        }
    }

    fn big(&self) -> Vec<Piece> {
        vec![
            Piece::Data(self.a.clone()),
            Piece::Data(self.b.clone()),
            Piece::Data(self.a.clone()),
            Piece::Hole(1 << 20),
            Piece::Data(self.c.clone()),
        ]
    }

    fn two(&self) -> Vec<Piece> {
        vec![Piece::Data(self.small.clone()), Piece::Data(self.shared.clone())]
    }

    /// The contents of `docs`, with every file's expected bytes.
    fn docs(&self) -> (Vec<Item>, Vec<(&'static str, Vec<u8>)>) {
        let items = vec![
            Item::File("empty", vec![]),
            Item::File("big", self.big()),
            Item::File("one", vec![Piece::Data(self.shared.clone())]),
            Item::File("two", self.two()),
            Item::Dir(
                "sub",
                vec![Item::Dir(
                    "deep",
                    vec![Item::File("n.txt", vec![Piece::Data(self.deep.clone())])],
                )],
            ),
            Item::Symlink("link", "big"),
            Item::Fifo("pipe"),
        ];
        let files = vec![
            ("empty", Vec::new()),
            ("big", expected(&self.big())),
            ("one", self.shared.clone()),
            ("two", expected(&self.two())),
            ("sub/deep/n.txt", self.deep.clone()),
        ];
        (items, files)
    }

    /// A snapshot of /home/u/docs.
    fn snapshot_tree(&self, fx: &mut Fixture) -> (TreeId, Vec<(&'static str, Vec<u8>)>) {
        let (docs, files) = self.docs();
        let tree = fx.tree(&[Item::Dir("home", vec![Item::Dir("u", vec![Item::Dir("docs", docs)])])]);
        (tree, files)
    }
}

fn opts(target: &Path) -> RestoreOptions {
    RestoreOptions {
        target: target.to_owned(),
        connections: 3,
        ..Default::default()
    }
}

fn assert_files(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (name, want) in files {
        let got = fs::read(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == *want, "{name}: {} bytes, expected {}", got.len(), want.len());
    }
}

fn docs_source(fx: &Fixture, tree: TreeId) -> RestoreSource {
    let snap = fx.snapshot(tree);
    resolve_source(
        &fx.repo,
        &format!("{}:/home/u/docs", snap.short()),
        &SnapshotFilter::default(),
    )
    .unwrap()
}

#[test]
fn restores_a_snapshot_byte_for_byte_with_metadata() {
    let mut fx = Fixture::new();
    let data = Data::new();
    let (tree, files) = data.snapshot_tree(&mut fx);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let seen = Mutex::new(Vec::new());
    let progress = |p: &RestoreProgress| seen.lock().unwrap().push(*p);
    let summary = restore(
        &fx.repo,
        tree,
        &RestoreOptions {
            verify: true,
            ..opts(&target)
        },
        Some(&progress),
    )
    .unwrap();

    let docs = target.join("home/u/docs");
    assert_files(&docs, &files);
    assert_eq!(summary.files_restored, 5);
    assert_eq!(summary.files_verified, 5);
    assert_eq!(summary.dirs, 5);
    assert_eq!(summary.specials, 2);
    // a, b, c, shared, small, deep: each read once although a and shared are used twice.
    assert_eq!(summary.blobs_read, 6);
    assert_eq!(summary.ranges_read, summary.packs_read, "each pack read once");
    let written: usize = [
        &data.a,
        &data.b,
        &data.a,
        &data.c,
        &data.shared,
        &data.small,
        &data.shared,
        &data.deep,
    ]
    .iter()
    .map(|d| d.len())
    .sum();
    assert_eq!(summary.bytes_written, written as u64);

    let big = fs::metadata(docs.join("big")).unwrap();
    assert_eq!(big.len(), expected(&data.big()).len() as u64);
    assert!(
        big.blocks() * 512 < big.len() - (512 << 10),
        "the hole was written: {} blocks for {} bytes",
        big.blocks(),
        big.len()
    );
    assert_eq!(big.mtime() * 1_000_000_000 + big.mtime_nsec(), MTIME);
    assert_eq!(big.mode() & 0o7777, 0o644);
    let deep = fs::metadata(docs.join("sub/deep")).unwrap();
    assert_eq!(
        deep.mtime() * 1_000_000_000 + deep.mtime_nsec(),
        MTIME,
        "dir times set last"
    );
    assert_eq!(fs::read_link(docs.join("link")).unwrap(), PathBuf::from("big"));
    assert!(fs::symlink_metadata(docs.join("pipe")).unwrap().file_type().is_fifo());

    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].phase, Phase::Planning);
    let last = seen.last().unwrap();
    assert_eq!(last.phase, Phase::Done);
    assert_eq!((last.files_done, last.bytes_done), (5, summary.bytes_written));
    assert_eq!(last.ranges_done, summary.ranges_read);
}

#[test]
fn hard_links_are_restored_as_links() {
    let mut fx = Fixture::new();
    let content = vec![Piece::Data(bytes(9, 1000))];
    let tree = fx.tree(&[
        Item::Linked("a", content.clone(), 42),
        Item::Dir("d", vec![Item::Linked("b", content.clone(), 42)]),
        Item::Linked("c", vec![Piece::Data(bytes(10, 10))], 43),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let summary = restore(&fx.repo, tree, &opts(dir.path()), None).unwrap();
    let a = fs::metadata(dir.path().join("a")).unwrap();
    let b = fs::metadata(dir.path().join("d/b")).unwrap();
    let c = fs::metadata(dir.path().join("c")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_ne!(a.ino(), c.ino());
    assert_eq!(a.nlink(), 2);
    assert_eq!((summary.files_restored, summary.hard_links), (2, 1));
    assert_eq!(fs::read(dir.path().join("d/b")).unwrap(), expected(&content));

    // A second run finds everything in place.
    let again = restore(&fx.repo, tree, &opts(dir.path()), None).unwrap();
    assert_eq!((again.files_restored, again.hard_links, again.files_skipped), (0, 0, 3));
    assert_eq!(fs::metadata(dir.path().join("d/b")).unwrap().ino(), a.ino());
}

fn names_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn filter_tree(fx: &mut Fixture) -> TreeId {
    let f = |n: u64| vec![Piece::Data(bytes(n, 100))];
    fx.tree(&[Item::Dir(
        "data",
        vec![
            Item::Dir("docs", vec![Item::File("a.txt", f(1)), Item::File("b.log", f(2))]),
            Item::Dir("src", vec![Item::File("main.rs", f(3)), Item::File("x.txt", f(4))]),
            Item::Dir("empty", vec![]),
        ],
    )])
}

#[test]
fn include_keeps_matches_and_the_directories_leading_to_them() {
    let mut fx = Fixture::new();
    let tree = filter_tree(&mut fx);
    let dir = tempfile::tempdir().unwrap();
    let o = RestoreOptions {
        include: vec!["*.txt".into()],
        exclude: vec!["/data/src/x.txt".into()],
        ..opts(dir.path())
    };
    restore(&fx.repo, tree, &o, None).unwrap();
    assert_eq!(names_under(dir.path()), ["data", "data/docs", "data/docs/a.txt"]);

    let dir = tempfile::tempdir().unwrap();
    let o = RestoreOptions {
        include: vec!["/data/src".into()],
        ..opts(dir.path())
    };
    restore(&fx.repo, tree, &o, None).unwrap();
    assert_eq!(
        names_under(dir.path()),
        ["data", "data/src", "data/src/main.rs", "data/src/x.txt"]
    );
}

#[test]
fn exclude_leaves_out_entries_and_their_contents() {
    let mut fx = Fixture::new();
    let tree = filter_tree(&mut fx);
    let dir = tempfile::tempdir().unwrap();
    let o = RestoreOptions {
        exclude: vec!["src".into(), "*.log".into()],
        ..opts(dir.path())
    };
    let summary = restore(&fx.repo, tree, &o, None).unwrap();
    assert_eq!(
        names_under(dir.path()),
        ["data", "data/docs", "data/docs/a.txt", "data/empty"]
    );
    assert_eq!(summary.files_restored, 1);

    let bad = RestoreOptions {
        include: vec!["a[".into()],
        ..opts(dir.path())
    };
    let err = restore(&fx.repo, tree, &bad, None).unwrap_err();
    assert!(err.to_string().contains("include pattern \"a[\""), "{err}");
}

#[test]
fn subpath_restore_lands_in_the_target() {
    let mut fx = Fixture::new();
    let data = Data::new();
    let (tree, files) = data.snapshot_tree(&mut fx);
    let source = docs_source(&fx, tree);
    assert_eq!(source.subpath, PathBuf::from("/home/u/docs"));
    let dir = tempfile::tempdir().unwrap();
    let o = RestoreOptions {
        subpath: source.subpath.clone(),
        include: vec!["/home/u/docs/one".into(), "deep".into()],
        ..opts(dir.path())
    };
    restore(&fx.repo, source.tree, &o, None).unwrap();
    assert_eq!(names_under(dir.path()), ["one", "sub", "sub/deep", "sub/deep/n.txt"]);
    assert_files(dir.path(), &files[2..3]);
    assert_files(dir.path(), &files[4..]);

    let snap = fx.snapshot(tree).to_hex();
    let missing = resolve_source(&fx.repo, &format!("{snap}:/home/nobody/x"), &SnapshotFilter::default()).unwrap_err();
    assert!(missing.to_string().contains("/home/nobody"), "{missing}");
    let file = resolve_source(
        &fx.repo,
        &format!("{snap}:/home/u/docs/one"),
        &SnapshotFilter::default(),
    )
    .unwrap_err();
    assert!(matches!(file, RestoreError::NotADirectory { .. }), "{file}");
    assert!(file.to_string().contains("/home/u/docs/one"), "{file}");
    let whole = resolve_source(&fx.repo, "latest", &SnapshotFilter::default()).unwrap();
    assert_eq!(whole.tree, tree);
}

fn set_mtime(path: &Path, ns: i64) {
    let mut node = crate::format::tree::Node::new(b"x".to_vec(), crate::format::tree::NodeKind::File);
    node.mode = 0o644;
    node.mtime_ns = ns;
    node.atime_ns = ns;
    fsmeta::apply_metadata(path, &node, &MetaOptions::default()).unwrap();
}

#[test]
fn overwrite_policies() {
    let mut fx = Fixture::new();
    let data = Data::new();
    let (tree, files) = data.snapshot_tree(&mut fx);
    let source = docs_source(&fx, tree);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let base = RestoreOptions {
        subpath: source.subpath.clone(),
        ..opts(root)
    };
    restore(&fx.repo, source.tree, &base, None).unwrap();

    // A file changed since, and one with the right size and mtime but
    // unfinished (as an interrupted restore leaves it, before its mtime is set).
    fs::write(root.join("one"), b"changed").unwrap();
    fs::write(root.join("two"), vec![0u8; files[3].1.len()]).unwrap();
    let summary = restore(&fx.repo, source.tree, &base, None).unwrap();
    assert_eq!((summary.files_restored, summary.files_skipped), (2, 3));
    assert_files(root, &files);

    fs::write(root.join("one"), b"mine").unwrap();
    fs::remove_file(root.join("sub/deep/n.txt")).unwrap();
    let never = RestoreOptions {
        overwrite: Overwrite::Never,
        ..base.clone()
    };
    let summary = restore(&fx.repo, source.tree, &never, None).unwrap();
    assert_eq!(fs::read(root.join("one")).unwrap(), b"mine");
    assert_eq!(summary.files_restored, 1, "only the missing file");
    assert_files(root, &files[4..]);

    set_mtime(&root.join("one"), MTIME);
    let always = RestoreOptions {
        overwrite: Overwrite::Always,
        ..base.clone()
    };
    let summary = restore(&fx.repo, source.tree, &always, None).unwrap();
    assert_eq!((summary.files_restored, summary.files_skipped), (5, 0));
    assert_eq!(summary.specials, 2);
    assert_files(root, &files);
}

#[test]
fn dry_run_writes_nothing() {
    let mut fx = Fixture::new();
    let data = Data::new();
    let (tree, _) = data.snapshot_tree(&mut fx);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let o = RestoreOptions {
        dry_run: true,
        ..opts(&target)
    };
    let summary = restore(&fx.repo, tree, &o, None).unwrap();
    assert!(!target.exists());
    assert!(summary.dry_run);
    assert_eq!((summary.files_restored, summary.dirs, summary.blobs_read), (5, 5, 6));
    assert!(summary.bytes_written > 200_000);
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.contains("\"files_restored\":5"), "{json}");
}

#[test]
fn corrupt_pack_stops_without_wrong_bytes_on_disk() {
    let mut fx = Fixture::new();
    let data = Data::new();
    let (tree, files) = data.snapshot_tree(&mut fx);
    let (pack, offset, length) = fx.blob_place(&data.c);
    fx.store
        .damage(FileKind::Pack, &pack.to_hex(), (offset + length / 2) as usize);
    let dir = tempfile::tempdir().unwrap();
    let err = restore(&fx.repo, tree, &opts(dir.path()), None).unwrap_err();
    let msg = err.to_string();
    let c_id = crate::id::BlobId(fx.repo.key().blob_id(&data.c));
    assert!(msg.contains(&c_id.to_hex()), "{msg}");
    assert!(msg.contains(&pack.to_hex()), "{msg}");
    assert!(msg.contains("home/u/docs/big"), "{msg}");
    let docs = dir.path().join("home/u/docs");
    assert!(!docs.join("big").exists(), "the damaged file is removed");
    for (name, want) in &files {
        if let Ok(got) = fs::read(docs.join(name)) {
            assert!(got == *want, "{name} holds wrong bytes");
        }
    }
}

#[test]
fn missing_pack_is_an_error_naming_it() {
    let mut fx = Fixture::new();
    let data = Data::new();
    let (tree, _) = data.snapshot_tree(&mut fx);
    let (pack, _, _) = fx.blob_place(&data.deep);
    fx.repo
        .block_on(crate::storage::Storage::delete(
            &*fx.store,
            FileKind::Pack,
            &pack.to_hex(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = restore(&fx.repo, tree, &opts(dir.path()), None).unwrap_err();
    assert!(matches!(err, RestoreError::ReadPack { .. }), "{err}");
    assert!(err.to_string().contains(&pack.to_hex()), "{err}");
    assert!(!dir.path().join("home/u/docs/sub/deep/n.txt").exists());
}

#[test]
fn blob_missing_from_index_stops_before_writing() {
    let mut fx = Fixture::new();
    let tree = fx.tree(&[Item::File("fine", vec![Piece::Data(bytes(1, 10))]), Item::Lost("lost")]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let err = restore(&fx.repo, tree, &opts(&target), None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("out/lost"), "{msg}");
    assert!(msg.contains(&"ab".repeat(32)), "{msg}");
    assert!(!target.exists());
}

#[test]
fn write_errors_name_the_path() {
    let mut fx = Fixture::new();
    let tree = fx.tree(&[Item::File("f", vec![Piece::Data(bytes(1, 10))])]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("plain-file");
    fs::write(&target, b"x").unwrap();
    let err = restore(&fx.repo, tree, &opts(&target), None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("plain-file"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn verification_reports_changed_files() {
    let mut fx = Fixture::new();
    let data = Data::new();
    let (tree, _) = data.snapshot_tree(&mut fx);
    let source = docs_source(&fx, tree);
    let dir = tempfile::tempdir().unwrap();
    let o = RestoreOptions {
        subpath: source.subpath.clone(),
        verify: true,
        ..opts(dir.path())
    };
    let big = dir.path().join("big");
    let flip = big.clone();
    restorer::test_hook::set(dir.path(), move |stage| {
        if stage == restorer::test_hook::Stage::Applied {
            let file = fs::OpenOptions::new().read(true).write(true).open(&flip).unwrap();
            let mut byte = [0u8];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, 72_000).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &[byte[0] ^ 1], 72_000).unwrap();
        }
    });
    let err = restore(&fx.repo, source.tree, &o, None).unwrap_err();
    restorer::test_hook::clear(dir.path());
    let RestoreError::Verify { failures } = &err else {
        panic!("{err}")
    };
    assert_eq!(failures.len(), 1, "only big changed: {failures:?}");
    assert_eq!(failures[0].path, big);
    assert_eq!(failures[0].offset, 70_000, "the second blob (b) was changed");
    assert!(err.to_string().contains("big"), "{err}");
}

#[test]
fn io_errors_are_one_line_with_path_and_os_error() {
    let err = RestoreError::Io {
        path: PathBuf::from("/restore/big"),
        op: "write",
        source: std::io::Error::from_raw_os_error(libc::ENOSPC),
    };
    let msg = err.to_string();
    assert!(msg.starts_with("/restore/big: cannot write: "), "{msg}");
    assert!(msg.contains("os error 28"), "{msg}");
    assert!(!msg.contains('\n'));
}

#[test]
fn symlinks_in_the_target_are_replaced_not_followed() {
    let mut fx = Fixture::new();
    let tree = filter_tree(&mut fx);
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let target = dir.path().join("out");
    fs::create_dir_all(elsewhere.join("docs")).unwrap();
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("data")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("victim"), elsewhere.join("docs/a.txt")).unwrap();

    let summary = restore(&fx.repo, tree, &opts(&target), None).unwrap();
    assert_eq!(summary.files_restored, 4);
    assert!(fs::symlink_metadata(target.join("data")).unwrap().is_dir());
    assert_eq!(names_under(&elsewhere), ["docs", "docs/a.txt"]);
    assert!(!elsewhere.join("victim").exists());

    // Under `Never` the symlink stays and nothing is written through it.
    let target = dir.path().join("out2");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("data")).unwrap();
    let never = RestoreOptions {
        overwrite: Overwrite::Never,
        ..opts(&target)
    };
    let summary = restore(&fx.repo, tree, &never, None).unwrap();
    assert_eq!((summary.files_restored, summary.files_skipped), (0, 4));
    assert_eq!(names_under(&elsewhere), ["docs", "docs/a.txt"]);
}

#[test]
fn many_small_files_in_few_ranges() {
    let mut fx = Fixture::new();
    let names: Vec<&'static str> = (0..150)
        .map(|n| &*Box::leak(format!("f{n:03}").into_boxed_str()))
        .collect();
    let items: Vec<Item> = names
        .iter()
        .enumerate()
        .map(|(n, name)| Item::File(name, vec![Piece::Data(bytes(100 + n as u64, 1000 + n))]))
        .collect();
    let tree = fx.tree(&items);
    let dir = tempfile::tempdir().unwrap();
    let o = RestoreOptions {
        connections: 2,
        verify: true,
        ..opts(dir.path())
    };
    let summary = restore(&fx.repo, tree, &o, None).unwrap();
    assert_eq!((summary.files_restored, summary.files_verified), (150, 150));
    assert!(summary.ranges_read <= 2, "{} ranges", summary.ranges_read);
    for (n, name) in names.iter().enumerate() {
        assert_eq!(
            fs::read(dir.path().join(name)).unwrap(),
            bytes(100 + n as u64, 1000 + n),
            "{name}"
        );
    }
}
