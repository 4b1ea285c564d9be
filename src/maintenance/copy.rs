//! `copy`: snapshots from one repository into another.
//!
//! A source snapshot is skipped when the destination already holds a copy of
//! it: a snapshot with the same time, host, user, paths and tags that
//! descends from the same original (format spec §11). Everything else is
//! copied blob by blob through the destination's [`BlobSaver`], so packs and
//! index files are written the normal way, and the snapshots are written
//! only after the saver has made all of it durable.
//!
//! When both repositories name blobs with the same id key (see `init
//! --copy-chunker-params`), trees and data blobs keep their ids: a tree the
//! destination already has is not walked, and a blob it already has is not
//! read. Otherwise every blob is read and named anew with the destination's
//! key, and every tree is rewritten with the new ids; translations are
//! remembered for the run so that shared blobs and trees are read once.

use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

use super::error::{MaintenanceError, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Content, Tree};
use crate::format::{BlobKind, FormatError};
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::repo::saver::{BlobSaver, SaverOptions};
use crate::repo::treewalk::check_depth;
use crate::repo::{IndexedRepository, LockWatch, RepoError};

/// How to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Read and name everything but store nothing.
    pub dry_run: bool,
    pub saver: SaverOptions,
    /// The destination's lock: checked before each snapshot is written.
    pub lock: Option<LockWatch>,
}

/// What happens to one source snapshot, in order.
#[derive(Debug)]
pub enum CopyEvent<'a> {
    /// The destination already has a copy of it (`existing`).
    Skipped {
        source: SnapshotId,
        snapshot: &'a Snapshot,
        existing: SnapshotId,
    },
    /// Its trees and blobs are about to be copied.
    Copying { source: SnapshotId, snapshot: &'a Snapshot },
    /// Its copy was written (`copy` is `None` in a dry run).
    Copied {
        source: SnapshotId,
        copy: Option<SnapshotId>,
    },
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    pub snapshots_copied: u64,
    pub snapshots_skipped: u64,
    /// Blobs added to the destination.
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Plaintext bytes of the blobs added.
    pub data_added: u64,
    /// Stored (sealed) bytes of the blobs added.
    pub data_added_packed: u64,
    /// Whether blobs kept their ids (both repositories share the id key).
    pub same_ids: bool,
}

/// The snapshot a snapshot descends from: its `original`, or itself.
pub fn origin(id: &SnapshotId, snapshot: &Snapshot) -> SnapshotId {
    snapshot.original.unwrap_or(*id)
}

/// Whether two snapshots with the same origin are copies of each other.
pub fn similar(a: &Snapshot, b: &Snapshot) -> bool {
    a.time_ns == b.time_ns
        && a.hostname == b.hostname
        && a.username == b.username
        && a.paths == b.paths
        && a.tags == b.tags
}

/// Copies `selected` snapshots of `src` into `dst`, skipping those the
/// destination already has. Reports each snapshot through `progress`.
pub fn copy(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    selected: Vec<(SnapshotId, Snapshot)>,
    opts: &CopyOptions,
    progress: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<CopyStats> {
    if src.config().id == dst.config().id {
        return Err(MaintenanceError::SameRepository(dst.storage().location()));
    }
    let mut by_origin: HashMap<SnapshotId, Vec<(SnapshotId, Snapshot)>> = HashMap::new();
    for (id, s) in dst.list_snapshots()? {
        by_origin.entry(origin(&id, &s)).or_default().push((id, s));
    }
    let same_ids = src.key().shares_id_key(dst.key());
    let mut stats = CopyStats {
        same_ids,
        ..CopyStats::default()
    };
    let mut seen = HashSet::new();
    let mut todo = Vec::new();
    for (id, snapshot) in selected {
        if !seen.insert(id) {
            continue;
        }
        let existing = by_origin
            .get(&origin(&id, &snapshot))
            .and_then(|list| list.iter().find(|(_, d)| similar(d, &snapshot)));
        match existing {
            Some((existing, _)) => {
                stats.snapshots_skipped += 1;
                progress(CopyEvent::Skipped {
                    source: id,
                    snapshot: &snapshot,
                    existing: *existing,
                });
            }
            None => todo.push((id, snapshot)),
        }
    }
    if todo.is_empty() {
        return Ok(stats);
    }
    let saver = BlobSaver::new(
        dst,
        SaverOptions {
            dry_run: opts.dry_run,
            ..opts.saver
        },
    )?;
    let mut copier = Copier {
        src,
        dst,
        saver: &saver,
        same_ids,
        trees: HashMap::new(),
        data: HashMap::new(),
    };
    let mut roots = Vec::with_capacity(todo.len());
    for (id, snapshot) in &todo {
        progress(CopyEvent::Copying { source: *id, snapshot });
        let root = copier
            .tree(snapshot.tree)
            .map_err(|source| MaintenanceError::Snapshot {
                snapshot: *id,
                source: Box::new(source),
            })?;
        roots.push(root);
    }
    drop(copier);
    // Every pack and index file is durable before any snapshot names them.
    let saved = saver.finish()?;
    stats.data_blobs = saved.data_blobs;
    stats.tree_blobs = saved.tree_blobs;
    stats.data_added = saved.data_added;
    stats.data_added_packed = saved.data_added_packed;
    for ((id, snapshot), root) in todo.into_iter().zip(roots) {
        let copy = Snapshot {
            tree: root,
            // The parent names a snapshot of the source repository.
            parent: None,
            original: Some(origin(&id, &snapshot)),
            ..snapshot
        };
        let written = if opts.dry_run {
            None
        } else {
            if let Some(lock) = &opts.lock {
                lock.ensure_held()?;
            }
            Some(dst.save_snapshot(&copy)?)
        };
        stats.snapshots_copied += 1;
        progress(CopyEvent::Copied {
            source: id,
            copy: written,
        });
    }
    Ok(stats)
}

/// A source tree being copied: its entries up to `next` are done.
struct CopyFrame {
    id: TreeId,
    plain: Vec<u8>,
    tree: Tree,
    changed: bool,
    next: usize,
    depth: usize,
}

/// Copies trees and blobs for one run, remembering what it has done.
struct Copier<'a> {
    src: &'a IndexedRepository,
    dst: &'a IndexedRepository,
    saver: &'a BlobSaver,
    same_ids: bool,
    /// Source tree -> destination tree, for trees handled in this run.
    trees: HashMap<TreeId, TreeId>,
    /// Source data blob -> destination data blob, for blobs handled in this run.
    data: HashMap<BlobId, BlobId>,
}

impl Copier<'_> {
    /// Copies the tree `root` and everything below it, depth first without
    /// recursion, within the depth limit of format.md §14 (each distinct
    /// tree is copied once, so entries need no count); returns its id in
    /// the destination.
    fn tree(&mut self, root: TreeId) -> Result<TreeId, RepoError> {
        if let Some(done) = self.trees.get(&root) {
            return Ok(*done);
        }
        let mut stack = vec![self.open(root, 1)?];
        while let Some(top) = stack.last_mut() {
            let k = top.next;
            let Some(node) = top.tree.nodes.get_mut(k) else {
                let Some(done) = stack.pop() else { break };
                let new = self.save(done)?;
                match stack.last_mut() {
                    Some(parent) => {
                        let node = &mut parent.tree.nodes[parent.next - 1];
                        parent.changed |= node.subtree != Some(new);
                        node.subtree = Some(new);
                    }
                    None => return Ok(new),
                }
                continue;
            };
            top.next += 1;
            for part in &mut node.content {
                if let Content::Blob(b) = part {
                    let new = self.data_blob(*b)?;
                    top.changed |= new != *b;
                    *b = new;
                }
            }
            if let Some(sub) = node.subtree {
                match self.trees.get(&sub) {
                    Some(&new) => {
                        top.changed |= new != sub;
                        node.subtree = Some(new);
                    }
                    None => {
                        let depth = top.depth + 1;
                        let frame = self.open(sub, depth)?;
                        stack.push(frame);
                    }
                }
            }
        }
        Err(RepoError::InvalidOption(format!("tree {root} was not copied")))
    }

    /// Reads a source tree whose entries lie `depth` deep and copies the
    /// data blobs it names that the destination lacks.
    fn open(&mut self, id: TreeId, depth: usize) -> Result<CopyFrame, RepoError> {
        // A tree the destination already has is walked all the same: an
        // interrupted backup or copy may have indexed it before the data
        // below it, so its presence proves nothing about its children.
        let blob = BlobId::from(id);
        let plain = self.src.read_blob(BlobKind::Tree, &blob)?;
        let tree = Tree::decode(&plain).map_err(|e: FormatError| RepoError::BadBlob {
            kind: BlobKind::Tree,
            id: blob,
            pack: self
                .src
                .index()
                .get(BlobKind::Tree, &blob)
                .map(|l| l.pack)
                .unwrap_or_default(),
            reason: e.to_string(),
        })?;
        check_depth(&id, depth, tree.nodes.len())?;
        self.prefetch(&tree)?;
        Ok(CopyFrame {
            id,
            plain,
            tree,
            changed: false,
            next: 0,
            depth,
        })
    }

    /// Stores a tree whose entries are all copied; returns its new id.
    fn save(&mut self, done: CopyFrame) -> Result<TreeId, RepoError> {
        // Unchanged trees are stored byte for byte as read.
        let saved = if done.changed {
            self.saver.save(BlobKind::Tree, &done.tree.encode())?
        } else {
            self.saver.save(BlobKind::Tree, &done.plain)?
        };
        let new = TreeId(saved.id.0);
        self.trees.insert(done.id, new);
        Ok(new)
    }

    /// Copies the data blobs of a tree's files that the destination lacks,
    /// several at once (reads and seals overlap), and remembers them.
    fn prefetch(&mut self, tree: &Tree) -> Result<(), RepoError> {
        let mut wanted: Vec<BlobId> = tree
            .nodes
            .iter()
            .flat_map(|n| n.content.iter())
            .filter_map(|c| match c {
                Content::Blob(b) => Some(*b),
                Content::Hole(_) => None,
            })
            .filter(|b| !(self.data.contains_key(b) || self.same_ids && self.dst.known(BlobKind::Data, b)))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let (src, saver) = (self.src, self.saver);
        let copied: Vec<(BlobId, BlobId)> = wanted
            .par_iter()
            .map(|id| {
                let plain = src.read_blob(BlobKind::Data, id)?;
                Ok((*id, saver.save(BlobKind::Data, &plain)?.id))
            })
            .collect::<Result<_, RepoError>>()?;
        self.data.extend(copied);
        Ok(())
    }

    /// Copies one data blob unless the destination has it; returns its id
    /// in the destination.
    fn data_blob(&mut self, id: BlobId) -> Result<BlobId, RepoError> {
        if let Some(done) = self.data.get(&id) {
            return Ok(*done);
        }
        if self.same_ids && self.dst.known(BlobKind::Data, &id) {
            // Not remembered: the index answers as fast as the map would.
            return Ok(id);
        }
        let plain = self.src.read_blob(BlobKind::Data, &id)?;
        let saved = self.saver.save(BlobKind::Data, &plain)?;
        self.data.insert(id, saved.id);
        Ok(saved.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;

    fn snap(time_ns: i64, tags: &[&str]) -> Snapshot {
        Snapshot {
            time_ns,
            tree: TreeId::default(),
            paths: vec!["/data".into()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            original: None,
            excludes: vec![],
            program_version: "t".into(),
            partial: false,
            summary: Summary::default(),
        }
    }

    #[test]
    fn origin_and_similarity_follow_copies() {
        let id = SnapshotId([1; 32]);
        let s = snap(5, &["a"]);
        assert_eq!(origin(&id, &s), id);
        let copy = Snapshot {
            original: Some(id),
            tree: TreeId([9; 32]),
            parent: Some(SnapshotId([7; 32])),
            ..s.clone()
        };
        assert_eq!(origin(&SnapshotId([2; 32]), &copy), id);
        assert!(similar(&s, &copy));
        assert!(!similar(&s, &snap(6, &["a"])));
        assert!(!similar(&s, &snap(5, &["b"])));
    }

    /// A destination that already has a snapshot's root tree but none of
    /// its data (an interrupted copy indexed the tree pack first) still gets
    /// every data blob.
    #[test]
    fn a_tree_already_there_does_not_stop_its_data_from_being_copied() {
        use crate::backup::progress::Progress;
        use crate::backup::{backup_reader, BackupOptions};
        use crate::repo::saver::BlobSaver;
        use crate::repo::{InitOptions, Repository};
        use crate::storage::memory::MemoryStorage;
        use crate::storage::DynStorage;
        use std::sync::Arc;

        let src_storage: DynStorage = Arc::new(MemoryStorage::new());
        let src = Repository::init(src_storage, b"a", crate::repo::test_options()).unwrap();
        let data: Vec<u8> = (0..400_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let src = src.load_index().unwrap();
        let id = backup_reader(&src, &data[..], "f", &BackupOptions::default(), &Progress::default())
            .unwrap()
            .id
            .unwrap();
        let src = Repository::open(src.storage().clone(), b"a")
            .unwrap()
            .load_index()
            .unwrap();
        let snapshot = src.load_snapshot(&id).unwrap();

        let dst_storage: DynStorage = Arc::new(MemoryStorage::new());
        let opts = InitOptions {
            share_chunker_with: Some(src.key().clone()),
            ..crate::repo::test_options()
        };
        let dst = Repository::init(dst_storage.clone(), b"b", opts)
            .unwrap()
            .load_index()
            .unwrap();
        let tree = src.read_blob(BlobKind::Tree, &BlobId::from(snapshot.tree)).unwrap();
        let saver = BlobSaver::new(&dst, SaverOptions::default()).unwrap();
        saver.save(BlobKind::Tree, &tree).unwrap();
        saver.finish().unwrap();

        let dst = Repository::open(dst_storage, b"b").unwrap().load_index().unwrap();
        assert!(dst.known(BlobKind::Tree, &BlobId::from(snapshot.tree)));
        let stats = copy(
            &src,
            &dst,
            vec![(id, snapshot.clone())],
            &CopyOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        assert!(stats.data_blobs > 0, "{stats:?}");
        let dst = Repository::open(dst.storage().clone(), b"b")
            .unwrap()
            .load_index()
            .unwrap();
        let root = dst.load_tree(&snapshot.tree).unwrap();
        let mut restored = Vec::new();
        for c in &root.nodes[0].content {
            if let Content::Blob(b) = c {
                restored.extend(dst.read_blob(BlobKind::Data, b).unwrap());
            }
        }
        assert!(restored == data);
    }
}
