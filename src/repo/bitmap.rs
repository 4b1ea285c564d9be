//! A fixed-size set of small integers, one bit each: per-blob flags kept by
//! [`Index::position`](super::Index::position) (prune's and check's reached
//! blobs) or per-pack flags kept by pack position.

/// A bitmap over `0..len`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    len: usize,
}

impl Bitmap {
    /// A bitmap of `len` bits, all clear.
    pub fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Number of bits (set or not).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets bit `i`; returns whether it was already set. Panics if `i` is
    /// not below `len()`.
    pub fn set(&mut self, i: usize) -> bool {
        assert!(i < self.len, "bit {i} of a bitmap of {}", self.len);
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let was = self.words[w] & b != 0;
        self.words[w] |= b;
        was
    }

    /// Whether bit `i` is set; false for any `i` at or past `len()`.
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Number of bits set.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_gets_and_counts() {
        let mut b = Bitmap::new(130);
        assert_eq!(b.len(), 130);
        assert_eq!(b.count_ones(), 0);
        assert!(!b.set(0));
        assert!(!b.set(64));
        assert!(!b.set(129));
        assert!(b.set(64), "a second set reports the bit as set before");
        assert!(b.get(0) && b.get(64) && b.get(129));
        assert!(!b.get(1) && !b.get(63) && !b.get(128));
        assert!(!b.get(130), "bits past the end are clear");
        assert_eq!(b.count_ones(), 3);
        assert_eq!(b.heap_bytes(), 3 * 8);
        assert!(Bitmap::new(0).is_empty());
    }
}
