//! `forget` through the library on the memory backend: a plan from stored
//! snapshots, its removal, and a removal that fails part way.

mod cli_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn::forget::{self, ForgetError, GroupBy, Plan, Policy};
use cairn::format::snapshot::{Snapshot, Summary};
use cairn::id::{SnapshotId, TreeId};
use cairn::repo::snapshots::SnapshotFilter;
use cairn::repo::Repository;
use cairn::storage::decorators::{FaultRule, FaultStorage, Operation};
use cairn::storage::memory::MemoryStorage;
use cairn::storage::{DynStorage, FileKind};
use chrono::FixedOffset;

const DAY: i64 = 86_400 * 1_000_000_000;
/// 2024-01-01T12:00:00Z.
const START: i64 = 1_704_110_400 * 1_000_000_000;

fn snapshot(time_ns: i64, host: &str) -> Snapshot {
    Snapshot {
        time_ns,
        tree: TreeId::default(),
        paths: vec!["/data".into()],
        hostname: host.into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        original: None,
        excludes: vec![],
        program_version: "test".into(),
        partial: false,
        summary: Summary::default(),
    }
}

struct Setup {
    faults: Arc<FaultStorage<MemoryStorage>>,
    repo: Repository,
    /// Snapshot ids of host "h", one a day, oldest first.
    days: Vec<SnapshotId>,
    other: SnapshotId,
}

fn setup(days: i64) -> Setup {
    let faults = Arc::new(FaultStorage::new(MemoryStorage::new()));
    let storage: DynStorage = faults.clone();
    let repo = Repository::init(storage, b"pw", cli_support::small_repo_options()).unwrap();
    let days = (0..days)
        .map(|d| repo.save_snapshot(&snapshot(START + d * DAY, "h")).unwrap())
        .collect();
    let other = repo.save_snapshot(&snapshot(START, "other")).unwrap();
    Setup {
        faults,
        repo,
        days,
        other,
    }
}

fn remaining(repo: &Repository) -> BTreeSet<SnapshotId> {
    repo.list_snapshots().unwrap().into_iter().map(|(id, _)| id).collect()
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).unwrap()
}

fn last(n: i32) -> Policy {
    Policy {
        last: n,
        ..Policy::default()
    }
}

#[test]
fn apply_removes_what_the_plan_removes() {
    let s = setup(5);
    let filter = SnapshotFilter {
        hosts: vec!["h".into()],
        ..SnapshotFilter::default()
    };
    let list = forget::load(&s.repo, &filter).unwrap();
    assert_eq!(list.len(), 5, "the filter leaves out the other host");
    let plan = Plan::by_policy(list, &last(2), GroupBy::default(), &utc(), i64::MAX).unwrap();
    assert_eq!((plan.kept(), plan.removed()), (2, 3));
    let removed: BTreeSet<SnapshotId> = forget::apply(&s.repo, &plan, 2).unwrap().into_iter().collect();
    assert_eq!(removed, s.days[..3].iter().copied().collect());
    let want: BTreeSet<SnapshotId> = [s.days[3], s.days[4], s.other].into_iter().collect();
    assert_eq!(remaining(&s.repo), want);
    assert_eq!(s.faults.count(Operation::Delete), 3);
}

#[test]
fn a_failed_removal_names_the_snapshot_and_a_rerun_finishes() {
    let s = setup(4);
    let victim = s.days[1];
    s.faults.add_rule(
        FaultRule::on(Operation::Delete)
            .kind(FileKind::Snapshot)
            .name(victim.to_hex())
            .permanent(),
    );
    let list = forget::load(&s.repo, &SnapshotFilter::default()).unwrap();
    let plan = Plan::by_policy(list, &last(1), GroupBy::default(), &utc(), i64::MAX).unwrap();
    let err = forget::apply(&s.repo, &plan, 1).unwrap_err();
    assert!(matches!(&err, ForgetError::Delete { id, .. } if *id == victim), "{err}");
    assert!(err.to_string().contains(&victim.to_hex()), "{err}");
    assert!(remaining(&s.repo).contains(&victim), "the failed one is still there");

    s.faults.heal();
    let list = forget::load(&s.repo, &SnapshotFilter::default()).unwrap();
    let plan = Plan::by_policy(list, &last(1), GroupBy::default(), &utc(), i64::MAX).unwrap();
    forget::apply(&s.repo, &plan, 4).unwrap();
    let want: BTreeSet<SnapshotId> = [s.days[3], s.other].into_iter().collect();
    assert_eq!(remaining(&s.repo), want);
}

#[test]
fn removing_by_id_twice_succeeds() {
    let s = setup(2);
    forget::remove_snapshots(&s.repo, &[s.days[0]], 2).unwrap();
    forget::remove_snapshots(&s.repo, &[s.days[0]], 2).unwrap();
    let want: BTreeSet<SnapshotId> = [s.days[1], s.other].into_iter().collect();
    assert_eq!(remaining(&s.repo), want);
}

#[test]
fn forget_matching_removes_only_what_the_filter_selects_under_a_lock() {
    let s = setup(3);
    let mut tagged = snapshot(START, "h");
    tagged.tags = vec!["k8s".into(), "backup-uid=u1".into()];
    let doomed = s.repo.save_snapshot(&tagged).unwrap();
    let by_tag = SnapshotFilter {
        tags: vec!["backup-uid=u1".into()],
        ..SnapshotFilter::default()
    };
    let removed = forget::forget_matching(&s.repo, &by_tag, std::time::Duration::ZERO, 2).unwrap();
    assert_eq!(removed, vec![doomed]);
    let left = remaining(&s.repo);
    assert_eq!(left.len(), 4);
    assert!(!left.contains(&doomed) && left.contains(&s.other));
    // Nothing matches any more: nothing to do.
    assert!(forget::forget_matching(&s.repo, &by_tag, std::time::Duration::ZERO, 2)
        .unwrap()
        .is_empty());
    // An empty filter would select everything: refused.
    let err = forget::forget_matching(&s.repo, &SnapshotFilter::default(), std::time::Duration::ZERO, 2).unwrap_err();
    assert!(err.to_string().contains("empty filter"), "{err}");
    assert_eq!(remaining(&s.repo).len(), 4);
    // A conflicting exclusive lock stops it before anything is removed.
    let tagged = s.repo.save_snapshot(&tagged).unwrap();
    let lock = s
        .repo
        .lock(cairn::repo::LockKind::Exclusive, std::time::Duration::ZERO)
        .unwrap();
    let err = forget::forget_matching(&s.repo, &by_tag, std::time::Duration::ZERO, 2).unwrap_err();
    assert!(
        matches!(err, ForgetError::Repo(cairn::repo::RepoError::Locked { .. })),
        "{err}"
    );
    assert!(remaining(&s.repo).contains(&tagged));
    drop(lock);
}
