//! The blobs a saver has taken on in this run, so that each is stored once.
//!
//! A backup of a million small files takes on a million blobs; a hash set of
//! full ids would cost about 70 bytes each, and twice that while it grows.
//! This set keeps the first [`KEY_LEN`] bytes of each id (the same 176 bits
//! the index compares, see format-spec/security.md) in one sorted vector,
//! 23 bytes a blob with the kind, plus a small hash set of the latest ones
//! that is merged into the vector whenever it fills.

use std::collections::HashSet;

use super::KEY_LEN;
use crate::format::BlobKind;
use crate::id::BlobId;

/// The kind byte followed by the id's first `KEY_LEN` bytes.
type Key = [u8; KEY_LEN + 1];

/// Entries the hash set holds before they move to the sorted vector.
const RECENT: usize = 1 << 16;

#[derive(Debug, Default)]
pub struct Reserved {
    sorted: Vec<Key>,
    recent: HashSet<Key>,
}

fn key(kind: BlobKind, id: &BlobId) -> Key {
    let mut k = [0u8; KEY_LEN + 1];
    k[0] = kind as u8;
    k[1..].copy_from_slice(&id.0[..KEY_LEN]);
    k
}

impl Reserved {
    /// Takes the blob on; false if it was taken on before.
    pub fn insert(&mut self, kind: BlobKind, id: &BlobId) -> bool {
        let k = key(kind, id);
        if self.sorted.binary_search(&k).is_ok() || !self.recent.insert(k) {
            return false;
        }
        if self.recent.len() >= RECENT {
            self.merge();
        }
        true
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the recent keys into the sorted vector: sorts them, appends
    /// them, and merges the two runs from the back, in place.
    fn merge(&mut self) {
        let mut recent: Vec<Key> = self.recent.drain().collect();
        recent.sort_unstable();
        let old = self.sorted.len();
        // Grow by what is needed only: a doubling here would cost as much
        // as the set itself.
        self.sorted.reserve_exact(recent.len());
        self.sorted.extend_from_slice(&recent);
        let (mut i, mut j, mut out) = (old, recent.len(), self.sorted.len());
        // `sorted[..i]` and `recent[..j]` are still to be placed, largest
        // first, at `sorted[..out]`; the two runs never share a key.
        while j > 0 {
            out -= 1;
            if i > 0 && self.sorted[i - 1] > recent[j - 1] {
                self.sorted[out] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[out] = recent[j - 1];
                j -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn id(n: u64) -> BlobId {
        BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn each_blob_is_taken_on_once_across_merges() {
        let mut r = Reserved::default();
        let n = 3 * RECENT as u64 + 123;
        for i in 0..n {
            assert!(r.insert(BlobKind::Data, &id(i)), "{i} refused the first time");
        }
        assert_eq!(r.len() as u64, n);
        assert!(r.sorted.len() >= 3 * RECENT, "the recent set was never merged");
        assert!(r.sorted.windows(2).all(|w| w[0] < w[1]), "the merged run is not sorted");
        for i in (0..n).step_by(97) {
            assert!(!r.insert(BlobKind::Data, &id(i)), "{i} taken on twice");
        }
        // The same id as a tree blob is another blob.
        assert!(r.insert(BlobKind::Tree, &id(5)));
        assert!(!r.insert(BlobKind::Tree, &id(5)));
        assert_eq!(r.len() as u64, n + 1);
    }

    #[test]
    fn agrees_with_a_hash_set_on_a_mixed_stream() {
        let mut r = Reserved::default();
        let mut model = HashSet::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..(RECENT * 2 + 500) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Draws from a range small enough to repeat often.
            let n = x % (RECENT as u64 + 1000);
            let kind = if x & 1 == 0 { BlobKind::Data } else { BlobKind::Tree };
            assert_eq!(r.insert(kind, &id(n)), model.insert((kind, n)), "blob {n}");
        }
        assert_eq!(r.len(), model.len());
    }
}
