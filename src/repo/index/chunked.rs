//! A vector stored in fixed-size chunks.
//!
//! A single vector of ten million entries grows by reallocation, and an
//! allocator that cannot grow a block in place holds the old and the new
//! block at once: twice the index for a moment. Chunks never move, so
//! growing costs at most one partly filled chunk.

/// Elements per chunk (a power of two).
const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;
const MASK: usize = CHUNK - 1;

#[derive(Debug, Clone)]
pub(super) struct ChunkVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkVec<T> {
    fn default() -> Self {
        ChunkVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy> ChunkVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                // A first chunk grows like a vector, so small tables stay
                // small; later ones are allocated whole.
                let mut chunk = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(CHUNK)
                };
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & MASK)
    }

    /// The element at `i`, which must be below `len()`.
    pub fn at(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_BITS][i & MASK]
    }

    /// Sets the element at `i`, which must be below `len()`.
    pub fn set(&mut self, i: usize, value: T) {
        self.chunks[i >> CHUNK_BITS][i & MASK] = value;
    }

    pub fn swap(&mut self, i: usize, j: usize) {
        let (a, b) = (*self.at(i), *self.at(j));
        self.set(i, b);
        self.set(j, a);
    }

    /// The elements `range` as one slice when they lie in one chunk.
    pub fn slice_mut(&mut self, lo: usize, hi: usize) -> Option<&mut [T]> {
        if lo == hi {
            return Some(&mut []);
        }
        let c = lo >> CHUNK_BITS;
        if (hi - 1) >> CHUNK_BITS != c {
            return None;
        }
        self.chunks.get_mut(c)?.get_mut(lo & MASK..((hi - 1) & MASK) + 1)
    }

    /// Keeps the first `len` elements and frees the room after them.
    pub fn truncate_and_shrink(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let chunks = len.div_ceil(CHUNK);
        self.chunks.truncate(chunks);
        if let Some(last) = self.chunks.last_mut() {
            last.truncate(len - (chunks - 1) * CHUNK);
            last.shrink_to_fit();
        }
        self.chunks.shrink_to_fit();
        self.len = len;
    }

    /// Frees the room after the last element.
    pub fn shrink(&mut self) {
        if let Some(last) = self.chunks.last_mut() {
            last.shrink_to_fit();
        }
        self.chunks.shrink_to_fit();
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Vec<T>>()
            + self
                .chunks
                .iter()
                .map(|c| c.capacity() * std::mem::size_of::<T>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_cross_chunks_and_shrink() {
        let mut v = ChunkVec::default();
        let n = CHUNK * 2 + 10;
        for i in 0..n {
            v.push(i as u32);
        }
        assert_eq!(v.len(), n);
        assert_eq!(*v.at(CHUNK), CHUNK as u32);
        assert_eq!(v.get(n), None);
        v.swap(1, CHUNK + 1);
        assert_eq!((*v.at(1), *v.at(CHUNK + 1)), (CHUNK as u32 + 1, 1));
        assert!(v.slice_mut(CHUNK - 1, CHUNK + 1).is_none());
        assert_eq!(
            v.slice_mut(CHUNK, CHUNK + 3).unwrap(),
            &[CHUNK as u32, 1, CHUNK as u32 + 2]
        );
        assert_eq!(v.slice_mut(5, 5).unwrap().len(), 0);
        v.truncate_and_shrink(CHUNK + 2);
        assert_eq!(v.len(), CHUNK + 2);
        assert_eq!(v.iter().count(), CHUNK + 2);
        assert_eq!(v.heap_bytes(), 2 * std::mem::size_of::<Vec<u32>>() + (CHUNK + 2) * 4);
        v.truncate_and_shrink(0);
        assert!(v.is_empty());
        assert_eq!(v.heap_bytes(), 0);
    }
}
