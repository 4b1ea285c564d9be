//! Snapshots and their trees: every snapshot loads, every tree it reaches
//! loads and decodes, every data blob a file names is in the index.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::concurrent::for_each_bounded;
use super::report::ObjectType;
use super::structure::{list, LoadedIndex};
use super::{CheckError, CheckReport};
use crate::crypto::MasterKey;
use crate::format::tree::{Content, NodeKind, Tree};
use crate::format::{limits, BlobKind};
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::repo::{BlobLocation, Repository};
use crate::storage::{FileKind, StorageError};

/// Where a tree was first reached from.
#[derive(Debug, Clone)]
struct Origin {
    snapshot: SnapshotId,
    /// The directory's path inside the snapshot (`/` for the root).
    path: String,
}

/// Blobs reached from the snapshots.
#[derive(Debug, Default)]
pub(super) struct Reached {
    pub blobs: HashSet<(BlobKind, BlobId)>,
}

/// Loads every snapshot and walks its trees, each tree once.
pub(super) fn check_snapshots(
    repo: &Repository,
    loaded: &LoadedIndex,
    connections: usize,
    report: &mut CheckReport,
) -> Result<Reached, CheckError> {
    let mut names = list(repo, FileKind::Snapshot)?;
    names.sort();
    let mut reached = Reached::default();
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
        if !loaded.index.contains(BlobKind::Tree, &BlobId::from(root)) {
            report.error(
                ObjectType::Snapshot,
                id,
                format!("its root tree {root} is not in the index"),
            );
            continue;
        }
        if reached.blobs.insert((BlobKind::Tree, BlobId::from(root))) {
            frontier.push((
                root,
                Origin {
                    snapshot: id,
                    path: "/".into(),
                },
            ));
        }
    }
    // Breadth first: each level's trees are read concurrently.
    while !frontier.is_empty() {
        frontier = walk_level(repo, loaded, frontier, connections, &mut reached, report)?;
    }
    report.counters.blobs_referenced = reached.blobs.len() as u64;
    Ok(reached)
}

/// Reads one level of trees; returns the subtrees not seen before.
fn walk_level(
    repo: &Repository,
    loaded: &LoadedIndex,
    level: Vec<(TreeId, Origin)>,
    connections: usize,
    reached: &mut Reached,
    report: &mut CheckReport,
) -> Result<Vec<(TreeId, Origin)>, CheckError> {
    let mut todo = Vec::with_capacity(level.len());
    for (id, origin) in level {
        // Only trees found in the index are queued.
        if let Some(loc) = loaded.index.get(BlobKind::Tree, &BlobId::from(id)) {
            todo.push((id, origin, loc));
        }
    }
    let storage = repo.storage().clone();
    let key: Arc<MasterKey> = repo.key_arc();
    let mut next = Vec::new();
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
            let where_ = format!("directory {} of snapshot {}", origin.path, origin.snapshot);
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
            visit_nodes(loaded, &tree, &origin, reached, report, &mut next);
        },
    )?;
    Ok(next)
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
    loaded: &LoadedIndex,
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
                if !reached.blobs.insert((BlobKind::Tree, blob)) {
                    continue;
                }
                if loaded.index.contains(BlobKind::Tree, &blob) {
                    next.push((
                        sub,
                        Origin {
                            snapshot: origin.snapshot,
                            path,
                        },
                    ));
                } else {
                    report.error(
                        ObjectType::Tree,
                        sub,
                        format!("is not in the index (directory {path} of snapshot {})", origin.snapshot),
                    );
                }
            }
            continue;
        }
        for content in &node.content {
            let Content::Blob(blob) = content else { continue };
            if reached.blobs.insert((BlobKind::Data, *blob)) && !loaded.index.contains(BlobKind::Data, blob) {
                report.error(
                    ObjectType::DataBlob,
                    blob,
                    format!("is not in the index (file {path} of snapshot {})", origin.snapshot),
                );
            }
        }
    }
}

/// Reports indexed blobs that no snapshot reaches (info), the first
/// `limit` by name and then a count of the rest.
pub(super) fn report_unused(loaded: &LoadedIndex, reached: &Reached, limit: usize, report: &mut CheckReport) {
    // The index keeps no full ids: take them from the packs the live index
    // files list, one per (id, kind), sorted.
    let mut unused: Vec<(&BlobId, BlobKind, &PackId)> = loaded
        .packs
        .iter()
        .flat_map(|(pack, p)| p.blobs.iter().map(move |b| (&b.id, b.kind, pack)))
        .filter(|(id, kind, _)| !reached.blobs.contains(&(*kind, **id)))
        .collect();
    unused.sort_unstable();
    unused.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let mut shown = 0usize;
    let mut rest = 0u64;
    for (id, kind, listed_in) in unused {
        report.counters.unused_blobs += 1;
        if shown < limit {
            shown += 1;
            // The copy that reads would use.
            let pack = loaded.index.get(kind, id).map_or(*listed_in, |loc| loc.pack);
            let object = match kind {
                BlobKind::Tree => ObjectType::Tree,
                BlobKind::Data => ObjectType::DataBlob,
            };
            report.info(object, id, format!("in pack {pack} is not used by any snapshot"));
        } else {
            rest += 1;
        }
    }
    if rest > 0 {
        report.info(
            ObjectType::Repository,
            "index",
            format!("{rest} more blobs are not used by any snapshot"),
        );
    }
}
