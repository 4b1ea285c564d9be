//! Damaged repositories that `check` must name exactly: library checks on a
//! local directory repository, and the binary's output and exit codes.

mod cli_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use cairn::backup::progress::Progress;
use cairn::backup::{backup_paths, BackupOptions};
use cairn::check::{check, CheckOptions, CheckReport, ObjectType, ReadData, Severity};
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::format::tree::{Node, NodeKind, Tree};
use cairn::format::BlobKind;
use cairn::id::{BlobId, PackId, SnapshotId, TreeId};
use cairn::repo::saver::{BlobSaver, SaverOptions};
use cairn::repo::{IndexedRepository, Repository};
use cairn::storage::local::LocalStorage;
use cairn::storage::{DynStorage, FileKind};
use cli_support::pseudo_random;

const PASSWORD: &str = "pw";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    snapshot: SnapshotId,
}

fn storage(root: &Path) -> DynStorage {
    Arc::new(LocalStorage::new(root.to_path_buf()))
}

/// A repository with one snapshot of a few files (several data packs).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let opts = cli_support::small_repo_options();
    let repo = Repository::init(storage(&root), PASSWORD.as_bytes(), opts).unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("docs/deep")).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(2_500_000, 1)).unwrap();
    fs::write(src.join("docs/notes.txt"), pseudo_random(40_000, 2)).unwrap();
    fs::write(src.join("docs/deep/leaf"), pseudo_random(70_000, 3)).unwrap();
    let indexed = repo.load_index().unwrap();
    let outcome = backup_paths(&indexed, &[src], &BackupOptions::default(), &Progress::default()).unwrap();
    Fixture {
        _dir: dir,
        root,
        snapshot: outcome.id.unwrap(),
    }
}

impl Fixture {
    fn open(&self) -> Repository {
        Repository::open(storage(&self.root), PASSWORD.as_bytes()).unwrap()
    }

    fn indexed(&self) -> IndexedRepository {
        self.open().load_index().unwrap()
    }

    fn check(&self, read_data: ReadData) -> CheckReport {
        let opts = CheckOptions {
            read_data,
            ..CheckOptions::default()
        };
        check(&self.open(), &opts).unwrap()
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    /// A data blob and where it is stored.
    fn data_blob(&self) -> (BlobId, cairn::repo::BlobLocation) {
        cli_support::indexed_blobs(&self.indexed())
            .into_iter()
            .find(|(_, loc)| loc.kind == BlobKind::Data)
            .unwrap()
    }

    fn binary(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        Command::cargo_bin("cairn")
            .unwrap()
            .env("CAIRN_PASSWORD", PASSWORD)
            .env_remove("CAIRN_REPOSITORY")
            .arg("check")
            .arg("-r")
            .arg(&self.root)
            .args(args)
            .assert()
    }
}

fn make_writable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

fn flip_byte(path: &Path, offset: u64) {
    make_writable(path);
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// The problems about `id`, asserting there is at least one of `severity`.
fn problems_about<'a>(report: &'a CheckReport, id: &str, severity: Severity) -> Vec<&'a cairn::check::Problem> {
    let found: Vec<_> = report.about(id);
    assert!(
        found.iter().any(|p| p.severity == severity),
        "no {severity} about {id} in {report:#?}"
    );
    found
}

fn stdout_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

#[test]
fn healthy_repository_passes() {
    let f = fixture();
    let report = f.check(ReadData::All);
    assert_eq!(report.errors, 0, "{report:#?}");
    assert_eq!(report.warnings, 0, "{report:#?}");
    assert!(report.counters.packs >= 3, "{:?}", report.counters);
    assert_eq!(report.counters.packs_read, report.counters.packs);
    assert_eq!(report.counters.blobs_verified, report.counters.blobs);

    let out = f.binary(&["--read-data"]).success().code(0);
    let text = stdout_of(&out);
    assert!(text.ends_with("no errors were found\n"), "{text}");

    let out = f.binary(&["--json"]).success();
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(json["errors"], 0);
    assert_eq!(json["counters"]["snapshots"], 1);
}

#[test]
fn missing_pack_is_named() {
    let f = fixture();
    let (_, loc) = f.data_blob();
    let pack = loc.pack.to_hex();
    fs::remove_file(f.path(FileKind::Pack, &pack)).unwrap();
    let report = f.check(ReadData::None);
    let found = problems_about(&report, &pack, Severity::Error);
    assert!(found[0].message.contains("missing from storage"), "{found:?}");
    assert_eq!(found[0].object_kind, ObjectType::Pack);

    let out = f.binary(&[]).code(1);
    let text = stdout_of(&out);
    assert!(text.contains(&format!("error: pack {pack}: ")), "{text}");
    assert!(text.contains("errors found") || text.contains("error found"), "{text}");
}

#[test]
fn flipped_byte_in_a_blob_is_found_only_by_read_data() {
    let f = fixture();
    let (blob, loc) = f.data_blob();
    let pack = loc.pack.to_hex();
    flip_byte(&f.path(FileKind::Pack, &pack), u64::from(loc.offset) + 40);

    let report = f.check(ReadData::None);
    assert_eq!(report.errors, 0, "{report:#?}");

    let report = f.check(ReadData::All);
    let found = problems_about(&report, &blob.to_hex(), Severity::Error);
    assert_eq!(found[0].object_kind, ObjectType::DataBlob);
    assert!(found[0].message.contains(&pack), "{found:?}");
    // The pack's name no longer matches its bytes either.
    let found = problems_about(&report, &pack, Severity::Error);
    assert!(found.iter().any(|p| p.message.contains("hash")), "{found:?}");

    let out = f.binary(&["--read-data"]).code(1);
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("error: data blob {blob}: in pack {pack}")),
        "{text}"
    );
    f.binary(&[]).code(0);
}

#[test]
fn read_data_subsets_cover_the_damaged_pack_once() {
    let f = fixture();
    let (blob, loc) = f.data_blob();
    flip_byte(&f.path(FileKind::Pack, &loc.pack.to_hex()), u64::from(loc.offset) + 40);
    let m = 3;
    let mut hits = 0;
    let mut read = 0;
    for n in 1..=m {
        let subset = format!("{n}/{m}").parse().unwrap();
        let report = f.check(ReadData::Subset(subset));
        read += report.counters.packs_read;
        if !report.about(&blob.to_hex()).is_empty() {
            hits += 1;
            assert_eq!(cairn::check::pack_number(&loc.pack) % m, n - 1);
        }
    }
    assert_eq!(hits, 1);
    assert_eq!(read, f.check(ReadData::None).counters.packs);
}

#[test]
fn flipped_byte_in_a_pack_header_is_named() {
    let f = fixture();
    let (_, loc) = f.data_blob();
    let pack = loc.pack.to_hex();
    let path = f.path(FileKind::Pack, &pack);
    let bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    let header_len = u32::from_le_bytes(bytes[n - 4..].try_into().unwrap()) as usize;
    flip_byte(&path, (n - 4 - header_len + 30) as u64);
    let report = f.check(ReadData::None);
    let found = problems_about(&report, &pack, Severity::Error);
    assert!(found[0].message.contains("header"), "{found:?}");
}

#[test]
fn flipped_byte_in_an_index_file_is_named() {
    let f = fixture();
    let index = f.indexed().index().files()[0].to_hex();
    flip_byte(&f.path(FileKind::Index, &index), 50);
    let report = f.check(ReadData::None);
    let found = problems_about(&report, &index, Severity::Error);
    assert_eq!(found[0].object_kind, ObjectType::Index);

    let out = f.binary(&[]).code(1);
    assert!(stdout_of(&out).contains(&format!("error: index {index}: ")));
}

/// Saves a tree blob through the saver and returns its id.
fn save_tree(repo: &IndexedRepository, tree: &Tree) -> TreeId {
    let saver = BlobSaver::new(repo, SaverOptions::default()).unwrap();
    let saved = saver.save(BlobKind::Tree, &tree.encode()).unwrap();
    saver.finish().unwrap();
    TreeId(saved.id.0)
}

fn save_snapshot(repo: &Repository, tree: TreeId) -> SnapshotId {
    repo.save_snapshot(&Snapshot {
        time_ns: 1,
        tree,
        paths: vec!["/made/up".into()],
        hostname: "test".into(),
        username: "test".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        original: None,
        excludes: vec![],
        program_version: "cairn test".into(),
        partial: false,
        summary: Summary::default(),
    })
    .unwrap()
}

#[test]
fn missing_tree_blob_names_the_tree_and_the_snapshot() {
    let f = fixture();
    let repo = f.indexed();
    let lost = TreeId([0x5a; 32]);
    let mut dir = Node::new(b"lost-dir".to_vec(), NodeKind::Dir);
    dir.subtree = Some(lost);
    let root = save_tree(&repo, &Tree { nodes: vec![dir] });
    let snapshot = save_snapshot(&repo, root);

    let report = f.check(ReadData::None);
    let found = problems_about(&report, &lost.to_hex(), Severity::Error);
    assert_eq!(found[0].object_kind, ObjectType::Tree);
    assert!(found[0].message.contains(&snapshot.to_hex()), "{found:?}");
    assert!(found[0].message.contains("/lost-dir"), "{found:?}");
    assert_eq!(report.errors, 1, "{report:#?}");
}

#[test]
fn lost_tree_pack_names_the_trees_and_the_snapshot() {
    let f = fixture();
    let repo = f.indexed();
    let root = repo.load_snapshot(&f.snapshot).unwrap().tree;
    let loc = repo.index().get(BlobKind::Tree, &BlobId::from(root)).unwrap();
    fs::remove_file(f.path(FileKind::Pack, &loc.pack.to_hex())).unwrap();
    let report = f.check(ReadData::None);
    problems_about(&report, &loc.pack.to_hex(), Severity::Error);
    let found = problems_about(&report, &root.to_hex(), Severity::Error);
    assert!(found[0].message.contains(&f.snapshot.to_hex()), "{found:?}");
}

#[test]
fn snapshot_with_missing_root_tree_is_named() {
    let f = fixture();
    let missing = TreeId([0xa5; 32]);
    let snapshot = save_snapshot(&f.open(), missing);
    let report = f.check(ReadData::None);
    let found = problems_about(&report, &snapshot.to_hex(), Severity::Error);
    assert_eq!(found[0].object_kind, ObjectType::Snapshot);
    assert!(found[0].message.contains(&missing.to_hex()), "{found:?}");
    assert_eq!(report.errors, 1, "{report:#?}");
}

#[test]
fn missing_data_blob_names_the_file_and_snapshot() {
    let f = fixture();
    let repo = f.indexed();
    let gone = BlobId([0x77; 32]);
    let mut file = Node::new(b"broken.txt".to_vec(), NodeKind::File);
    file.content = vec![cairn::format::tree::Content::Blob(gone)];
    let root = save_tree(&repo, &Tree { nodes: vec![file] });
    let snapshot = save_snapshot(&repo, root);
    let report = f.check(ReadData::None);
    let found = problems_about(&report, &gone.to_hex(), Severity::Error);
    assert_eq!(found[0].object_kind, ObjectType::DataBlob);
    assert!(found[0].message.contains("/broken.txt"), "{found:?}");
    assert!(found[0].message.contains(&snapshot.to_hex()), "{found:?}");
}

#[test]
fn unindexed_pack_is_a_warning_not_an_error() {
    let f = fixture();
    let (_, loc) = f.data_blob();
    let mut bytes = fs::read(f.path(FileKind::Pack, &loc.pack.to_hex())).unwrap();
    bytes.extend_from_slice(b"left over");
    let extra = PackId::hash_of(&bytes).to_hex();
    let path = f.path(FileKind::Pack, &extra);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, &bytes).unwrap();

    let report = f.check(ReadData::None);
    assert_eq!(report.errors, 0, "{report:#?}");
    let found = problems_about(&report, &extra, Severity::Warning);
    assert!(found[0].message.contains("no index"), "{found:?}");

    let out = f.binary(&[]).code(0);
    let text = stdout_of(&out);
    assert!(text.contains(&format!("warning: pack {extra}: ")), "{text}");
    assert!(text.ends_with("no errors were found\n"), "{text}");
}

#[test]
fn pack_with_a_different_size_is_named() {
    let f = fixture();
    let (_, loc) = f.data_blob();
    let pack = loc.pack.to_hex();
    let path = f.path(FileKind::Pack, &pack);
    make_writable(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 10);
    fs::write(&path, bytes).unwrap();
    let report = f.check(ReadData::None);
    let found = problems_about(&report, &pack, Severity::Error);
    assert!(
        found.iter().any(|p| p.message.contains("bytes in storage")),
        "{found:?}"
    );
}

#[test]
fn json_output_lists_problems_with_ids() {
    let f = fixture();
    let (_, loc) = f.data_blob();
    let pack = loc.pack.to_hex();
    fs::remove_file(f.path(FileKind::Pack, &pack)).unwrap();
    let out = f.binary(&["--json"]).code(1);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(json["errors"], 1);
    let p = &json["problems"][0];
    assert_eq!(p["severity"], "error");
    assert_eq!(p["object_kind"], "pack");
    assert_eq!(p["object_id"], pack.as_str());
}
