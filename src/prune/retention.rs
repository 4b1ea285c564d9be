//! Object lock in prune: a pack is deleted only once its lock has ended,
//! and everything prune keeps has its lock extended before it can end.
//!
//! Prune reads the lock of every stored pack (one HEAD request each) before
//! it plans, so a marked pack still under lock waits like one still in its
//! grace period. After its writes, it extends to a full lock period from
//! now the lock of every pack a snapshot needs, every index file, every
//! snapshot, every key and the config, when less than half the period is
//! left. Packs that no snapshot needs are not extended, so their locks run
//! out and a later prune can delete them.

use std::collections::HashMap;

use crate::format::config::ObjectLockConfig;
use crate::id::PackId;
use crate::repo::{IndexedRepository, RepoError};
use crate::storage::FileKind;

use super::{each_object, Result};

const NS_PER_SEC: i64 = 1_000_000_000;

/// Until when (Unix ns) each stored pack is locked.
pub(super) fn pack_locks(
    repo: &IndexedRepository,
    packs: impl Iterator<Item = PackId>,
    connections: usize,
) -> Result<HashMap<PackId, i64>> {
    let objects = packs.map(|id| (FileKind::Pack, id.to_hex())).collect();
    let found = each_object(repo, objects, connections, |storage, kind, name| async move {
        storage.locked_until(kind, &name).await
    })?;
    Ok(found
        .into_iter()
        .filter_map(|(_, name, until)| {
            let id = name.parse::<PackId>().ok()?;
            Some((id, until?.saturating_mul(NS_PER_SEC)))
        })
        .collect())
}

/// Extends the lock of `packs` and of every index file, snapshot, key and
/// the config to `lock.days` from `now_ns` where less than half of that is
/// left; returns how many locks were extended.
pub(super) fn extend_kept(
    repo: &IndexedRepository,
    lock: &ObjectLockConfig,
    packs: impl Iterator<Item = PackId>,
    known: &HashMap<PackId, i64>,
    now_ns: i64,
    connections: usize,
) -> Result<u64> {
    let now = now_ns / NS_PER_SEC;
    let period = crate::repo::retention(lock).period_secs();
    let until = now + period;
    let due = now + period / 2;
    let mut objects: Vec<(FileKind, String)> = Vec::new();
    // Packs whose lock is known to last long enough need no request.
    objects.extend(
        packs
            .filter(|id| known.get(id).is_none_or(|&ns| ns / NS_PER_SEC < due))
            .map(|id| (FileKind::Pack, id.to_hex())),
    );
    for kind in [FileKind::Index, FileKind::Snapshot, FileKind::Key, FileKind::Config] {
        let listed = repo.block_on(repo.storage().list(kind)).map_err(RepoError::from)?;
        objects.extend(listed.into_iter().map(|info| (kind, info.name)));
    }
    let extended = each_object(repo, objects, connections, move |storage, kind, name| async move {
        let current = match storage.locked_until(kind, &name).await {
            Ok(current) => current,
            // Deleted meanwhile (a forgotten snapshot, a replaced index).
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        if current.is_some_and(|c| c >= due) {
            return Ok(false);
        }
        match storage.extend_lock(kind, &name, until).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    })?;
    Ok(extended.into_iter().filter(|(_, _, done)| *done).count() as u64)
}
