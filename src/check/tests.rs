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
    let repo = repo_with_backup_on(storage.clone());
    (storage, repo)
}

fn repo_with_backup_on(storage: DynStorage) -> Repository {
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
    repo
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

/// Saves `plain` as a data blob no snapshot refers to; `again` stores it
/// even if the index has it. Returns its id and the pack it went to.
fn save_loose_blob(repo: &Repository, plain: &[u8], again: bool) -> (crate::id::BlobId, crate::id::PackId) {
    use crate::repo::saver::{BlobSaver, SaverOptions};
    let indexed = repo.clone().load_index().unwrap();
    let saver = BlobSaver::new(
        &indexed,
        SaverOptions {
            rewrite_known: again,
            ..SaverOptions::default()
        },
    )
    .unwrap();
    let saved = saver.save(crate::format::BlobKind::Data, plain).unwrap();
    assert!(saved.new);
    saver.finish().unwrap();
    let pack = repo
        .clone()
        .load_index()
        .unwrap()
        .index()
        .packs()
        .map(|(id, _)| id)
        .find(|id| !indexed.index().packs().any(|(old, _)| old == *id))
        .unwrap();
    (saved.id, pack)
}

#[test]
fn unused_blobs_are_listed_up_to_the_limit_then_counted() {
    let (_, repo) = repo_with_backup();
    let (a, pack_a) = save_loose_blob(&repo, b"first loose blob", false);
    let (b, _) = save_loose_blob(&repo, b"second loose blob", false);
    let report = check(&repo, &CheckOptions::default()).unwrap();
    assert_eq!(report.errors + report.warnings, 0, "{report:#?}");
    assert_eq!(report.counters.unused_blobs, 2);
    assert_eq!(report.counters.blobs_referenced + 2, report.counters.blobs);
    let about_a = report.about(&a.to_hex());
    assert_eq!(about_a.len(), 1, "{report:#?}");
    assert_eq!(about_a[0].severity, Severity::Info);
    assert_eq!(
        about_a[0].message,
        format!("in pack {pack_a} is not used by any snapshot")
    );

    let opts = CheckOptions {
        list_unused: 1,
        ..CheckOptions::default()
    };
    let report = check(&repo, &opts).unwrap();
    let first = a.min(b);
    let last = a.max(b);
    assert_eq!(report.about(&first.to_hex()).len(), 1, "the smaller id is listed");
    assert!(report.about(&last.to_hex()).is_empty(), "{report:#?}");
    let rest = report.about("index");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].message, "1 more blobs are not used by any snapshot");
}

#[test]
fn a_blob_in_two_packs_is_a_duplicate_naming_both() {
    let (_, repo) = repo_with_backup();
    let (blob, first) = save_loose_blob(&repo, b"stored twice", false);
    let (again, second) = save_loose_blob(&repo, b"stored twice", true);
    assert_eq!(blob, again);
    assert_ne!(first, second);
    let report = check(&repo, &CheckOptions::default()).unwrap();
    assert_eq!(report.errors + report.warnings, 0, "{report:#?}");
    assert_eq!(report.counters.duplicate_blobs, 1);
    assert_eq!(report.counters.unused_blobs, 1);
    let found: Vec<_> = report
        .about(&blob.to_hex())
        .into_iter()
        .filter(|p| p.message.starts_with("is stored"))
        .collect();
    assert_eq!(found.len(), 1, "{report:#?}");
    let (lo, hi) = (first.min(second), first.max(second));
    assert_eq!(found[0].message, format!("is stored 2 times, in packs {lo}, {hi}"));
}

#[test]
fn a_pack_listed_differently_by_two_index_files_is_an_error() {
    use crate::format::index::IndexFile;
    let (storage, repo) = repo_with_backup();
    let names = repo.block_on(storage.list(FileKind::Index)).unwrap();
    let original = &names[0].name;
    let mut file = IndexFile::decode(&repo.load_file(FileKind::Index, original).unwrap()).unwrap();
    // The same listing in a second file is no problem.
    let copy = repo.save_file(FileKind::Index, &file.encode()).unwrap();
    let report = check(&repo, &CheckOptions::default()).unwrap();
    assert_eq!(report.problems, vec![], "{report:#?}");
    repo.block_on(storage.delete(FileKind::Index, &copy)).unwrap();

    let pack = file.packs[0].id;
    let blobs = file.packs[0].blobs.len();
    file.packs.truncate(1);
    file.packs[0].blobs.pop();
    let changed = repo.save_file(FileKind::Index, &file.encode()).unwrap();
    let report = check(&repo, &CheckOptions::default()).unwrap();
    let found = report.about(&pack.to_hex());
    let listed: Vec<_> = found
        .iter()
        .filter(|p| p.message.contains("list it differently"))
        .collect();
    assert_eq!(listed.len(), 1, "{report:#?}");
    assert_eq!(listed[0].severity, Severity::Error);
    let (lo, hi) = if original < &changed {
        (original, &changed)
    } else {
        (&changed, original)
    };
    assert!(
        listed[0]
            .message
            .starts_with(&format!("index files {lo} and {hi} list it differently")),
        "{listed:?}"
    );
    let (more, fewer) = if lo == original {
        (blobs, blobs - 1)
    } else {
        (blobs - 1, blobs)
    };
    assert!(
        listed[0].message.ends_with(&format!("{more} and {fewer} blobs)")),
        "{listed:?}"
    );
}

#[test]
fn percentage_subsets_read_that_share_of_the_packs() {
    let (_, repo) = repo_with_backup();
    let all = check(&repo, &CheckOptions::default()).unwrap().counters.packs;
    assert!(all >= 2, "{all} packs");
    let read = |p: f64| {
        let opts = CheckOptions {
            read_data: ReadData::Subset(Subset::Percent(p)),
            ..CheckOptions::default()
        };
        check(&repo, &opts).unwrap().counters.packs_read
    };
    assert_eq!(read(100.0), all);
    assert_eq!(read(0.001), 1);
}

/// With `--read-data`, a pack is read in pieces of the piece size (or one
/// longer blob), never whole, and the pieces cover every byte once.
#[test]
fn read_data_reads_packs_in_bounded_pieces() {
    use crate::storage::decorators::reads::{PackRead, PackReads};
    let memory: DynStorage = Arc::new(MemoryStorage::new());
    let counted = PackReads::new(memory);
    let repo = repo_with_backup_on(Arc::new(counted.clone()));
    let index = repo.clone().load_index().unwrap();
    let piece_size = 24 << 10;
    let longest_blob = index
        .index()
        .locations()
        .map(|r| u64::from(r.unwrap().1.length))
        .max()
        .unwrap();
    let packs: Vec<(crate::id::PackId, u64)> = index.index().packs().collect();
    assert!(packs.iter().any(|(_, size)| *size > 4 * piece_size), "{packs:?}");

    let before = counted.reads().len();
    let opts = CheckOptions {
        read_data: ReadData::All,
        piece_size,
        ..CheckOptions::default()
    };
    let report = check(&repo, &opts).unwrap();
    assert_eq!(report.problems, vec![], "{report:#?}");
    assert_eq!(report.counters.blobs, report.counters.blobs_verified);
    assert_eq!(report.counters.packs_read as usize, packs.len());

    let reads = counted.reads().split_off(before);
    assert!(reads.iter().all(|r| matches!(r, PackRead::Range(..))), "{reads:?}");
    assert!(counted.longest() <= piece_size.max(longest_blob));
    let bytes: u64 = packs.iter().map(|(_, size)| size).sum();
    let headers = check(&repo, &CheckOptions::default()).unwrap();
    let header_bytes = headers.counters.bytes_read;
    let all_bytes = report.counters.bytes_read;
    // Everything the header pass reads, plus every byte of every pack once.
    assert_eq!(all_bytes, header_bytes + bytes);
    assert!(reads.len() > packs.len() * 4, "{} reads", reads.len());
}

/// A damaged byte deep inside a pack read in pieces names the blob and the
/// pack, and nothing else.
#[test]
fn read_data_in_pieces_names_a_damaged_blob_and_its_pack() {
    let memory = Arc::new(MemoryStorage::new());
    let repo = repo_with_backup_on(memory.clone());
    let index = repo.clone().load_index().unwrap();
    let piece_size = 24 << 10;
    let loc = index
        .index()
        .locations()
        .map(|r| r.unwrap().1)
        .filter(|l| l.kind == crate::format::BlobKind::Data && u64::from(l.offset) > 3 * piece_size)
        .max_by_key(|l| l.offset)
        .unwrap();
    let pack = loc.pack.to_hex();
    assert!(memory.damage(FileKind::Pack, &pack, (loc.offset + loc.length / 2) as usize));
    let opts = CheckOptions {
        read_data: ReadData::All,
        piece_size,
        ..CheckOptions::default()
    };
    let report = check(&repo, &opts).unwrap();
    let errors: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors
        .iter()
        .any(|p| p.object_kind == ObjectType::Pack && p.object_id == pack && p.message.contains("contents hash to")));
    let at = format!("in pack {pack} at offset {} is corrupt", loc.offset);
    assert!(
        errors
            .iter()
            .any(|p| p.object_kind == ObjectType::DataBlob && p.message.contains(&at)),
        "{errors:#?}"
    );
    assert_eq!(report.counters.blobs_verified, report.counters.blobs - 1);
}
