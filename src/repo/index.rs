//! The in-memory index: where each blob lives.

use std::ops::Deref;
use std::sync::Arc;

use super::{RepoError, Repository, Result};
use crate::format::index::{IndexFile, MarkedPack};
use crate::format::tree::Tree;
use crate::format::{limits, BlobKind, FormatError};
use crate::id::{BlobId, IndexId, PackId, TreeId};
use crate::storage::FileKind;

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub kind: BlobKind,
    pub pack: PackId,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: BlobId,
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    kind: BlobKind,
}

/// All index files merged: blob id -> location, sorted for binary search.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<PackId>,
    pack_sizes: Vec<u64>,
    entries: Vec<Entry>,
    files: Vec<IndexId>,
    marked: Vec<MarkedPack>,
    marked_packs: std::collections::HashSet<PackId>,
    duplicates: u64,
}

impl Index {
    /// Builds the live index from decoded index files: a file that another
    /// one supersedes is left out (its content is in the superseding file).
    pub fn from_files(files: Vec<(IndexId, IndexFile)>) -> Self {
        let mut index = Index::default();
        let mut pack_pos = std::collections::HashMap::new();
        let superseded: std::collections::HashSet<IndexId> =
            files.iter().flat_map(|(_, f)| f.supersedes.iter().copied()).collect();
        for (id, file) in files.into_iter().filter(|(id, _)| !superseded.contains(id)) {
            index.files.push(id);
            index.marked.extend(file.marked);
            for pack in file.packs {
                let pos = *pack_pos.entry(pack.id).or_insert_with(|| {
                    index.packs.push(pack.id);
                    index.pack_sizes.push(pack.size);
                    (index.packs.len() - 1) as u32
                });
                for b in pack.blobs {
                    index.entries.push(Entry {
                        id: b.id,
                        pack: pos,
                        offset: b.offset,
                        length: b.length,
                        raw_length: b.raw_length,
                        kind: b.kind,
                    });
                }
            }
        }
        // Of several copies of a blob the index keeps one, preferring a
        // pack that is not marked for deletion.
        let marked: std::collections::HashSet<PackId> = index.marked.iter().map(|m| m.id).collect();
        let pack_marked: Vec<bool> = index.packs.iter().map(|p| marked.contains(p)).collect();
        index.entries.sort_unstable_by(|a, b| {
            a.id.cmp(&b.id)
                .then(a.kind.cmp(&b.kind))
                .then(pack_marked[a.pack as usize].cmp(&pack_marked[b.pack as usize]))
        });
        index.marked_packs = marked;
        let before = index.entries.len();
        index.entries.dedup_by(|a, b| a.id == b.id && a.kind == b.kind);
        index.duplicates = (before - index.entries.len()) as u64;
        index
    }

    fn find(&self, kind: BlobKind, id: &BlobId) -> Option<&Entry> {
        let i = self.entries.partition_point(|e| (e.id, e.kind) < (*id, kind));
        self.entries.get(i).filter(|e| e.id == *id && e.kind == kind)
    }

    /// Where a blob of `kind` with `id` is stored.
    pub fn get(&self, kind: BlobKind, id: &BlobId) -> Option<BlobLocation> {
        self.find(kind, id).map(|e| BlobLocation {
            kind: e.kind,
            pack: self.packs[e.pack as usize],
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        })
    }

    /// A dense ordinal of the blob in `0..len()`, stable while this index
    /// lives: callers keep per-blob flags (such as prune's reachability
    /// bitmap) in a vector indexed by it instead of a set of ids.
    pub fn position(&self, kind: BlobKind, id: &BlobId) -> Option<usize> {
        let i = self.entries.partition_point(|e| (e.id, e.kind) < (*id, kind));
        self.entries.get(i).filter(|e| e.id == *id && e.kind == kind).map(|_| i)
    }

    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.find(kind, id).is_some()
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packs named by the index with their sizes.
    pub fn packs(&self) -> impl Iterator<Item = (PackId, u64)> + '_ {
        self.packs.iter().copied().zip(self.pack_sizes.iter().copied())
    }

    /// Index files that were loaded.
    pub fn files(&self) -> &[IndexId] {
        &self.files
    }

    /// Packs marked for deletion.
    pub fn marked(&self) -> &[MarkedPack] {
        &self.marked
    }

    /// Whether prune marked `pack` for deletion.
    pub fn is_marked(&self, pack: &PackId) -> bool {
        self.marked_packs.contains(pack)
    }

    /// Blob entries listed more than once (in several packs or files).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Every blob with its location.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.entries.iter().map(|e| {
            (
                e.id,
                BlobLocation {
                    kind: e.kind,
                    pack: self.packs[e.pack as usize],
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                },
            )
        })
    }
}

/// A repository with its index loaded: the only way to read or save blobs.
#[derive(Clone, Debug)]
pub struct IndexedRepository {
    repo: Repository,
    index: Arc<Index>,
}

impl Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl Repository {
    /// Reads every index file and builds the in-memory index.
    pub fn load_index(self) -> Result<IndexedRepository> {
        let names = self.block_on(self.storage.list(FileKind::Index))?;
        let mut set = tokio::task::JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(8));
        for info in names {
            let storage = self.storage.clone();
            let limit = limit.clone();
            set.spawn_on(
                async move {
                    let _permit = limit.acquire_owned().await;
                    let bytes = storage.get(FileKind::Index, &info.name).await;
                    (info.name, bytes)
                },
                self.runtime(),
            );
        }
        let mut files = Vec::new();
        while let Some(joined) = self.block_on(set.join_next()) {
            let (name, bytes) = joined.map_err(|e| RepoError::InvalidOption(format!("index loader failed: {e}")))?;
            let bytes = bytes?;
            let plain = self.open_file(FileKind::Index, &name, &bytes)?;
            let file = IndexFile::decode(&plain).map_err(|source| RepoError::Format {
                kind: FileKind::Index,
                name: name.clone(),
                source,
            })?;
            let id: IndexId = name.parse().map_err(|_| RepoError::NameMismatch {
                kind: FileKind::Index,
                name: name.clone(),
                actual: "not a hex id".into(),
            })?;
            files.push((id, file));
        }
        files.sort_by_key(|(id, _)| *id);
        Ok(IndexedRepository {
            repo: self,
            index: Arc::new(Index::from_files(files)),
        })
    }
}

impl IndexedRepository {
    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Reads, opens and verifies one blob.
    pub fn read_blob(&self, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self
            .index
            .get(kind, id)
            .ok_or(RepoError::BlobNotFound { kind, id: *id })?;
        let bytes = self.block_on(self.storage().get_range(
            FileKind::Pack,
            &loc.pack.to_hex(),
            u64::from(loc.offset),
            u64::from(loc.length),
        ))?;
        self.open_blob(id, &loc, &bytes)
    }

    /// Opens the sealed bytes of a blob read from its pack and checks that
    /// the plaintext hashes to `id`.
    pub fn open_blob(&self, id: &BlobId, loc: &BlobLocation, sealed: &[u8]) -> Result<Vec<u8>> {
        let bad = |reason: String| RepoError::BadBlob {
            kind: loc.kind,
            id: *id,
            pack: loc.pack,
            reason,
        };
        let limit = match loc.kind {
            BlobKind::Data => limits::MAX_BLOB,
            BlobKind::Tree => limits::MAX_OBJECT,
        };
        let plain = self
            .key()
            .open(loc.kind.object_kind(), sealed, limit, Some(loc.raw_length as usize))
            .map_err(|e| bad(e.to_string()))?;
        if self.key().blob_id(&plain) != id.0 {
            return Err(bad("its content does not match its id".into()));
        }
        Ok(plain)
    }

    /// Reads and decodes a tree.
    pub fn load_tree(&self, id: &TreeId) -> Result<Tree> {
        let blob = BlobId::from(*id);
        let plain = self.read_blob(BlobKind::Tree, &blob)?;
        Tree::decode(&plain).map_err(|e: FormatError| RepoError::BadBlob {
            kind: BlobKind::Tree,
            id: blob,
            pack: self
                .index
                .get(BlobKind::Tree, &blob)
                .map(|l| l.pack)
                .unwrap_or_default(),
            reason: e.to_string(),
        })
    }

    /// Blob ids already stored (for a saver's dedup set).
    /// A blob whose only copy is in a pack marked for deletion counts as
    /// unknown: it is stored again rather than used from a pack that a
    /// later prune may delete.
    pub fn known(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.index
            .get(kind, id)
            .is_some_and(|loc| !self.index.is_marked(&loc.pack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::IndexPack;
    use crate::format::pack::PackEntry;

    fn file(pack: u8, blob: u8, supersedes: Vec<IndexId>) -> IndexFile {
        IndexFile {
            supersedes,
            packs: vec![IndexPack {
                id: PackId([pack; 32]),
                size: 1000,
                blobs: vec![PackEntry {
                    kind: BlobKind::Data,
                    id: BlobId([blob; 32]),
                    offset: 0,
                    length: 100,
                    raw_length: 50,
                }],
            }],
            marked: vec![],
        }
    }

    #[test]
    fn superseded_index_files_are_left_out() {
        let old = IndexId([1; 32]);
        let new = IndexId([2; 32]);
        let index = Index::from_files(vec![(old, file(1, 1, vec![])), (new, file(2, 2, vec![old]))]);
        assert_eq!(index.files(), &[new]);
        assert!(index.contains(BlobKind::Data, &BlobId([2; 32])));
        assert!(!index.contains(BlobKind::Data, &BlobId([1; 32])));
        assert_eq!(index.packs().map(|(p, _)| p).collect::<Vec<_>>(), vec![PackId([2; 32])]);
    }
}
