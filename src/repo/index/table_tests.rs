//! The index read through a local table answers as the in-memory index,
//! reads only new index files, and never trusts a table that fails to
//! verify.

use std::collections::HashSet;
use std::path::Path;

use super::*;
use crate::format::index::IndexPack;
use crate::format::pack::PackEntry;
use crate::repo::saver::{BlobSaver, SaverOptions};
use crate::storage::decorators::{FaultStorage, Operation};
use crate::storage::memory::MemoryStorage;
use crate::storage::DynStorage;

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn id(&mut self) -> [u8; 32] {
        let mut id = [0u8; 32];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        // Half the ids crowd into a few buckets.
        if self.below(2) == 0 {
            id[0] = 0;
            id[1] = self.below(4) as u8;
        }
        id
    }
}

struct Fixture {
    faults: Arc<FaultStorage<MemoryStorage>>,
    storage: DynStorage,
    repo: Repository,
    cache: tempfile::TempDir,
    /// Every blob id written, with its kind.
    ids: Vec<(BlobKind, BlobId)>,
    packs: Vec<PackId>,
    rng: Rng,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        let faults = Arc::new(FaultStorage::new(MemoryStorage::new()));
        let storage: DynStorage = faults.clone();
        let repo = Repository::init(storage.clone(), b"pw", crate::repo::test_options()).unwrap();
        Fixture {
            faults,
            storage,
            repo,
            cache: tempfile::tempdir().unwrap(),
            ids: Vec::new(),
            packs: Vec::new(),
            rng: Rng(seed),
        }
    }

    fn save(&self, file: &IndexFile) -> IndexId {
        self.repo
            .save_file(FileKind::Index, &file.encode())
            .unwrap()
            .parse()
            .unwrap()
    }

    /// An index file of `packs` packs of `blobs` blobs each; some blobs are
    /// ids written before (duplicates).
    fn random_file(&mut self, packs: usize, blobs: usize) -> IndexFile {
        let mut file = IndexFile::default();
        for _ in 0..packs {
            let pack = PackId(self.rng.id());
            self.packs.push(pack);
            let kind = if self.rng.below(3) == 0 {
                BlobKind::Tree
            } else {
                BlobKind::Data
            };
            let mut entries = Vec::new();
            for i in 0..blobs {
                let id = if !self.ids.is_empty() && self.rng.below(20) == 0 {
                    let (k, id) = self.ids[self.rng.below(self.ids.len() as u64) as usize];
                    if k != kind {
                        continue;
                    }
                    id
                } else {
                    let id = BlobId(self.rng.id());
                    self.ids.push((kind, id));
                    id
                };
                entries.push(PackEntry {
                    kind,
                    id,
                    offset: i as u32 * 100,
                    length: 90,
                    raw_length: 80,
                });
            }
            file.packs.push(IndexPack {
                id: pack,
                size: 1000 + self.rng.below(1000),
                blobs: entries,
            });
        }
        file
    }

    fn add_random(&mut self, files: usize, packs: usize, blobs: usize) {
        for _ in 0..files {
            let file = self.random_file(packs, blobs);
            self.save(&file);
        }
    }

    fn mark_some(&mut self, n: usize) {
        let marked = (0..n)
            .map(|i| MarkedPack {
                id: self.packs[self.rng.below(self.packs.len() as u64) as usize],
                marked_ns: i as i64,
            })
            .collect();
        self.save(&IndexFile {
            marked,
            ..IndexFile::default()
        });
    }

    fn dir(&self) -> &Path {
        self.cache.path()
    }

    fn open_with(&self, cache: Option<&Path>) -> IndexedRepository {
        let repo = Repository::open(self.storage.clone(), b"pw").unwrap();
        let repo = match cache {
            Some(root) => repo.with_index_cache(root),
            None => repo,
        };
        repo.load_index().unwrap()
    }

    fn open(&self) -> IndexedRepository {
        self.open_with(Some(self.dir()))
    }

    fn in_memory(&self) -> IndexedRepository {
        self.open_with(None)
    }

    /// Index files read by one open through the table.
    fn gets_of_open(&self) -> (IndexedRepository, u64) {
        let repo = Repository::open(self.storage.clone(), b"pw")
            .unwrap()
            .with_index_cache(self.dir());
        let before = self.faults.count(Operation::Get);
        let indexed = repo.load_index().unwrap();
        (indexed, self.faults.count(Operation::Get) - before)
    }

    fn table_dir(&self) -> std::path::PathBuf {
        self.repo
            .clone()
            .with_index_cache(self.dir())
            .index_dir()
            .unwrap()
            .to_owned()
    }

    fn tables(&self) -> Vec<std::path::PathBuf> {
        let dir = self.table_dir();
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// `table` (an index read through a table) answers as `mem` (the same
/// files in memory). `exact`: no blob is both in the table and in the
/// overlay, so positions agree too.
fn agree(table: &Index, mem: &Index, ids: &[(BlobKind, BlobId)], exact: bool) {
    assert!(table.table_path().is_some());
    assert_eq!(table.files(), mem.files());
    assert_eq!(table.marked(), mem.marked());
    assert_eq!(table.packs().collect::<Vec<_>>(), mem.packs().collect::<Vec<_>>());
    assert_eq!(table.duplicates(), mem.duplicates());
    let locations: Vec<(usize, BlobLocation)> = table.locations().map(|r| r.unwrap()).collect();
    assert_eq!(locations.len(), table.len());
    if exact {
        assert_eq!(table.len(), mem.len());
        assert_eq!(locations, mem.locations().map(|r| r.unwrap()).collect::<Vec<_>>());
    }
    let mut seen = HashSet::new();
    for (kind, id) in ids {
        let got = table.get(*kind, id);
        assert!(got.is_some(), "{id:?} is lost");
        assert_eq!(table.contains_live(*kind, id), mem.contains_live(*kind, id));
        let pos = table.position(*kind, id).unwrap();
        if seen.insert((*kind, *id)) {
            assert_eq!(locations[pos].1, got.unwrap());
        }
        if exact {
            assert_eq!(got, mem.get(*kind, id));
            assert_eq!(Some(pos), mem.position(*kind, id));
        } else {
            let pack = got.unwrap().pack;
            assert!(table.pack_position(&pack).is_some());
        }
    }
    let positions: HashSet<usize> = seen.iter().map(|(k, id)| table.position(*k, id).unwrap()).collect();
    assert_eq!(positions.len(), seen.len(), "two blobs share a position");
    for other in [BlobKind::Data, BlobKind::Tree] {
        let absent = BlobId([0xee; 32]);
        assert!(!table.contains(other, &absent));
    }
}

#[test]
fn lookups_through_a_table_and_an_overlay_equal_the_in_memory_index() {
    let mut f = Fixture::new(7);
    f.add_random(6, 8, 60);
    f.mark_some(3);
    // The first open builds the table.
    let (first, gets) = f.gets_of_open();
    assert_eq!(gets, 7);
    assert_eq!(first.index().in_memory_len(), 0);
    let mem = f.in_memory();
    assert!(mem.index().duplicates() > 0);
    assert!(!mem.index().marked().is_empty());
    agree(first.index(), mem.index(), &f.ids, true);
    assert_eq!(f.tables().len(), 1);

    // The next open reads no index file.
    let (again, gets) = f.gets_of_open();
    assert_eq!(gets, 0);
    agree(again.index(), mem.index(), &f.ids, true);

    // Files written since (some blobs again) are read into an overlay.
    f.add_random(2, 4, 50);
    let (layered, gets) = f.gets_of_open();
    assert_eq!(gets, 2);
    assert!(layered.index().in_memory_len() > 0);
    agree(layered.index(), f.in_memory().index(), &f.ids, false);

    // A refresh of the index held reads the same files.
    let (refreshed, how) = again.refresh().unwrap();
    assert_eq!(how, Refresh::Added(2));
    agree(refreshed.index(), f.in_memory().index(), &f.ids, false);
    f.add_random(1, 2, 10);
    let (refreshed, how) = refreshed.refresh().unwrap();
    assert_eq!(how, Refresh::Added(1));
    agree(refreshed.index(), f.in_memory().index(), &f.ids, false);
    assert_eq!(f.tables().len(), 1);
}

#[test]
fn a_large_overlay_is_merged_into_a_new_table() {
    let mut f = Fixture::new(11);
    f.add_random(3, 4, 40);
    f.mark_some(2);
    let first = f.open();
    let old = first.index().table_path().unwrap().to_owned();
    // More than the smallest threshold, in backup-like files.
    f.add_random(2, 30, 80);
    let (merged, gets) = f.gets_of_open();
    assert_eq!(gets, 2);
    assert_eq!(merged.index().in_memory_len(), 0, "the overlay was not merged");
    assert_ne!(merged.index().table_path().unwrap(), old);
    assert_eq!(f.tables(), vec![merged.index().table_path().unwrap().to_owned()]);
    agree(merged.index(), f.in_memory().index(), &f.ids, true);
    // The table held by the first index still answers (its file is open),
    // and refreshing it merges too.
    assert!(first.index().get(f.ids[0].0, &f.ids[0].1).is_some());
    let (refreshed, how) = first.refresh().unwrap();
    assert_eq!(how, Refresh::Added(2));
    assert_eq!(refreshed.index().in_memory_len(), 0);
    agree(refreshed.index(), f.in_memory().index(), &f.ids, true);
}

#[test]
fn a_file_that_supersedes_rebuilds_the_table() {
    let mut f = Fixture::new(5);
    let a = f.random_file(3, 30);
    let a_id = f.save(&a);
    f.add_random(2, 3, 30);
    let first = f.open();
    let old = first.index().table_path().unwrap().to_owned();
    // A prune rewrites `a` without its first pack.
    let mut rewritten = a.clone();
    rewritten.packs.remove(0);
    rewritten.supersedes = vec![a_id];
    f.save(&rewritten);
    let (rebuilt, gets) = f.gets_of_open();
    // The new file, then every file again.
    assert_eq!(gets, 5, "every index file is read again");
    let mem = f.in_memory();
    assert_eq!(rebuilt.index().in_memory_len(), 0);
    assert_ne!(rebuilt.index().table_path().unwrap(), old);
    assert_eq!(f.tables().len(), 1);
    let kept: Vec<_> = f
        .ids
        .iter()
        .copied()
        .filter(|(k, id)| mem.index().contains(*k, id))
        .collect();
    assert!(kept.len() < f.ids.len());
    agree(rebuilt.index(), mem.index(), &kept, true);
    // The removed file's table is gone once the repository no longer
    // lists it: deleting `a` changes nothing, the rebuilt table holds it
    // as passed over.
    f.repo
        .block_on(f.storage.delete(FileKind::Index, &a_id.to_hex()))
        .unwrap();
    let (again, gets) = f.gets_of_open();
    assert_eq!(gets, 0);
    agree(again.index(), f.in_memory().index(), &kept, true);
}

/// Flips the byte at `at` of `path`.
fn flip(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x20;
    file.write_all_at(&b, at).unwrap();
}

#[test]
fn a_damaged_head_or_a_truncated_table_is_rebuilt() {
    let mut f = Fixture::new(3);
    f.add_random(3, 4, 40);
    let mem = f.in_memory();
    for damage in 0..4 {
        let path = f.open().index().table_path().unwrap().to_owned();
        let size = std::fs::metadata(&path).unwrap().len();
        match damage {
            0 => flip(&path, 20),
            1 => flip(&path, 200),
            2 => flip(&path, size - 1),
            _ => std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(size - 36)
                .unwrap(),
        }
        let (reopened, gets) = f.gets_of_open();
        if damage == 2 {
            // The last tree bucket fails when read, not when opened.
            assert_eq!(gets, 0);
            assert!(reopened.index().locations().any(|r| r.is_err()));
            continue;
        }
        assert_eq!(gets, 3, "damage {damage}: the table was not rebuilt");
        agree(reopened.index(), mem.index(), &f.ids, true);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    }
}

/// Content whose blob id falls in the same bucket as `id`'s.
fn content_in_bucket_of(repo: &Repository, id: &BlobId) -> (Vec<u8>, BlobId) {
    for i in 0u64.. {
        let content = format!("another blob {i}").into_bytes();
        let other = BlobId(repo.key().blob_id(&content));
        if other.0[..2] == id.0[..2] && other != *id {
            return (content, other);
        }
    }
    unreachable!()
}

#[test]
fn a_forged_entry_is_never_trusted_and_the_blob_is_stored() {
    let f = Fixture::new(1);
    let content = b"a blob the table lists".to_vec();
    let indexed = f.open();
    let saver = BlobSaver::new(&indexed, SaverOptions::default()).unwrap();
    let saved = saver.save(BlobKind::Data, &content).unwrap();
    saver.finish().unwrap();
    // A fresh table, built with the blob in it.
    std::fs::remove_dir_all(f.table_dir()).unwrap();
    let indexed = f.open();
    assert_eq!(indexed.index().in_memory_len(), 0);
    assert!(indexed.known(BlobKind::Data, &saved.id));
    // Rewrite the table's entry so that it claims a blob never stored.
    let (forged_content, forged) = content_in_bucket_of(&f.repo, &saved.id);
    let path = indexed.index().table_path().unwrap().to_owned();
    let mut bytes = std::fs::read(&path).unwrap();
    let key = &saved.id.0[2..KEY_LEN];
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    bytes[at..at + key.len()].copy_from_slice(&forged.0[2..KEY_LEN]);
    std::fs::write(&path, &bytes).unwrap();

    let indexed = f.open();
    assert!(indexed.index().table_failed().is_none());
    assert!(!indexed.known(BlobKind::Data, &forged), "a forged entry was believed");
    assert!(!path.exists(), "a table that failed to verify was kept");
    assert_eq!(indexed.index().table_failed(), Some(path.as_path()));
    let saver = BlobSaver::new(&indexed, SaverOptions::default()).unwrap();
    let stored = saver.save(BlobKind::Data, &forged_content).unwrap();
    assert!(stored.new);
    saver.finish().unwrap();

    let indexed = f.open();
    assert!(indexed.index().table_path().is_some());
    assert_eq!(indexed.read_blob(BlobKind::Data, &forged).unwrap(), forged_content);
    assert_eq!(indexed.read_blob(BlobKind::Data, &saved.id).unwrap(), content);
}

#[test]
fn without_a_cache_the_index_is_in_memory() {
    let mut f = Fixture::new(9);
    f.add_random(2, 2, 10);
    let indexed = f.in_memory();
    assert!(indexed.index().table_path().is_none());
    assert_eq!(indexed.index().in_memory_len(), indexed.index().len());
    assert!(f.tables().is_empty());
}

#[test]
fn an_unwritable_cache_falls_back_to_memory() {
    let mut f = Fixture::new(4);
    f.add_random(2, 2, 10);
    let file = f.dir().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let indexed = f.open_with(Some(&file));
    assert!(indexed.index().table_path().is_none());
    agree_in_memory(indexed.index(), f.in_memory().index());
}

fn agree_in_memory(a: &Index, b: &Index) {
    assert_eq!(a.len(), b.len());
    assert_eq!(
        a.locations().map(|r| r.unwrap()).collect::<Vec<_>>(),
        b.locations().map(|r| r.unwrap()).collect::<Vec<_>>()
    );
}

#[test]
fn the_table_decoder_rejects_damaged_bytes() {
    let mut f = Fixture::new(2);
    f.add_random(1, 2, 20);
    let path = f.open().index().table_path().unwrap().to_owned();
    let bytes = std::fs::read(&path).unwrap();
    let key = *f.repo.key().index_table_key();
    assert_eq!(read_table_bytes(key, bytes.clone()).unwrap(), f.ids.len());
    for at in [0, 9, 60, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 1;
        assert!(read_table_bytes(key, bad).is_err(), "byte {at}");
    }
    assert!(read_table_bytes(key, bytes[..bytes.len() - 1].to_vec()).is_err());
    assert!(read_table_bytes([0; 32], bytes).is_err());
}

#[test]
fn leftovers_of_unfinished_writes_are_removed_a_day_later() {
    let mut f = Fixture::new(6);
    f.add_random(1, 2, 10);
    let dir = f.table_dir();
    std::fs::create_dir_all(dir.join(".spill-old")).unwrap();
    std::fs::write(dir.join(".spill-old/00"), b"x").unwrap();
    for name in [".tmp-old", ".tmp-new"] {
        std::fs::write(dir.join(name), b"x").unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
    for name in [".tmp-old", ".spill-old"] {
        std::fs::File::open(dir.join(name)).unwrap().set_modified(old).unwrap();
    }
    let indexed = f.open();
    assert!(indexed.index().table_path().is_some());
    assert!(!dir.join(".tmp-old").exists());
    assert!(!dir.join(".spill-old").exists());
    assert!(dir.join(".tmp-new").exists(), "a write that may be running was removed");
}
