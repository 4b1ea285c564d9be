//! `repair snapshots`: rewrite snapshots whose data is lost.
//!
//! Each snapshot's trees are walked. A tree that cannot be loaded becomes an
//! empty directory; a file with a data blob that is missing from the index
//! (or, with `read_data`, cannot be read and verified) is dropped from its
//! directory. Nothing is ever invented. A snapshot that lost something is
//! written anew, marked partial, tagged `repaired` and naming the old one as
//! its `original`; with `forget` the old snapshot file is deleted once every
//! new one is written. Snapshots that need no repair are left as they are.
//!
//! The index must agree with storage: if it names packs that are gone, the
//! blobs it promises cannot be trusted (and the blob saver would take them
//! as present), so the repair refuses and asks for `repair index` first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::error::{MaintenanceError, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Content, Node, NodeKind, Tree};
use crate::format::BlobKind;
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::repo::saver::{BlobSaver, SaverOptions};
use crate::repo::treewalk::check_depth;
use crate::repo::{IndexedRepository, LockWatch, RepoError, TreeBudget};
use crate::storage::FileKind;

/// The tag added to every repaired snapshot.
pub const REPAIRED_TAG: &str = "repaired";

/// How to repair.
#[derive(Debug, Clone, Default)]
pub struct RepairSnapshotsOptions {
    /// Show what would be dropped; write and delete nothing.
    pub dry_run: bool,
    /// Delete each repaired snapshot once its replacement is written.
    pub forget: bool,
    /// Read and verify every data blob, not only look it up in the index.
    pub read_data: bool,
    pub saver: SaverOptions,
    /// The lock repair runs under: checked before it writes snapshots and
    /// before it deletes them.
    pub lock: Option<LockWatch>,
}

/// One entry left out of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// Absolute path inside the snapshot, `/`-separated.
    pub path: String,
    /// What was lost: `file` (dropped) or `dir` (emptied).
    pub what: &'static str,
    pub reason: String,
}

/// What happened to one snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotRepair {
    pub snapshot: SnapshotId,
    /// Empty when the snapshot needed no repair.
    pub dropped: Vec<Dropped>,
    /// The replacement (None when unchanged or in a dry run).
    pub new_snapshot: Option<SnapshotId>,
    /// Whether the old snapshot file was deleted.
    pub forgotten: bool,
}

/// Repairs `selected` snapshots of `repo`; returns one entry per snapshot.
pub fn repair_snapshots(
    repo: &IndexedRepository,
    selected: Vec<(SnapshotId, Snapshot)>,
    opts: &RepairSnapshotsOptions,
) -> Result<Vec<SnapshotRepair>> {
    let stored: HashSet<PackId> = repo
        .block_on(repo.storage().list(FileKind::Pack))?
        .into_iter()
        .filter_map(|info| info.name.parse().ok())
        .collect();
    let missing: Vec<PackId> = repo
        .index()
        .packs()
        .map(|(id, _)| id)
        .filter(|id| !stored.contains(id))
        .collect();
    if let Some(first) = missing.iter().min() {
        return Err(MaintenanceError::IndexAheadOfStorage {
            count: missing.len(),
            first: first.to_hex(),
        });
    }
    let saver = BlobSaver::new(
        repo,
        SaverOptions {
            dry_run: opts.dry_run,
            ..opts.saver
        },
    )?;
    let mut rewriter = Rewriter {
        repo,
        saver: &saver,
        read_data: opts.read_data,
        trees: HashMap::new(),
        data: HashMap::new(),
        dropped_budget: TreeBudget::default(),
    };
    let mut out = Vec::with_capacity(selected.len());
    let mut rewritten = Vec::new();
    let mut seen = HashSet::new();
    for (id, snapshot) in selected {
        if !seen.insert(id) {
            continue;
        }
        let done = rewriter
            .tree(snapshot.tree)
            .map_err(|source| MaintenanceError::Snapshot {
                snapshot: id,
                source: Box::new(source),
            })?;
        let dropped: Vec<Dropped> = done
            .dropped
            .iter()
            .map(|d| Dropped {
                path: format!("/{}", d.path),
                ..d.clone()
            })
            .collect();
        if done.id != snapshot.tree {
            rewritten.push((out.len(), id, snapshot, done.id));
        }
        out.push(SnapshotRepair {
            snapshot: id,
            dropped,
            new_snapshot: None,
            forgotten: false,
        });
    }
    drop(rewriter);
    // The new trees are durable before any snapshot names them.
    saver.finish()?;
    if opts.dry_run {
        return Ok(out);
    }
    if let Some(lock) = &opts.lock {
        lock.ensure_held()?;
    }
    for (pos, id, snapshot, tree) in &rewritten {
        let mut tags = snapshot.tags.clone();
        if !tags.iter().any(|t| t == REPAIRED_TAG) {
            tags.push(REPAIRED_TAG.to_owned());
        }
        let new = Snapshot {
            tree: *tree,
            tags,
            original: Some(*id),
            partial: true,
            ..snapshot.clone()
        };
        out[*pos].new_snapshot = Some(repo.save_snapshot(&new)?);
    }
    if opts.forget {
        if let Some(lock) = &opts.lock {
            lock.ensure_held()?;
        }
        for (pos, id, _, _) in &rewritten {
            repo.block_on(repo.storage().delete(FileKind::Snapshot, &id.to_hex()))?;
            out[*pos].forgotten = true;
        }
    }
    Ok(out)
}

/// A tree after repair: its id and what was left out below it (paths
/// relative to the tree).
struct Repaired {
    id: TreeId,
    dropped: Vec<Dropped>,
}

/// Rewrites trees for one run, remembering each tree's result.
struct Rewriter<'a> {
    repo: &'a IndexedRepository,
    saver: &'a BlobSaver,
    read_data: bool,
    trees: HashMap<TreeId, Arc<Repaired>>,
    /// Why a data blob is unusable (None: it is fine).
    data: HashMap<BlobId, Option<String>>,
    /// Entries of the lists of what was dropped, against the entry limit.
    dropped_budget: TreeBudget,
}

/// A tree being rewritten: its entries are taken one by one.
struct RewriteFrame {
    id: TreeId,
    nodes: std::vec::IntoIter<Node>,
    kept: Vec<Node>,
    dropped: Vec<Dropped>,
    changed: bool,
    /// How deep its entries lie (1 for the root tree's own).
    depth: usize,
    /// A directory entry waiting for its subtree, and the entry's name.
    waiting: Option<(Node, String)>,
}

/// A tree read for rewriting, or what replaces it when it is lost.
enum Opened {
    Walk(Box<RewriteFrame>),
    Lost(Repaired),
}

impl Rewriter<'_> {
    /// Rewrites the tree `root` and everything below it, depth first
    /// without recursion, within the limits of format.md §14 (the depth,
    /// and the entries of the lists of what was dropped, which shared
    /// subtrees repeat).
    fn tree(&mut self, root: TreeId) -> Result<Arc<Repaired>, RepoError> {
        if let Some(done) = self.trees.get(&root) {
            return Ok(done.clone());
        }
        let mut stack: Vec<RewriteFrame> = Vec::new();
        let mut finished = match self.open(root, 1)? {
            Opened::Walk(frame) => {
                stack.push(*frame);
                None
            }
            Opened::Lost(repaired) => Some((root, repaired)),
        };
        loop {
            if let Some((id, repaired)) = finished.take() {
                let done = Arc::new(repaired);
                self.trees.insert(id, done.clone());
                let Some(parent) = stack.last_mut() else {
                    return Ok(done);
                };
                let Some((node, name)) = parent.waiting.take() else {
                    return Err(RepoError::InvalidOption(format!("tree {id}: no entry waits for it")));
                };
                self.adopt(parent, node, name, &done)?;
                continue;
            }
            let Some(top) = stack.last_mut() else {
                return Err(RepoError::InvalidOption(format!("tree {root} was not rewritten")));
            };
            let Some(node) = top.nodes.next() else {
                let Some(frame) = stack.pop() else { continue };
                finished = Some((frame.id, self.finish(frame)?));
                continue;
            };
            let name = node.name_lossy().into_owned();
            if node.kind == NodeKind::File {
                if let Some(reason) = self.unusable(&node.content)? {
                    top.dropped.push(Dropped {
                        path: name,
                        what: "file",
                        reason,
                    });
                    top.changed = true;
                    continue;
                }
            }
            let Some(sub) = node.subtree else {
                top.kept.push(node);
                continue;
            };
            if let Some(done) = self.trees.get(&sub).cloned() {
                self.adopt(top, node, name, &done)?;
                continue;
            }
            let depth = top.depth + 1;
            top.waiting = Some((node, name));
            match self.open(sub, depth)? {
                Opened::Walk(frame) => stack.push(*frame),
                Opened::Lost(repaired) => finished = Some((sub, repaired)),
            }
        }
    }

    /// Reads a tree whose entries lie `depth` deep; a tree that is lost
    /// becomes an empty one.
    fn open(&mut self, id: TreeId, depth: usize) -> Result<Opened, RepoError> {
        let tree = match self.repo.load_tree(&id) {
            Ok(tree) => tree,
            Err(e) if lost(&e) => {
                let saved = self.saver.save(BlobKind::Tree, &Tree::default().encode())?;
                return Ok(Opened::Lost(Repaired {
                    id: TreeId(saved.id.0),
                    dropped: vec![Dropped {
                        path: String::new(),
                        what: "dir",
                        reason: format!("its contents are lost: {e}"),
                    }],
                }));
            }
            Err(e) => return Err(e),
        };
        check_depth(&id, depth, tree.nodes.len())?;
        Ok(Opened::Walk(Box::new(RewriteFrame {
            id,
            nodes: tree.nodes.into_iter(),
            kept: Vec::new(),
            dropped: Vec::new(),
            changed: false,
            depth,
            waiting: None,
        })))
    }

    /// Takes a directory entry named `name` whose subtree is rewritten as
    /// `done` into `frame`.
    fn adopt(
        &mut self,
        frame: &mut RewriteFrame,
        mut node: Node,
        name: String,
        done: &Repaired,
    ) -> Result<(), RepoError> {
        let sub = node.subtree.unwrap_or(done.id);
        self.dropped_budget.visit(&sub, 1, done.dropped.len())?;
        for d in &done.dropped {
            frame.dropped.push(Dropped {
                path: if d.path.is_empty() {
                    name.clone()
                } else {
                    format!("{name}/{}", d.path)
                },
                ..d.clone()
            });
        }
        if done.id != sub {
            node.subtree = Some(done.id);
            frame.changed = true;
        }
        frame.kept.push(node);
        Ok(())
    }

    /// Stores a tree whose entries are all rewritten, if anything changed.
    fn finish(&mut self, frame: RewriteFrame) -> Result<Repaired, RepoError> {
        if !frame.changed {
            return Ok(Repaired {
                id: frame.id,
                dropped: frame.dropped,
            });
        }
        let saved = self.saver.save(BlobKind::Tree, &Tree { nodes: frame.kept }.encode())?;
        Ok(Repaired {
            id: TreeId(saved.id.0),
            dropped: frame.dropped,
        })
    }

    /// Why a file's content cannot be restored, if it cannot.
    fn unusable(&mut self, content: &[Content]) -> Result<Option<String>, RepoError> {
        for part in content {
            let Content::Blob(b) = part else { continue };
            if let Some(known) = self.data.get(b) {
                if known.is_some() {
                    return Ok(known.clone());
                }
                continue;
            }
            let verdict = if !self.repo.known(BlobKind::Data, b) {
                Some(format!("data blob {b} is not in the index"))
            } else if self.read_data {
                match self.repo.read_blob(BlobKind::Data, b) {
                    Ok(_) => None,
                    Err(e) if lost(&e) => Some(e.to_string()),
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            self.data.insert(*b, verdict.clone());
            if verdict.is_some() {
                return Ok(verdict);
            }
        }
        Ok(None)
    }
}

/// Whether an error means the blob is gone or damaged for good (rather than
/// a storage hiccup, which stops the repair instead).
fn lost(e: &RepoError) -> bool {
    match e {
        RepoError::BlobNotFound { .. } | RepoError::BadBlob { .. } => true,
        RepoError::Storage(s) => !s.is_transient(),
        _ => false,
    }
}
