//! The blobs of one kind: entries sorted by id, found through a table of
//! buckets on the first two id bytes.
//!
//! An entry keeps only the id bytes 2..22: bytes 0..2 are implied by the
//! bucket, and the bytes from 22 on are not kept at all (see "The in-memory
//! index" in `format-spec/security.md`). An entry is 36 bytes with no padding.

use std::cmp::Ordering;

use super::chunked::ChunkVec;
use crate::id::BlobId;

/// Number of leading id bytes a lookup compares (176 bits).
pub const KEY_LEN: usize = 22;
/// Leading id bytes implied by the bucket.
const BUCKET_LEN: usize = 2;
/// Id bytes stored per entry.
const STORED_LEN: usize = KEY_LEN - BUCKET_LEN;
/// Number of buckets: one per value of the first two id bytes.
pub(super) const BUCKETS: usize = 1 << (8 * BUCKET_LEN);

/// One blob: the stored part of its id and where it lives. `pack` is an
/// ordinal into the index's pack table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    pub key: [u8; STORED_LEN],
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 36, "an index entry must stay 36 bytes");

impl Entry {
    /// The stored part of `id`'s key.
    pub fn stored_key(id: &BlobId) -> [u8; STORED_LEN] {
        let mut key = [0u8; STORED_LEN];
        key.copy_from_slice(&id.0[BUCKET_LEN..KEY_LEN]);
        key
    }
}

/// The bucket of `id`: its first two bytes.
pub(super) fn bucket_of(id: &BlobId) -> u16 {
    u16::from_be_bytes([id.0[0], id.0[1]])
}

/// A sorted table of one blob kind.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// `starts[b]..starts[b + 1]` are the entries of bucket `b`; empty
    /// (not `BUCKETS + 1` zeros) when the table is.
    starts: Vec<u32>,
    entries: ChunkVec<Entry>,
}

impl Table {
    /// A table from entries sorted by (bucket, key) with `starts` as above.
    pub fn new(starts: Vec<u32>, entries: ChunkVec<Entry>) -> Self {
        debug_assert!(starts.is_empty() || starts.len() == BUCKETS + 1);
        if entries.is_empty() {
            return Table::default();
        }
        Table { starts, entries }
    }

    /// The position of the entry whose key equals `id`'s first bytes.
    pub fn find(&self, id: &BlobId) -> Option<usize> {
        let b = usize::from(bucket_of(id));
        let mut lo = *self.starts.get(b)? as usize;
        let mut hi = *self.starts.get(b + 1)? as usize;
        let key = &id.0[BUCKET_LEN..KEY_LEN];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entries.get(mid)?.key.as_slice().cmp(key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub fn get(&self, position: usize) -> Option<&Entry> {
        self.entries.get(position)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter()
    }

    /// Every entry with its bucket, in table order.
    pub fn iter_with_buckets(&self) -> impl Iterator<Item = (u16, &Entry)> + '_ {
        self.starts.windows(2).enumerate().flat_map(move |(b, w)| {
            // `b` < BUCKETS, which is 2^16.
            let bucket = b as u16;
            (w[0] as usize..w[1] as usize).filter_map(move |i| self.entries.get(i).map(|e| (bucket, e)))
        })
    }

    /// The entries of bucket `b` (below [`BUCKETS`]) appended to `out`.
    pub fn bucket_into(&self, b: usize, out: &mut Vec<Entry>) {
        if let (Some(&lo), Some(&hi)) = (self.starts.get(b), self.starts.get(b + 1)) {
            out.extend((lo as usize..hi as usize).filter_map(|i| self.entries.get(i).copied()));
        }
    }

    /// Whether bucket `b` holds no entry.
    pub fn bucket_is_empty(&self, b: usize) -> bool {
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(lo), Some(hi)) => lo == hi,
            _ => true,
        }
    }

    /// Replaces every entry's pack ordinal `p` with `map[p]`.
    pub fn map_packs(&mut self, map: &[u32]) {
        for i in 0..self.entries.len() {
            let mut e = *self.entries.at(i);
            e.pack = map[e.pack as usize];
            self.entries.set(i, e);
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<u32>() + self.entries.heap_bytes()
    }
}
