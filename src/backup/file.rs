//! Saving one file's content: read once, chunk, save chunks in parallel.

use crate::repo::cancel::{canceled, CancelToken};
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use rayon::prelude::*;

use super::progress::Progress;
use super::throttle::{ReadLimit, Throttled};
use super::BackupError;
use crate::chunker::{ChunkReader, Chunker};
use crate::format::tree::Content;
use crate::format::BlobKind;
use crate::repo::recycle::Recycler;
use crate::repo::saver::BlobSaver;
use crate::source::meta::Stat;
use crate::source::open::{open_file, stat_fd};
use crate::source::sparse;
use crate::source::Hook;

/// Chunks saved together, in parallel, from one file.
const BATCH: usize = 4;

/// Files up to this size are read into memory in one go.
const SMALL_FILE: u64 = 1 << 20;

thread_local! {
    /// Each reading thread's buffer for small files, reused file after file.
    static SMALL_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What reading a file needs besides the file.
#[derive(Clone, Copy)]
pub struct ReadContext<'a> {
    pub chunker: &'a Chunker,
    pub saver: &'a BlobSaver,
    pub progress: &'a Progress,
    pub buffers: &'a ReadBuffers,
    /// Checked before each file and each batch of chunks.
    pub cancel: Option<&'a CancelToken>,
    /// Every byte read from a file is charged to it.
    pub read_limit: Option<&'a ReadLimit>,
}

/// The chunking buffers of large files, shared by the reading threads: at
/// most `max` exist, so memory stays bounded however many threads read
/// (small files, read whole into a per-thread buffer, need none).
#[derive(Debug)]
pub struct ReadBuffers(Recycler<BytesMut>);

impl ReadBuffers {
    pub fn new(max: usize) -> Self {
        Self(Recycler::new(max))
    }

    /// Lends a buffer, waiting while all of them are lent.
    fn lease(&self) -> Lease<'_> {
        Lease {
            pool: &self.0,
            buf: Some(self.0.take()),
        }
    }
}

/// A lent buffer; returned on drop (or, if it was lost with a failed read,
/// its slot is freed).
struct Lease<'a> {
    pool: &'a Recycler<BytesMut>,
    buf: Option<BytesMut>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        match self.buf.take() {
            Some(buf) => self.pool.give(buf),
            None => self.pool.forget(),
        }
    }
}

/// Why a file's content could not be saved.
#[derive(Debug)]
pub enum FileFailure {
    /// The file could not be read: report it, leave it out, go on.
    Unreadable(std::io::Error),
    /// The repository failed: the backup stops.
    Fatal(BackupError),
}

/// What reading a file found.
#[derive(Debug)]
pub struct FileContent {
    pub content: Vec<Content>,
    /// Bytes actually read (holes not counted).
    pub bytes: u64,
    /// Size including holes: what was stored.
    pub size: u64,
    /// How the file changed while it was read, if it did; what was read is
    /// stored.
    pub changed: Option<String>,
}

/// A regular file the walk found, to be read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The directory holding it, open.
    pub dir: Arc<OwnedFd>,
    /// Its name in `dir`.
    pub name: OsString,
    /// Its path, for messages.
    pub path: PathBuf,
    /// Its metadata when the walk listed it.
    pub walked: Stat,
}

/// Reads the file the walk found and saves its chunks.
///
/// The file is opened relative to its directory and only if it is still the
/// regular file the walk saw (see [`crate::source::open`]); otherwise it is
/// unreadable. It is read up to the size the walk saw: a file that grew is
/// cut there, a file that shrank is stored as far as it could be read, with
/// no padding; either is reported as changed. `after_open` runs once the
/// file is open and its regions are known, before its first byte is read
/// (tests).
pub fn save_file(src: &SourceFile, ctx: &ReadContext<'_>, after_open: &Hook) -> Result<FileContent, FileFailure> {
    let (mut file, before) = open_file(src.dir.as_fd(), &src.name, &src.walked).map_err(FileFailure::Unreadable)?;
    let walked = src.walked.size;
    let size = walked.min(before.size);
    if size > SMALL_FILE {
        // A larger read-ahead window keeps the disk busy while chunks are
        // sealed. A hint: failure changes nothing.
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let _ = posix_fadvise(fd, 0, 0, PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL);
    }
    let segments = if before.blocks.saturating_mul(512) < size {
        sparse::data_segments(&file, size).map_err(FileFailure::Unreadable)?
    } else {
        vec![(0, size)]
    };
    after_open.call(&src.path);
    let mut content = Vec::new();
    let mut segment = Vec::new();
    let mut pos = 0u64;
    let mut bytes = 0u64;
    let mut short = false;
    for (offset, len) in segments {
        if offset != pos {
            file.seek(SeekFrom::Start(offset)).map_err(FileFailure::Unreadable)?;
        }
        segment.clear();
        let read = save_stream((&mut file).take(len), len, ctx, &mut segment)?;
        if read == 0 && len > 0 {
            // The file ends before this region: the hole before it is gone too.
            short = true;
            break;
        }
        if offset > pos {
            content.push(Content::Hole(offset - pos));
        }
        content.append(&mut segment);
        bytes += read;
        pos = offset + read;
        if read < len {
            short = true;
            break;
        }
    }
    // A trailing hole of a sparse file; a file that ended early is stored as
    // read, never padded.
    if !short && pos < size {
        content.push(Content::Hole(size - pos));
        pos = size;
    }
    let after = stat_fd(file.as_fd()).map_err(FileFailure::Unreadable)?;
    Ok(FileContent {
        content,
        bytes,
        size: pos,
        changed: change(&src.walked, &before, &after, pos),
    })
}

/// How a file changed between the walk (`walked`), its opening (`before`)
/// and the end of reading (`after`), of which `stored` bytes were stored.
fn change(walked: &Stat, before: &Stat, after: &Stat, stored: u64) -> Option<String> {
    let listed = walked.size;
    if stored < listed {
        Some(format!("shrank: {listed} bytes when listed, {stored} read and stored"))
    } else if before.size > listed || after.size > listed {
        Some(format!("grew: stored up to its size when listed, {listed} bytes"))
    } else if before.mtime_ns != walked.mtime_ns
        || before.ctime_ns != walked.ctime_ns
        || after.mtime_ns != before.mtime_ns
        || after.ctime_ns != before.ctime_ns
        || after.size != before.size
    {
        Some("modified: stored as read".to_owned())
    } else {
        None
    }
}

/// Chunks `reader` (of about `len` bytes) and appends content entries;
/// returns the bytes read.
pub fn save_stream<R: Read>(
    reader: R,
    len: u64,
    ctx: &ReadContext<'_>,
    content: &mut Vec<Content>,
) -> Result<u64, FileFailure> {
    let ReadContext {
        chunker,
        saver,
        progress,
        buffers,
        cancel,
        read_limit,
    } = *ctx;
    let mut reader = Throttled::new(reader, read_limit);
    let stop = || {
        if canceled(cancel) {
            Err(FileFailure::Fatal(BackupError::Canceled))
        } else {
            Ok(())
        }
    };
    stop()?;
    if len <= SMALL_FILE {
        return SMALL_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.clear();
            (&mut reader)
                .take(SMALL_FILE)
                .read_to_end(&mut buf)
                .map_err(FileFailure::Unreadable)?;
            let chunks: Vec<&[u8]> = chunker.chunks(&buf).collect();
            save_batch(&chunks, saver, progress, content)?;
            Ok(buf.len() as u64)
        });
    }
    let mut lease = buffers.lease();
    let buffer = lease.buf.take().unwrap_or_default();
    let mut chunks = ChunkReader::with_buffer(chunker.clone(), reader, buffer);
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH);
    loop {
        // Everything the buffer holds is cut and saved before the reader
        // refills it, so the buffer is free to be reused.
        while let Some(chunk) = chunks.next_buffered() {
            batch.push(chunk);
            if batch.len() == BATCH {
                stop()?;
                flush(&mut batch, saver, progress, content)?;
            }
        }
        stop()?;
        flush(&mut batch, saver, progress, content)?;
        if !chunks.fill_more().map_err(FileFailure::Unreadable)? {
            let read = chunks.bytes_read();
            lease.buf = Some(chunks.into_buffer());
            return Ok(read);
        }
    }
}

/// Saves a batch of chunks and empties it.
fn flush(
    batch: &mut Vec<Bytes>,
    saver: &BlobSaver,
    progress: &Progress,
    content: &mut Vec<Content>,
) -> Result<(), FileFailure> {
    if !batch.is_empty() {
        let slices: Vec<&[u8]> = batch.iter().map(|b| b.as_ref()).collect();
        save_batch(&slices, saver, progress, content)?;
        batch.clear();
    }
    Ok(())
}

fn save_batch(
    chunks: &[&[u8]],
    saver: &BlobSaver,
    progress: &Progress,
    content: &mut Vec<Content>,
) -> Result<(), FileFailure> {
    let save = |chunk: &&[u8]| {
        let saved = saver
            .save(BlobKind::Data, chunk)
            .map_err(|e| FileFailure::Fatal(e.into()))?;
        progress.add_bytes(chunk.len() as u64);
        Ok(Content::Blob(saved.id))
    };
    // Sealing runs on the CPU pool only, even for one chunk: the reading
    // threads then wait on the disk, and only the pool's threads carry
    // compression contexts and sealing buffers.
    let ids: Vec<Content> = chunks.par_iter().map(save).collect::<Result<_, FileFailure>>()?;
    content.extend(ids);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lost_with_a_failed_read_frees_its_slot() {
        let pool = ReadBuffers::new(1);
        let mut lease = pool.lease();
        lease.buf = None;
        drop(lease);
        // Would wait forever if the lost buffer still counted.
        let again = pool.lease();
        assert!(again.buf.as_ref().is_some_and(|b| b.is_empty()));
    }
}
