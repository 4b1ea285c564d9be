//! Chunking a stream through one large reusable buffer.

use std::io::{ErrorKind, Read};

use bytes::{Bytes, BytesMut};

use super::Chunker;

/// Smallest buffer a [`ChunkReader`] uses.
const MIN_BUFFER: usize = 1 << 20;

/// Reads a source and yields its chunks.
///
/// The source is read into a buffer of the maximum chunk size (at least
/// 1 MiB); chunks are handed out as [`Bytes`] views of that buffer, so there
/// is one allocation per buffer fill at most and none per chunk. Once every
/// chunk of a fill has been dropped, the next fill reuses the same
/// allocation. A chunk is cut as soon as the buffered bytes determine its end
/// (a cut point is final once found, whatever follows); the unconsumed tail
/// is carried to the front of the next fill, and only that tail is scanned
/// again. No source byte is read twice.
#[derive(Debug)]
pub struct ChunkReader<R> {
    chunker: Chunker,
    source: R,
    /// Bytes read but not yet handed out.
    buf: BytesMut,
    capacity: usize,
    eof: bool,
    bytes_read: u64,
}

impl<R: Read> ChunkReader<R> {
    /// A reader with the default buffer size.
    pub fn new(chunker: Chunker, source: R) -> Self {
        Self::with_buffer_size(chunker, source, MIN_BUFFER)
    }

    /// A reader whose buffer holds `size` bytes, raised to the maximum chunk
    /// size if it is smaller (a buffer of `max` bytes always yields a cut).
    pub fn with_buffer_size(chunker: Chunker, source: R, size: usize) -> Self {
        let capacity = size.max(chunker.max).max(1);
        Self {
            chunker,
            source,
            buf: BytesMut::new(),
            capacity,
            eof: false,
            bytes_read: 0,
        }
    }

    /// The next chunk, or `None` at the end of the source.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(chunk) = self.next_buffered() {
                return Ok(Some(chunk));
            }
            if !self.fill_more()? {
                return Ok(None);
            }
        }
    }

    /// The next chunk if the buffered bytes already determine it, without
    /// reading. When this returns `None`, [`fill_more`](Self::fill_more)
    /// reads; a caller that drops its chunks before that lets the buffer be
    /// reused.
    pub fn next_buffered(&mut self) -> Option<Bytes> {
        self.chunker
            .cut(&self.buf, self.eof)
            .map(|n| self.buf.split_to(n).freeze())
    }

    /// Reads more of the source; false once it is exhausted.
    pub fn fill_more(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.fill()?;
        Ok(true)
    }

    /// Like [`with_buffer_size`](Self::with_buffer_size) with the default
    /// size, reading into `buf` (cleared first): a buffer kept from an
    /// earlier reader is reused when no chunk of it is alive any more.
    pub fn with_buffer(chunker: Chunker, source: R, mut buf: BytesMut) -> Self {
        buf.clear();
        let mut reader = Self::new(chunker, source);
        reader.buf = buf;
        reader
    }

    /// The buffer, to hand to the next reader.
    pub fn into_buffer(self) -> BytesMut {
        self.buf
    }

    /// Bytes the buffer can hold from its start (tests).
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes read from the source so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The source, for example to inspect it after the last chunk.
    pub fn into_inner(self) -> R {
        self.source
    }

    /// Reads until the buffer is full or the source ends.
    fn fill(&mut self) -> std::io::Result<()> {
        let mut filled = self.buf.len();
        // Reclaims the previous allocation when no chunk of it is alive
        // and the tail can move to its front; otherwise starts a new one of
        // the same size. (`reserve` would double the allocation when the
        // tail is longer than the bytes cut before it, and a reused buffer
        // would keep the doubled size for good.)
        if !self.buf.try_reclaim(self.capacity - filled) {
            let mut fresh = BytesMut::with_capacity(self.capacity);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        self.buf.resize(self.capacity, 0);
        let result = loop {
            if filled == self.capacity {
                break Ok(());
            }
            match self.source.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break Ok(());
                }
                Ok(n) if n > self.capacity - filled => {
                    break Err(std::io::Error::new(
                        ErrorKind::InvalidData,
                        "the source reported reading more bytes than it was given room for",
                    ));
                }
                Ok(n) => {
                    filled += n;
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.truncate(filled);
        result
    }
}

impl<R: Read> Iterator for ChunkReader<R> {
    type Item = std::io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}
