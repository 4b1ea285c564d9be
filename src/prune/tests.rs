//! Prune on the memory backend, including a crash at every step.

use std::sync::Arc;

use super::*;
use crate::backup::progress::Progress;
use crate::backup::{backup_reader, BackupOptions};
use crate::check::{check, CheckOptions, ReadData};
use crate::repo::Repository;
use crate::storage::decorators::{FaultRule, FaultStorage, Operation};
use crate::storage::memory::MemoryStorage;
use crate::storage::DynStorage;

mod in_memory;

const HOUR: i64 = 3_600 * 1_000_000_000;
const T0: i64 = 1_000_000 * HOUR;

fn noise(seed: u64, len: usize) -> Vec<u8> {
    // Distinct seeds give distinct streams (xorshift needs a non-zero state).
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Fixture {
    fault: Arc<FaultStorage<MemoryStorage>>,
    storage: DynStorage,
    /// Each kept snapshot with the bytes it holds.
    kept: Vec<(SnapshotId, Vec<u8>)>,
    /// The forgotten snapshot of `c`.
    forgotten_c: crate::format::snapshot::Snapshot,
}

fn open(storage: &DynStorage) -> IndexedRepository {
    Repository::open(storage.clone(), b"pw").unwrap().load_index().unwrap()
}

fn backup(repo: &IndexedRepository, data: &[u8]) -> SnapshotId {
    backup_reader(repo, data, "data", &BackupOptions::default(), &Progress::default())
        .unwrap()
        .id
        .unwrap()
}

/// Three snapshots: `a`, `a` with a new tail, and an unrelated `c`. The
/// first and the third are forgotten, so some packs are wholly unused and
/// the second snapshot's packs are partly used.
fn fixture() -> Fixture {
    let fault = Arc::new(FaultStorage::new(MemoryStorage::new()));
    let storage: DynStorage = fault.clone();
    Repository::init(storage.clone(), b"pw", crate::repo::test_options()).unwrap();
    let a = noise(1, 1_500_000);
    let mut b = a[..400_000].to_vec();
    b.extend(noise(2, 300_000));
    let c = noise(3, 1_200_000);
    let repo = open(&storage);
    let sa = backup(&repo, &a);
    let repo = open(&storage);
    let sb = backup(&repo, &b);
    let repo = open(&storage);
    let sc = backup(&repo, &c);
    let forgotten_c = repo.load_snapshot(&sc).unwrap();
    for s in [sa, sc] {
        repo.block_on(storage.delete(FileKind::Snapshot, &s.to_hex())).unwrap();
    }
    Fixture {
        fault,
        storage,
        kept: vec![(sb, b)],
        forgotten_c,
    }
}

fn opts() -> PruneOptions {
    PruneOptions {
        max_unused: MaxUnused::Percent(0.0),
        grace: Duration::from_secs(2 * 3600),
        ..PruneOptions::default()
    }
}

fn run(storage: &DynStorage, opts: &PruneOptions, now: i64) -> Result<PruneReport> {
    prune(&open(storage), opts, &[], now, &())
}

/// The bytes of the one file of a stdin snapshot.
fn contents(repo: &IndexedRepository, id: &SnapshotId) -> Vec<u8> {
    let snap = repo.load_snapshot(id).unwrap();
    let tree = repo.load_tree(&snap.tree).unwrap();
    let mut out = Vec::new();
    for c in &tree.nodes[0].content {
        if let Content::Blob(b) = c {
            out.extend(repo.read_blob(BlobKind::Data, b).unwrap());
        }
    }
    out
}

/// check with every byte read finds no error and every kept snapshot holds
/// its bytes.
fn assert_healthy(f: &Fixture) {
    assert_kept(&f.storage, &f.kept);
}

fn assert_kept(storage: &DynStorage, kept: &[(SnapshotId, Vec<u8>)]) {
    let repo = open(storage);
    let report = check(
        &repo,
        &CheckOptions {
            read_data: ReadData::All,
            ..CheckOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.errors, 0, "{:#?}", report.problems);
    for (id, data) in kept {
        assert!(contents(&repo, id) == *data, "snapshot {id} changed");
    }
}

fn pack_bytes(storage: &DynStorage, repo: &IndexedRepository) -> (usize, u64) {
    let packs = repo.block_on(storage.list(FileKind::Pack)).unwrap();
    (packs.len(), packs.iter().map(|p| p.size).sum())
}

#[test]
fn a_clean_repository_needs_nothing() {
    let f = fixture();
    let repo = open(&f.storage);
    // Keep everything: put the forgotten data back into use.
    let all = Fixture { kept: vec![], ..f };
    let r = prune(&repo, &opts(), &[], T0, &()).unwrap();
    assert!(r.plan.mark_packs > 0);
    // After marking and deleting, a further run has nothing to do.
    run(&all.storage, &opts(), T0 + 3 * HOUR).unwrap();
    let r = run(&all.storage, &opts(), T0 + 4 * HOUR).unwrap();
    assert_eq!(
        (
            r.plan.mark_packs,
            r.plan.repack_packs,
            r.plan.delete_packs,
            r.plan.wait_packs
        ),
        (0, 0, 0, 0),
        "{r:#?}"
    );
    assert_eq!(r.index_files_written, 0);
    assert_eq!(r.plan.remaining_unused_bytes, 0);
}

#[test]
fn unused_packs_are_marked_and_deleted_only_after_the_grace_period() {
    let f = fixture();
    let repo = open(&f.storage);
    let before = pack_bytes(&f.storage, &repo);
    let r = run(&f.storage, &opts(), T0).unwrap();
    assert!(r.plan.mark_packs > 0 && r.plan.repack_packs > 0, "{r:#?}");
    assert_eq!(r.packs_deleted, 0);
    assert!(r.new_packs > 0);
    assert_healthy(&f);
    let after_mark = pack_bytes(&f.storage, &repo);
    assert_eq!(
        after_mark.0,
        before.0 + r.new_packs as usize,
        "nothing is deleted at once"
    );

    // Within the grace period the marks stand.
    let r = run(&f.storage, &opts(), T0 + HOUR).unwrap();
    assert_eq!(r.packs_deleted, 0);
    assert!(r.plan.wait_packs > 0);
    assert_eq!(r.plan.mark_packs, 0, "{r:#?}");
    assert_healthy(&f);

    let r = run(&f.storage, &opts(), T0 + 3 * HOUR).unwrap();
    assert!(r.packs_deleted > 0);
    assert_healthy(&f);
    let (_, bytes) = pack_bytes(&f.storage, &repo);
    // Only the kept snapshot's data (700 kB) and its tree remain.
    assert!(bytes < 800_000, "{bytes} bytes of packs remain");
    assert!(bytes < before.1 / 3);
}

#[test]
fn a_live_lock_older_than_the_mark_holds_off_deletion() {
    let f = fixture();
    run(&f.storage, &opts(), T0).unwrap();
    let repo = open(&f.storage);
    let r = prune(&repo, &opts(), &[T0 - HOUR], T0 + 3 * HOUR, &()).unwrap();
    assert_eq!(r.packs_deleted, 0);
    assert!(r.plan.wait_packs > 0);
    assert_healthy(&f);
}

#[test]
fn a_backup_writes_blobs_of_marked_packs_again() {
    let f = fixture();
    run(&f.storage, &opts(), T0).unwrap();
    // `c` was forgotten and its packs marked; backing it up again must not
    // lean on them.
    let c = noise(3, 1_200_000);
    let repo = open(&f.storage);
    let sc = backup(&repo, &c);
    let f = Fixture {
        kept: vec![f.kept[0].clone(), (sc, c)],
        ..f
    };
    let r = run(&f.storage, &opts(), T0 + 3 * HOUR).unwrap();
    assert!(r.packs_deleted > 0);
    assert_eq!(r.plan.unmark_packs, 0);
    assert_healthy(&f);
}

#[test]
fn a_snapshot_that_needs_a_marked_pack_unmarks_it() {
    let f = fixture();
    let r = run(&f.storage, &opts(), T0).unwrap();
    assert!(r.plan.mark_packs > 0);
    // A backup that read the index before prune marked the packs finishes
    // after it, naming blobs in them: here, `c` comes back.
    let repo = open(&f.storage);
    let back = repo.save_snapshot(&f.forgotten_c).unwrap();
    let f = Fixture {
        kept: vec![f.kept[0].clone(), (back, noise(3, 1_200_000))],
        ..f
    };
    let r = run(&f.storage, &opts(), T0 + 3 * HOUR).unwrap();
    assert!(r.plan.unmark_packs > 0, "{r:#?}");
    assert_healthy(&f);
    // The unmarked packs stay; only `a`'s unused data went.
    let r = run(&f.storage, &opts(), T0 + 6 * HOUR).unwrap();
    assert_eq!(r.plan.unmark_packs, 0);
    assert_healthy(&f);
}

#[test]
fn a_missing_needed_pack_stops_prune_before_any_change() {
    let f = fixture();
    let repo = open(&f.storage);
    let kept = f.kept[0].0;
    let snap = repo.load_snapshot(&kept).unwrap();
    let tree = repo.load_tree(&snap.tree).unwrap();
    let Content::Blob(first) = tree.nodes[0].content[0] else {
        panic!("no blob")
    };
    let pack = repo.index().get(BlobKind::Data, &first).unwrap().pack;
    repo.block_on(f.storage.delete(FileKind::Pack, &pack.to_hex())).unwrap();
    let before = f.fault.total();
    let puts = f.fault.count(Operation::Put);
    let deletes = f.fault.count(Operation::Delete);
    let err = run(&f.storage, &opts(), T0).unwrap_err();
    assert!(
        matches!(err, PruneError::MissingPack { pack: p, .. } if p == pack),
        "{err}"
    );
    assert!(err.to_string().contains(&pack.to_hex()));
    assert!(f.fault.total() > before);
    assert_eq!(f.fault.count(Operation::Put), puts);
    assert_eq!(f.fault.count(Operation::Delete), deletes);
}

#[test]
fn a_pack_whose_header_is_damaged_stops_its_repack_and_deletes_nothing() {
    let f = fixture();
    let repo = open(&f.storage);
    let dry = prune(
        &repo,
        &PruneOptions {
            dry_run: true,
            ..opts()
        },
        &[],
        T0,
        &(),
    )
    .unwrap();
    assert!(dry.plan.repack_packs > 0, "the fixture repacks nothing: {dry:?}");
    // Damage the last header byte of every pack (its sealed tag).
    for info in repo.block_on(f.storage.list(FileKind::Pack)).unwrap() {
        let mut bytes = repo
            .block_on(f.storage.get(FileKind::Pack, &info.name))
            .unwrap()
            .to_vec();
        let at = bytes.len() - crate::format::pack::TRAILER_LEN - 1;
        bytes[at] ^= 0x40;
        repo.block_on(f.storage.delete(FileKind::Pack, &info.name)).unwrap();
        repo.block_on(f.storage.put(FileKind::Pack, &info.name, Bytes::from(bytes)))
            .unwrap();
    }
    let deletes = f.fault.count(Operation::Delete);
    let index_files = repo.block_on(f.storage.list(FileKind::Index)).unwrap().len();
    let err = run(&f.storage, &opts(), T0).unwrap_err();
    assert!(matches!(err, PruneError::BadPack { .. }), "{err}");
    assert!(err.to_string().contains("header cannot be opened"), "{err}");
    assert_eq!(f.fault.count(Operation::Delete), deletes, "prune deleted something");
    assert!(repo.block_on(f.storage.list(FileKind::Index)).unwrap().len() >= index_files);
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let f = fixture();
    let puts = f.fault.count(Operation::Put);
    let deletes = f.fault.count(Operation::Delete);
    let r = run(
        &f.storage,
        &PruneOptions {
            dry_run: true,
            ..opts()
        },
        T0,
    )
    .unwrap();
    assert!(r.dry_run && r.plan.mark_packs > 0 && r.plan.repack_packs > 0);
    assert_eq!(f.fault.count(Operation::Put), puts);
    assert_eq!(f.fault.count(Operation::Delete), deletes);
}

/// Prune twice (mark, then delete after the grace period) with the given
/// time offset.
fn two_prunes(storage: &DynStorage, start: i64) -> Result<()> {
    run(storage, &opts(), start)?;
    run(storage, &opts(), start + 3 * HOUR)?;
    Ok(())
}

#[test]
fn a_crash_at_any_step_leaves_a_repository_that_check_passes_and_prune_finishes() {
    // The size prune reaches without faults.
    let clean = fixture();
    two_prunes(&clean.storage, T0).unwrap();
    let target = pack_bytes(&clean.storage, &open(&clean.storage));

    let mut stopped = 0;
    // A request that fails before it takes effect, and one whose effect
    // happens but whose answer is lost.
    for (op, took_effect) in [
        (Operation::Put, false),
        (Operation::Delete, false),
        (Operation::Put, true),
        (Operation::Delete, true),
    ] {
        for k in 0.. {
            let f = fixture();
            let rule = FaultRule::on(op).after(k).permanent();
            f.fault.add_rule(if took_effect { rule.after_effect() } else { rule });
            let injected = f.fault.injected();
            let result = two_prunes(&f.storage, T0);
            if f.fault.injected() == injected {
                result.unwrap();
                break;
            }
            assert!(result.is_err(), "{op} #{k}: a failed write went unnoticed");
            stopped += 1;
            f.fault.heal();
            assert_healthy(&f);
            // The next prunes finish the work.
            two_prunes(&f.storage, T0 + 10 * HOUR).unwrap();
            run(&f.storage, &opts(), T0 + 20 * HOUR).unwrap();
            assert_healthy(&f);
            let end = pack_bytes(&f.storage, &open(&f.storage));
            assert!(
                end.1 <= target.1 + target.1 / 10,
                "{op} #{k}: {end:?} packs remain, a clean run leaves {target:?}"
            );
        }
    }
    assert!(stopped >= 12, "only {stopped} crash points were tried");
}

/// Backups and prunes run at once, each under its real lock, with no grace
/// period. Every backup loads the index before the prune beside it marks
/// packs, and stores data that was in the snapshot forgotten just before,
/// so it leans on packs that are being marked. Whatever is kept restores and
/// check finds nothing wrong.
#[test]
fn backups_and_prunes_running_together_lose_nothing() {
    use crate::repo::{LockKind, LockOptions};
    use std::sync::mpsc;

    let storage: DynStorage = Arc::new(MemoryStorage::new());
    Repository::init(storage.clone(), b"pw", crate::repo::test_options()).unwrap();
    let timing = LockOptions {
        poll: Duration::from_millis(5),
        ..LockOptions::default()
    };
    let wait = Duration::from_secs(60);
    let part = |k: u64| noise(1000 + k, 600_000);
    // Round r backs up parts r and r-2 (of the snapshot forgotten before).
    let data = move |r: u64| {
        let mut d = part(r);
        d.extend(part(r.saturating_sub(2)));
        d
    };
    let rounds = 6;
    let (started_tx, started) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel::<(SnapshotId, Vec<u8>)>();
    let (go_tx, go) = mpsc::channel::<()>();
    let (next_tx, next) = mpsc::channel::<()>();

    let backups = {
        let storage = storage.clone();
        let timing = timing.clone();
        std::thread::spawn(move || {
            for r in 0..rounds {
                // The forget of the round before is done.
                next.recv().unwrap();
                let repo = Repository::open(storage.clone(), b"pw").unwrap();
                let lock = repo.lock_with(LockKind::Shared, wait, &timing).unwrap();
                let repo = repo.load_index().unwrap();
                started_tx.send(()).unwrap();
                // The prune beside it has seen this lock.
                go.recv().unwrap();
                let bytes = data(r);
                let opts = BackupOptions {
                    lock: Some(lock.watch()),
                    ..BackupOptions::default()
                };
                let id = backup_reader(&repo, &bytes[..], "data", &opts, &Progress::default())
                    .unwrap()
                    .id
                    .unwrap();
                drop(lock);
                done_tx.send((id, bytes)).unwrap();
            }
        })
    };
    let o = PruneOptions {
        grace: Duration::ZERO,
        ..opts()
    };
    let mut kept: Vec<(SnapshotId, Vec<u8>)> = Vec::new();
    let mut marked = 0;
    let mut unmarked = 0;
    for _ in 0..rounds {
        next_tx.send(()).unwrap();
        started.recv().unwrap();
        // Prune beside the running backup.
        let repo = Repository::open(storage.clone(), b"pw").unwrap();
        let lock = repo.lock_with(LockKind::Prune, wait, &timing).unwrap();
        let now = crate::repo::now_ns();
        let times: Vec<i64> = repo
            .list_locks()
            .unwrap()
            .into_iter()
            .filter(|(_, l)| !lock.is_mine(l) && !crate::repo::lock::is_stale(l, now))
            .map(|(_, l)| l.time_ns)
            .collect();
        assert_eq!(times.len(), 1, "the backup's lock is live");
        go_tx.send(()).unwrap();
        let repo = repo.load_index().unwrap();
        let r = prune(&repo, &o, &times, now, &()).unwrap();
        assert_eq!(r.packs_deleted, 0, "the running backup holds deletions off");
        marked += r.plan.mark_packs;
        unmarked += r.plan.unmark_packs;
        drop(lock);
        // Then forget all but the newest snapshot, under an exclusive lock
        // (which waits for the backup).
        kept.push(done.recv().unwrap());
        let repo = Repository::open(storage.clone(), b"pw").unwrap();
        let _lock = repo.lock_with(LockKind::Exclusive, wait, &timing).unwrap();
        let n = kept.len() - 1;
        for (id, _) in kept.drain(..n) {
            repo.block_on(storage.delete(FileKind::Snapshot, &id.to_hex())).unwrap();
        }
    }
    backups.join().unwrap();
    assert!(marked > 0 && unmarked > 0, "marked {marked}, unmarked {unmarked}");
    assert_kept(&storage, &kept);
    // With nothing running, marks expire and everything unused goes.
    let mut deleted = 0;
    for _ in 0..4 {
        deleted += run(&storage, &o, crate::repo::now_ns()).unwrap().packs_deleted;
    }
    assert!(deleted > 0);
    assert_kept(&storage, &kept);
    let (_, bytes) = pack_bytes(&storage, &open(&storage));
    assert!(bytes < 1_400_000, "{bytes} bytes of packs remain for 1.2 MB of data");
}

/// A backup that ends between prune's loading of the index and its
/// listing of snapshots (what made `backups_and_prunes_running_together_lose_nothing`
/// fail now and then with `Unindexed { kind: "tree" }`): prune goes on, walks the new snapshot as
/// far as its index goes, and the lock time of the backup, then the next
/// prune, keep every pack the snapshot shares with forgotten data.
#[test]
fn a_snapshot_written_after_prune_loaded_its_index_does_not_stop_it() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    Repository::init(storage.clone(), b"pw", crate::repo::test_options()).unwrap();
    let a = noise(1, 600_000);
    let sa = backup(&open(&storage), &a);
    storage_delete_snapshot(&storage, &sa);
    // The backup takes its lock, then prune loads its index.
    let backup_lock = crate::repo::now_ns() - 1;
    let stale = open(&storage);
    let mut b = a.clone();
    b.extend(noise(2, 300_000));
    let sb = backup(&open(&storage), &b);
    let o = PruneOptions {
        grace: Duration::ZERO,
        ..opts()
    };
    let r = prune(&stale, &o, &[backup_lock], crate::repo::now_ns(), &()).unwrap();
    assert_eq!(r.snapshots, 1, "{r:?}");
    assert!(r.plan.mark_packs > 0, "the packs of a look unused to it: {r:?}");
    assert_eq!(r.packs_deleted, 0, "{r:?}");
    assert_kept(&storage, &[(sb, b.clone())]);
    for _ in 0..3 {
        run(&storage, &o, crate::repo::now_ns()).unwrap();
    }
    assert_kept(&storage, &[(sb, b)]);
}

fn storage_delete_snapshot(storage: &DynStorage, id: &SnapshotId) {
    let repo = open(storage);
    repo.block_on(storage.delete(FileKind::Snapshot, &id.to_hex())).unwrap();
}

#[test]
fn a_snapshot_needing_an_unindexed_blob_stops_prune_before_any_change() {
    let f = fixture();
    let repo = open(&f.storage);
    let mut broken = f.forgotten_c.clone();
    broken.tree = crate::id::TreeId([7; 32]);
    let sid = repo.save_snapshot(&broken).unwrap();
    let puts = f.fault.count(Operation::Put);
    let deletes = f.fault.count(Operation::Delete);
    let err = run(&f.storage, &opts(), T0).unwrap_err();
    assert!(
        matches!(&err, PruneError::Unindexed { snapshot, kind: "tree", .. } if *snapshot == sid),
        "{err}"
    );
    assert!(err.to_string().contains(&sid.to_hex()), "{err}");
    assert_eq!(f.fault.count(Operation::Put), puts);
    assert_eq!(f.fault.count(Operation::Delete), deletes);
}

#[test]
fn under_object_lock_prune_deletes_no_locked_pack_and_extends_what_it_keeps() {
    use crate::format::config::ObjectLockConfig;
    use crate::storage::decorators::simlock::SimulatedLock;
    const SEC: i64 = 1_000_000_000;
    let sim = Arc::new(SimulatedLock::new(MemoryStorage::new(), T0 / SEC));
    let storage: DynStorage = sim.clone();
    let init = crate::repo::InitOptions {
        object_lock: Some(ObjectLockConfig {
            days: 1,
            compliance: true,
        }),
        ..crate::repo::test_options()
    };
    Repository::init(storage.clone(), b"pw", init).unwrap();
    let a = noise(1, 1_500_000);
    let b = noise(2, 700_000);
    let sa = backup(&open(&storage), &a);
    let sb = backup(&open(&storage), &b);
    let repo = open(&storage);
    let kept_pack = repo.index().get(BlobKind::Data, &first_blob(&repo, &sb)).unwrap().pack;
    // Forgetting a locked snapshot hides it, as on S3.
    repo.block_on(storage.delete(FileKind::Snapshot, &sa.to_hex())).unwrap();
    assert!(sim.until(FileKind::Config, "config").is_some(), "the config is locked");

    let at = |hours: i64| {
        sim.set_now((T0 + hours * HOUR) / SEC);
        run(&storage, &opts(), T0 + hours * HOUR).unwrap()
    };
    let first = at(0);
    assert!(first.plan.mark_packs > 0, "{first:?}");
    // The grace period (2 h) is over, the lock (1 day) is not.
    let waiting = at(3);
    assert_eq!(waiting.plan.delete_packs, 0, "{waiting:?}");
    assert_eq!(waiting.plan.wait_locked_packs, first.plan.mark_packs);
    assert_eq!(waiting.locks_extended, 0, "21 of 24 hours left: nothing is due");
    // Less than half the period left: what is kept gets a full day again,
    // what is marked does not.
    let before = sim.until(FileKind::Pack, &kept_pack.to_hex()).unwrap();
    let extended = at(13);
    assert!(extended.locks_extended > 0, "{extended:?}");
    assert_eq!(extended.plan.delete_packs, 0);
    let after = sim.until(FileKind::Pack, &kept_pack.to_hex()).unwrap();
    assert_eq!(after, (T0 + 13 * HOUR) / SEC + 86_400);
    assert!(after > before);
    // Once the marked packs' locks end, they go; the kept ones stay locked.
    let done = at(25);
    assert_eq!(done.packs_deleted, first.plan.mark_packs, "{done:?}");
    assert!(
        sim.locked_deletes().iter().all(|(kind, _)| *kind != FileKind::Pack),
        "a locked pack was deleted: {:?}",
        sim.locked_deletes()
    );
    assert_kept(&storage, &[(sb, b)]);
}

fn first_blob(repo: &IndexedRepository, snap: &SnapshotId) -> BlobId {
    let snap = repo.load_snapshot(snap).unwrap();
    let tree = repo.load_tree(&snap.tree).unwrap();
    match tree.nodes[0].content.first() {
        Some(Content::Blob(b)) => *b,
        other => panic!("no blob in {other:?}"),
    }
}

#[test]
fn a_locked_repository_copied_where_nothing_locks_is_read_but_not_written() {
    use crate::format::config::ObjectLockConfig;
    use crate::storage::decorators::simlock::SimulatedLock;
    let sim: DynStorage = Arc::new(SimulatedLock::new(MemoryStorage::new(), T0 / 1_000_000_000));
    let init = crate::repo::InitOptions {
        object_lock: Some(ObjectLockConfig {
            days: 7,
            compliance: false,
        }),
        ..crate::repo::test_options()
    };
    Repository::init(sim.clone(), b"pw", init).unwrap();
    let data = noise(5, 300_000);
    let snap = backup(&open(&sim), &data);
    // A plain copy of every object, as a sync to local disk would make.
    let copy: DynStorage = Arc::new(MemoryStorage::new());
    let rt = tokio::runtime::Runtime::new().unwrap();
    for kind in FileKind::ALL {
        for info in rt.block_on(sim.list(kind)).unwrap() {
            let bytes = rt.block_on(sim.get(kind, &info.name)).unwrap();
            rt.block_on(copy.put(kind, &info.name, bytes)).unwrap();
        }
    }
    let count = |kind| rt.block_on(copy.list(kind)).unwrap().len();
    let (packs, snapshots) = (count(FileKind::Pack), count(FileKind::Snapshot));

    let repo = open(&copy);
    assert_eq!(contents(&repo, &snap), data, "the copy reads");
    let err = backup_reader(
        &repo,
        &noise(6, 300_000)[..],
        "data",
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("requires object lock"), "{err}");
    assert_eq!(count(FileKind::Pack), packs, "a pack was written without its lock");
    assert_eq!(count(FileKind::Snapshot), snapshots);
    let forget = rt.block_on(repo.storage().delete(FileKind::Snapshot, &snap.to_hex()));
    assert!(forget.is_err(), "deleted from a copy that cannot lock");
}

/// Reads `data`, then waits at its end: it signals `ready` and returns the
/// end only once `go` says so, keeping a backup open across other steps.
struct PausedAtEnd {
    data: std::io::Cursor<Vec<u8>>,
    ready: Option<std::sync::mpsc::Sender<()>>,
    go: std::sync::mpsc::Receiver<()>,
}

impl std::io::Read for PausedAtEnd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::io::Read::read(&mut self.data, buf)?;
        if n == 0 {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(());
                let _ = self.go.recv();
            }
        }
        Ok(n)
    }
}

/// A prune whose walk and repack take two hours marks `c`'s packs while a
/// backup that started ninety minutes into it is still running, leaning on
/// those packs (it loaded the index before the marks existed). The marks
/// count from when the index carrying them was durable, so the backup's lock
/// holds off their deletion until its snapshot names them; stamped with the
/// time the prune started, they were deleted under it.
#[test]
fn marks_count_from_when_their_index_is_durable_not_from_when_prune_started() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    let f = fixture();
    let c = noise(3, 1_200_000);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let storage = f.storage.clone();
    let data = c.clone();
    let running = std::thread::spawn(move || {
        let repo = open(&storage);
        let reader = PausedAtEnd {
            data: std::io::Cursor::new(data),
            ready: Some(ready_tx),
            go: go_rx,
        };
        backup_reader(&repo, reader, "data", &BackupOptions::default(), &Progress::default())
            .unwrap()
            .id
            .unwrap()
    });
    ready_rx.recv().unwrap();
    let backup_lock = T0 + 3 * HOUR / 2;

    // The first read of the clock is the start; the next one comes once the
    // marks are durable, two hours later.
    let reads = AtomicUsize::new(0);
    let slow_clock = || {
        if reads.fetch_add(1, Ordering::SeqCst) == 0 {
            T0
        } else {
            T0 + 2 * HOUR
        }
    };
    let r = prune(&open(&f.storage), &opts(), &[], slow_clock, &()).unwrap();
    assert!(r.plan.mark_packs > 0, "{r:#?}");

    // Past the grace period, with the backup still running.
    let r = prune(&open(&f.storage), &opts(), &[backup_lock], T0 + 5 * HOUR, &()).unwrap();
    assert_eq!(r.packs_deleted, 0, "{r:#?}");
    assert!(r.plan.wait_packs > 0);
    let marked = open(&f.storage).index().marked().to_vec();
    assert!(marked.iter().all(|m| m.marked_ns == T0 + 2 * HOUR), "{marked:?}");

    go_tx.send(()).unwrap();
    let back = running.join().unwrap();
    let f = Fixture {
        kept: vec![f.kept[0].clone(), (back, c)],
        ..f
    };
    assert_healthy(&f);
    let r = run(&f.storage, &opts(), T0 + 10 * HOUR).unwrap();
    assert!(r.plan.unmark_packs > 0, "{r:#?}");
    assert!(r.packs_deleted > 0, "`a`'s unused data goes: {r:#?}");
    assert_healthy(&f);
}

/// A prune that stops once the index carrying its new marks is durable
/// leaves them pending: they hide the packs from new backups but are never
/// old enough; the next prune marks them again with its own time.
#[test]
fn pending_marks_left_by_a_crash_are_marked_again() {
    // Fail the n-th index file prune writes, for growing n, until the
    // failure falls between the pending and the stamped file.
    let f = (0..8)
        .find_map(|n| {
            let f = fixture();
            f.fault
                .add_rule(FaultRule::on(Operation::Put).kind(FileKind::Index).after(n).permanent());
            let failed = run(&f.storage, &opts(), T0).is_err();
            f.fault.heal();
            let marked = open(&f.storage).index().marked().to_vec();
            (failed && !marked.is_empty() && marked.iter().all(|m| m.marked_ns == MARK_PENDING_NS)).then_some(f)
        })
        .expect("no crash left pending marks");
    assert_healthy(&f);
    // Long after, the pending marks are not old enough: marked anew.
    let r = run(&f.storage, &opts(), T0 + 100 * HOUR).unwrap();
    assert_eq!(r.packs_deleted, 0, "{r:#?}");
    assert!(r.plan.mark_packs > 0);
    let marked = open(&f.storage).index().marked().to_vec();
    assert!(marked.iter().all(|m| m.marked_ns == T0 + 100 * HOUR), "{marked:?}");
    let r = run(&f.storage, &opts(), T0 + 103 * HOUR).unwrap();
    assert!(r.packs_deleted > 0);
    assert_healthy(&f);
}

/// A forget runs beside prune: a snapshot prune listed is gone when it
/// reads it. Prune goes on without it.
#[test]
fn a_snapshot_removed_while_prune_lists_them_is_skipped() {
    let f = fixture();
    let kept = f.kept[0].0;
    f.fault.add_rule(
        FaultRule::on(Operation::Get)
            .kind(FileKind::Snapshot)
            .name(kept.to_hex())
            .not_found()
            .times(1),
    );
    let r = run(&f.storage, &opts(), T0).unwrap();
    assert_eq!(r.snapshots, 0, "{r:#?}");
    assert_eq!(f.fault.injected(), 1);
}
