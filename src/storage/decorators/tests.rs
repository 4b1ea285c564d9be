use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::storage::conformance;
use crate::storage::local::LocalStorage;
use crate::storage::memory::MemoryStorage;

/// Enough attempts that a request unlucky enough to meet a periodic fault
/// on every try (64 puts at once share the fault counter) is practically
/// impossible.
fn fast_retry<S: Storage>(inner: S) -> RetryStorage<S> {
    RetryStorage::new(inner)
        .with_attempts(12)
        .with_base_delay(Duration::from_millis(1))
        .with_max_delay(Duration::from_millis(4))
}

#[tokio::test]
async fn fault_storage_without_rules_passes_the_conformance_suite() {
    let s = FaultStorage::new(MemoryStorage::new());
    conformance::run_all(&s).await;
    assert!(s.count(Operation::Put) > 100);
    assert_eq!(s.injected(), 0);
}

#[tokio::test]
async fn retry_over_flaky_memory_passes_the_conformance_suite() {
    let flaky = FaultStorage::new(MemoryStorage::new());
    // Lost replies after the put was done, failed reads and lists.
    flaky.add_rule(FaultRule::on(Operation::Put).every(3).after_effect());
    flaky.add_rule(FaultRule::on(Operation::Get).every(4));
    flaky.add_rule(FaultRule::on(Operation::GetRange).every(5));
    flaky.add_rule(FaultRule::on(Operation::List).every(2));
    flaky.add_rule(FaultRule::on(Operation::Delete).every(3).after_effect());
    let s = fast_retry(flaky);
    conformance::run_all(&s).await;
    assert!(s.inner().injected() > 50, "{} faults", s.inner().injected());
    assert!(s.retries() >= s.inner().injected());
}

#[tokio::test]
async fn retry_over_local_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = FaultStorage::new(LocalStorage::new(dir.path().join("repo")));
    flaky.add_rule(FaultRule::on(Operation::Put).every(4).after_effect());
    let s = fast_retry(flaky);
    conformance::run_all(&s).await;
    assert!(s.retries() > 10);
}

#[tokio::test]
async fn permanent_and_not_found_errors_are_not_retried() {
    let flaky = FaultStorage::new(MemoryStorage::new());
    flaky.add_rule(FaultRule::on(Operation::Get).name("perm").permanent());
    let s = fast_retry(flaky);
    let err = s.get(FileKind::Index, "perm").await.unwrap_err();
    assert!(
        !err.is_transient() && err.to_string().contains("injected permanent"),
        "{err}"
    );
    assert!(s.get(FileKind::Index, "missing").await.unwrap_err().is_not_found());
    assert_eq!(s.inner().count(Operation::Get), 2);
    assert_eq!(s.retries(), 0);
}

#[tokio::test]
async fn retry_gives_up_after_the_configured_attempts() {
    let flaky = FaultStorage::new(MemoryStorage::new());
    flaky.add_rule(FaultRule::on(Operation::Size));
    let s = fast_retry(flaky).with_attempts(3);
    let err = s.size(FileKind::Lock, "ab").await.unwrap_err();
    assert!(matches!(err, StorageError::Injected(_)), "{err}");
    assert_eq!(s.inner().count(Operation::Size), 3);
    assert_eq!(s.retries(), 2);
}

#[tokio::test]
async fn a_retried_put_accepts_only_its_own_bytes() {
    let flaky = FaultStorage::new(MemoryStorage::new());
    let s = fast_retry(flaky);
    // The reply of the first attempt is lost after the object was stored.
    s.inner()
        .add_rule(FaultRule::on(Operation::Put).name("mine").times(1).after_effect());
    s.put(FileKind::Snapshot, "mine", Bytes::from_static(b"same"))
        .await
        .unwrap();
    assert_eq!(s.inner().count(Operation::Put), 2);
    // Another writer's object under the name: a retried put must not claim it.
    s.inner()
        .inner()
        .put(FileKind::Snapshot, "theirs", Bytes::from_static(b"other"))
        .await
        .unwrap();
    s.inner()
        .add_rule(FaultRule::on(Operation::Put).name("theirs").times(1));
    let err = s
        .put(FileKind::Snapshot, "theirs", Bytes::from_static(b"mine"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    // Without an uncertain earlier attempt, AlreadyExists is final at once.
    let before = s.inner().count(Operation::Put);
    let err = s
        .put(FileKind::Snapshot, "mine", Bytes::from_static(b"same"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    assert_eq!(s.inner().count(Operation::Put), before + 1);
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let s = RetryStorage::new(MemoryStorage::new())
        .with_base_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(350));
    for (attempt, full) in [(1u32, 100u64), (2, 200), (3, 350), (40, 350)] {
        for _ in 0..20 {
            let d = s.delay(attempt);
            let full = Duration::from_millis(full);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}

#[tokio::test]
async fn read_only_refuses_writes_and_serves_reads() {
    let inner = MemoryStorage::new();
    inner
        .put(FileKind::Index, "ab", Bytes::from_static(b"idx"))
        .await
        .unwrap();
    let s = ReadOnlyStorage::new(inner);
    let put = s.put(FileKind::Index, "cd", Bytes::from_static(b"x")).await;
    assert!(matches!(put, Err(StorageError::ReadOnly(_))), "{put:?}");
    assert!(matches!(
        s.delete(FileKind::Index, "ab").await,
        Err(StorageError::ReadOnly(_))
    ));
    assert!(matches!(s.create().await, Err(StorageError::ReadOnly(_))));
    assert_eq!(s.get(FileKind::Index, "ab").await.unwrap(), Bytes::from_static(b"idx"));
    assert_eq!(
        s.get_range(FileKind::Index, "ab", 1, 2).await.unwrap(),
        Bytes::from_static(b"dx")
    );
    assert_eq!(s.size(FileKind::Index, "ab").await.unwrap(), 3);
    assert_eq!(s.list(FileKind::Index).await.unwrap().len(), 1);
    assert!(s.inner().size(FileKind::Index, "cd").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn fault_rules_pick_the_nth_request_of_a_kind() {
    let s = FaultStorage::new(MemoryStorage::new());
    s.add_rule(
        FaultRule::on(Operation::Put)
            .kind(FileKind::Pack)
            .after(2)
            .times(1)
            .permanent(),
    );
    let mut outcomes = Vec::new();
    for i in 0..5 {
        s.put(FileKind::Index, &format!("i{i}"), Bytes::new()).await.unwrap();
        outcomes.push(s.put(FileKind::Pack, &format!("p{i}"), Bytes::new()).await.is_ok());
    }
    assert_eq!(outcomes, [true, true, false, true, true]);
    assert_eq!(s.count(Operation::Put), 10);
    assert_eq!(s.injected(), 1);
    // The failed put never reached the backend.
    assert!(s.inner().get(FileKind::Pack, "p2").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn fault_rules_can_start_after_some_requests() {
    let s = FaultStorage::new(MemoryStorage::new());
    s.add_rule(FaultRule::on(Operation::Put).after_requests(4));
    let mut outcomes = Vec::new();
    for i in 0..3 {
        outcomes.push(s.put(FileKind::Lock, &format!("l{i}"), Bytes::new()).await.is_ok());
        s.list(FileKind::Lock).await.unwrap();
    }
    assert_eq!(outcomes, [true, true, false]);
    assert_eq!(s.total(), 6);
    s.heal();
    assert!(s.put(FileKind::Lock, "l9", Bytes::new()).await.is_ok());
}

#[tokio::test]
async fn corrupted_objects_read_back_with_a_flipped_byte() {
    let s = FaultStorage::new(MemoryStorage::new());
    let data = Bytes::from(vec![0u8; 100]);
    s.put(FileKind::Pack, "abcd", data.clone()).await.unwrap();
    s.put(FileKind::Pack, "ef01", data.clone()).await.unwrap();
    s.corrupt(FileKind::Pack, "abcd");
    let bad = s.get(FileKind::Pack, "abcd").await.unwrap();
    assert_eq!(bad.len(), 100);
    assert_eq!(bad.iter().filter(|b| **b != 0).count(), 1);
    assert_ne!(
        s.get_range(FileKind::Pack, "abcd", 10, 20).await.unwrap(),
        data.slice(10..30)
    );
    assert_eq!(s.get(FileKind::Pack, "ef01").await.unwrap(), data);
    s.heal();
    assert_eq!(s.get(FileKind::Pack, "abcd").await.unwrap(), data);
}
