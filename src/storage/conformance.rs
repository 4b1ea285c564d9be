//! The conformance suite every backend passes.
//!
//! Each function takes a backend and panics, naming the backend and the
//! check, when it misbehaves. [`run_all`] expects an empty location and runs
//! every check in order; the others can also run one by one on a location
//! that [`create_and_config`] has prepared, since each uses its own object
//! names.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;

use super::{FileKind, ObjectInfo, Storage, StorageError};

/// The kinds with many objects (all but the config).
const NAMED_KINDS: [FileKind; 5] = [
    FileKind::Key,
    FileKind::Pack,
    FileKind::Index,
    FileKind::Snapshot,
    FileKind::Lock,
];

/// Runs every check on an empty location.
pub async fn run_all(s: &dyn Storage) {
    starts_empty(s).await;
    create_and_config(s).await;
    put_and_get(s).await;
    put_never_overwrites(s).await;
    put_file(s).await;
    missing_objects(s).await;
    ranges(s).await;
    list_every_kind(s).await;
    delete(s).await;
    empty_object(s).await;
    large_object(s).await;
    whole_reads_are_capped(s).await;
    concurrent_puts(s).await;
    invalid_names(s).await;
}

/// An object name like the ones a repository uses (64 hex digits).
pub fn name(tag: &str, i: usize) -> String {
    let mut h = blake3::Hasher::new();
    h.update(tag.as_bytes());
    h.update(&(i as u64).to_le_bytes());
    h.finalize().to_hex().to_string()
}

/// `len` bytes that depend on `tag`.
pub fn content(tag: &str, len: usize) -> Bytes {
    let mut out = vec![0u8; len];
    blake3::Hasher::new_derive_key("cairn storage conformance")
        .update(tag.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    Bytes::from(out)
}

/// Polls all futures together and returns their outputs in order.
pub async fn join_all<'a, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

async fn listed(s: &dyn Storage, kind: FileKind) -> Vec<ObjectInfo> {
    match s.list(kind).await {
        Ok(mut v) => {
            v.sort();
            v
        }
        Err(e) => panic!("{}: list {kind}: {e}", s.location()),
    }
}

async fn must_put(s: &dyn Storage, kind: FileKind, name: &str, data: Bytes) {
    if let Err(e) = s.put(kind, name, data).await {
        panic!("{}: put {kind} {name}: {e}", s.location());
    }
}

async fn must_get(s: &dyn Storage, kind: FileKind, name: &str) -> Bytes {
    match s.get(kind, name).await {
        Ok(b) => b,
        Err(e) => panic!("{}: get {kind} {name}: {e}", s.location()),
    }
}

/// A fresh location lists nothing of any kind.
pub async fn starts_empty(s: &dyn Storage) {
    s.create()
        .await
        .unwrap_or_else(|e| panic!("{}: create: {e}", s.location()));
    for kind in FileKind::ALL {
        assert_eq!(listed(s, kind).await, vec![], "{}: fresh {kind} list", s.location());
    }
}

/// `create` succeeds until a config exists, then fails with AlreadyExists.
pub async fn create_and_config(s: &dyn Storage) {
    let loc = s.location();
    s.create().await.unwrap_or_else(|e| panic!("{loc}: create: {e}"));
    let config = content("config", 321);
    must_put(s, FileKind::Config, "config", config.clone()).await;
    assert!(
        matches!(s.create().await, Err(StorageError::AlreadyExists { .. })),
        "{loc}: create over an existing config must fail with AlreadyExists"
    );
    assert_eq!(must_get(s, FileKind::Config, "config").await, config, "{loc}: config");
    let list = listed(s, FileKind::Config).await;
    assert_eq!(list.len(), 1, "{loc}: config list {list:?}");
    assert_eq!(list[0].size, 321, "{loc}: config size");
}

/// What is put comes back whole, for every kind.
pub async fn put_and_get(s: &dyn Storage) {
    for (i, kind) in NAMED_KINDS.into_iter().enumerate() {
        let n = name("put_and_get", i);
        let data = content(&n, 1000 + i);
        must_put(s, kind, &n, data.clone()).await;
        assert_eq!(must_get(s, kind, &n).await, data, "{}: get {kind} {n}", s.location());
        assert_eq!(
            s.size(kind, &n).await.ok(),
            Some(data.len() as u64),
            "{}: size",
            s.location()
        );
    }
}

/// A second put of the same name fails and leaves the first bytes.
pub async fn put_never_overwrites(s: &dyn Storage) {
    let loc = s.location();
    for kind in [FileKind::Pack, FileKind::Snapshot] {
        let n = name("overwrite", kind as usize);
        let first = content("first", 500);
        must_put(s, kind, &n, first.clone()).await;
        let again = s.put(kind, &n, content("second", 700)).await;
        assert!(
            matches!(again, Err(StorageError::AlreadyExists { .. })),
            "{loc}: second put of {kind} {n} gave {again:?}"
        );
        assert_eq!(must_get(s, kind, &n).await, first, "{loc}: {kind} {n} was overwritten");
    }
}

/// An object written to a spool and stored with `put_file` reads back as
/// written; a second `put_file` (or `put`) of the name fails with
/// `AlreadyExists` and leaves it; the spool can be stored again under
/// another name (every put reads it from its start); a spool that is only
/// dropped stores nothing.
pub async fn put_file(s: &dyn Storage) {
    let loc = s.location();
    let before = listed(s, FileKind::Pack).await;
    let n = name("put_file", 0);
    let data = content(&n, (3 << 20) + 5);
    let mut spool = s.spool(FileKind::Pack).expect("a spool");
    for part in data.chunks(1 << 20) {
        spool.append(part).expect("appending to a spool");
    }
    assert_eq!(spool.len(), data.len() as u64);
    s.put_file(FileKind::Pack, &n, &spool, false)
        .await
        .unwrap_or_else(|e| panic!("{loc}: put_file {n}: {e}"));
    assert!(
        must_get(s, FileKind::Pack, &n).await == data,
        "{loc}: put_file {n} reads back differently"
    );
    let again = s.put_file(FileKind::Pack, &n, &spool, false).await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "{loc}: second put_file of {n} gave {again:?}"
    );
    let other = name("put_file", 1);
    s.put_file(FileKind::Pack, &other, &spool, true)
        .await
        .unwrap_or_else(|e| panic!("{loc}: put_file of the same spool as {other}: {e}"));
    assert!(
        must_get(s, FileKind::Pack, &other).await == data,
        "{loc}: {other} differs"
    );
    drop(spool);

    let mut unused = s.spool(FileKind::Pack).expect("a spool");
    unused.append(b"never stored").expect("appending to a spool");
    drop(unused);
    let mut after = listed(s, FileKind::Pack).await;
    after.retain(|o| !before.contains(o));
    let mut want = vec![
        ObjectInfo {
            name: n,
            size: data.len() as u64,
        },
        ObjectInfo {
            name: other,
            size: data.len() as u64,
        },
    ];
    want.sort();
    assert_eq!(after, want, "{loc}: packs listed after put_file");

    // An object put whole cannot be replaced through a spool.
    let small = name("put_file", 2);
    must_put(s, FileKind::Snapshot, &small, content("whole", 10)).await;
    let mut spool = s.spool(FileKind::Snapshot).expect("a spool");
    spool.append(b"other bytes").expect("appending to a spool");
    let replaced = s.put_file(FileKind::Snapshot, &small, &spool, false).await;
    assert!(
        matches!(replaced, Err(StorageError::AlreadyExists { .. })),
        "{loc}: put_file over a put object gave {replaced:?}"
    );
    assert_eq!(must_get(s, FileKind::Snapshot, &small).await, content("whole", 10));
}

/// Reading what is not there is NotFound, never another error.
pub async fn missing_objects(s: &dyn Storage) {
    let loc = s.location();
    for kind in NAMED_KINDS {
        let n = name("missing", kind as usize);
        let get = s.get(kind, &n).await;
        assert!(
            matches!(&get, Err(e) if e.is_not_found()),
            "{loc}: get missing: {get:?}"
        );
        let range = s.get_range(kind, &n, 0, 1).await;
        assert!(
            matches!(&range, Err(e) if e.is_not_found()),
            "{loc}: range missing: {range:?}"
        );
        let size = s.size(kind, &n).await;
        assert!(
            matches!(&size, Err(e) if e.is_not_found()),
            "{loc}: size missing: {size:?}"
        );
    }
}

/// Ranged reads inside an object, up to its end, and past it.
pub async fn ranges(s: &dyn Storage) {
    let loc = s.location();
    let n = name("ranges", 0);
    let data = content(&n, 4096);
    must_put(s, FileKind::Pack, &n, data.clone()).await;
    for (offset, len) in [(0u64, 10u64), (100, 1000), (4000, 96), (4096, 0), (0, 4096)] {
        let got = s.get_range(FileKind::Pack, &n, offset, len).await;
        let want = data.slice(offset as usize..(offset + len) as usize);
        assert_eq!(got.ok(), Some(want), "{loc}: range {offset}+{len}");
    }
    for (offset, len) in [(4000u64, 97u64), (4097, 0), (5000, 1), (1, u64::MAX)] {
        let got = s.get_range(FileKind::Pack, &n, offset, len).await;
        assert!(
            matches!(got, Err(StorageError::OutOfRange { size: 4096, .. })),
            "{loc}: range {offset}+{len} past the end gave {got:?}"
        );
    }
}

/// Every kind lists its objects with their sizes; packs from all shards.
pub async fn list_every_kind(s: &dyn Storage) {
    let loc = s.location();
    for kind in NAMED_KINDS {
        let mut want = Vec::new();
        for i in 0..5 {
            let n = name(&format!("list {kind}"), i);
            let size = 10 * i + kind as usize;
            must_put(s, kind, &n, content(&n, size)).await;
            want.push(ObjectInfo {
                name: n,
                size: size as u64,
            });
        }
        let all = listed(s, kind).await;
        for w in &want {
            assert!(all.contains(w), "{loc}: {kind} list {all:?} lacks {w:?}");
        }
        for other in NAMED_KINDS.into_iter().filter(|k| *k != kind) {
            let list = listed(s, other).await;
            assert!(
                !want.iter().any(|w| list.iter().any(|o| o.name == w.name)),
                "{loc}: {kind} objects listed as {other}"
            );
        }
    }
}

/// Deleted objects are gone; deleting them again succeeds.
pub async fn delete(s: &dyn Storage) {
    let loc = s.location();
    for kind in NAMED_KINDS {
        let n = name("delete", kind as usize);
        must_put(s, kind, &n, content(&n, 77)).await;
        s.delete(kind, &n)
            .await
            .unwrap_or_else(|e| panic!("{loc}: delete {kind}: {e}"));
        let get = s.get(kind, &n).await;
        assert!(
            matches!(&get, Err(e) if e.is_not_found()),
            "{loc}: get deleted: {get:?}"
        );
        assert!(
            !listed(s, kind).await.iter().any(|o| o.name == n),
            "{loc}: deleted {kind} still listed"
        );
        s.delete(kind, &n)
            .await
            .unwrap_or_else(|e| panic!("{loc}: second delete of {kind}: {e}"));
        // The name is free again.
        must_put(s, kind, &n, content("reborn", 5)).await;
        assert_eq!(must_get(s, kind, &n).await, content("reborn", 5));
    }
}

/// An object may be empty.
pub async fn empty_object(s: &dyn Storage) {
    let loc = s.location();
    let n = name("empty", 0);
    must_put(s, FileKind::Lock, &n, Bytes::new()).await;
    assert!(must_get(s, FileKind::Lock, &n).await.is_empty(), "{loc}: empty object");
    assert_eq!(s.size(FileKind::Lock, &n).await.ok(), Some(0), "{loc}: empty size");
    assert_eq!(
        s.get_range(FileKind::Lock, &n, 0, 0).await.ok(),
        Some(Bytes::new()),
        "{loc}: empty range"
    );
    let entry = ObjectInfo { name: n, size: 0 };
    assert!(listed(s, FileKind::Lock).await.contains(&entry), "{loc}: empty listed");
}

/// A 20 MiB object, whole and in ranges.
pub async fn large_object(s: &dyn Storage) {
    let loc = s.location();
    let n = name("large", 0);
    let data = content(&n, 20 << 20);
    must_put(s, FileKind::Pack, &n, data.clone()).await;
    assert!(
        must_get(s, FileKind::Pack, &n).await == data,
        "{loc}: 20 MiB object differs"
    );
    assert_eq!(s.size(FileKind::Pack, &n).await.ok(), Some(20 << 20));
    let offset = (13 << 20) + 7;
    let range = s.get_range(FileKind::Pack, &n, offset as u64, 3 << 20).await.ok();
    assert!(
        range.as_deref() == Some(&data[offset..offset + (3 << 20)]),
        "{loc}: range of the 20 MiB object"
    );
}

/// A whole read of an object larger than its kind's cap fails, naming the
/// object, instead of reading it; one at the cap is read.
pub async fn whole_reads_are_capped(s: &dyn Storage) {
    let loc = s.location();
    let cap = FileKind::Lock.max_size();
    let at_cap = name("at-cap", 0);
    let over = name("over-cap", 0);
    must_put(s, FileKind::Lock, &at_cap, content(&at_cap, cap as usize)).await;
    must_put(s, FileKind::Lock, &over, content(&over, cap as usize + 1)).await;
    assert_eq!(must_get(s, FileKind::Lock, &at_cap).await.len() as u64, cap, "{loc}");
    match s.get(FileKind::Lock, &over).await {
        Err(e @ StorageError::TooLarge { .. }) => {
            assert!(e.to_string().contains(&over), "{loc}: {e}");
            assert!(!e.is_transient(), "{loc}: {e}");
        }
        other => panic!("{loc}: a lock of {} bytes gave {:?}", cap + 1, other.map(|b| b.len())),
    }
    // Ranges of it are still read.
    let tail = s.get_range(FileKind::Lock, &over, cap - 1, 2).await.ok();
    assert_eq!(
        tail.as_deref(),
        Some(&content(&over, cap as usize + 1)[cap as usize - 1..]),
        "{loc}"
    );
    for n in [at_cap, over] {
        s.delete(FileKind::Lock, &n)
            .await
            .unwrap_or_else(|e| panic!("{loc}: {e}"));
    }
}

/// Many puts at once all land.
pub async fn concurrent_puts(s: &dyn Storage) {
    let loc = s.location();
    let names: Vec<String> = (0..64).map(|i| name("concurrent", i)).collect();
    let puts = names
        .iter()
        .map(|n| s.put(FileKind::Pack, n, content(n, 4096)))
        .collect();
    for (n, result) in names.iter().zip(join_all(puts).await) {
        if let Err(e) = result {
            panic!("{loc}: concurrent put of {n}: {e}");
        }
    }
    let all = listed(s, FileKind::Pack).await;
    for n in &names {
        assert!(
            all.contains(&ObjectInfo {
                name: n.clone(),
                size: 4096
            }),
            "{loc}: concurrent put of {n} not listed"
        );
        assert_eq!(must_get(s, FileKind::Pack, n).await, content(n, 4096));
    }
    // Racing puts of one name: exactly one wins.
    let racer = name("race", 0);
    let puts = (0..8)
        .map(|i| s.put(FileKind::Index, &racer, content(&format!("race {i}"), 1000)))
        .collect();
    let results = join_all(puts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{loc}: racing puts: {results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StorageError::AlreadyExists { .. }))),
        "{loc}: racing puts: {results:?}"
    );
}

/// Names that could escape the layout are refused.
pub async fn invalid_names(s: &dyn Storage) {
    let loc = s.location();
    for bad in ["", "../escape", "a/b", ".hidden", ".tmp-x"] {
        let got = s.put(FileKind::Snapshot, bad, Bytes::from_static(b"x")).await;
        assert!(
            matches!(got, Err(StorageError::InvalidName { .. })),
            "{loc}: put of name {bad:?} gave {got:?}"
        );
    }
}
