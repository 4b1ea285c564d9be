//! The in-memory index: where each blob lives.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{RepoError, Repository, Result};
use crate::format::index::{IndexFile, MarkedPack};
use crate::format::tree::Tree;
use crate::format::{limits, BlobKind, FormatError};
use crate::id::{BlobId, IndexId, PackId, TreeId};
use crate::storage::{FileKind, Keep};

mod build;
mod chunked;
mod disk;
mod layered;
mod spill;
mod table;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;

pub use build::IndexBuilder;
pub use disk::TableError;
use disk::TableFile;
pub use table::KEY_LEN;
use table::{Entry, Table};

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub kind: BlobKind,
    pub pack: PackId,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// All live index files merged: for each blob kind a table sorted by id,
/// plus the packs they name.
///
/// A blob costs 36 bytes (id bytes 2..22, pack ordinal, offset, length and
/// raw length; bytes 0..2 select a bucket) plus its share of the pack table
/// (40 bytes per pack) and of the two bucket tables (256 KiB each).
/// Lookups compare the first [`KEY_LEN`] bytes of an id only: two ids that
/// agree on those are the same blob to the index (see "The in-memory
/// index" in `format-spec/security.md`); every blob read is still checked
/// against its full id.
///
/// With a local index table (`format-spec/format.md`, "The local index table") the entries of the files the
/// table was built from stay on disk: `data` and `tree` then hold only the
/// overlay, the entries of files written since, and the pack, file and
/// mark lists are those of table and overlay together.
#[derive(Debug, Default)]
pub struct Index {
    data: Table,
    tree: Table,
    base: Option<Base>,
    /// Pack ids sorted, and the size of each.
    packs: Vec<PackId>,
    pack_sizes: Vec<u64>,
    /// One bit per pack ordinal: marked for deletion. Empty when none is.
    marked_bits: Vec<u64>,
    files: Vec<IndexId>,
    /// Files that were read but are superseded, sorted.
    passed_over: Vec<IndexId>,
    /// Sorted by pack id.
    marked: Vec<MarkedPack>,
    duplicates: u64,
}

/// The part of an index that lives in a local table.
#[derive(Debug)]
struct Base {
    table: Arc<TableFile>,
    path: PathBuf,
    /// Table pack ordinal to index pack ordinal; empty when they agree.
    pack_map: Vec<u32>,
    /// The table's own lists.
    files: Vec<IndexId>,
    passed_over: Vec<IndexId>,
    marked: Vec<MarkedPack>,
    duplicates: u64,
    /// Overlay blobs also in the table.
    cross: u64,
    /// Set once a bucket failed to read or verify.
    failed: AtomicBool,
}

impl Base {
    fn pack(&self, ordinal: u32) -> u32 {
        self.pack_map.get(ordinal as usize).copied().unwrap_or(ordinal)
    }

    /// A table that stopped verifying while in use is removed (the next
    /// open rebuilds it) and reported once; its blobs count as unknown.
    fn failure(&self, e: &disk::TableError) {
        if !self.failed.swap(true, Ordering::Relaxed) {
            let _ = std::fs::remove_file(&self.path);
            eprintln!(
                "warning: the local index table {} is unusable ({e}); it is rebuilt on the next open",
                self.path.display()
            );
        }
    }

    fn find(&self, kind: BlobKind, id: &BlobId) -> Option<(usize, Entry)> {
        match self.table.find(kind, id) {
            Ok(found) => found.map(|(i, mut e)| {
                e.pack = self.pack(e.pack);
                (i, e)
            }),
            Err(e) => {
                self.failure(&e);
                None
            }
        }
    }
}

impl Index {
    /// Builds the live index from decoded index files: a file that another
    /// one supersedes is left out (its content is in the superseding file).
    pub fn from_files(files: Vec<(IndexId, IndexFile)>) -> Result<Self> {
        let mut builder = IndexBuilder::new();
        for (id, file) in files {
            builder.add_file(id, file)?;
        }
        Ok(builder.finish())
    }

    fn table(&self, kind: BlobKind) -> &Table {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        }
    }

    fn location(&self, kind: BlobKind, e: &Entry) -> BlobLocation {
        BlobLocation {
            kind,
            pack: self.packs[e.pack as usize],
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        }
    }

    /// Entries of `kind` in the table.
    fn base_len(&self, kind: BlobKind) -> usize {
        self.base.as_ref().map_or(0, |b| b.table.len(kind))
    }

    /// The position of the first blob of `kind`.
    fn kind_start(&self, kind: BlobKind) -> usize {
        match kind {
            BlobKind::Data => 0,
            BlobKind::Tree => self.base_len(BlobKind::Data) + self.data.len(),
        }
    }

    /// The blob's position and entry (with an index pack ordinal): the
    /// overlay's when it has the blob, else the table's.
    fn find(&self, kind: BlobKind, id: &BlobId) -> Option<(usize, Entry)> {
        let table = self.table(kind);
        if let Some(e) = table.find(id).and_then(|i| Some((i, *table.get(i)?))) {
            return Some((self.kind_start(kind) + self.base_len(kind) + e.0, e.1));
        }
        let (i, e) = self.base.as_ref()?.find(kind, id)?;
        Some((self.kind_start(kind) + i, e))
    }

    /// Where a blob of `kind` with `id` is stored. An id that agrees with an
    /// indexed one on its first [`KEY_LEN`] bytes finds that blob.
    pub fn get(&self, kind: BlobKind, id: &BlobId) -> Option<BlobLocation> {
        self.find(kind, id).map(|(_, e)| self.location(kind, &e))
    }

    /// A dense ordinal of the blob in `0..len()`, stable while this index
    /// lives: callers keep per-blob flags (such as prune's reachability
    /// bitmap) in a vector indexed by it instead of a set of ids. Data
    /// blobs come first, then tree blobs.
    ///
    /// With a local table, the table's blobs of a kind come first, then
    /// the overlay's; a blob in both has the overlay's position.
    pub fn position(&self, kind: BlobKind, id: &BlobId) -> Option<usize> {
        self.find(kind, id).map(|(pos, _)| pos)
    }

    /// [`Index::position`] and [`Index::get`] in one lookup (with a local
    /// table, one bucket read instead of two).
    pub fn position_and_location(&self, kind: BlobKind, id: &BlobId) -> Option<(usize, BlobLocation)> {
        self.find(kind, id).map(|(pos, e)| (pos, self.location(kind, &e)))
    }

    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.find(kind, id).is_some()
    }

    /// Whether the blob is indexed in a pack that is not marked for
    /// deletion, so that a new snapshot may refer to it. (When a blob is in
    /// several packs, the index keeps a copy in an unmarked pack if any.)
    pub fn contains_live(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.find(kind, id)
            .is_some_and(|(_, e)| !self.is_marked_ordinal(e.pack))
    }

    /// Whether prune has marked `pack` for deletion.
    pub fn is_marked(&self, pack: &PackId) -> bool {
        self.marked.binary_search_by(|m| m.id.cmp(pack)).is_ok()
    }

    fn is_marked_ordinal(&self, pack: u32) -> bool {
        self.marked_bits
            .get(pack as usize / 64)
            .is_some_and(|w| w & (1 << (pack % 64)) != 0)
    }

    /// Number of blob positions: distinct blobs, except that a blob both
    /// in a local table (in a pack marked for deletion) and in the overlay
    /// counts twice until the two are merged.
    pub fn len(&self) -> usize {
        self.base_len(BlobKind::Data) + self.base_len(BlobKind::Tree) + self.data.len() + self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Packs named by the live index files with their sizes, sorted by id.
    pub fn packs(&self) -> impl Iterator<Item = (PackId, u64)> + '_ {
        self.packs.iter().copied().zip(self.pack_sizes.iter().copied())
    }

    /// Number of packs the live index files name.
    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// The position of `pack` in [`Index::packs`] (which is sorted by id), in
    /// `0..pack_count()`: callers keep per-pack data in vectors indexed by
    /// it.
    pub fn pack_position(&self, pack: &PackId) -> Option<usize> {
        self.packs.binary_search(pack).ok()
    }

    /// The pack at `position` in [`Index::packs`] and its size.
    pub fn pack_at(&self, position: usize) -> Option<(PackId, u64)> {
        Some((*self.packs.get(position)?, *self.pack_sizes.get(position)?))
    }

    /// Index files that were loaded and are live, sorted.
    pub fn files(&self) -> &[IndexId] {
        &self.files
    }

    /// Packs marked for deletion, sorted by pack id.
    pub fn marked(&self) -> &[MarkedPack] {
        &self.marked
    }

    /// Blob entries listed more than once (in several packs or files).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Every blob's position (see [`Index::position`]) and location, in
    /// position order. Full ids are not kept; read the index files where
    /// they are needed. Reading a local table can fail (each bucket is
    /// checked as it is read).
    pub fn locations(&self) -> impl Iterator<Item = Result<(usize, BlobLocation)>> + '_ {
        let part = move |kind: BlobKind| {
            let base = self.base.iter().flat_map(move |base| {
                base.table.entries(kind).map(move |r| {
                    r.map(|(_, mut e)| {
                        e.pack = base.pack(e.pack);
                        self.location(kind, &e)
                    })
                    .map_err(|e| RepoError::IndexTable {
                        path: base.path.clone(),
                        reason: e.to_string(),
                    })
                })
            });
            base.chain(self.table(kind).iter().map(move |e| Ok(self.location(kind, e))))
        };
        part(BlobKind::Data)
            .chain(part(BlobKind::Tree))
            .enumerate()
            .map(|(i, r)| r.map(|loc| (i, loc)))
    }

    /// Writes the local table of this index to `dir` under the table key of
    /// `key` and returns the index read through it (for benchmarks and
    /// tools; repositories do this on their own when opened with a cache).
    pub fn into_table(self, dir: &Path, key: &crate::crypto::MasterKey) -> Result<Index> {
        let key = disk::MacKey::new(key.index_table_key());
        let name = layered::write_table(dir, &key, &self).map_err(|e| RepoError::IndexTable {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        drop(self);
        layered::open_as_index(dir, &name, &key)
    }

    /// The local table this index reads, if a bucket of it failed to read
    /// or verify since it was opened: lookups in that bucket answered
    /// "not indexed", so callers that decide deletions must not trust them.
    pub fn table_failed(&self) -> Option<&Path> {
        self.base
            .as_ref()
            .filter(|b| b.failed.load(Ordering::Relaxed))
            .map(|b| b.path.as_path())
    }

    /// The path of the local table this index reads, if any.
    pub fn table_path(&self) -> Option<&Path> {
        self.base.as_ref().map(|b| b.path.as_path())
    }

    /// Number of blobs held in memory (all, or the overlay's with a table).
    pub fn in_memory_len(&self) -> usize {
        self.data.len() + self.tree.len()
    }

    /// Heap bytes held by the index (tables, packs, file and mark lists).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.data.heap_bytes()
            + self.tree.heap_bytes()
            + self.packs.capacity() * size_of::<PackId>()
            + self.pack_sizes.capacity() * size_of::<u64>()
            + self.marked_bits.capacity() * size_of::<u64>()
            + (self.files.capacity() + self.passed_over.capacity()) * size_of::<IndexId>()
            + self.marked.capacity() * size_of::<MarkedPack>()
            + self.base.as_ref().map_or(0, |b| {
                b.table.heap_bytes()
                    + b.pack_map.capacity() * size_of::<u32>()
                    + (b.files.capacity() + b.passed_over.capacity()) * size_of::<IndexId>()
                    + b.marked.capacity() * size_of::<MarkedPack>()
            })
    }
}

/// Opens a local index table held in `bytes` under the MAC key `key` and
/// reads every bucket (the table decoder's fuzzing entry point); returns
/// the number of entries.
pub fn read_table_bytes(key: [u8; 32], bytes: Vec<u8>) -> std::result::Result<usize, TableError> {
    let (table, _) = TableFile::open(Box::new(bytes), disk::MacKey::new(zeroize::Zeroizing::new(key)))?;
    let mut n = 0;
    for kind in [BlobKind::Data, BlobKind::Tree] {
        for entry in table.entries(kind) {
            entry?;
            n += 1;
        }
    }
    Ok(n)
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

/// Index files fetched at once while loading. Decoding happens one file at
/// a time on the caller's thread, and a file is fetched only when a slot is
/// free, so loading holds the tables, this many fetched files and one
/// decoded file.
const LOAD_CONNECTIONS: usize = 8;

impl Repository {
    /// Reads the index files and builds the index: through the local index
    /// table when the repository has one (only the files it does not hold
    /// are read), else every file into memory.
    pub fn load_index(self) -> Result<IndexedRepository> {
        let names: Vec<String> = self
            .block_on(self.storage.list(FileKind::Index))?
            .into_iter()
            .map(|info| info.name)
            .collect();
        let index = match self.index_dir.clone() {
            Some(dir) => self.load_through_table(&dir, names)?,
            None => {
                let mut builder = IndexBuilder::new();
                self.read_index_files(names, |id, file| {
                    builder.add_file(id, file)?;
                    Ok(true)
                })?;
                builder.finish()
            }
        };
        Ok(IndexedRepository {
            repo: self,
            index: Arc::new(index),
        })
    }

    /// Reads every index file into memory, not through the local index
    /// table: for work that looks up every blob of the repository (prune),
    /// where one bucket read per lookup costs more time than the table
    /// saves memory (`prune --dry-run` of ten million blobs: 47 s at 805 MiB
    /// in memory, 6 min at 465 MiB through the table).
    pub fn load_index_in_memory(mut self) -> Result<IndexedRepository> {
        self.index_dir = None;
        self.load_index()
    }

    /// Reads and decodes the index files `names`, handing each to `each`
    /// (in no particular order) until it returns false; returns whether
    /// all were handed over.
    fn read_index_files(
        &self,
        names: Vec<String>,
        mut each: impl FnMut(IndexId, IndexFile) -> Result<bool>,
    ) -> Result<bool> {
        let mut names = names.into_iter();
        let mut set = tokio::task::JoinSet::new();
        loop {
            while set.len() < LOAD_CONNECTIONS {
                let Some(name) = names.next() else { break };
                let storage = self.storage.clone();
                set.spawn_on(
                    async move {
                        let bytes = storage.get(FileKind::Index, &name).await;
                        (name, bytes)
                    },
                    self.runtime(),
                );
            }
            let Some(joined) = self.block_on(set.join_next()) else {
                return Ok(true);
            };
            let (name, bytes) = joined.map_err(|e| RepoError::InvalidOption(format!("index loader failed: {e}")))?;
            let plain = self.open_file(FileKind::Index, &name, &bytes?)?;
            let file = IndexFile::decode(&plain).map_err(|source| RepoError::Format {
                kind: FileKind::Index,
                name: name.clone(),
                source,
            })?;
            drop(plain);
            let id: IndexId = name.parse().map_err(|_| RepoError::NameMismatch {
                kind: FileKind::Index,
                name: name.clone(),
                actual: "not a hex id".into(),
            })?;
            if !each(id, file)? {
                set.abort_all();
                while self.block_on(set.join_next()).is_some() {}
                return Ok(false);
            }
        }
    }
}

/// How [`IndexedRepository::refresh`] brought the index up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// No index file was added or removed.
    Unchanged,
    /// Only new index files of backups were read.
    Added(usize),
    /// Index files were removed or replaced (a prune ran): all were read.
    Reloaded,
}

/// Largest plaintext of a blob of `kind` (format.md §14).
fn blob_limit(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => limits::MAX_BLOB,
        BlobKind::Tree => limits::MAX_OBJECT,
    }
}

/// Sealed bytes a blob may have beyond its plaintext limit: the envelope
/// and the plaintext's framing, with room to spare.
const SEALED_SLACK: u64 = 4096;

impl IndexedRepository {
    /// The index as it is in storage now, read cheaply: when the files
    /// this index was built from are all still there and the new ones
    /// only add packs (as backups write them), only the new ones are read;
    /// when a file was removed or a new one replaces or marks others (a
    /// prune), the whole index is read again.
    ///
    /// Reading the index after taking a lock is what a fresh open does;
    /// callers refresh after taking theirs for the same reason.
    pub fn refresh(&self) -> Result<(IndexedRepository, Refresh)> {
        let listed: Vec<String> = self
            .block_on(self.storage().list(FileKind::Index))?
            .into_iter()
            .map(|info| info.name)
            .collect();
        let ids: std::collections::HashSet<IndexId> = listed.iter().filter_map(|n| n.parse().ok()).collect();
        let index = &self.index;
        let reload = || Ok((self.repo.clone().load_index()?, Refresh::Reloaded));
        if index.files.iter().any(|f| !ids.contains(f)) {
            return reload();
        }
        let new: Vec<String> = listed
            .into_iter()
            .filter(|n| {
                n.parse::<IndexId>().map_or(true, |id| {
                    index.files.binary_search(&id).is_err() && index.passed_over.binary_search(&id).is_err()
                })
            })
            .collect();
        if new.is_empty() {
            return Ok((self.clone(), Refresh::Unchanged));
        }
        let count = new.len();
        let mut builder = IndexBuilder::from_index(index);
        let complete = self.repo.read_index_files(new, |id, file| {
            if !file.supersedes.is_empty() || !file.marked.is_empty() {
                return Ok(false);
            }
            builder.add_file(id, file)?;
            Ok(true)
        })?;
        if !complete {
            drop(builder);
            return reload();
        }
        let overlay = builder.finish();
        let index = match (layered::base_parts(index), self.repo.index_dir()) {
            (Some(parts), Some(dir)) => self.repo.settle(dir, layered::compose(parts, overlay)?),
            _ => overlay,
        };
        let refreshed = IndexedRepository {
            repo: self.repo.clone(),
            index: Arc::new(index),
        };
        Ok((refreshed, Refresh::Added(count)))
    }

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
        let (pack, offset, len) = (loc.pack.to_hex(), u64::from(loc.offset), u64::from(loc.length));
        // Checked before reading: an index entry may be hostile.
        let max_sealed = blob_limit(kind) as u64 + SEALED_SLACK;
        if len > max_sealed {
            return Err(RepoError::BadBlob {
                kind,
                id: *id,
                pack: loc.pack,
                reason: format!("its index entry gives {len} bytes, more than such a blob has ({max_sealed})"),
            });
        }
        let bytes = match kind {
            // Trees live in packs of their own, read again by every listing
            // and backup: a local cache may keep those packs whole.
            BlobKind::Tree => {
                self.block_on(
                    self.storage()
                        .get_range_keep(FileKind::Pack, &pack, offset, len, Keep::Whole),
                )
            }
            BlobKind::Data => self.block_on(self.storage().get_range(FileKind::Pack, &pack, offset, len)),
        }?;
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
        let limit = blob_limit(loc.kind);
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

    /// Whether a new snapshot may refer to the blob without storing it
    /// again: it is indexed in a pack that prune has not marked for
    /// deletion. A blob only in marked packs counts as unknown, so a backup
    /// writes it again rather than refer to a pack a later prune deletes.
    pub fn known(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.index.contains_live(kind, id)
    }
}
