//! Building the in-memory index one index file at a time.
//!
//! Each file's entries go straight into two growing tables (one per blob
//! kind, stored in chunks so growing never copies a table) in their final
//! 36-byte form, with the 2-byte bucket of each kept beside it until the
//! end, so loading holds the tables plus the one file being added. `finish` drops the entries of superseded files, sorts the
//! packs by id, sorts the entries into their buckets in place and removes
//! duplicate ids.

use std::collections::HashSet;
use std::ops::Range;

use super::chunked::ChunkVec;
use super::table::{bucket_of, Entry, Table, BUCKETS};
use super::Index;
use crate::format::index::{IndexFile, MarkedPack};
use crate::format::BlobKind;
use crate::id::{IndexId, PackId};
use crate::repo::RepoError;

/// Entries of one kind not yet sorted, with the bucket of each.
#[derive(Debug, Default)]
struct Pending {
    entries: ChunkVec<Entry>,
    buckets: ChunkVec<u16>,
}

/// What one added file contributed.
#[derive(Debug)]
struct FileRun {
    id: IndexId,
    data: Range<usize>,
    tree: Range<usize>,
    /// Ordinals of the packs it names.
    packs: Range<u32>,
    marked: Vec<MarkedPack>,
    supersedes: Vec<IndexId>,
}

/// Collects decoded index files into an [`Index`].
#[derive(Debug, Default)]
pub struct IndexBuilder {
    data: Pending,
    tree: Pending,
    /// Every pack of every file, in the order added: a pack listed by two
    /// files is here twice until `finish`.
    packs: ChunkVec<(PackId, u64)>,
    files: Vec<FileRun>,
    /// Superseded files of the index this builder started from.
    passed_over: Vec<IndexId>,
    /// Duplicates already dropped from the index this builder started from.
    carried_duplicates: u64,
}

fn too_large(what: &str) -> RepoError {
    RepoError::IndexTooLarge(format!("more than {} {what}", u32::MAX))
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder holding all of `index` (its entries, packs and marks, as
    /// the files it was built from), to which files written since are
    /// added. Only files that supersede nothing may be added to it: the
    /// files `index` passed over are not in it. Of an index read through a
    /// local table it holds the overlay only (with every pack).
    pub fn from_index(index: &Index) -> Self {
        let mut builder = Self::new();
        // With a local table, only the overlay is in memory: its files are
        // those the table does not hold.
        let files: Vec<IndexId> = match &index.base {
            Some(base) => index
                .files
                .iter()
                .filter(|f| base.files.binary_search(f).is_err())
                .copied()
                .collect(),
            None => index.files.clone(),
        };
        let Some((&first, others)) = files.split_first() else {
            return builder;
        };
        for (pack, size) in index.packs() {
            builder.packs.push((pack, size));
        }
        for (table, pending) in [(&index.data, &mut builder.data), (&index.tree, &mut builder.tree)] {
            for (bucket, e) in table.iter_with_buckets() {
                pending.entries.push(*e);
                pending.buckets.push(bucket);
            }
        }
        builder.files.push(FileRun {
            id: first,
            data: 0..builder.data.entries.len(),
            tree: 0..builder.tree.entries.len(),
            packs: 0..builder.packs.len() as u32,
            marked: index.marked.clone(),
            supersedes: Vec::new(),
        });
        let (data_end, tree_end, packs_end) = (
            builder.data.entries.len(),
            builder.tree.entries.len(),
            builder.packs.len() as u32,
        );
        for &id in others {
            builder.files.push(FileRun {
                id,
                data: data_end..data_end,
                tree: tree_end..tree_end,
                packs: packs_end..packs_end,
                marked: Vec::new(),
                supersedes: Vec::new(),
            });
        }
        builder.passed_over = index.passed_over.clone();
        builder.carried_duplicates = match &index.base {
            Some(base) => index.duplicates.saturating_sub(base.duplicates + base.cross),
            None => index.duplicates,
        };
        builder
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
        let start = (self.data.entries.len(), self.tree.entries.len());
        let first_pack = self.packs.len() as u32;
        for pack in file.packs {
            let ordinal = self.packs.len() as u32;
            self.packs.push((pack.id, pack.size));
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
            packs: first_pack..self.packs.len() as u32,
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
            files,
            passed_over,
            carried_duplicates,
        } = self;
        let superseded: HashSet<IndexId> = files.iter().flat_map(|f| f.supersedes.iter().copied()).collect();
        let mut live: Vec<&FileRun> = files.iter().filter(|f| !superseded.contains(&f.id)).collect();
        live.sort_by_key(|f| f.id);
        keep_runs(&mut data, live.iter().map(|f| f.data.clone()));
        keep_runs(&mut tree, live.iter().map(|f| f.tree.clone()));

        // The live packs, sorted by id and each once (with the size the
        // file with the lowest id gives); entries renumbered to match.
        let mut order: Vec<u32> = live.iter().flat_map(|f| f.packs.clone()).collect();
        order.sort_by_key(|&o| packs.at(o as usize).0);
        let mut renumber = vec![u32::MAX; packs.len()];
        let mut pack_ids: Vec<PackId> = Vec::with_capacity(order.len());
        let mut pack_sizes: Vec<u64> = Vec::with_capacity(order.len());
        for &o in &order {
            let (id, size) = *packs.at(o as usize);
            if pack_ids.last() != Some(&id) {
                pack_ids.push(id);
                pack_sizes.push(size);
            }
            renumber[o as usize] = (pack_ids.len() - 1) as u32;
        }
        drop(order);
        drop(packs);
        pack_ids.shrink_to_fit();
        pack_sizes.shrink_to_fit();
        for pending in [&mut data, &mut tree] {
            for i in 0..pending.entries.len() {
                let mut e = *pending.entries.at(i);
                e.pack = renumber[e.pack as usize];
                pending.entries.set(i, e);
            }
        }
        drop(renumber);

        let mut marked: Vec<MarkedPack> = live.iter().flat_map(|f| f.marked.iter().copied()).collect();
        marked.sort_unstable_by_key(|m| (m.id, m.marked_ns));
        marked.dedup();
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
        let mut live_files: Vec<IndexId> = live.iter().map(|f| f.id).collect();
        live_files.dedup();
        let mut passed_over: Vec<IndexId> = files
            .iter()
            .map(|f| f.id)
            .filter(|id| superseded.contains(id))
            .chain(passed_over)
            .collect();
        passed_over.sort_unstable();
        passed_over.dedup();
        Index {
            data,
            tree,
            base: None,
            packs: pack_ids,
            pack_sizes,
            marked_bits,
            files: live_files,
            passed_over,
            marked,
            duplicates: carried_duplicates + data_dups + tree_dups,
        }
    }
}

/// Keeps only the entries in `runs` (not overlapping), in place.
fn keep_runs(pending: &mut Pending, runs: impl Iterator<Item = Range<usize>>) {
    let mut runs: Vec<Range<usize>> = runs.collect();
    runs.sort_by_key(|r| r.start);
    let mut w = 0;
    for run in runs {
        for r in run {
            if w != r {
                pending.entries.set(w, *pending.entries.at(r));
                pending.buckets.set(w, *pending.buckets.at(r));
            }
            w += 1;
        }
    }
    pending.entries.truncate_and_shrink(w);
    pending.buckets.truncate_and_shrink(w);
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
    let mut scratch = Vec::new();
    let mut w = 0usize;
    let mut dropped = 0u64;
    for b in 0..BUCKETS {
        new_starts.push(w as u32);
        let (lo, hi) = (starts[b], starts[b + 1]);
        sort_run(&mut entries, lo, hi, &mut scratch);
        let mut r = lo;
        while r < hi {
            let key = entries.at(r).key;
            let mut end = r + 1;
            while end < hi && entries.at(end).key == key {
                end += 1;
            }
            let chosen = (r..end).find(|&i| !is_marked(entries.at(i).pack)).unwrap_or(r);
            entries.set(w, *entries.at(chosen));
            w += 1;
            dropped += (end - r - 1) as u64;
            r = end;
        }
    }
    new_starts.push(w as u32);
    entries.truncate_and_shrink(w);
    entries.shrink();
    (Table::new(new_starts, entries), dropped)
}

/// Sorts the entries `lo..hi`: in place when they lie in one chunk, else
/// through `scratch` (a bucket holds few entries).
fn sort_run(entries: &mut ChunkVec<Entry>, lo: usize, hi: usize, scratch: &mut Vec<Entry>) {
    if let Some(run) = entries.slice_mut(lo, hi) {
        run.sort_unstable();
        return;
    }
    scratch.clear();
    scratch.extend((lo..hi).map(|i| *entries.at(i)));
    scratch.sort_unstable();
    for (i, e) in (lo..hi).zip(scratch.iter()) {
        entries.set(i, *e);
    }
}

/// Moves every entry into the run of its bucket (an in-place radix pass,
/// one swap per misplaced entry) and returns where each bucket starts,
/// with the total length at the end.
fn sort_into_buckets(entries: &mut ChunkVec<Entry>, buckets: &mut ChunkVec<u16>) -> Vec<usize> {
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
            let target = usize::from(*buckets.at(i));
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
