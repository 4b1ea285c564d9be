//! Prune: find what no snapshot needs, mark it, and delete what was marked
//! long enough ago, while backups go on.
//!
//! The order of writes and deletions (format-spec/format.md, "Pruning"):
//! 1. repacked blobs go to new packs, indexed by new index files;
//! 2. index files that change are written anew, then one file naming the
//!    ones it replaces in `supersedes` and carrying every mark, new marks
//!    as pending; once it is durable the time is read and one more file
//!    replaces it with the new marks stamped with that time;
//! 3. the replaced index files are deleted;
//! 4. the packs whose marks expired are deleted.
//!
//! A crash after any step leaves a repository that check passes (at worst
//! with duplicate index entries or packs no index names) and that the next
//! prune finishes.

pub mod plan;
mod retention;
pub mod safety;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rayon::prelude::*;

use crate::format::index::{IndexFile, MarkedPack};
use crate::format::pack::PackEntry;
use crate::format::tree::{Content, NodeKind};
use crate::format::BlobKind;
use crate::id::{BlobId, IndexId, PackId, SnapshotId, TreeId};
use crate::repo::saver::{BlobSaver, SaverOptions};
use crate::repo::{Bitmap, Index, IndexedRepository, RepoError};
use crate::storage::{FileKind, StorageError};

pub use plan::{MaxUnused, PackFacts, Plan, PlanOptions, PlanStats, CLOCK_ALLOWANCE_NS, MARK_PENDING_NS};
pub use safety::prune_repository;

/// Where prune reads the time: once when it starts (to judge the age of
/// marks and object locks) and once when the index file carrying new marks
/// is durable (their time). A fixed `i64` is a clock that stands still.
pub trait Clock {
    fn now_ns(&self) -> i64;
}

impl Clock for i64 {
    fn now_ns(&self) -> i64 {
        *self
    }
}

impl<F: Fn() -> i64> Clock for F {
    fn now_ns(&self) -> i64 {
        self()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        crate::repo::now_ns()
    }
}

/// Errors of prune.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(
        "snapshot {snapshot} needs {kind} blob {id}, which no index lists: nothing was changed; \
         run `cairn check`, then `cairn repair index` or `cairn repair snapshots`"
    )]
    Unindexed {
        snapshot: SnapshotId,
        kind: &'static str,
        id: BlobId,
    },
    #[error(
        "pack {pack} is missing from storage but holds blobs that snapshots need ({more} more such packs): \
         nothing was changed; run `cairn repair snapshots`"
    )]
    MissingPack { pack: PackId, more: usize },
    #[error("the lock on the repository was lost: {0}")]
    LockLost(String),
    #[error(
        "pack {pack} cannot be repacked: {reason}; its blobs were left where they are. \
         Run `cairn check` and `cairn repair index`"
    )]
    BadPack { pack: PackId, reason: String },
    #[error(
        "grace {grace} is shorter than the lock lifetime ({lock_ttl}): a process whose lock was lost \
         must have the time to notice it before its packs go"
    )]
    GraceTooShort { grace: String, lock_ttl: String },
}

pub type Result<T, E = PruneError> = std::result::Result<T, E>;

/// How prune runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub max_unused: MaxUnused,
    /// Most pack bytes to download for repacking (None: no limit).
    pub max_repack_bytes: Option<u64>,
    /// Combine packs smaller than half the pack size.
    pub repack_small: bool,
    /// How long a pack stays marked before it may be deleted.
    pub grace: Duration,
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// Delete what no snapshot needs in this run instead of marking it.
    /// Only safe while no other process uses the repository: the caller
    /// holds an exclusive lock.
    pub instant_delete: bool,
    /// Concurrent transfers.
    pub connections: usize,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: MaxUnused::Percent(5.0),
            max_repack_bytes: None,
            repack_small: true,
            grace: DEFAULT_GRACE,
            dry_run: false,
            instant_delete: false,
            connections: 2,
        }
    }
}

/// Default time between marking a pack and deleting it.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(12 * 3600);

/// What prune found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub instant_delete: bool,
    pub snapshots: u64,
    pub trees: u64,
    #[serde(flatten)]
    pub plan: PlanStats,
    /// Packs marked earlier that wait for their grace period or a lock.
    pub waiting: Vec<String>,
    pub new_packs: u64,
    pub index_files_written: u64,
    pub index_files_deleted: u64,
    pub packs_deleted: u64,
    /// Objects whose object lock was extended.
    pub locks_extended: u64,
}

/// Checks, before each step that changes the repository, that the caller
/// still holds its lock.
pub trait LockCheck {
    fn still_held(&self) -> std::result::Result<(), String>;
}

impl LockCheck for () {
    fn still_held(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Runs prune. `lock_times` are the start times (Unix ns) of the live locks
/// of other processes, listed before the index was loaded; `clock` gives
/// the time of the run and, later, the time new marks are stamped with.
pub fn prune(
    repo: &IndexedRepository,
    opts: &PruneOptions,
    lock_times: &[i64],
    clock: impl Clock,
    lock: &dyn LockCheck,
) -> Result<PruneReport> {
    let now_ns = clock.now_ns();
    let index = repo.index();
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        instant_delete: opts.instant_delete,
        ..PruneReport::default()
    };
    let live = reachable(repo, &mut report)?;
    let scan = scan_index(repo, &live)?;
    // A local index table that failed while read may have hidden blobs
    // from the scan: nothing is decided on such answers.
    if let Some(path) = index.table_failed() {
        return Err(PruneError::Repo(RepoError::IndexTable {
            path: path.to_owned(),
            reason: "it failed while prune read it; run prune again".into(),
        }));
    }
    let stored: HashMap<PackId, u64> = repo
        .block_on(repo.storage().list(FileKind::Pack))
        .map_err(RepoError::from)?
        .into_iter()
        .filter_map(|info| info.name.parse::<PackId>().ok().map(|id| (id, info.size)))
        .collect();
    let marks = earliest_marks(index.marked());
    let object_lock = repo.config().object_lock;
    // The retention of every pack that may be deleted in this run: the
    // marked ones, and with --instant-delete every stored one.
    let locks = match object_lock {
        Some(_) if opts.instant_delete => retention::pack_locks(repo, stored.keys().copied(), opts.connections)?,
        Some(_) => retention::pack_locks(
            repo,
            marks.keys().filter(|id| stored.contains_key(id)).copied(),
            opts.connections,
        )?,
        None => HashMap::new(),
    };
    let facts = pack_facts(&scan, &stored, &marks, &locks);
    let plan_opts = PlanOptions {
        max_unused: opts.max_unused,
        max_repack_bytes: opts.max_repack_bytes,
        small_pack: if opts.repack_small {
            u64::from(repo.config().pack_size) / 2
        } else {
            0
        },
        pack_size: u64::from(repo.config().pack_size),
        grace_ns: i64::try_from(opts.grace.as_nanos()).unwrap_or(i64::MAX),
        now_ns,
        instant: opts.instant_delete,
    };
    let plan = plan::plan(&facts, lock_times, &plan_opts);
    if let Some(first) = plan.missing_needed.first() {
        return Err(PruneError::MissingPack {
            pack: *first,
            more: plan.missing_needed.len() - 1,
        });
    }
    report.plan = plan.stats.clone();
    report.waiting = plan.wait.iter().map(PackId::to_hex).collect();
    if opts.dry_run {
        return Ok(report);
    }

    // 1. Repack.
    if !plan.repack.is_empty() {
        lock.still_held().map_err(PruneError::LockLost)?;
        report.new_packs = repack(repo, &live, &plan.repack, opts.connections)?;
    }

    // 2. New index files for those that change, then the one carrying the
    //    marks and the list of files it replaces.
    let dropped: HashSet<PackId> = plan.delete.iter().chain(&plan.forget_missing).copied().collect();
    let mut standing: Vec<MarkedPack> = plan
        .wait
        .iter()
        .filter_map(|id| marks.get(id).map(|&t| MarkedPack { id: *id, marked_ns: t }))
        .collect();
    standing.sort_by_key(|m| m.id);
    let mut old_marks: Vec<MarkedPack> = marks
        .iter()
        .map(|(id, &t)| MarkedPack { id: *id, marked_ns: t })
        .collect();
    old_marks.sort_by_key(|m| m.id);
    let rewrite: Vec<IndexId> = scan
        .files
        .iter()
        .filter(|f| f.has_marks || f.packs.iter().any(|p| dropped.contains(p)))
        .map(|f| f.id)
        .collect();
    if !plan.mark.is_empty() || standing != old_marks || !rewrite.is_empty() {
        lock.still_held().map_err(PruneError::LockLost)?;
        let mut supersedes: Vec<IndexId> = Vec::new();
        for id in &rewrite {
            let mut file = load_index_file(repo, id)?;
            supersedes.push(*id);
            supersedes.append(&mut file.supersedes);
            file.packs.retain(|p| !dropped.contains(&p.id));
            file.marked.clear();
            if !file.packs.is_empty() {
                write_index_file(repo, &file)?;
                report.index_files_written += 1;
            }
        }
        supersedes.sort();
        supersedes.dedup();
        let with_marks = |time: i64| {
            let mut all = standing.clone();
            all.extend(plan.mark.iter().map(|id| MarkedPack {
                id: *id,
                marked_ns: time,
            }));
            all.sort_by_key(|m| m.id);
            all
        };
        if !plan.mark.is_empty() {
            // New marks become visible with this file, before their time
            // is known: pending, they count as marks but never as old.
            let pending = write_index_file(
                repo,
                &IndexFile {
                    supersedes: supersedes.clone(),
                    packs: Vec::new(),
                    marked: with_marks(MARK_PENDING_NS),
                },
            )?;
            report.index_files_written += 1;
            supersedes.push(pending);
            supersedes.sort();
        }
        // Any process that read the index without the new marks did so
        // before now, and took its lock before that.
        let stamp = if plan.mark.is_empty() {
            now_ns
        } else {
            clock.now_ns().max(now_ns)
        };
        let last = IndexFile {
            supersedes: supersedes.clone(),
            packs: Vec::new(),
            marked: with_marks(stamp),
        };
        write_index_file(repo, &last)?;
        report.index_files_written += 1;

        // 3. The replaced index files.
        lock.still_held().map_err(PruneError::LockLost)?;
        report.index_files_deleted = delete_all(repo, FileKind::Index, supersedes, opts.connections)?;
    }

    // 4. Packs whose marks expired.
    if !plan.delete.is_empty() {
        lock.still_held().map_err(PruneError::LockLost)?;
        report.packs_deleted = delete_all(repo, FileKind::Pack, plan.delete.clone(), opts.connections)?;
    }

    // 5. Under an object lock, what stays keeps its protection.
    if let Some(object_lock) = &object_lock {
        lock.still_held().map_err(PruneError::LockLost)?;
        let leaving: HashSet<PackId> = plan
            .mark
            .iter()
            .chain(&plan.delete)
            .chain(&plan.wait)
            .chain(&plan.forget_missing)
            .copied()
            .collect();
        let kept = facts
            .iter()
            .filter(|f| f.stored && f.indexed && !leaving.contains(&f.id))
            .map(|f| f.id);
        report.locks_extended = retention::extend_kept(repo, object_lock, kept, &locks, now_ns, opts.connections)?;
    }
    Ok(report)
}

/// Trees loaded at once while walking.
const WALK_BATCH: usize = 64;

/// Marks every blob reachable from a snapshot, walking each tree once.
///
/// Snapshots are listed after the index was loaded, so a backup that
/// finished in between has a snapshot whose new blobs this index does not
/// list (they are in an index file written after the load). Such a
/// snapshot is walked as far as this index goes: it is no different from
/// one written just after the listing, which the lock times and the next
/// prune protect. A snapshot that needs a blob no index file lists at all
/// stops prune before any change.
fn reachable(repo: &IndexedRepository, report: &mut PruneReport) -> Result<Bitmap> {
    let index = repo.index();
    let mut live = Bitmap::new(index.len());
    let snapshots = list_snapshots(repo)?;
    report.snapshots = snapshots.len() as u64;
    let mut frontier: Vec<(TreeId, SnapshotId)> = Vec::new();
    let mut unindexed: Vec<Unlisted> = Vec::new();
    for (sid, snap) in &snapshots {
        visit_tree(index, &mut live, snap.tree, *sid, &mut frontier, &mut unindexed);
    }
    while !frontier.is_empty() {
        let batch: Vec<(TreeId, SnapshotId)> = frontier.split_off(frontier.len().saturating_sub(WALK_BATCH));
        let loaded: Vec<_> = batch
            .par_iter()
            .map(|(id, sid)| repo.load_tree(id).map(|t| (t, *sid)))
            .collect();
        for result in loaded {
            let (tree, sid) = result?;
            report.trees += 1;
            for node in &tree.nodes {
                if let Some(sub) = node.subtree {
                    visit_tree(index, &mut live, sub, sid, &mut frontier, &mut unindexed);
                }
                if node.kind == NodeKind::File {
                    for c in &node.content {
                        if let Content::Blob(id) = c {
                            match index.position(BlobKind::Data, id) {
                                Some(pos) => {
                                    live.set(pos);
                                }
                                None => unindexed.push(Unlisted {
                                    snapshot: sid,
                                    kind: BlobKind::Data,
                                    id: *id,
                                }),
                            }
                        }
                    }
                }
            }
        }
    }
    if !unindexed.is_empty() {
        let newer = indexed_since(repo)?;
        if let Some(u) = unindexed.iter().find(|u| !newer.contains(&(u.kind, u.id))) {
            return Err(PruneError::Unindexed {
                snapshot: u.snapshot,
                kind: match u.kind {
                    BlobKind::Data => "data",
                    BlobKind::Tree => "tree",
                },
                id: u.id,
            });
        }
    }
    Ok(live)
}

/// A blob a snapshot needs that the loaded index does not list.
struct Unlisted {
    snapshot: SnapshotId,
    kind: BlobKind,
    id: BlobId,
}

/// The blobs of the index files written since the index was loaded (by
/// backups running beside prune), in packs that are stored. Index files
/// the loaded ones superseded are not among them: superseding files come
/// from prune, and their packs are gone or listed by the loaded index.
fn indexed_since(repo: &IndexedRepository) -> Result<HashSet<(BlobKind, BlobId)>> {
    let loaded: HashSet<IndexId> = repo.index().files().iter().copied().collect();
    let names = repo
        .block_on(repo.storage().list(FileKind::Index))
        .map_err(RepoError::from)?;
    let stored: HashSet<PackId> = repo
        .block_on(repo.storage().list(FileKind::Pack))
        .map_err(RepoError::from)?
        .into_iter()
        .filter_map(|info| info.name.parse::<PackId>().ok())
        .collect();
    let mut found = HashSet::new();
    for info in names {
        let Ok(id) = info.name.parse::<IndexId>() else {
            continue;
        };
        if loaded.contains(&id) {
            continue;
        }
        let file = match load_index_file(repo, &id) {
            Ok(f) => f,
            // Removed meanwhile: it was superseded, so not a backup's.
            Err(PruneError::Repo(RepoError::Storage(e))) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if !file.supersedes.is_empty() {
            continue;
        }
        for pack in file.packs.iter().filter(|p| stored.contains(&p.id)) {
            found.extend(pack.blobs.iter().map(|b| (b.kind, b.id)));
        }
    }
    Ok(found)
}

/// Every snapshot. One that is listed but gone when read was removed by a
/// forget running beside prune: it needs nothing, so it is skipped.
fn list_snapshots(repo: &IndexedRepository) -> Result<Vec<(SnapshotId, crate::format::snapshot::Snapshot)>> {
    let names = repo
        .block_on(repo.storage().list(FileKind::Snapshot))
        .map_err(RepoError::from)?;
    let mut out = Vec::with_capacity(names.len());
    for info in names {
        let Ok(id) = info.name.parse::<SnapshotId>() else {
            continue;
        };
        match repo.load_snapshot(&id) {
            Ok(s) => out.push((id, s)),
            Err(RepoError::Storage(e)) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn visit_tree(
    index: &Index,
    live: &mut Bitmap,
    tree: TreeId,
    sid: SnapshotId,
    frontier: &mut Vec<(TreeId, SnapshotId)>,
    unindexed: &mut Vec<Unlisted>,
) {
    let blob = BlobId::from(tree);
    match index.position(BlobKind::Tree, &blob) {
        Some(pos) => {
            if !live.set(pos) {
                frontier.push((tree, sid));
            }
        }
        None => unindexed.push(Unlisted {
            snapshot: sid,
            kind: BlobKind::Tree,
            id: blob,
        }),
    }
}

/// One live index file as prune saw it.
struct ScannedFile {
    id: IndexId,
    packs: Vec<PackId>,
    has_marks: bool,
}

/// What the index says about a pack.
struct ScannedPack {
    kind: BlobKind,
    size: u64,
    blobs: u64,
    used_blobs: u64,
    used_bytes: u64,
    unused_bytes: u64,
}

struct Scan {
    files: Vec<ScannedFile>,
    packs: HashMap<PackId, ScannedPack>,
}

/// Whether this copy of a blob is the one a snapshot needs: the blob is
/// reachable and the index reads it from this pack.
fn is_used(index: &Index, live: &Bitmap, pack: &PackId, e: &PackEntry) -> bool {
    index
        .position_and_location(e.kind, &e.id)
        .is_some_and(|(pos, loc)| live.get(pos) && loc.pack == *pack)
}

/// Reads the live index files one at a time and sums up each pack.
fn scan_index(repo: &IndexedRepository, live: &Bitmap) -> Result<Scan> {
    let index = repo.index();
    let mut scan = Scan {
        files: Vec::new(),
        packs: HashMap::new(),
    };
    for id in index.files() {
        let file = load_index_file(repo, id)?;
        let mut packs = Vec::with_capacity(file.packs.len());
        for p in &file.packs {
            packs.push(p.id);
            if scan.packs.contains_key(&p.id) {
                continue;
            }
            let mut s = ScannedPack {
                kind: p.blobs.first().map_or(BlobKind::Data, |e| e.kind),
                size: p.size,
                blobs: p.blobs.len() as u64,
                used_blobs: 0,
                used_bytes: 0,
                unused_bytes: 0,
            };
            for e in &p.blobs {
                if is_used(index, live, &p.id, e) {
                    s.used_blobs += 1;
                    s.used_bytes += u64::from(e.length);
                } else {
                    s.unused_bytes += u64::from(e.length);
                }
            }
            scan.packs.insert(p.id, s);
        }
        scan.files.push(ScannedFile {
            id: *id,
            packs,
            has_marks: !file.marked.is_empty(),
        });
    }
    Ok(scan)
}

/// The earliest mark of each pack.
fn earliest_marks(marked: &[MarkedPack]) -> HashMap<PackId, i64> {
    let mut marks: HashMap<PackId, i64> = HashMap::new();
    for m in marked {
        let t = marks.entry(m.id).or_insert(m.marked_ns);
        *t = (*t).min(m.marked_ns);
    }
    marks
}

/// Every pack prune must decide on: the indexed ones and the stored ones.
fn pack_facts(
    scan: &Scan,
    stored: &HashMap<PackId, u64>,
    marks: &HashMap<PackId, i64>,
    locks: &HashMap<PackId, i64>,
) -> Vec<PackFacts> {
    let mut facts: Vec<PackFacts> = scan
        .packs
        .iter()
        .map(|(id, s)| PackFacts {
            id: *id,
            kind: s.kind,
            size: s.size,
            indexed: true,
            stored: stored.contains_key(id),
            blobs: s.blobs,
            used_blobs: s.used_blobs,
            used_bytes: s.used_bytes,
            unused_bytes: s.unused_bytes,
            marked_ns: marks.get(id).copied(),
            locked_until_ns: locks.get(id).copied(),
        })
        .collect();
    facts.extend(
        stored
            .iter()
            .filter(|(id, _)| !scan.packs.contains_key(id))
            .map(|(id, &size)| PackFacts {
                id: *id,
                kind: BlobKind::Data,
                size,
                indexed: false,
                stored: true,
                blobs: 0,
                used_blobs: 0,
                used_bytes: 0,
                unused_bytes: size,
                marked_ns: marks.get(id).copied(),
                locked_until_ns: locks.get(id).copied(),
            }),
    );
    facts.sort_by_key(|f| f.id);
    facts
}

/// Copies the used blobs of `packs` into new packs; returns how many packs
/// were written.
fn repack(repo: &IndexedRepository, live: &Bitmap, packs: &[PackId], connections: usize) -> Result<u64> {
    let index = repo.index();
    let saver = BlobSaver::new(
        repo,
        SaverOptions {
            connections,
            rewrite_known: true,
            ..SaverOptions::default()
        },
    )?;
    for pack in packs {
        let bytes: Bytes = repo
            .block_on(repo.storage().get(FileKind::Pack, &pack.to_hex()))
            .map_err(RepoError::from)?;
        // The pack's own header lists its blobs; the index decides which
        // copies are the used ones.
        let header = crate::repo::packer::header_of_pack(repo.key(), &bytes)
            .map_err(|reason| PruneError::BadPack { pack: *pack, reason })?;
        let used: Vec<PackEntry> = header
            .entries
            .into_iter()
            .filter(|e| is_used(index, live, pack, e))
            .collect();
        // Each blob is opened, checked against its id and handed to the
        // saver as it comes: only the pack and the blobs being sealed are
        // in memory.
        used.par_iter().try_for_each(|e| {
            let loc = crate::repo::BlobLocation {
                kind: e.kind,
                pack: *pack,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            };
            let sealed = bytes
                .get(e.offset as usize..e.end() as usize)
                .ok_or_else(|| RepoError::BadBlob {
                    kind: e.kind,
                    id: e.id,
                    pack: *pack,
                    reason: format!("it ends past the pack's {} bytes", bytes.len()),
                })?;
            let plain = repo.open_blob(&e.id, &loc, sealed)?;
            saver.save(e.kind, &plain).map(|_| ())
        })?;
    }
    Ok(saver.finish()?.packs)
}

fn load_index_file(repo: &IndexedRepository, id: &IndexId) -> Result<IndexFile> {
    let name = id.to_hex();
    let plain = repo.load_file(FileKind::Index, &name)?;
    IndexFile::decode(&plain).map_err(|source| {
        PruneError::Repo(RepoError::Format {
            kind: FileKind::Index,
            name,
            source,
        })
    })
}

/// Seals and stores an index file as any repository file is stored; returns
/// its id once it is durable.
fn write_index_file(repo: &IndexedRepository, file: &IndexFile) -> Result<IndexId> {
    let name = repo.save_file(FileKind::Index, &file.encode())?;
    name.parse()
        .map_err(|_| PruneError::Repo(RepoError::InvalidOption(format!("bad index file name {name}"))))
}

/// Deletes objects with at most `connections` requests at once; returns how
/// many were deleted.
fn delete_all<I: ToString>(repo: &IndexedRepository, kind: FileKind, ids: Vec<I>, connections: usize) -> Result<u64> {
    let objects = ids.iter().map(|id| (kind, id.to_string())).collect();
    let deleted = each_object(repo, objects, connections, |storage, kind, name| async move {
        storage.delete(kind, &name).await
    })?;
    Ok(deleted.len() as u64)
}

/// Runs `op` on every object with at most `connections` at once and
/// returns the results in no particular order.
pub(super) fn each_object<T, F, Fut>(
    repo: &IndexedRepository,
    objects: Vec<(FileKind, String)>,
    connections: usize,
    op: F,
) -> Result<Vec<(FileKind, String, T)>>
where
    T: Send + 'static,
    F: Fn(crate::storage::DynStorage, FileKind, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::result::Result<T, StorageError>> + Send + 'static,
{
    let storage = repo.storage().clone();
    let limit = Arc::new(tokio::sync::Semaphore::new(connections.max(1)));
    let op = Arc::new(op);
    repo.block_on(async move {
        let mut set = tokio::task::JoinSet::new();
        for (kind, name) in objects {
            let storage = storage.clone();
            let limit = limit.clone();
            let op = op.clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let out = op(storage, kind, name.clone()).await;
                out.map(|t| (kind, name, t))
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = set.join_next().await {
            let done = joined.map_err(|e| RepoError::Upload(format!("a storage task failed: {e}")))?;
            results.push(done.map_err(RepoError::from)?);
        }
        Ok::<_, PruneError>(results)
    })
}

#[cfg(test)]
mod tests;
