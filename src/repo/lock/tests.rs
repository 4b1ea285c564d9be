use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::repo::test_options;
use crate::storage::memory::MemoryStorage;

fn repo() -> Repository {
    Repository::init(Arc::new(MemoryStorage::new()), b"pw", test_options()).unwrap()
}

/// Fast timing: nothing refreshes during a test unless it asks to.
fn fast() -> LockOptions {
    LockOptions {
        ttl: Duration::from_secs(60),
        refresh: Duration::from_secs(30),
        poll: Duration::from_millis(20),
    }
}

/// Stores a lock file as another process would; returns its id.
fn plant(repo: &Repository, lock: &Lock) -> LockId {
    repo.write_lock(lock).unwrap()
}

/// A lock of another process; on this host (by name) it also carries this
/// process's boot id and pid namespace.
fn foreign(kind: LockKind, host: &str, pid: u32, expires_in: Duration) -> Lock {
    let now = now_ns();
    let space = ProcessSpace::current();
    let here = host == space.hostname;
    Lock {
        time_ns: now,
        expires_ns: now + duration_ns(expires_in),
        hostname: host.into(),
        username: "alice".into(),
        pid,
        kind,
        boot_id: if here { space.boot_id } else { "another-boot".into() },
        pid_ns: if here { space.pid_ns } else { 1 },
    }
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn conflicts_follow_the_matrix() {
    use LockKind::*;
    for (held, wanted, blocks) in [
        (Shared, Shared, false),
        (Shared, Prune, false),
        (Prune, Shared, false),
        (Shared, Exclusive, true),
        (Exclusive, Shared, true),
        (Prune, Prune, true),
        (Prune, Exclusive, true),
        (Exclusive, Prune, true),
        (Exclusive, Exclusive, true),
    ] {
        let r = repo();
        let _held = r.lock_with(held, Duration::ZERO, &fast()).unwrap();
        let got = r.lock_with(wanted, Duration::ZERO, &fast());
        match got {
            Ok(g) => {
                assert!(!blocks, "{wanted} taken beside {held}");
                assert_eq!(r.list_locks().unwrap().len(), 2);
                drop(g);
            }
            Err(RepoError::Locked { holder }) => {
                assert!(blocks, "{wanted} refused beside {held}: {holder}");
                assert!(holder.starts_with(&format!("{held} lock ")), "{holder}");
                assert_eq!(r.list_locks().unwrap().len(), 1, "the refused lock file is removed");
            }
            Err(e) => panic!("{held} vs {wanted}: {e}"),
        }
    }
}

#[test]
fn locked_error_names_the_holder_on_one_line_with_exit_code_11() {
    let r = repo();
    let id = plant(
        &r,
        &foreign(LockKind::Exclusive, "node-9", 4242, Duration::from_secs(600)),
    );
    let err = r.lock_with(LockKind::Shared, Duration::ZERO, &fast()).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 11);
    assert!(!msg.contains('\n'), "{msg}");
    for part in ["exclusive lock", &id.short(), "alice@node-9", "pid 4242", "since "] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}

#[test]
fn an_expired_lock_is_stale_and_never_blocks() {
    let r = repo();
    let mut old = foreign(LockKind::Exclusive, "elsewhere", 1, Duration::ZERO);
    old.expires_ns -= 1;
    assert!(is_stale(&old, now_ns()));
    plant(&r, &old);
    let g = r.lock_with(LockKind::Exclusive, Duration::ZERO, &fast()).unwrap();
    assert_eq!(g.kind(), LockKind::Exclusive);
}

#[test]
fn a_lock_of_a_dead_process_on_this_host_is_stale() {
    let r = repo();
    let lock = foreign(LockKind::Exclusive, &hostname(), dead_pid(), Duration::from_secs(600));
    assert!(is_stale(&lock, now_ns()));
    plant(&r, &lock);
    assert!(r.lock_with(LockKind::Shared, Duration::ZERO, &fast()).is_ok());
}

#[test]
fn a_lock_of_a_live_process_on_this_host_is_not_stale() {
    let lock = foreign(
        LockKind::Exclusive,
        &hostname(),
        std::process::id(),
        Duration::from_secs(600),
    );
    assert!(!is_stale(&lock, now_ns()));
}

#[test]
fn a_live_lock_on_another_host_is_not_stale_even_if_the_pid_is_free_here() {
    let r = repo();
    let lock = foreign(LockKind::Exclusive, "other-host", dead_pid(), Duration::from_secs(600));
    assert!(!is_stale(&lock, now_ns()));
    plant(&r, &lock);
    assert!(matches!(
        r.lock_with(LockKind::Shared, Duration::ZERO, &fast()),
        Err(RepoError::Locked { .. })
    ));
}

#[test]
fn this_process_knows_its_boot_and_pid_namespace() {
    let space = ProcessSpace::current();
    assert_eq!(space.boot_id.len(), 36, "{space:?}");
    assert_ne!(space.pid_ns, 0);
    let r = repo();
    let g = r.lock_with(LockKind::Shared, Duration::ZERO, &fast()).unwrap();
    let (_, written) = r.list_locks().unwrap().remove(0);
    assert!(g.is_mine(&written));
    assert_eq!((written.boot_id, written.pid_ns), (space.boot_id, space.pid_ns));
}

#[test]
fn a_lock_of_another_pid_namespace_or_boot_is_not_judged_by_pid() {
    let r = repo();
    let dead = dead_pid();
    let here = foreign(LockKind::Exclusive, &hostname(), dead, Duration::from_secs(600));
    assert!(is_stale(&here, now_ns()));
    // Same host name, another container's pid namespace (host networking).
    let other_ns = Lock {
        pid_ns: here.pid_ns + 1,
        ..here.clone()
    };
    // Same host name, the host rebooted since.
    let other_boot = Lock {
        boot_id: "00000000-0000-0000-0000-000000000000".into(),
        ..here.clone()
    };
    // Written before locks named their process space.
    let unknown = Lock {
        boot_id: String::new(),
        pid_ns: 0,
        ..here.clone()
    };
    for lock in [&other_ns, &other_boot, &unknown] {
        assert!(!is_stale(lock, now_ns()), "{lock:?}");
    }
    plant(&r, &other_ns);
    assert!(matches!(
        r.lock_with(LockKind::Shared, Duration::ZERO, &fast()),
        Err(RepoError::Locked { .. })
    ));
    assert_eq!(r.remove_stale_locks().unwrap(), 0);
}

#[test]
fn a_lock_file_that_vanishes_while_listed_makes_the_listing_start_again() {
    // A refresh stores its new file and then deletes the old one: a
    // listing taken before the new file existed, read after the old one
    // was deleted, sees neither. Here the holder's file reads as deleted
    // once; listing again finds it (as it would find the new file).
    use crate::storage::decorators::{FaultRule, FaultStorage, Operation};
    let fault = Arc::new(FaultStorage::new(MemoryStorage::new()));
    let r = Repository::init(fault.clone(), b"pw", test_options()).unwrap();
    let held = plant(&r, &foreign(LockKind::Exclusive, "far", 1, Duration::from_secs(600)));
    fault.add_rule(
        FaultRule::on(Operation::Get)
            .kind(FileKind::Lock)
            .name(held.to_hex())
            .not_found()
            .times(1),
    );
    let lists = fault.count(Operation::List);
    assert!(matches!(
        r.lock_with(LockKind::Shared, Duration::ZERO, &fast()),
        Err(RepoError::Locked { .. })
    ));
    assert_eq!(fault.count(Operation::List) - lists, 2);
    assert_eq!(r.list_locks().unwrap().len(), 1);
}

#[test]
fn a_removed_lock_file_is_noticed_by_the_next_check_before_any_refresh() {
    let r = repo();
    let g = r.lock_with(LockKind::Shared, Duration::ZERO, &fast()).unwrap();
    g.ensure_held().unwrap();
    assert_eq!(r.remove_all_locks().unwrap(), 1);
    // `fast()` refreshes every 30 s: only a look at the storage can tell.
    let err = g.watch().ensure_held().unwrap_err();
    assert!(err.to_string().contains("removed by another process"), "{err}");
    assert!(g.ensure_held().is_err());
}

#[test]
fn refresh_replaces_the_file_and_keeps_the_start_time() {
    let r = repo();
    let opts = LockOptions {
        ttl: Duration::from_secs(5),
        refresh: Duration::from_millis(50),
        poll: Duration::from_millis(20),
    };
    let g = r.lock_with(LockKind::Shared, Duration::ZERO, &opts).unwrap();
    let first = g.id();
    let before = r.load_lock(&first).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while g.id() == first {
        assert!(Instant::now() < deadline, "lock never refreshed");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The old file is deleted right after the new one is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    let locks = loop {
        let locks = r.list_locks().unwrap();
        if locks.len() == 1 && locks[0].0 != first {
            break locks;
        }
        assert!(Instant::now() < deadline, "old lock file not replaced: {locks:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let after = &locks[0].1;
    assert_eq!(after.time_ns, before.time_ns);
    assert!(after.expires_ns > before.expires_ns);
    assert_eq!(after.kind, LockKind::Shared);
    assert!(g.is_mine(after) && g.is_mine(&before));
    assert!(!g.is_mine(&foreign(
        LockKind::Shared,
        &hostname(),
        std::process::id(),
        Duration::from_secs(9)
    )));
    g.ensure_held().unwrap();
    drop(g);
    assert!(r.list_locks().unwrap().is_empty(), "drop removes the lock");
}

#[test]
fn retry_waits_and_succeeds_when_the_holder_releases() {
    let r = repo();
    let holder = r.lock_with(LockKind::Exclusive, Duration::ZERO, &fast()).unwrap();
    let start = Instant::now();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(holder);
    });
    let g = r.lock_with(LockKind::Shared, Duration::from_secs(20), &fast()).unwrap();
    let waited = start.elapsed();
    release.join().unwrap();
    assert!(waited >= Duration::from_millis(250), "took the lock after {waited:?}");
    assert_eq!(r.list_locks().unwrap().len(), 1);
    drop(g);
}

#[test]
fn retry_times_out_with_locked() {
    let r = repo();
    let _holder = r.lock_with(LockKind::Prune, Duration::ZERO, &fast()).unwrap();
    let start = Instant::now();
    let err = r
        .lock_with(LockKind::Prune, Duration::from_millis(300), &fast())
        .unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, RepoError::Locked { .. }), "{err}");
    assert!(waited >= Duration::from_millis(300), "gave up after {waited:?}");
    assert_eq!(r.list_locks().unwrap().len(), 1, "no lock of the waiter is left");
}

#[test]
fn a_removed_lock_is_reported_lost_and_not_rewritten() {
    let r = repo();
    let opts = LockOptions {
        ttl: Duration::from_secs(5),
        refresh: Duration::from_millis(30),
        poll: Duration::from_millis(20),
    };
    let g = r.lock_with(LockKind::Shared, Duration::ZERO, &opts).unwrap();
    assert_eq!(r.remove_all_locks().unwrap(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        if let Err(e) = g.ensure_held() {
            break e;
        }
        assert!(Instant::now() < deadline, "loss never noticed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(err.to_string().contains("removed by another process"), "{err}");
    assert!(g.watch().ensure_held().is_err());
    std::thread::sleep(Duration::from_millis(100));
    assert!(r.list_locks().unwrap().is_empty(), "a lost lock is not rewritten");
}

#[test]
fn a_lock_not_refreshed_within_its_lifetime_is_not_held() {
    let r = repo();
    let g = r.lock_with(LockKind::Shared, Duration::ZERO, &fast()).unwrap();
    g.ensure_held().unwrap();
    // As if every refresh since the last one had failed for a whole lifetime.
    guard(&g.shared.held).written = Instant::now() - Duration::from_secs(61);
    let err = g.ensure_held().unwrap_err();
    assert!(matches!(err, RepoError::LockLost(_)), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn unlock_removes_stale_locks_only_and_remove_all_removes_the_rest() {
    let r = repo();
    plant(&r, &foreign(LockKind::Exclusive, "far", 1, Duration::from_secs(600)));
    plant(
        &r,
        &foreign(LockKind::Shared, &hostname(), dead_pid(), Duration::from_secs(600)),
    );
    let mut expired = foreign(LockKind::Shared, "far", 2, Duration::ZERO);
    expired.expires_ns -= 1;
    plant(&r, &expired);
    assert_eq!(r.remove_stale_locks().unwrap(), 2);
    let left = r.list_locks().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1.hostname, "far");
    assert_eq!(left[0].1.kind, LockKind::Exclusive);
    assert_eq!(r.remove_all_locks().unwrap(), 1);
    assert!(r.list_locks().unwrap().is_empty());
}

#[test]
fn a_corrupt_lock_is_named() {
    let r = repo();
    let id = plant(&r, &foreign(LockKind::Shared, "far", 1, Duration::from_secs(600)));
    let name = id.to_hex();
    let mut bytes = r.block_on(r.storage().get(FileKind::Lock, &name)).unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    r.block_on(r.storage().delete(FileKind::Lock, &name)).unwrap();
    r.block_on(r.storage().put(FileKind::Lock, &name, bytes.into()))
        .unwrap();
    let err = r.lock_with(LockKind::Shared, Duration::ZERO, &fast()).unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(r.remove_all_locks().unwrap(), 1, "the taker's own file was removed");
}

#[test]
fn bad_timing_is_refused() {
    let r = repo();
    let opts = LockOptions {
        refresh: Duration::from_secs(60),
        ..fast()
    };
    assert!(matches!(
        r.lock_with(LockKind::Shared, Duration::ZERO, &opts),
        Err(RepoError::InvalidOption(_))
    ));
    assert!(r.list_locks().unwrap().is_empty());
}

#[test]
fn pids_that_name_no_single_process_count_as_alive() {
    assert!(process_alive(0));
    assert!(process_alive(u32::MAX));
    assert!(process_alive(std::process::id()));
    assert!(!process_alive(dead_pid()));
}
