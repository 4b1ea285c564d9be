use std::sync::Arc;

use super::*;
use crate::format::keyfile::MIN_KDF_MEMORY_KIB;
use crate::repo::test_options;
use crate::storage::cache::CacheStorage;
use crate::storage::local::LocalStorage;
use crate::storage::memory::MemoryStorage;

fn cheap() -> KdfParams {
    test_options().kdf
}

/// Stores `bytes` as a key file under the hash of its bytes; returns the name.
fn plant(storage: &DynStorage, bytes: Vec<u8>) -> String {
    let name = blake3::hash(&bytes).to_hex().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(storage.put(FileKind::Key, &name, Bytes::from(bytes)))
        .unwrap();
    name
}

/// A well-formed key file with `kdf` whose wrapped key opens with no password.
fn key_file(kdf: KdfParams, created_ns: i64) -> KeyFile {
    KeyFile {
        created_ns,
        hostname: "elsewhere".into(),
        username: "mallory".into(),
        kdf,
        salt: [7; 32],
        wrapped: vec![1, 8, 0, 0],
    }
}

fn wrong_password(e: RepoError) -> (usize, Vec<SkippedKey>) {
    match e {
        RepoError::WrongPassword { tried, skipped, .. } => (tried, skipped),
        other => panic!("expected a wrong password, got {other}"),
    }
}

#[test]
fn damaged_and_planted_key_files_are_skipped_not_fatal() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), b"pw", test_options()).unwrap();
    let garbage = plant(&storage, b"\x01\x08 not a key file".to_vec());
    // Maximal parameters, as the format allowed before: 4 GiB x 64 passes.
    let huge = KdfParams {
        memory_kib: 4 << 20,
        iterations: 64,
        parallelism: 64,
    };
    let planted = plant(&storage, key_file(huge, 0).encode());
    // Far below the floor: cheap to attack.
    let weak = KdfParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let weak = plant(&storage, key_file(weak, 0).encode());
    // Bytes that do not hash to the name they are stored under.
    let renamed = "ab".repeat(32);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(storage.put(FileKind::Key, &renamed, Bytes::from(key_file(cheap(), 1).encode())))
        .unwrap();

    let opened = Repository::open(storage.clone(), b"pw").unwrap();
    assert_eq!(opened.key_name(), repo.key_name());
    let mut skipped: Vec<&str> = opened.skipped_keys().iter().map(|s| s.id.as_str()).collect();
    skipped.sort();
    let mut expected = vec![garbage.as_str(), planted.as_str(), weak.as_str(), renamed.as_str()];
    expected.sort();
    assert_eq!(skipped, expected, "{:?}", opened.skipped_keys());
    let reason = |id: &str| {
        opened
            .skipped_keys()
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.reason.clone())
            .unwrap()
    };
    assert!(reason(&planted).contains("above the maximum"), "{}", reason(&planted));
    assert!(reason(&weak).contains("below the minimum"), "{}", reason(&weak));
    assert!(reason(&renamed).contains("hash to"), "{}", reason(&renamed));

    // A wrong password: every usable key was tried, the others are named.
    let (tried, skipped) = wrong_password(Repository::open(storage.clone(), b"nope").unwrap_err());
    assert_eq!(tried, 1);
    assert_eq!(skipped.len(), 4);
    let message = wrong_password_message(&storage);
    assert!(
        message.contains("1 key file(s) tried, 4 skipped") && message.contains(&planted),
        "{message}"
    );

    // `key list` shows every key, the damaged ones with their problem.
    let listed = opened.list_keys().unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed.iter().filter(|k| k.problem.is_some()).count(), 4);
    assert!(listed.iter().any(|k| k.current && k.problem.is_none()));
}

fn wrong_password_message(storage: &DynStorage) -> String {
    Repository::open(storage.clone(), b"nope").unwrap_err().to_string()
}

#[test]
fn a_key_whose_wrapped_key_is_malformed_is_skipped() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    Repository::init(storage.clone(), b"pw", test_options()).unwrap();
    let bad = plant(&storage, key_file(cheap(), 5).encode());
    let opened = Repository::open(storage.clone(), b"pw").unwrap();
    // Cheapest first, then by name: tried before or after the real key,
    // never an error.
    assert!(opened.skipped_keys().iter().all(|s| s.id == bad));
    let (tried, skipped) = wrong_password(Repository::open(storage, b"nope").unwrap_err());
    assert_eq!((tried, skipped.len()), (1, 1));
    assert_eq!(skipped[0].id, bad);
}

#[test]
fn cheaper_keys_are_tried_before_costlier_ones() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let repo = Repository::init(storage.clone(), b"pw", test_options()).unwrap();
    // A costlier key file whose name sorts before the real key's: by name
    // it would be tried (and skipped) first.
    let costly = KdfParams {
        memory_kib: MIN_KDF_MEMORY_KIB,
        iterations: 4,
        parallelism: 1,
    };
    let mut created = 0;
    let planted = loop {
        let bytes = key_file(costly, created).encode();
        if blake3::hash(&bytes).to_hex().as_str() < repo.key_name() {
            break plant(&storage, bytes);
        }
        created += 1;
    };
    let opened = Repository::open(storage.clone(), b"pw").unwrap();
    assert!(opened.skipped_keys().is_empty(), "{:?}", opened.skipped_keys());
    let (_, skipped) = wrong_password(Repository::open(storage, b"nope").unwrap_err());
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].id, planted);
}

#[test]
fn the_key_that_last_worked_is_tried_first_through_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let stored = tempfile::tempdir().unwrap();
    let local = || LocalStorage::new(stored.path().join("repo"));
    let memory: DynStorage = Arc::new(local());
    let repo = Repository::init(memory.clone(), b"first", test_options()).unwrap();
    // A second password's key, costlier, so that the first key (and a
    // damaged one) are tried before it when nothing is remembered.
    let second = repo
        .write_key(
            b"second",
            KdfParams {
                iterations: 2,
                ..cheap()
            },
        )
        .unwrap();
    let damaged = plant(&memory, b"\x01\x08 damaged".to_vec());
    let cached = || -> DynStorage { Arc::new(CacheStorage::new(local(), cache.path())) };

    let first_open = Repository::open(cached(), b"second").unwrap();
    assert_eq!(first_open.key_name(), second);
    assert_eq!(first_open.skipped_keys().len(), 1, "the damaged key was tried first");
    // The cache remembers the key's id, nothing else.
    let dir = CacheStorage::new(local(), cache.path()).dir().to_owned();
    assert_eq!(std::fs::read_to_string(dir.join("last-key")).unwrap(), second);

    let again = Repository::open(cached(), b"second").unwrap();
    assert_eq!(again.key_name(), second);
    assert!(again.skipped_keys().is_empty(), "the remembered key opens first");
    // Without the cache, the keys are tried in order again.
    let uncached = Repository::open(memory.clone(), b"second").unwrap();
    assert_eq!(uncached.skipped_keys()[0].id, damaged);
    // A remembered key that no longer opens does not stop the others.
    let other = Repository::open(cached(), b"first").unwrap();
    assert_eq!(other.key_name(), repo.key_name());
}

#[test]
fn new_keys_below_the_floor_or_beyond_this_machine_are_refused() {
    let repo = Repository::init(Arc::new(MemoryStorage::new()), b"pw", test_options()).unwrap();
    let weak = KdfParams {
        memory_kib: 64,
        ..cheap()
    };
    let err = repo.write_key(b"x", weak).unwrap_err().to_string();
    assert!(err.contains("below the minimum"), "{err}");
    let init = Repository::init(
        Arc::new(MemoryStorage::new()),
        b"pw",
        crate::repo::InitOptions {
            kdf: weak,
            ..test_options()
        },
    );
    assert!(init.is_err());
    assert_eq!(repo.list_keys().unwrap().len(), 1, "nothing was written");
}
