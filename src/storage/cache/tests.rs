use super::*;
use crate::storage::conformance;
use crate::storage::decorators::{FaultStorage, Operation};
use crate::storage::memory::MemoryStorage;

type Counted = CacheStorage<FaultStorage<MemoryStorage>>;

fn object(tag: &str) -> (String, Bytes) {
    let data = conformance::content(tag, 300);
    (blake3::hash(&data).to_hex().to_string(), data)
}

/// A pack-sized object named by its hash.
fn pack(tag: &str) -> (String, Bytes) {
    let data = conformance::content(tag, 64 << 10);
    (blake3::hash(&data).to_hex().to_string(), data)
}

/// A cache over a counting store that holds `packs`, in `root`.
async fn counted(root: &Path, packs: &[(String, Bytes)]) -> Counted {
    let backend = FaultStorage::new(MemoryStorage::new());
    for (name, data) in packs {
        backend.put(FileKind::Pack, name, data.clone()).await.unwrap();
    }
    CacheStorage::new(backend, root)
}

/// Requests that read bytes from the store.
fn reads(cache: &Counted) -> u64 {
    cache.inner().count(Operation::Get) + cache.inner().count(Operation::GetRange)
}

/// Reads of the blobs a tree walk would make: ranges all over the pack.
async fn walk(cache: &impl Storage, name: &str, data: &Bytes) {
    for (offset, len) in [(0u64, 100u64), (5000, 900), (30_000, 4096), (65_000, 536)] {
        let got = cache
            .get_range_keep(FileKind::Pack, name, offset, len, Keep::Whole)
            .await
            .unwrap();
        assert_eq!(
            got,
            data.slice(offset as usize..(offset + len) as usize),
            "{offset}+{len}"
        );
    }
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| if e.path().is_dir() { walk_files(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn cache_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(&CacheStorage::new(MemoryStorage::new(), dir.path())).await;
}

#[tokio::test]
async fn a_second_read_is_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FaultStorage::new(MemoryStorage::new());
    let (name, data) = object("index");
    backend.put(FileKind::Index, &name, data.clone()).await.unwrap();
    let first = CacheStorage::new(backend, dir.path());
    assert_eq!(first.get(FileKind::Index, &name).await.unwrap(), data);
    assert_eq!(first.get(FileKind::Index, &name).await.unwrap(), data);
    assert_eq!(
        first.get_range(FileKind::Index, &name, 10, 5).await.unwrap(),
        data.slice(10..15)
    );
    assert_eq!(first.inner().count(Operation::Get), 1);
    assert!(first.dir().join("index").join(&name).is_file());
}

#[tokio::test]
async fn a_damaged_copy_is_dropped_and_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = object("snapshot");
    let cache = CacheStorage::new(FaultStorage::new(MemoryStorage::new()), dir.path());
    cache.put(FileKind::Snapshot, &name, data.clone()).await.unwrap();
    let path = cache.dir().join("snapshots").join(&name);
    assert!(path.is_file(), "a put keeps a copy");
    std::fs::write(&path, b"tampered").unwrap();
    assert_eq!(cache.get(FileKind::Snapshot, &name).await.unwrap(), data);
    assert_eq!(cache.inner().count(Operation::Get), 1);
    assert_eq!(std::fs::read(&path).unwrap(), data.to_vec(), "the copy is restored");
}

#[tokio::test]
async fn objects_gone_from_the_repository_leave_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let backend = MemoryStorage::new();
    let (a, data_a) = object("a");
    let (b, data_b) = object("b");
    let cache = CacheStorage::new(backend, dir.path());
    cache.put(FileKind::Index, &a, data_a).await.unwrap();
    cache.put(FileKind::Index, &b, data_b).await.unwrap();
    // Another client removes `a` from the repository.
    cache.inner().delete(FileKind::Index, &a).await.unwrap();
    let listed = cache.list(FileKind::Index).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!cache.dir().join("index").join(&a).exists(), "stale copy kept");
    assert!(cache.dir().join("index").join(&b).exists());
    cache.delete(FileKind::Index, &b).await.unwrap();
    assert!(!cache.dir().join("index").join(&b).exists());
}

#[tokio::test]
async fn other_kinds_and_names_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheStorage::new(MemoryStorage::new(), dir.path());
    let (name, data) = object("pack");
    cache.put(FileKind::Pack, &name, data.clone()).await.unwrap();
    cache.put(FileKind::Snapshot, "not-a-hash", data.clone()).await.unwrap();
    // A name that is a hash, but not of these bytes.
    let (other, _) = object("other");
    cache.put(FileKind::Index, &other, data.clone()).await.unwrap();
    // Plain reads of a pack (data blobs, check) go to the store only.
    assert_eq!(cache.get(FileKind::Pack, &name).await.unwrap(), data);
    assert_eq!(
        cache.get_range(FileKind::Pack, &name, 1, 2).await.unwrap(),
        data.slice(1..3)
    );
    assert!(!cache.dir().exists() || walk_files(cache.dir()) == 0);
}

#[tokio::test]
async fn a_second_walk_of_a_tree_pack_reads_nothing_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = pack("trees");
    let cache = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    walk(&cache, &name, &data).await;
    assert_eq!(
        cache.inner().count(Operation::Get),
        1,
        "the pack is fetched whole, once"
    );
    assert_eq!(reads(&cache), 1);
    walk(&cache, &name, &data).await;
    assert_eq!(reads(&cache), 1, "the second walk read the store");

    // A later process over the same directory reads nothing either.
    let later = CacheStorage::new(FaultStorage::new(MemoryStorage::new()), dir.path());
    assert_eq!(later.dir(), cache.dir());
    walk(&later, &name, &data).await;
    assert_eq!(later.inner().total(), 0);
}

#[tokio::test]
async fn readers_of_one_pack_at_once_share_one_download() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = pack("shared");
    let cache = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    let read = |offset: u64| cache.get_range_keep(FileKind::Pack, &name, offset, 64, Keep::Whole);
    let (a, b, c, d) = tokio::join!(read(0), read(1000), read(2000), read(3000));
    for (got, offset) in [(a, 0usize), (b, 1000), (c, 2000), (d, 3000)] {
        assert_eq!(got.unwrap(), data.slice(offset..offset + 64));
    }
    assert_eq!(reads(&cache), 1);
    assert!(lock(&cache.fetching).is_empty(), "download gates are released");
}

#[tokio::test]
async fn a_damaged_pack_copy_is_fetched_again_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = pack("damaged");
    let first = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    walk(&first, &name, &data).await;
    let path = first.dir().join("data").join(&name);
    let mut damaged = std::fs::read(&path).unwrap();
    damaged[5000] ^= 0x40;
    std::fs::write(&path, &damaged).unwrap();

    // The next process finds the damage, drops the copy and fetches the pack.
    let second = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    walk(&second, &name, &data).await;
    assert_eq!(second.inner().count(Operation::Get), 1);
    assert_eq!(std::fs::read(&path).unwrap(), data.to_vec(), "the copy is replaced");

    // A truncated copy the same.
    std::fs::write(&path, &data[..1000]).unwrap();
    let third = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    walk(&third, &name, &data).await;
    assert_eq!(third.inner().count(Operation::Get), 1);
}

#[tokio::test]
async fn a_pack_read_damaged_from_the_store_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = pack("bad on the wire");
    let cache = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    cache.inner().corrupt(FileKind::Pack, &name);
    let got = cache
        .get_range_keep(FileKind::Pack, &name, 0, data.len() as u64, Keep::Whole)
        .await
        .unwrap();
    assert_ne!(got, data, "the damage reaches the caller, who names it");
    assert!(!cache.dir().join("data").join(&name).exists());
    cache.inner().heal();
    walk(&cache, &name, &data).await;
    assert!(cache.dir().join("data").join(&name).is_file());
}

#[tokio::test]
async fn ranges_past_the_end_of_a_cached_pack_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = pack("short");
    let cache = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    let size = data.len() as u64;
    for _ in 0..2 {
        // Once from the fetched bytes, once from the verified copy.
        let err = cache
            .get_range_keep(FileKind::Pack, &name, size - 10, 11, Keep::Whole)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::OutOfRange { size: s, .. } if s == size),
            "{err}"
        );
    }
    let err = cache
        .get_range_keep(FileKind::Pack, &name, u64::MAX, 2, Keep::Whole)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::OutOfRange { .. }), "{err}");
}

#[tokio::test]
async fn kept_ranges_are_read_once_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = pack("header");
    let cache = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    let (offset, len) = (60_000u64, 5536u64);
    let expected = data.slice(60_000..);
    for _ in 0..3 {
        let got = cache
            .get_range_keep(FileKind::Pack, &name, offset, len, Keep::Range)
            .await
            .unwrap();
        assert_eq!(got, expected);
    }
    assert_eq!(cache.inner().count(Operation::GetRange), 1);
    assert_eq!(cache.inner().count(Operation::Get), 0, "a range never fetches the pack");
    assert!(!cache.dir().join("data").join(&name).exists());

    // A damaged kept range is dropped and read again.
    let path = cache.dir().join("ranges").join(&name).join(format!("{offset}-{len}"));
    let mut kept = std::fs::read(&path).unwrap();
    assert_eq!(kept.len() as u64, HASH_LEN as u64 + len);
    kept[HASH_LEN + 7] ^= 1;
    std::fs::write(&path, &kept).unwrap();
    let got = cache
        .get_range_keep(FileKind::Pack, &name, offset, len, Keep::Range)
        .await
        .unwrap();
    assert_eq!(got, expected);
    assert_eq!(cache.inner().count(Operation::GetRange), 2);
    // A range kept under another offset is not taken for this one.
    std::fs::copy(&path, path.with_file_name(format!("{}-{len}", offset - 1))).unwrap();
    let got = cache
        .get_range_keep(FileKind::Pack, &name, offset - 1, len, Keep::Range)
        .await
        .unwrap();
    assert_eq!(got, data.slice(59_999..65_535));
    assert_eq!(cache.inner().count(Operation::GetRange), 3);
}

#[tokio::test]
async fn ranges_of_a_cached_pack_come_from_its_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (name, data) = pack("both");
    let cache = counted(dir.path(), &[(name.clone(), data.clone())]).await;
    walk(&cache, &name, &data).await;
    let got = cache
        .get_range_keep(FileKind::Pack, &name, 100, 50, Keep::Range)
        .await
        .unwrap();
    assert_eq!(got, data.slice(100..150));
    assert_eq!(reads(&cache), 1);
}

#[tokio::test]
async fn packs_gone_from_the_repository_leave_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (a, data_a) = pack("a");
    let (b, data_b) = pack("b");
    let (c, data_c) = pack("c");
    let (d, data_d) = pack("d");
    let stored = [
        (a.clone(), data_a.clone()),
        (b.clone(), data_b.clone()),
        (d.clone(), data_d),
    ];
    let cache = counted(dir.path(), &stored).await;
    walk(&cache, &a, &data_a).await;
    walk(&cache, &b, &data_b).await;
    // Only the header of a data pack.
    cache
        .get_range_keep(FileKind::Pack, &d, 0, 10, Keep::Range)
        .await
        .unwrap();
    // A backup stores a new pack of trees and keeps it.
    cache.put_keep(FileKind::Pack, &c, data_c.clone()).await.unwrap();
    let packs = cache.dir().join("data");
    let ranges = cache.dir().join("ranges");
    assert!(packs.join(&a).is_file() && packs.join(&b).is_file() && packs.join(&c).is_file());
    assert!(ranges.join(&d).is_dir() && !packs.join(&d).exists());
    assert!(!ranges.join(&a).exists(), "ranges of a cached pack come from its copy");

    // Another client's prune removes `a` and `d`; listing packs drops
    // their copies.
    cache.inner().delete(FileKind::Pack, &a).await.unwrap();
    cache.inner().delete(FileKind::Pack, &d).await.unwrap();
    assert_eq!(cache.list(FileKind::Pack).await.unwrap().len(), 2);
    assert!(!packs.join(&a).exists(), "stale pack kept");
    assert!(!ranges.join(&d).exists(), "stale ranges kept");
    assert!(packs.join(&b).is_file() && packs.join(&c).is_file());
    // A pack gone is read from the store again, and not found there.
    let err = cache
        .get_range_keep(FileKind::Pack, &a, 0, 10, Keep::Whole)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // This client's own delete drops the copy at once.
    cache.delete(FileKind::Pack, &b).await.unwrap();
    assert!(!packs.join(&b).exists());

    // The kept new pack is read without asking the store.
    let before = reads(&cache);
    walk(&cache, &c, &data_c).await;
    assert_eq!(reads(&cache), before);
}

#[tokio::test]
async fn a_pack_put_under_a_wrong_name_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = pack("mine");
    let (other, _) = pack("other");
    let cache = counted(dir.path(), &[]).await;
    cache.put_keep(FileKind::Pack, &other, data.clone()).await.unwrap();
    assert!(!cache.dir().join("data").join(&other).exists());
    // Reading it goes to the store, which returns what was put.
    let got = cache
        .get_range_keep(FileKind::Pack, &other, 0, 10, Keep::Whole)
        .await
        .unwrap();
    assert_eq!(got, data.slice(0..10));
    assert!(!cache.dir().join("data").join(&other).exists());
}

#[tokio::test]
async fn without_a_cache_every_read_goes_to_the_store() {
    let (name, data) = pack("uncached");
    let store = FaultStorage::new(MemoryStorage::new());
    store.put(FileKind::Pack, &name, data.clone()).await.unwrap();
    walk(&store, &name, &data).await;
    walk(&store, &name, &data).await;
    let got = store
        .get_range_keep(FileKind::Pack, &name, 3, 4, Keep::Range)
        .await
        .unwrap();
    assert_eq!(got, data.slice(3..7));
    assert_eq!(store.count(Operation::GetRange), 9);
    assert_eq!(store.count(Operation::Get), 0);
}

#[tokio::test]
async fn each_repository_has_one_directory_whatever_reaches_it() {
    let root = tempfile::tempdir().unwrap();
    let config_a = Bytes::from_static(b"sealed config of repository a");
    let config_b = Bytes::from_static(b"sealed config of repository b");
    // MemoryStorage instances share a location string; the config decides.
    let a1 = CacheStorage::for_repository(MemoryStorage::new(), root.path(), Some(config_a.clone()));
    let a2 = CacheStorage::for_repository(MemoryStorage::new(), root.path(), Some(config_a.clone()));
    let b = CacheStorage::for_repository(MemoryStorage::new(), root.path(), Some(config_b));
    assert_eq!(a1.dir(), a2.dir());
    assert_ne!(a1.dir(), b.dir());
    // The config read before stacking is served without a second request
    // (this store has none).
    assert_eq!(a1.get(FileKind::Config, "config").await.unwrap(), config_a);
    // Before init there is no config: the location names the directory.
    let fresh = CacheStorage::for_repository(MemoryStorage::new(), root.path(), None);
    assert_eq!(fresh.dir(), CacheStorage::new(MemoryStorage::new(), root.path()).dir());
    assert_ne!(fresh.dir(), a1.dir());
    assert!(fresh.get(FileKind::Config, "config").await.unwrap_err().is_not_found());
}

/// Modes below `dir` (itself included) that give group or other any access.
fn shared_modes(dir: &Path, out: &mut Vec<(PathBuf, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        out.push((dir.to_owned(), mode));
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            shared_modes(&entry.path(), out);
        }
    }
}

#[tokio::test]
async fn cached_files_and_directories_are_the_owners_only() {
    let root = tempfile::tempdir().unwrap();
    let (pack_name, pack_data) = pack("private");
    let (headed, _) = pack("headed");
    let packs = [(pack_name.clone(), pack_data.clone()), pack("headed")];
    let cache = counted(&root.path().join("cache"), &packs).await;
    let (name, data) = object("snapshot");
    cache.put(FileKind::Snapshot, &name, data).await.unwrap();
    walk(&cache, &pack_name, &pack_data).await;
    cache
        .get_range_keep(FileKind::Pack, &headed, 10, 20, Keep::Range)
        .await
        .unwrap();
    assert_eq!(walk_files(&root.path().join("cache")), 3);
    let mut shared = Vec::new();
    shared_modes(&root.path().join("cache"), &mut shared);
    assert!(shared.is_empty(), "readable by others: {shared:?}");
}
