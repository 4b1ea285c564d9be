//! Snapshots and their trees: every snapshot loads, every tree it reaches
//! loads and decodes, every data blob a file names is in the index.
//!
//! Reached blobs are bits in a [`Bitmap`] over the index's blob positions;
//! only blobs missing from the index are kept by id (each is an error).
//! Trees are walked depth first in batches, so the trees waiting to be
//! read are at most the subdirectories of the directories on one path.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::concurrent::for_each_bounded;
use super::report::ObjectType;
use super::structure::list;
use super::{CheckError, CheckReport};
use crate::crypto::MasterKey;
use crate::format::tree::{Content, NodeKind, Tree};
use crate::format::{escape, limits, BlobKind};
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::repo::treewalk::check_depth;
use crate::repo::{Bitmap, BlobLocation, Index, Repository};
use crate::storage::{FileKind, StorageError};

/// Where a tree was first reached from.
#[derive(Debug, Clone)]
struct Origin {
    snapshot: SnapshotId,
    /// The directory's path inside the snapshot (`/` for the root).
    path: String,
    /// How deep the tree's entries lie (1 for the root tree's own).
    depth: usize,
}

/// Trees read at once (at most `connections` of them in flight).
const WALK_BATCH: usize = 256;

/// Blobs reached from the snapshots.
#[derive(Debug, Default)]
pub(super) struct Reached {
    /// One bit per indexed blob, by [`Index::position`].
    pub blobs: Bitmap,
    /// Blobs reached but not in the index (each reported once).
    pub missing: HashSet<(BlobKind, BlobId)>,
}

impl Reached {
    fn new(index: &Index) -> Self {
        Self {
            blobs: Bitmap::new(index.len()),
            missing: HashSet::new(),
        }
    }

    /// Records `blob` as reached.
    fn reach(&mut self, index: &Index, kind: BlobKind, blob: &BlobId) -> Reach {
        match index.position(kind, blob) {
            Some(pos) if self.blobs.set(pos) => Reach::Again,
            Some(_) => Reach::First,
            None if self.missing.insert((kind, *blob)) => Reach::Missing,
            None => Reach::Again,
        }
    }
}

/// What reaching a blob found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Indexed and reached for the first time.
    First,
    /// Reached before (indexed or not).
    Again,
    /// Not in the index, reached for the first time.
    Missing,
}

/// Loads every snapshot and walks its trees, each tree once.
pub(super) fn check_snapshots(
    repo: &Repository,
    index: &Index,
    connections: usize,
    report: &mut CheckReport,
) -> Result<Reached, CheckError> {
    let mut names = list(repo, FileKind::Snapshot)?;
    names.sort();
    let mut reached = Reached::new(index);
    let mut frontier: Vec<(TreeId, Origin)> = Vec::new();
    for info in names {
        let Ok(id) = info.name.parse::<SnapshotId>() else {
            report.warning(ObjectType::Snapshot, &info.name, "is not named by a file id; ignored");
            continue;
        };
        let snapshot = match repo.load_snapshot(&id) {
            Ok(s) => s,
            Err(e) => {
                report.error(ObjectType::Snapshot, id, format!("cannot be loaded: {e}"));
                continue;
            }
        };
        report.counters.snapshots += 1;
        report.counters.bytes_read += info.size;
        let root = snapshot.tree;
        let Some(pos) = index.position(BlobKind::Tree, &BlobId::from(root)) else {
            report.error(
                ObjectType::Snapshot,
                id,
                format!("its root tree {root} is not in the index"),
            );
            continue;
        };
        if !reached.blobs.set(pos) {
            frontier.push((
                root,
                Origin {
                    snapshot: id,
                    path: "/".into(),
                    depth: 1,
                },
            ));
        }
    }
    // Depth first, a batch of trees read concurrently at a time.
    while !frontier.is_empty() {
        let batch = frontier.split_off(frontier.len().saturating_sub(WALK_BATCH));
        walk_batch(repo, index, batch, connections, &mut reached, report, &mut frontier)?;
    }
    report.counters.blobs_referenced = (reached.blobs.count_ones() + reached.missing.len()) as u64;
    Ok(reached)
}

/// Reads a batch of trees; pushes the subtrees not seen before on `next`.
fn walk_batch(
    repo: &Repository,
    index: &Index,
    batch: Vec<(TreeId, Origin)>,
    connections: usize,
    reached: &mut Reached,
    report: &mut CheckReport,
    next: &mut Vec<(TreeId, Origin)>,
) -> Result<(), CheckError> {
    let mut todo = Vec::with_capacity(batch.len());
    for (id, origin) in batch {
        // Only trees found in the index are queued.
        if let Some(loc) = index.get(BlobKind::Tree, &BlobId::from(id)) {
            todo.push((id, origin, loc));
        }
    }
    let storage = repo.storage().clone();
    let key: Arc<MasterKey> = repo.key_arc();
    for_each_bounded(
        repo.runtime(),
        todo,
        connections,
        move |(id, origin, loc): (TreeId, Origin, BlobLocation)| {
            let storage = storage.clone();
            async move {
                let got: Result<Bytes, StorageError> = storage
                    .get_range(
                        FileKind::Pack,
                        &loc.pack.to_hex(),
                        u64::from(loc.offset),
                        u64::from(loc.length),
                    )
                    .await;
                (id, origin, loc, got)
            }
        },
        |(id, origin, loc, got)| {
            let where_ = format!(
                "directory {} of snapshot {}",
                escape::name(origin.path.as_bytes()),
                origin.snapshot
            );
            let sealed = match got {
                Ok(b) => b,
                Err(e) => {
                    report.error(
                        ObjectType::Tree,
                        id,
                        format!("cannot be read from pack {} ({where_}): {e}", loc.pack),
                    );
                    return;
                }
            };
            report.counters.bytes_read += sealed.len() as u64;
            let tree = match open_tree(&key, &id, &loc, &sealed) {
                Ok(t) => t,
                Err(msg) => {
                    report.error(ObjectType::Tree, id, format!("in pack {} {msg} ({where_})", loc.pack));
                    return;
                }
            };
            report.counters.trees += 1;
            // Each tree is read once, so only the depth needs a bound (and
            // with it the length of the paths kept): no tree below one
            // that is too deep is queued.
            if check_depth(&id, origin.depth, tree.nodes.len()).is_err() {
                let max = limits::MAX_TREE_DEPTH;
                report.error(
                    ObjectType::Tree,
                    id,
                    format!("holds entries more than {max} directories deep; not walked ({where_})"),
                );
                return;
            }
            visit_nodes(index, &tree, &origin, reached, report, next);
        },
    )
}

/// Opens a tree blob, checks it against its id and decodes it.
pub(super) fn open_tree(key: &MasterKey, id: &TreeId, loc: &BlobLocation, sealed: &[u8]) -> Result<Tree, String> {
    let plain = key
        .open(
            BlobKind::Tree.object_kind(),
            sealed,
            limits::MAX_OBJECT,
            Some(loc.raw_length as usize),
        )
        .map_err(|e| format!("cannot be opened: {e}"))?;
    if key.blob_id(&plain) != id.0 {
        return Err("its content does not match its id".into());
    }
    Tree::decode(&plain).map_err(|e| format!("cannot be decoded: {e}"))
}

/// Records the blobs a tree names; queues subtrees not seen before.
fn visit_nodes(
    index: &Index,
    tree: &Tree,
    origin: &Origin,
    reached: &mut Reached,
    report: &mut CheckReport,
    next: &mut Vec<(TreeId, Origin)>,
) {
    for node in &tree.nodes {
        let path = if origin.path == "/" {
            format!("/{}", node.name_lossy())
        } else {
            format!("{}/{}", origin.path, node.name_lossy())
        };
        if node.kind == NodeKind::Dir {
            if let Some(sub) = node.subtree {
                let blob = BlobId::from(sub);
                match reached.reach(index, BlobKind::Tree, &blob) {
                    Reach::Again => {}
                    Reach::First => next.push((
                        sub,
                        Origin {
                            snapshot: origin.snapshot,
                            path,
                            depth: origin.depth + 1,
                        },
                    )),
                    Reach::Missing => report.error(
                        ObjectType::Tree,
                        sub,
                        format!(
                            "is not in the index (directory {} of snapshot {})",
                            escape::name(path.as_bytes()),
                            origin.snapshot
                        ),
                    ),
                }
            }
            continue;
        }
        for content in &node.content {
            let Content::Blob(blob) = content else { continue };
            if reached.reach(index, BlobKind::Data, blob) == Reach::Missing {
                report.error(
                    ObjectType::DataBlob,
                    blob,
                    format!(
                        "is not in the index (file {} of snapshot {})",
                        escape::name(path.as_bytes()),
                        origin.snapshot
                    ),
                );
            }
        }
    }
}
