//! Building the in-memory index one index file at a time.
//!
//! Each file's entries go straight into two growing tables (one per blob
//! kind) in their final 36-byte form, with the 2-byte bucket of each kept
//! beside it until the end, so loading holds the tables plus the one file
//! being added. `finish` drops the entries of superseded files, sorts the
//! packs by id, sorts the entries into their buckets in place and removes
//! duplicate ids.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::table::{bucket_of, Entry, Table, BUCKETS};
use super::Index;
use crate::format::index::{IndexFile, MarkedPack};
use crate::format::BlobKind;
use crate::id::{IndexId, PackId};
use crate::repo::RepoError;

/// Entries of one kind not yet sorted, with the bucket of each.
#[derive(Debug, Default)]
struct Pending {
    entries: Vec<Entry>,
    buckets: Vec<u16>,
}

impl Pending {
    /// Room for `more` entries, growing by at least an eighth so that
    /// many small files do not reallocate each time, but never doubling.
    fn reserve(&mut self, more: usize) {
        let len = self.entries.len();
        let spare = self.entries.capacity() - len;
        if spare < more {
            let grow = more.max(len / 8);
            self.entries.reserve_exact(grow);
            self.buckets.reserve_exact(grow);
        }
    }
}

/// What one added file contributed.
#[derive(Debug)]
struct FileRun {
    id: IndexId,
    data: Range<usize>,
    tree: Range<usize>,
    /// Ordinals of the packs it names.
    packs: Vec<u32>,
    marked: Vec<MarkedPack>,
    supersedes: Vec<IndexId>,
}

/// Collects decoded index files into an [`Index`].
#[derive(Debug, Default)]
pub struct IndexBuilder {
    data: Pending,
    tree: Pending,
    packs: Vec<(PackId, u64)>,
    pack_ordinals: HashMap<PackId, u32>,
    files: Vec<FileRun>,
}

fn too_large(what: &str) -> RepoError {
    RepoError::IndexTooLarge(format!("more than {} {what}", u32::MAX))
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the entries of the index file `id`. Whether it is superseded
    /// by another file is decided in `finish`, so files may come in any
    /// order.
    pub fn add_file(&mut self, id: IndexId, file: IndexFile) -> Result<(), RepoError> {
        let (mut data, mut tree) = (0usize, 0usize);
        for blob in file.packs.iter().flat_map(|p| &p.blobs) {
            match blob.kind {
                BlobKind::Data => data += 1,
                BlobKind::Tree => tree += 1,
            }
        }
        let limit = u32::MAX as usize;
        if self.data.entries.len() + data > limit || self.tree.entries.len() + tree > limit {
            return Err(too_large("blobs of one kind"));
        }
        if self.packs.len() + file.packs.len() > limit {
            return Err(too_large("packs"));
        }
        self.data.reserve(data);
        self.tree.reserve(tree);
        let start = (self.data.entries.len(), self.tree.entries.len());
        let mut packs = Vec::with_capacity(file.packs.len());
        for pack in file.packs {
            let ordinal = match self.pack_ordinals.get(&pack.id) {
                Some(&o) => o,
                None => {
                    let o = self.packs.len() as u32;
                    self.packs.push((pack.id, pack.size));
                    self.pack_ordinals.insert(pack.id, o);
                    o
                }
            };
            packs.push(ordinal);
            for blob in pack.blobs {
                let pending = match blob.kind {
                    BlobKind::Data => &mut self.data,
                    BlobKind::Tree => &mut self.tree,
                };
                pending.entries.push(Entry {
                    key: Entry::stored_key(&blob.id),
                    pack: ordinal,
                    offset: blob.offset,
                    length: blob.length,
                    raw_length: blob.raw_length,
                });
                pending.buckets.push(bucket_of(&blob.id));
            }
        }
        self.files.push(FileRun {
            id,
            data: start.0..self.data.entries.len(),
            tree: start.1..self.tree.entries.len(),
            packs,
            marked: file.marked,
            supersedes: file.supersedes,
        });
        Ok(())
    }

    /// The index of the files added that no added file supersedes.
    pub fn finish(self) -> Index {
        let IndexBuilder {
            mut data,
            mut tree,
            packs,
            pack_ordinals,
            files,
        } = self;
        drop(pack_ordinals);
        let superseded: HashSet<IndexId> = files.iter().flat_map(|f| f.supersedes.iter().copied()).collect();
        let live: Vec<&FileRun> = files.iter().filter(|f| !superseded.contains(&f.id)).collect();
        keep_runs(&mut data, live.iter().map(|f| f.data.clone()));
        keep_runs(&mut tree, live.iter().map(|f| f.tree.clone()));

        // The live packs, sorted by id; entries renumbered to match.
        let mut used = vec![false; packs.len()];
        for f in &live {
            for &p in &f.packs {
                used[p as usize] = true;
            }
        }
        let mut kept: Vec<(PackId, u64, u32)> = packs
            .iter()
            .zip(0u32..)
            .filter(|(_, o)| used[*o as usize])
            .map(|(&(id, size), o)| (id, size, o))
            .collect();
        drop(packs);
        kept.sort_unstable_by_key(|&(id, _, _)| id);
        let mut renumber = vec![u32::MAX; used.len()];
        for (new, &(_, _, old)) in kept.iter().enumerate() {
            renumber[old as usize] = new as u32;
        }
        for e in data.entries.iter_mut().chain(tree.entries.iter_mut()) {
            e.pack = renumber[e.pack as usize];
        }
        drop(renumber);

        let mut marked: Vec<MarkedPack> = live.iter().flat_map(|f| f.marked.iter().copied()).collect();
        marked.sort_unstable_by_key(|m| (m.id, m.marked_ns));
        marked.dedup();
        let pack_ids: Vec<PackId> = kept.iter().map(|&(id, _, _)| id).collect();
        let pack_sizes: Vec<u64> = kept.iter().map(|&(_, size, _)| size).collect();
        drop(kept);
        let mut marked_bits = Vec::new();
        if !marked.is_empty() {
            marked_bits = vec![0u64; pack_ids.len().div_ceil(64)];
            for m in &marked {
                if let Ok(o) = pack_ids.binary_search(&m.id) {
                    marked_bits[o / 64] |= 1 << (o % 64);
                }
            }
        }
        let is_marked = |pack: u32| {
            marked_bits
                .get(pack as usize / 64)
                .is_some_and(|w| w & (1 << (pack % 64)) != 0)
        };
        let (data, data_dups) = sort_table(data, &is_marked);
        let (tree, tree_dups) = sort_table(tree, &is_marked);
        let live_files: Vec<IndexId> = {
            let mut ids: Vec<IndexId> = live.iter().map(|f| f.id).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        Index {
            data,
            tree,
            packs: pack_ids,
            pack_sizes,
            marked_bits,
            files: live_files,
            marked,
            duplicates: data_dups + tree_dups,
        }
    }
}

/// Keeps only the entries in `runs` (ascending, not overlapping), in place.
fn keep_runs(pending: &mut Pending, runs: impl Iterator<Item = Range<usize>>) {
    let mut w = 0;
    for run in runs {
        let len = run.len();
        pending.entries.copy_within(run.clone(), w);
        pending.buckets.copy_within(run, w);
        w += len;
    }
    pending.entries.truncate(w);
    pending.buckets.truncate(w);
}

/// Sorts entries into buckets and by key, keeps one entry per key (the
/// first not in a pack marked for deletion, else the first) and returns the
/// table and the number of entries dropped.
fn sort_table(pending: Pending, is_marked: &impl Fn(u32) -> bool) -> (Table, u64) {
    let Pending {
        mut entries,
        mut buckets,
    } = pending;
    if entries.is_empty() {
        return (Table::default(), 0);
    }
    let starts = sort_into_buckets(&mut entries, &mut buckets);
    drop(buckets);
    let mut new_starts = Vec::with_capacity(BUCKETS + 1);
    let mut w = 0usize;
    let mut dropped = 0u64;
    for b in 0..BUCKETS {
        new_starts.push(w as u32);
        let (lo, hi) = (starts[b], starts[b + 1]);
        entries[lo..hi].sort_unstable();
        let mut r = lo;
        while r < hi {
            let mut end = r + 1;
            while end < hi && entries[end].key == entries[r].key {
                end += 1;
            }
            let chosen = (r..end).find(|&i| !is_marked(entries[i].pack)).unwrap_or(r);
            entries[w] = entries[chosen];
            w += 1;
            dropped += (end - r - 1) as u64;
            r = end;
        }
    }
    new_starts.push(w as u32);
    entries.truncate(w);
    entries.shrink_to_fit();
    (Table::new(new_starts, entries), dropped)
}

/// Moves every entry into the run of its bucket (an in-place radix pass,
/// one swap per misplaced entry) and returns where each bucket starts,
/// with the total length at the end.
fn sort_into_buckets(entries: &mut [Entry], buckets: &mut [u16]) -> Vec<usize> {
    let mut starts = vec![0usize; BUCKETS + 1];
    for &b in buckets.iter() {
        starts[usize::from(b) + 1] += 1;
    }
    for b in 0..BUCKETS {
        starts[b + 1] += starts[b];
    }
    let mut next: Vec<usize> = starts[..BUCKETS].to_vec();
    for b in 0..BUCKETS {
        let end = starts[b + 1];
        while next[b] < end {
            let i = next[b];
            let target = usize::from(buckets[i]);
            if target == b {
                next[b] += 1;
            } else {
                let j = next[target];
                entries.swap(i, j);
                buckets.swap(i, j);
                next[target] += 1;
            }
        }
    }
    starts
}
