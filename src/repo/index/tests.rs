use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::format::index::IndexPack;
use crate::format::pack::PackEntry;

fn blob(kind: BlobKind, id: BlobId, offset: u32) -> PackEntry {
    PackEntry {
        kind,
        id,
        offset,
        length: 100 + offset,
        raw_length: 50 + offset,
    }
}

fn pack(id: u8, blobs: Vec<PackEntry>) -> IndexPack {
    IndexPack {
        id: PackId([id; 32]),
        size: 1000 + u64::from(id),
        blobs,
    }
}

fn file(packs: Vec<IndexPack>, supersedes: Vec<IndexId>) -> IndexFile {
    IndexFile {
        supersedes,
        packs,
        marked: vec![],
    }
}

/// An id starting with `head` and then `fill` bytes.
fn id_with(head: &[u8], fill: u8) -> BlobId {
    let mut id = [fill; 32];
    id[..head.len()].copy_from_slice(head);
    BlobId(id)
}

fn index_of(files: Vec<(IndexId, IndexFile)>) -> Index {
    Index::from_files(files).unwrap()
}

#[test]
fn superseded_index_files_are_left_out() {
    let old = IndexId([1; 32]);
    let new = IndexId([2; 32]);
    let a = BlobId([1; 32]);
    let b = BlobId([2; 32]);
    // The superseding file comes first: order does not matter.
    let index = index_of(vec![
        (new, file(vec![pack(2, vec![blob(BlobKind::Data, b, 0)])], vec![old])),
        (old, file(vec![pack(1, vec![blob(BlobKind::Data, a, 0)])], vec![])),
    ]);
    assert_eq!(index.files(), &[new]);
    assert!(index.contains(BlobKind::Data, &b));
    assert!(!index.contains(BlobKind::Data, &a));
    assert_eq!(index.len(), 1);
    assert_eq!(index.packs().collect::<Vec<_>>(), vec![(PackId([2; 32]), 1002)]);
}

#[test]
fn a_pack_in_several_files_is_listed_once_with_the_lowest_file_size() {
    let id = BlobId([3; 32]);
    let listed = |size: u64| {
        let mut p = pack(4, vec![blob(BlobKind::Data, id, 0)]);
        p.size = size;
        file(vec![p], vec![])
    };
    for reversed in [false, true] {
        let mut files = vec![(IndexId([1; 32]), listed(10)), (IndexId([2; 32]), listed(20))];
        if reversed {
            files.reverse();
        }
        let index = index_of(files);
        assert_eq!(index.packs().collect::<Vec<_>>(), vec![(PackId([4; 32]), 10)]);
        assert_eq!(index.duplicates(), 1);
        assert_eq!(index.files(), &[IndexId([1; 32]), IndexId([2; 32])]);
    }
}

#[test]
fn an_empty_index_finds_nothing() {
    let index = index_of(vec![]);
    assert!(index.is_empty());
    assert_eq!(index.len(), 0);
    assert_eq!(index.get(BlobKind::Data, &BlobId([0; 32])), None);
    assert_eq!(index.position(BlobKind::Tree, &BlobId([0xff; 32])), None);
    assert_eq!(index.locations().count(), 0);
    assert!(!index.is_marked(&PackId([0; 32])));
    // No bucket tables for empty kinds.
    assert_eq!(index.heap_bytes(), 0);
}

#[test]
fn lookups_hit_and_miss_in_first_last_and_shared_buckets() {
    let ids = [
        id_with(&[0, 0], 0),
        id_with(&[0, 0], 1),
        id_with(&[0, 0, 5], 0xff),
        id_with(&[0xff, 0xff], 0xff),
        id_with(&[0xff, 0xff], 0xfe),
        id_with(&[0x12, 0x34], 7),
        id_with(
            &[0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            7,
        ),
    ];
    let blobs = ids
        .iter()
        .enumerate()
        .map(|(i, id)| blob(BlobKind::Data, *id, i as u32))
        .collect();
    let index = index_of(vec![(IndexId([9; 32]), file(vec![pack(3, blobs)], vec![]))]);
    assert_eq!(index.len(), ids.len());
    for (i, id) in ids.iter().enumerate() {
        let loc = index.get(BlobKind::Data, id).unwrap();
        assert_eq!(
            (loc.pack, loc.offset, loc.length, loc.raw_length),
            (PackId([3; 32]), i as u32, 100 + i as u32, 50 + i as u32)
        );
        assert!(!index.contains(BlobKind::Tree, id));
    }
    let misses = [
        id_with(&[0, 0], 2),
        id_with(&[0, 1], 0),
        id_with(&[0xff, 0xff], 0),
        id_with(&[0xff, 0xfe], 0xff),
        id_with(&[0x12, 0x34], 6),
        id_with(&[0x12, 0x33], 7),
    ];
    for id in &misses {
        assert_eq!(index.get(BlobKind::Data, id), None, "{id:?}");
        assert_eq!(index.position(BlobKind::Data, id), None);
    }
}

#[test]
fn ids_equal_in_their_first_22_bytes_are_one_blob_to_the_index() {
    let stored = id_with(&[0xab; KEY_LEN], 1);
    let index = index_of(vec![(
        IndexId([1; 32]),
        file(vec![pack(1, vec![blob(BlobKind::Data, stored, 0)])], vec![]),
    )]);
    // Differs only beyond the key: the index cannot tell (reads verify the
    // full id); differs inside the key: a miss.
    assert!(index.contains(BlobKind::Data, &id_with(&[0xab; KEY_LEN], 2)));
    let mut inside = stored;
    inside.0[KEY_LEN - 1] ^= 1;
    assert!(!index.contains(BlobKind::Data, &inside));
}

#[test]
fn both_kinds_with_one_id_are_two_blobs_and_data_positions_come_first() {
    let id = BlobId([7; 32]);
    let other = BlobId([8; 32]);
    let index = index_of(vec![(
        IndexId([1; 32]),
        file(
            vec![
                pack(1, vec![blob(BlobKind::Tree, id, 0), blob(BlobKind::Data, other, 10)]),
                pack(2, vec![blob(BlobKind::Data, id, 20)]),
            ],
            vec![],
        ),
    )]);
    assert_eq!(index.len(), 3);
    assert_eq!(index.duplicates(), 0);
    let tree = index.get(BlobKind::Tree, &id).unwrap();
    assert_eq!(
        (tree.kind, tree.pack, tree.offset),
        (BlobKind::Tree, PackId([1; 32]), 0)
    );
    let data = index.get(BlobKind::Data, &id).unwrap();
    assert_eq!(
        (data.kind, data.pack, data.offset),
        (BlobKind::Data, PackId([2; 32]), 20)
    );
    assert_eq!(index.position(BlobKind::Data, &id), Some(0));
    assert_eq!(index.position(BlobKind::Data, &other), Some(1));
    assert_eq!(index.position(BlobKind::Tree, &id), Some(2));
    assert_eq!(index.position(BlobKind::Tree, &other), None);
    let listed: Vec<(usize, BlobLocation)> = index.locations().map(|r| r.unwrap()).collect();
    assert_eq!(
        listed,
        vec![(0, data), (1, index.get(BlobKind::Data, &other).unwrap()), (2, tree)]
    );
}

#[test]
fn duplicates_are_counted_and_an_unmarked_copy_is_kept() {
    let id = BlobId([5; 32]);
    let mut first = file(vec![pack(1, vec![blob(BlobKind::Data, id, 0)])], vec![]);
    first.marked.push(MarkedPack {
        id: PackId([1; 32]),
        marked_ns: 42,
    });
    // A marked pack no index lists any more is still known as marked.
    first.marked.push(MarkedPack {
        id: PackId([0xee; 32]),
        marked_ns: 43,
    });
    let second = file(
        vec![
            pack(2, vec![blob(BlobKind::Data, id, 30)]),
            pack(3, vec![blob(BlobKind::Data, id, 60)]),
        ],
        vec![],
    );
    let only_marked = BlobId([6; 32]);
    first.packs[0].blobs.push(blob(BlobKind::Data, only_marked, 90));
    let index = index_of(vec![(IndexId([1; 32]), first), (IndexId([2; 32]), second)]);
    assert_eq!(index.len(), 2);
    assert_eq!(index.duplicates(), 2);
    assert!(index.is_marked(&PackId([1; 32])));
    assert!(index.is_marked(&PackId([0xee; 32])));
    assert!(!index.is_marked(&PackId([2; 32])));
    assert_eq!(index.marked().len(), 2);
    let loc = index.get(BlobKind::Data, &id).unwrap();
    assert_eq!(
        (loc.pack, loc.offset),
        (PackId([2; 32]), 30),
        "the first unmarked copy by pack id"
    );
    assert!(index.contains_live(BlobKind::Data, &id));
    assert!(index.contains(BlobKind::Data, &only_marked));
    assert!(!index.contains_live(BlobKind::Data, &only_marked));
    assert_eq!(index.packs().count(), 3);
}

#[test]
fn the_result_does_not_depend_on_the_order_of_files() {
    let files = |n: u8| -> Vec<(IndexId, IndexFile)> {
        (0..n)
            .map(|f| {
                let blobs = (0..20u8)
                    .map(|b| blob(BlobKind::Data, id_with(&[b % 3, f], b), u32::from(b)))
                    .collect();
                (IndexId([f; 32]), file(vec![pack(f % 2, blobs)], vec![]))
            })
            .collect()
    };
    let forward = index_of(files(5));
    let mut reversed = files(5);
    reversed.reverse();
    let backward = index_of(reversed);
    assert_eq!(forward.files(), backward.files());
    assert_eq!(
        forward.packs().collect::<Vec<_>>(),
        backward.packs().collect::<Vec<_>>()
    );
    assert_eq!(
        forward.locations().map(|r| r.unwrap()).collect::<Vec<_>>(),
        backward.locations().map(|r| r.unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(forward.duplicates(), backward.duplicates());
}

#[test]
fn memory_per_blob_is_within_40_bytes() {
    // 200k blobs in packs of 50: 36 bytes per entry, 0.8 per blob for the
    // pack table, about 1.3 for the bucket table at this size.
    let per_pack = 50u32;
    let packs = (0..4000u32)
        .map(|p| IndexPack {
            id: PackId(*blake3::hash(&p.to_le_bytes()).as_bytes()),
            size: 16 << 20,
            blobs: (0..per_pack)
                .map(|b| {
                    let id = BlobId(*blake3::hash(&(p * per_pack + b).to_be_bytes()).as_bytes());
                    blob(BlobKind::Data, id, b)
                })
                .collect(),
        })
        .collect();
    let index = index_of(vec![(IndexId([1; 32]), file(packs, vec![]))]);
    assert_eq!(index.len(), 200_000);
    let per_blob = index.heap_bytes() as f64 / index.len() as f64;
    assert!(per_blob <= 40.0, "{per_blob} bytes per blob");
}

/// A model of the index: every location listed per (kind, id).
type Model = HashMap<(BlobKind, BlobId), HashSet<(PackId, u32)>>;

fn arb_id() -> impl Strategy<Value = BlobId> {
    // Few leading bytes, so that buckets are shared and the edges used.
    (
        prop::sample::select(vec![0u8, 1, 0x7f, 0xff]),
        prop::sample::select(vec![0u8, 0xff]),
        any::<[u8; 32]>(),
    )
        .prop_map(|(a, b, mut rest)| {
            rest[0] = a;
            rest[1] = b;
            BlobId(rest)
        })
}

fn arb_files() -> impl Strategy<Value = Vec<(IndexId, IndexFile)>> {
    let pool = prop::collection::vec(arb_id(), 1..40);
    pool.prop_flat_map(|ids| {
        let entry = (prop::sample::select(ids), any::<bool>(), 0u32..1000)
            .prop_map(|(id, tree, offset)| blob(if tree { BlobKind::Tree } else { BlobKind::Data }, id, offset));
        let pack = (0u8..6, prop::collection::vec(entry, 0..12)).prop_map(|(p, blobs)| pack(p, blobs));
        let one = (prop::collection::vec(pack, 0..4), any::<bool>());
        prop::collection::vec(one, 0..5).prop_map(|files| {
            files
                .into_iter()
                .enumerate()
                .map(|(i, (packs, supersede_previous))| {
                    let supersedes = if supersede_previous && i > 0 {
                        vec![IndexId([i as u8 - 1; 32])]
                    } else {
                        vec![]
                    };
                    (IndexId([i as u8; 32]), file(packs, supersedes))
                })
                .collect::<Vec<_>>()
        })
    })
}

proptest! {
    #[test]
    fn agrees_with_a_hash_map_model(files in arb_files(), probes in prop::collection::vec(arb_id(), 0..20)) {
        let superseded: HashSet<IndexId> = files.iter().flat_map(|(_, f)| f.supersedes.clone()).collect();
        let mut model = Model::new();
        let mut listed = 0u64;
        let mut packs = HashSet::new();
        for (_, f) in files.iter().filter(|(id, _)| !superseded.contains(id)) {
            for p in &f.packs {
                packs.insert(p.id);
                for b in &p.blobs {
                    listed += 1;
                    model.entry((b.kind, b.id)).or_default().insert((p.id, b.offset));
                }
            }
        }
        let index = index_of(files);
        prop_assert_eq!(index.len(), model.len());
        prop_assert_eq!(index.duplicates(), listed - model.len() as u64);
        let mut seen = HashSet::new();
        for ((kind, id), places) in &model {
            let loc = index.get(*kind, id);
            prop_assert!(loc.is_some_and(|l| l.kind == *kind && places.contains(&(l.pack, l.offset))));
            let pos = index.position(*kind, id).unwrap();
            prop_assert!(pos < index.len() && seen.insert(pos));
        }
        for id in &probes {
            for kind in [BlobKind::Data, BlobKind::Tree] {
                prop_assert_eq!(index.contains(kind, id), model.contains_key(&(kind, *id)));
            }
        }
        let mut pack_list: Vec<PackId> = packs.into_iter().collect();
        pack_list.sort();
        prop_assert_eq!(index.packs().map(|(p, _)| p).collect::<Vec<_>>(), pack_list);
        prop_assert_eq!(index.locations().count(), index.len());
    }
}

#[test]
fn a_blob_longer_than_its_kind_allows_is_refused_before_it_is_read() {
    let storage = std::sync::Arc::new(crate::storage::memory::MemoryStorage::new());
    let repo = crate::repo::Repository::init(storage, b"pw", crate::repo::test_options()).unwrap();
    let id = id_with(&[9], 9);
    // An index entry (which a hostile index file can hold) saying the blob
    // has almost 4 GiB; its pack does not even exist.
    let huge = PackEntry {
        kind: BlobKind::Data,
        id,
        offset: 0,
        length: u32::MAX - 16,
        raw_length: 100,
    };
    let entries = IndexPack {
        id: PackId([7; 32]),
        size: 1 << 33,
        blobs: vec![huge],
    };
    repo.save_file(FileKind::Index, &file(vec![entries], vec![]).encode())
        .unwrap();
    let indexed = repo.load_index().unwrap();
    match indexed.read_blob(BlobKind::Data, &id) {
        Err(RepoError::BadBlob { reason, .. }) => assert!(reason.contains("index entry gives"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// What a refreshed index holds: everything a fresh load finds.
fn same_index(a: &Index, b: &Index) {
    assert_eq!(a.files(), b.files());
    assert_eq!(a.len(), b.len());
    assert_eq!(a.pack_count(), b.pack_count());
    assert_eq!(a.marked(), b.marked());
    let la: Vec<_> = a.locations().map(|r| r.unwrap()).collect();
    let lb: Vec<_> = b.locations().map(|r| r.unwrap()).collect();
    assert_eq!(la, lb);
}

#[test]
fn refresh_reads_only_new_backup_files_and_reloads_after_a_removal() {
    use crate::storage::memory::MemoryStorage;
    use crate::storage::DynStorage;

    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), b"pw", crate::repo::test_options()).unwrap();
    let open = || Repository::open(storage.clone(), b"pw").unwrap().load_index().unwrap();
    // What a backup adds: an index file of the pack it stored.
    let backup = |seed: u8| {
        let packs = vec![pack(seed, vec![blob(BlobKind::Data, id_with(&[seed], seed), 0)])];
        repo.save_file(FileKind::Index, &file(packs, vec![]).encode()).unwrap();
    };
    backup(1);
    let held = open();
    let (same, how) = held.refresh().unwrap();
    assert_eq!(how, Refresh::Unchanged);
    same_index(same.index(), held.index());

    backup(2);
    backup(3);
    let (refreshed, how) = held.refresh().unwrap();
    assert!(matches!(how, Refresh::Added(n) if n >= 2), "{how:?}");
    same_index(refreshed.index(), open().index());

    // A removed index file (as prune replaces them) reloads everything.
    let first = refreshed.index().files()[0];
    refreshed
        .block_on(storage.delete(FileKind::Index, &first.to_hex()))
        .unwrap();
    let (reloaded, how) = refreshed.refresh().unwrap();
    assert_eq!(how, Refresh::Reloaded);
    same_index(reloaded.index(), open().index());
    assert!(!reloaded.index().files().contains(&first));
}
