//! What keeps prune safe beside running backups, for every caller (the
//! command line, a maintenance Job): the grace period is no shorter than
//! the lock lifetime, the start times of the other live locks are listed
//! before the index is loaded, and the lock is checked before each step
//! that changes the repository.

use std::time::Duration;

use super::{prune, LockCheck, PruneError, PruneOptions, PruneReport, Result, SystemClock};
use crate::repo::lock::{is_stale, LOCK_TTL};
use crate::repo::{IndexedRepository, LockGuard, LockKind, LockWatch, Repository};

/// Refuses settings that would break the rules prune relies on: marked
/// packs must outlive any lock (else a process whose lock was lost could
/// lose its packs before it notices), unless everything is deleted at once
/// under an exclusive lock.
pub fn check_options(opts: &PruneOptions) -> Result<()> {
    if !opts.instant_delete && opts.grace < LOCK_TTL {
        return Err(PruneError::GraceTooShort {
            grace: short_duration(opts.grace),
            lock_ttl: short_duration(LOCK_TTL),
        });
    }
    Ok(())
}

/// The lock a run takes: a prune lock (beside backups), or an exclusive
/// one to delete at once. A dry run changes nothing: a prune lock.
pub fn lock_kind(opts: &PruneOptions) -> LockKind {
    if opts.instant_delete && !opts.dry_run {
        LockKind::Exclusive
    } else {
        LockKind::Prune
    }
}

/// The start times of the other live locks, listed before the index is
/// loaded: a backup that took its lock before a pack's mark was durable
/// holds off its deletion.
pub fn other_lock_times(repo: &Repository, mine: &[&LockGuard]) -> Result<Vec<i64>> {
    let now = crate::repo::now_ns();
    Ok(repo
        .list_locks()?
        .into_iter()
        .filter(|(_, l)| !mine.iter().any(|g| g.is_mine(l)) && !is_stale(l, now))
        .map(|(_, l)| l.time_ns)
        .collect())
}

/// A lock held by the caller, checked before each step that changes the
/// repository.
pub struct Held(pub LockWatch);

impl LockCheck for Held {
    fn still_held(&self) -> std::result::Result<(), String> {
        self.0.ensure_held().map_err(|e| e.to_string())
    }
}

/// Prunes `repo` from start to end: checks the options, takes the lock
/// (waiting up to `retry_lock` for a conflicting one), lists the other
/// locks, loads the index (in memory) and prunes under the lock.
pub fn prune_repository(repo: Repository, opts: &PruneOptions, retry_lock: Duration) -> Result<PruneReport> {
    check_options(opts)?;
    let lock = repo.lock(lock_kind(opts), retry_lock)?;
    let lock_times = other_lock_times(&repo, &[&lock])?;
    let repo = repo.load_index_in_memory()?;
    prune_locked(&repo, opts, &lock_times, &Held(lock.watch()))
}

/// Prunes a repository whose index is loaded, under a lock the caller
/// holds (`lock`), with the other locks' start times listed before the
/// index was loaded.
pub fn prune_locked(
    repo: &IndexedRepository,
    opts: &PruneOptions,
    lock_times: &[i64],
    lock: &dyn LockCheck,
) -> Result<PruneReport> {
    prune(repo, opts, lock_times, SystemClock, lock)
}

/// `90s`, `30m`, `12h`: the largest unit that divides the duration.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0".to_owned(),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::repo::RepoError;
    use crate::storage::memory::MemoryStorage;

    fn repo() -> Repository {
        let storage = Arc::new(MemoryStorage::new());
        Repository::init(storage, b"pw", crate::repo::test_options()).unwrap()
    }

    #[test]
    fn grace_shorter_than_the_lock_lifetime_is_refused() {
        let opts = PruneOptions {
            grace: Duration::from_secs(600),
            ..PruneOptions::default()
        };
        let err = check_options(&opts).unwrap_err();
        assert!(matches!(&err, PruneError::GraceTooShort { grace, lock_ttl } if grace == "10m" && lock_ttl == "30m"));
        assert!(err.to_string().contains("10m"), "{err}");
        let instant = PruneOptions {
            instant_delete: true,
            ..opts.clone()
        };
        assert!(check_options(&instant).is_ok());
        assert!(check_options(&PruneOptions::default()).is_ok());
        // The check runs before any lock is taken.
        let repo = repo();
        assert!(matches!(
            prune_repository(repo.clone(), &opts, Duration::ZERO),
            Err(PruneError::GraceTooShort { .. })
        ));
        assert!(repo.list_locks().unwrap().is_empty());
    }

    #[test]
    fn lock_kinds() {
        let mut opts = PruneOptions::default();
        assert_eq!(lock_kind(&opts), LockKind::Prune);
        opts.instant_delete = true;
        assert_eq!(lock_kind(&opts), LockKind::Exclusive);
        opts.dry_run = true;
        assert_eq!(lock_kind(&opts), LockKind::Prune);
    }

    #[test]
    fn other_lock_times_leave_out_mine() {
        let repo = repo();
        let theirs = repo.lock(LockKind::Shared, Duration::ZERO).unwrap();
        let mine = repo.lock(LockKind::Prune, Duration::ZERO).unwrap();
        let times = other_lock_times(&repo, &[&mine]).unwrap();
        assert_eq!(times.len(), 1);
        let all = repo.list_locks().unwrap();
        let their_time = all.iter().find(|(_, l)| theirs.is_mine(l)).unwrap().1.time_ns;
        assert_eq!(times, vec![their_time]);
        drop(theirs);
        assert!(other_lock_times(&repo, &[&mine]).unwrap().is_empty());
    }

    #[test]
    fn prune_repository_runs_beside_a_backup_lock_and_refuses_an_exclusive_one() {
        let repo = repo();
        let report = prune_repository(repo.clone(), &PruneOptions::default(), Duration::ZERO).unwrap();
        assert_eq!(report.snapshots, 0);
        assert!(repo.list_locks().unwrap().is_empty(), "the lock is released");

        let backup = repo.lock(LockKind::Shared, Duration::ZERO).unwrap();
        assert!(prune_repository(repo.clone(), &PruneOptions::default(), Duration::ZERO).is_ok());
        let instant = PruneOptions {
            instant_delete: true,
            ..PruneOptions::default()
        };
        let err = prune_repository(repo.clone(), &instant, Duration::ZERO).unwrap_err();
        assert!(matches!(err, PruneError::Repo(RepoError::Locked { .. })), "{err}");
        drop(backup);
    }

    #[test]
    fn held_reports_a_lost_lock() {
        let repo = repo();
        let lock = repo.lock(LockKind::Prune, Duration::ZERO).unwrap();
        let held = Held(lock.watch());
        assert!(held.still_held().is_ok());
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(Duration::from_secs(90)), "90s");
        assert_eq!(short_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(short_duration(Duration::from_secs(12 * 3600)), "12h");
        assert_eq!(short_duration(Duration::ZERO), "0");
    }
}
