//! FastCDC (2020) content-defined chunking with a keyed gear table.
//!
//! IMPLEMENTATION PENDING (see the API below).

use crate::format::config::ChunkerParams;

/// Cuts data into content-defined chunks.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    params: ChunkerParams,
}

impl Chunker {
    pub fn new(gear: Box<[u64; 256]>, params: ChunkerParams) -> Self {
        Self { gear, params }
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data`. When `eof` is false and no cut
    /// point is found before `data` ends (and `data` is shorter than the max
    /// size), returns `None`: more data is needed.
    pub fn cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        let _ = &self.gear;
        if data.is_empty() {
            return None;
        }
        let max = self.params.max_size as usize;
        if data.len() >= max {
            Some(max)
        } else if eof {
            Some(data.len())
        } else {
            None
        }
    }
}
