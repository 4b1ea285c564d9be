//! Forgetting snapshots: retention policies, grouping, and removing the
//! snapshot files a plan names.
//!
//! Planning is pure ([`Plan::by_policy`], [`Plan::by_ids`]); [`apply`] is the
//! one place that deletes. Forgetting removes only snapshot files; the data
//! they referenced stays until a prune removes what no snapshot needs.

pub mod duration;
pub mod group;
pub mod policy;

#[cfg(test)]
mod tests;

use chrono::TimeZone;

pub use duration::CalendarDuration;
pub use group::{GroupBy, GroupKey};
pub use policy::{apply_policy, Bucket, Decision, Policy, Reason, SnapshotInfo, UNLIMITED};

use crate::id::SnapshotId;
use crate::repo::snapshots::SnapshotFilter;
use crate::repo::{LockKind, RepoError, Repository};
use crate::storage::{FileKind, StorageError};

/// Everything that can go wrong planning or applying a forget.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("no policy given: set a --keep-* option or name the snapshots to remove")]
    NoPolicy,
    #[error("duration {value:?}: {reason}")]
    BadDuration { value: String, reason: String },
    #[error("{option} {value}: a count must be 0 or more, or -1 (unlimited)")]
    BadCount { option: String, value: i32 },
    #[error("--group-by {value:?}: unknown field {field:?} (use host, paths, tags, or '' for none)")]
    BadGroupBy { value: String, field: String },
    #[error("removing snapshot {id}: {source}")]
    Delete {
        id: SnapshotId,
        #[source]
        source: StorageError,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl ForgetError {
    /// Whether the error is in what the user asked for (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NoPolicy | Self::BadDuration { .. } | Self::BadCount { .. } | Self::BadGroupBy { .. }
        )
    }
}

/// The decisions for one group of snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    pub key: GroupKey,
    /// Newest first.
    pub decisions: Vec<Decision>,
}

impl GroupPlan {
    pub fn kept(&self) -> usize {
        self.decisions.iter().filter(|d| d.keep).count()
    }

    pub fn removed(&self) -> usize {
        self.decisions.len() - self.kept()
    }
}

/// What a forget keeps and removes, group by group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub groups: Vec<GroupPlan>,
}

impl Plan {
    /// Applies `policy` to each group of `snapshots`. Refuses an empty
    /// policy, which would otherwise decide nothing.
    pub fn by_policy<Tz: TimeZone>(
        snapshots: Vec<SnapshotInfo>,
        policy: &Policy,
        group_by: GroupBy,
        tz: &Tz,
        now_ns: i64,
    ) -> Result<Self, ForgetError> {
        policy.validate()?;
        if policy.is_empty() {
            return Err(ForgetError::NoPolicy);
        }
        let groups = group_by
            .group(snapshots)
            .into_iter()
            .map(|(key, list)| GroupPlan {
                key,
                decisions: apply_policy(&list, policy, tz, now_ns),
            })
            .collect();
        Ok(Self { groups })
    }

    /// Removes exactly `snapshots` (named by the user), grouped for display.
    pub fn by_ids(snapshots: Vec<SnapshotInfo>, group_by: GroupBy) -> Self {
        let groups = group_by
            .group(snapshots)
            .into_iter()
            .map(|(key, mut list)| {
                list.sort_by_key(|s| std::cmp::Reverse((s.time_ns, s.id)));
                GroupPlan {
                    key,
                    decisions: list
                        .into_iter()
                        .map(|snapshot| Decision {
                            snapshot,
                            keep: false,
                            reasons: Vec::new(),
                        })
                        .collect(),
                }
            })
            .collect();
        Self { groups }
    }

    /// Ids of the snapshots to remove, in plan order.
    pub fn to_remove(&self) -> Vec<SnapshotId> {
        self.groups
            .iter()
            .flat_map(|g| g.decisions.iter().filter(|d| !d.keep).map(|d| d.snapshot.id))
            .collect()
    }

    pub fn kept(&self) -> usize {
        self.groups.iter().map(GroupPlan::kept).sum()
    }

    pub fn removed(&self) -> usize {
        self.groups.iter().map(GroupPlan::removed).sum()
    }
}

/// Every snapshot of the repository that passes `filter`, oldest first.
pub fn load(repo: &Repository, filter: &SnapshotFilter) -> Result<Vec<SnapshotInfo>, ForgetError> {
    Ok(repo
        .list_snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .map(|(id, s)| SnapshotInfo::from_snapshot(id, &s))
        .collect())
}

/// Removes the snapshot files the plan removes, `connections` at a time;
/// returns their ids. Removing one that is already gone succeeds. On the
/// first failure it stops and names that snapshot; those removed before it
/// stay removed (each removal is a whole file, so nothing is half done).
pub fn apply(repo: &Repository, plan: &Plan, connections: usize) -> Result<Vec<SnapshotId>, ForgetError> {
    let ids = plan.to_remove();
    remove_snapshots(repo, &ids, connections)?;
    Ok(ids)
}

/// Removes every snapshot that passes `filter`, under a forget lock (which
/// lets backups and a prune run beside it), waiting up to `retry_lock` for
/// a conflicting lock. Returns the ids removed (none when nothing matches;
/// then no lock is taken). The filter must select something: an empty one
/// would match every snapshot, and is refused.
pub fn forget_matching(
    repo: &Repository,
    filter: &SnapshotFilter,
    retry_lock: std::time::Duration,
    connections: usize,
) -> Result<Vec<SnapshotId>, ForgetError> {
    if filter.hosts.is_empty() && filter.tags.is_empty() && filter.paths.is_empty() {
        return Err(ForgetError::Repo(RepoError::InvalidOption(
            "refusing to forget with an empty filter: it matches every snapshot".to_owned(),
        )));
    }
    let ids: Vec<SnapshotId> = load(repo, filter)?.into_iter().map(|s| s.id).collect();
    forget_ids(repo, &ids, retry_lock, connections)?;
    Ok(ids)
}

/// Removes the given snapshots under a forget lock (see [`forget_matching`]);
/// nothing to remove takes no lock.
pub fn forget_ids(
    repo: &Repository,
    ids: &[SnapshotId],
    retry_lock: std::time::Duration,
    connections: usize,
) -> Result<(), ForgetError> {
    if ids.is_empty() {
        return Ok(());
    }
    let lock = repo.lock(LockKind::Forget, retry_lock)?;
    lock.ensure_held()?;
    remove_snapshots(repo, ids, connections)?;
    drop(lock);
    Ok(())
}

/// Removes the given snapshot files, `connections` at a time.
pub fn remove_snapshots(repo: &Repository, ids: &[SnapshotId], connections: usize) -> Result<(), ForgetError> {
    let storage = repo.storage().clone();
    repo.block_on(async {
        for batch in ids.chunks(connections.max(1)) {
            let tasks: Vec<_> = batch
                .iter()
                .map(|id| {
                    let storage = storage.clone();
                    let id = *id;
                    let name = id.to_hex();
                    (
                        id,
                        repo.runtime()
                            .spawn(async move { storage.delete(FileKind::Snapshot, &name).await }),
                    )
                })
                .collect();
            for (id, task) in tasks {
                let result = task.await.map_err(|e| ForgetError::Delete {
                    id,
                    source: StorageError::Backend {
                        message: format!("the removal did not finish: {e}"),
                        transient: false,
                    },
                })?;
                result.map_err(|source| ForgetError::Delete { id, source })?;
            }
        }
        Ok(())
    })
}
