//! Checks of small repositories on the memory backend.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::backup::progress::Progress;
use crate::backup::{backup_paths, BackupOptions};
use crate::storage::memory::MemoryStorage;
use crate::storage::{DynStorage, FileKind};

fn repo_with_backup() -> (DynStorage, Repository) {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let opts = crate::repo::test_options();
    let repo = Repository::init(storage.clone(), b"pw", opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.path().join("a/b/file"), &data).unwrap();
    std::fs::write(dir.path().join("a/small"), b"small").unwrap();
    let indexed = repo.clone().load_index().unwrap();
    backup_paths(
        &indexed,
        &[dir.path().to_path_buf()],
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    (storage, repo)
}

#[test]
fn healthy_repository_has_no_problems_and_counts_everything() {
    let (_, repo) = repo_with_backup();
    let opts = CheckOptions {
        read_data: ReadData::All,
        ..CheckOptions::default()
    };
    let report = check(&repo, &opts).unwrap();
    assert_eq!(report.problems, vec![], "{report:#?}");
    let c = &report.counters;
    assert_eq!(c.snapshots, 1);
    assert!(c.trees >= 3, "{c:?}");
    assert_eq!(c.packs, c.packs_in_storage);
    assert_eq!(c.packs, c.pack_headers);
    assert_eq!(c.packs, c.packs_read);
    assert_eq!(c.blobs, c.blobs_verified);
    assert_eq!(c.blobs, c.blobs_referenced);
    assert!(c.bytes_read > 200_000);
}

#[test]
fn unindexed_pack_is_a_warning_and_unknown_names_are_ignored() {
    let (storage, repo) = repo_with_backup();
    let stray = Bytes::from_static(b"not really a pack, but nobody indexes it anyway");
    let name = crate::id::PackId::hash_of(&stray).to_hex();
    repo.block_on(storage.put(FileKind::Pack, &name, stray)).unwrap();
    let report = check(&repo, &CheckOptions::default()).unwrap();
    assert_eq!(report.errors, 0, "{report:#?}");
    assert_eq!(report.warnings, 1);
    let p: Vec<_> = report.about(&name);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].severity, Severity::Warning);
    assert_eq!(p[0].object_kind, ObjectType::Pack);
}

#[test]
fn problems_print_with_severity_kind_and_id() {
    let mut report = CheckReport::default();
    report.error(ObjectType::Pack, "abcd", "is missing");
    report.info(ObjectType::DataBlob, "ef01", "is unused");
    assert_eq!(report.problems[0].to_string(), "error: pack abcd: is missing");
    assert_eq!(report.problems[1].to_string(), "info: data blob ef01: is unused");
    assert!(report.has_errors());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["problems"][1]["object_kind"], "data_blob");
    assert_eq!(json["problems"][0]["severity"], "error");
    assert_eq!(json["errors"], 1);
}
