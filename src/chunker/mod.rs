//! FastCDC (2020) content-defined chunking with a keyed gear table.
//!
//! The cut-point rule is normative (it decides which blobs a repository
//! holds, so two versions of cairn must agree byte for byte):
//!
//! - the gear hash `h: u64` starts at 0 for every chunk;
//! - the first `min_size` bytes of a chunk are skipped, not hashed;
//! - for `i` from `min_size` to `min(len, max_size) - 1`:
//!   `h = (h << 1) + gear[data[i]]` (wrapping), and the chunk ends after byte
//!   `i` when `h & mask == 0`, where `mask` is `mask_s` while `i < avg_size`
//!   and `mask_l` from then on (normalized chunking, level 2);
//! - `mask_s` has `log2(avg_size) + 2` one-bits and `mask_l` has
//!   `log2(avg_size) - 2`, both in the most significant bits of the word, so
//!   that each test depends on the last 64 bytes hashed;
//! - without a hit the chunk is `max_size` bytes long (or the rest of the
//!   input at its end).
//!
//! The gear table is derived from the repository's secret chunker key, so the
//! chunk boundaries do not reveal anything about known content.

mod reader;

pub use reader::ChunkReader;

use crate::format::config::ChunkerParams;

/// Cuts data into content-defined chunks.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    params: ChunkerParams,
    /// `min_size`, never above `max`.
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The gear table is derived from a secret key: never print it.
        f.debug_struct("Chunker")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A mask of `bits` one-bits in the most significant bits of a `u64`.
fn top_bits(bits: u32) -> u64 {
    match bits {
        0 => 0,
        64.. => u64::MAX,
        b => ((1u64 << b) - 1) << (64 - b),
    }
}

/// Rolls the gear hash `h` over `data`: the length up to the first byte
/// after which `h & mask == 0`, or the hash at the end.
///
/// Two bytes a step, with the same hash after every byte as one at a time:
/// after bytes `a, b`, `h' = (h << 2) + ((gear[a] << 1) + gear[b])`
/// (wrapping), which is `((h << 1) + gear[a]) << 1) + gear[b]`; the hash
/// after `a` alone is tested beside it. The chain from one `h` to the next
/// is then a shift and an add per two bytes instead of per byte
/// (`cargo bench --bench hot_paths -- chunking`).
#[inline]
fn scan(gear: &[u64; 256], data: &[u8], mut h: u64, mask: u64) -> Result<usize, u64> {
    let mut pairs = data.chunks_exact(2);
    for (k, pair) in pairs.by_ref().enumerate() {
        let (ga, gb) = (gear[pair[0] as usize], gear[pair[1] as usize]);
        let first = (h << 1).wrapping_add(ga);
        h = (h << 2).wrapping_add((ga << 1).wrapping_add(gb));
        if first & mask == 0 {
            return Ok(2 * k + 1);
        }
        if h & mask == 0 {
            return Ok(2 * k + 2);
        }
    }
    if let [last] = pairs.remainder() {
        h = (h << 1).wrapping_add(gear[*last as usize]);
        if h & mask == 0 {
            return Ok(data.len());
        }
    }
    Err(h)
}

impl Chunker {
    /// A chunker with the given gear table and size bounds. The bounds are
    /// expected to be valid ([`ChunkerParams::validate`]); if `min_size`
    /// exceeds `max_size` it is treated as `max_size`.
    pub fn new(gear: Box<[u64; 256]>, params: ChunkerParams) -> Self {
        // A zero max size would yield empty chunks forever.
        let max = (params.max_size as usize).max(1);
        let min = (params.min_size as usize).min(max);
        let avg = params.avg_size as usize;
        let log2 = params.avg_size.max(1).ilog2();
        Self {
            gear,
            params,
            min,
            avg,
            max,
            mask_s: top_bits(log2 + 2),
            mask_l: top_bits(log2.saturating_sub(2)),
        }
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data`. When `eof` is false and no cut
    /// point is found before `data` ends (and `data` is shorter than the max
    /// size), returns `None`: more data is needed. Empty data has no chunk.
    pub fn cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        let len = data.len();
        let end = len.min(self.max);
        if let Some(n) = self.find(data, end) {
            return Some(n);
        }
        if len >= self.max {
            Some(self.max)
        } else if eof {
            Some(len)
        } else {
            None
        }
    }

    /// The first cut point in `data[min..end]`, as a chunk length.
    #[inline]
    fn find(&self, data: &[u8], end: usize) -> Option<usize> {
        if end <= self.min {
            return None;
        }
        // Bytes before the average size use the strict mask.
        let switch = self.avg.clamp(self.min, end);
        match scan(&self.gear, &data[self.min..switch], 0, self.mask_s) {
            Ok(n) => Some(self.min + n),
            Err(h) => scan(&self.gear, &data[switch..end], h, self.mask_l)
                .ok()
                .map(|n| switch + n),
        }
    }

    /// The chunks of a complete input held in memory.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> Chunks<'a> {
        Chunks {
            chunker: self,
            rest: data,
        }
    }
}

/// Iterator over the chunks of a slice, from [`Chunker::chunks`].
#[derive(Debug)]
pub struct Chunks<'a> {
    chunker: &'a Chunker,
    rest: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let n = self.chunker.cut(self.rest, true)?;
        let (chunk, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(chunk)
    }
}

#[cfg(test)]
pub(crate) mod tests;
