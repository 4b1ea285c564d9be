//! Saving one file's content: read once, chunk, save chunks in parallel.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use rayon::prelude::*;

use super::progress::Progress;
use super::BackupError;
use crate::chunker::{ChunkReader, Chunker};
use crate::format::tree::Content;
use crate::format::BlobKind;
use crate::repo::saver::BlobSaver;
use crate::source::sparse;

/// Chunks saved together, in parallel, from one file.
const BATCH: usize = 4;

/// Files up to this size are read into memory in one go.
const SMALL_FILE: u64 = 4 << 20;

thread_local! {
    /// Each reading thread's buffer for small files, reused file after file.
    static SMALL_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Each reading thread's chunking buffer for large files.
    static READ_BUF: RefCell<BytesMut> = RefCell::new(BytesMut::new());
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
    /// Size including holes.
    pub size: u64,
    /// The file changed while it was read.
    pub changed: bool,
}

/// Opens for reading without updating the access time where permitted
/// (the owner or root), so a backup leaves atimes as it found them.
fn open_noatime(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        other => other,
    }
}

/// Reads `path` (whose `lstat` said `expected_size`) and saves its chunks.
pub fn save_file(
    path: &Path,
    expected_size: u64,
    chunker: &Chunker,
    saver: &BlobSaver,
    progress: &Progress,
) -> Result<FileContent, FileFailure> {
    let mut file = open_noatime(path).map_err(FileFailure::Unreadable)?;
    let before = file.metadata().map_err(FileFailure::Unreadable)?;
    let size = before.len();
    let segments = if before.blocks().saturating_mul(512) < size {
        sparse::data_segments(&file, size).map_err(FileFailure::Unreadable)?
    } else {
        vec![(0, size)]
    };
    let mut content = Vec::new();
    let mut pos = 0u64;
    let mut bytes = 0u64;
    for (offset, len) in segments {
        if offset > pos {
            content.push(Content::Hole(offset - pos));
        }
        if offset != pos {
            file.seek(SeekFrom::Start(offset)).map_err(FileFailure::Unreadable)?;
        }
        let read = save_stream((&mut file).take(len), len, chunker, saver, progress, &mut content)?;
        bytes += read;
        pos = offset + read;
        if read < len {
            break;
        }
    }
    // A file that grew is read only up to the size it had when it was opened.
    if pos < size {
        content.push(Content::Hole(size - pos));
    }
    let after = file.metadata().map_err(FileFailure::Unreadable)?;
    let changed = after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
        || after.ctime() != before.ctime()
        || after.ctime_nsec() != before.ctime_nsec()
        || size != expected_size
        || pos < size;
    Ok(FileContent {
        content,
        bytes,
        size,
        changed,
    })
}

/// Chunks `reader` (of about `len` bytes) and appends content entries;
/// returns the bytes read.
pub fn save_stream<R: Read>(
    mut reader: R,
    len: u64,
    chunker: &Chunker,
    saver: &BlobSaver,
    progress: &Progress,
    content: &mut Vec<Content>,
) -> Result<u64, FileFailure> {
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
    let buffer = READ_BUF.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    let mut chunks = ChunkReader::with_buffer(chunker.clone(), reader, buffer);
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH);
    loop {
        // Save what is batched before the reader refills its buffer, so the
        // buffer is free to be reused rather than a second one allocated.
        if chunks.needs_fill() && !batch.is_empty() {
            let slices: Vec<&[u8]> = batch.iter().map(|b| b.as_ref()).collect();
            save_batch(&slices, saver, progress, content)?;
            batch.clear();
        }
        let next = chunks.next_chunk().map_err(FileFailure::Unreadable)?;
        let done = next.is_none();
        if let Some(chunk) = next {
            batch.push(chunk);
        }
        if batch.len() == BATCH || (done && !batch.is_empty()) {
            let slices: Vec<&[u8]> = batch.iter().map(|b| b.as_ref()).collect();
            save_batch(&slices, saver, progress, content)?;
            batch.clear();
        }
        if done {
            let read = chunks.bytes_read();
            READ_BUF.with(|cell| *cell.borrow_mut() = chunks.into_buffer());
            return Ok(read);
        }
    }
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
    let ids: Vec<Content> = if chunks.len() > 1 {
        chunks.par_iter().map(save).collect::<Result<_, FileFailure>>()?
    } else {
        chunks.iter().map(save).collect::<Result<_, FileFailure>>()?
    };
    content.extend(ids);
    Ok(())
}
