//! The pass over the packs: the live index files are read again, one at a
//! time and in order of their ids, and each pack is checked where the first
//! of them lists it.
//!
//! For each pack this pass compares the listings of the other files with
//! the first one (by an 8-byte digest of size and entries), reports it if it
//! is missing from storage or has another size there, reads its header and
//! compares it with the entries, and with `--read-data` reads it in pieces
//! and verifies its hash and every blob. From the entries it finds blobs stored in several
//! packs and indexed blobs no snapshot reaches.
//!
//! Memory: per pack 16 bytes (first file, blob count, digest); one index
//! file decoded and a few fetched; the headers and pack pieces being read; and,
//! proportional to what is reported, the duplicate blobs and the first
//! unused ones.

use std::collections::{BinaryHeap, VecDeque};

use bytes::Bytes;

use super::concurrent::{for_each_bounded, for_each_in_order};
use super::data::{pieces, PackHash, Piece, Selection};
use super::report::ObjectType;
use super::structure::{compare_header, decode_index, fetch_header, open_header, PackView, StoredPacks};
use super::walk::Reached;
use super::{CheckError, CheckOptions, CheckReport};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::TRAILER_LEN;
use crate::format::BlobKind;
use crate::id::{BlobId, IndexId, PackId};
use crate::repo::{Index, Repository};
use crate::storage::{FileKind, StorageError};

/// Index files fetched ahead of the one being checked.
const PREFETCH: usize = 4;

/// No file has listed the pack yet.
const UNSEEN: u32 = u32::MAX;

/// What the first live index file to list each pack said, by pack position.
struct FirstListings {
    file: Vec<u32>,
    blobs: Vec<u32>,
    digest: Vec<u64>,
}

/// An 8-byte digest of a pack's listing: two files list a pack alike when
/// their digests agree.
fn listing_digest(pack: &IndexPack) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&pack.size.to_le_bytes());
    h.update(&(pack.blobs.len() as u64).to_le_bytes());
    for e in &pack.blobs {
        h.update(&[u8::from(e.kind == BlobKind::Tree)]);
        h.update(e.id.as_bytes());
        h.update(&e.offset.to_le_bytes());
        h.update(&e.length.to_le_bytes());
        h.update(&e.raw_length.to_le_bytes());
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The smallest unused blobs by (id, kind), at most `limit` of them.
struct FirstUnused {
    limit: usize,
    heap: BinaryHeap<(BlobId, BlobKind, PackId)>,
}

impl FirstUnused {
    fn offer(&mut self, item: (BlobId, BlobKind, PackId)) {
        if self.heap.len() < self.limit {
            self.heap.push(item);
        } else if self.heap.peek().is_some_and(|top| item < *top) {
            self.heap.pop();
            self.heap.push(item);
        }
    }
}

/// Fetches index files in order, a few ahead.
struct Prefetch<'a> {
    repo: &'a Repository,
    names: std::iter::Copied<std::slice::Iter<'a, IndexId>>,
    running: VecDeque<tokio::task::JoinHandle<Result<Bytes, StorageError>>>,
}

impl Prefetch<'_> {
    fn next(&mut self) -> Option<Result<Bytes, String>> {
        while self.running.len() < PREFETCH {
            let Some(id) = self.names.next() else { break };
            let storage = self.repo.storage().clone();
            self.running.push_back(
                self.repo
                    .runtime()
                    .spawn(async move { storage.get(FileKind::Index, &id.to_hex()).await }),
            );
        }
        let handle = self.running.pop_front()?;
        Some(match self.repo.block_on(handle) {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => Err(format!("cannot be read: {e}")),
            Err(e) => Err(format!("cannot be read: {e}")),
        })
    }
}

/// Checks every indexed pack; see the module documentation.
pub(super) fn check_packs(
    repo: &Repository,
    index: &Index,
    stored: &StoredPacks,
    reached: &Reached,
    selection: Selection,
    opts: &CheckOptions,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    let files = index.files();
    let packs = index.pack_count();
    let mut first = FirstListings {
        file: vec![UNSEEN; packs],
        blobs: vec![0; packs],
        digest: vec![0; packs],
    };
    let mut duplicates: Vec<(BlobId, BlobKind, PackId)> = Vec::new();
    let mut unused = FirstUnused {
        limit: opts.list_unused,
        heap: BinaryHeap::new(),
    };
    let mut fetch = Prefetch {
        repo,
        names: files.iter().copied(),
        running: VecDeque::new(),
    };
    for (ordinal, file_id) in files.iter().enumerate() {
        let Some(fetched) = fetch.next() else { break };
        let file = match fetched.and_then(|bytes| decode_index(repo, &file_id.to_hex(), &bytes)) {
            Ok(f) => f,
            Err(msg) => {
                report.error(ObjectType::Index, file_id, msg);
                continue;
            }
        };
        let mut headers: Vec<(usize, PackId, u64)> = Vec::new();
        let mut reads: Vec<(usize, PackId, u64)> = Vec::new();
        for (i, pack) in file.packs.iter().enumerate() {
            let Some(pos) = index.pack_position(&pack.id) else {
                continue;
            };
            let digest = listing_digest(pack);
            if first.file[pos] != UNSEEN {
                if first.digest[pos] != digest {
                    let first_size = index.pack_at(pos).map_or(0, |(_, size)| size);
                    report.error(
                        ObjectType::Pack,
                        pack.id,
                        format!(
                            "index files {} and {file_id} list it differently ({first_size} and {} bytes, {} and {} blobs)",
                            files[first.file[pos] as usize],
                            pack.size,
                            first.blobs[pos],
                            pack.blobs.len()
                        ),
                    );
                }
                continue;
            }
            first.file[pos] = ordinal as u32;
            first.blobs[pos] = pack.blobs.len() as u32;
            first.digest[pos] = digest;
            scan_entries(index, reached, pack, &mut duplicates, &mut unused);
            let Some(size) = stored.size(index, pos) else {
                report.error(
                    ObjectType::Pack,
                    pack.id,
                    format!("is listed in index {file_id} but missing from storage"),
                );
                continue;
            };
            if size != pack.size {
                report.error(
                    ObjectType::Pack,
                    pack.id,
                    format!("has {size} bytes in storage but index {file_id} says {}", pack.size),
                );
            }
            headers.push((i, pack.id, size));
            if selection.contains(&pack.id) {
                reads.push((i, pack.id, size));
            }
        }
        check_headers(repo, &file, file_id, headers, opts.small_reads, report)?;
        if !reads.is_empty() {
            read_packs(repo, &file, reads, opts, report)?;
        }
    }
    drop(first);
    report_duplicates(index, duplicates, report);
    report_unused(index, reached, unused, report);
    Ok(())
}

/// Notes the blobs of a pack that another pack holds too (the index reads
/// one copy), and the unused ones of the copies the index reads.
fn scan_entries(
    index: &Index,
    reached: &Reached,
    pack: &IndexPack,
    duplicates: &mut Vec<(BlobId, BlobKind, PackId)>,
    unused: &mut FirstUnused,
) {
    for e in &pack.blobs {
        let Some(loc) = index.get(e.kind, &e.id) else { continue };
        if loc.pack != pack.id {
            duplicates.push((e.id, e.kind, pack.id));
            continue;
        }
        let used = index.position(e.kind, &e.id).is_some_and(|pos| reached.blobs.get(pos));
        if !used && unused.limit > 0 {
            unused.offer((e.id, e.kind, pack.id));
        }
    }
}

/// Reads the headers of the packs `todo` of `file` and compares them with
/// its entries.
fn check_headers(
    repo: &Repository,
    file: &IndexFile,
    file_id: &IndexId,
    todo: Vec<(usize, PackId, u64)>,
    connections: usize,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    let storage = repo.storage().clone();
    let key = repo.key_arc();
    for_each_bounded(
        repo.runtime(),
        todo,
        connections,
        move |(i, id, size): (usize, PackId, u64)| {
            let storage = storage.clone();
            async move { (i, id, fetch_header(&storage, &id, size).await) }
        },
        |(i, id, result)| match result {
            Ok((offset, sealed)) => {
                report.counters.bytes_read += sealed.len() as u64 + TRAILER_LEN as u64;
                report.counters.pack_headers += 1;
                match open_header(&key, &sealed, offset) {
                    Ok(header) => compare_header(&id, &header, &view(file, file_id, i), report),
                    Err(msg) => report.error(ObjectType::Pack, id, msg),
                }
            }
            Err(msg) => report.error(ObjectType::Pack, id, msg),
        },
    )
}

/// Reads the packs `todo` of `file` (with their sizes in storage) piece by
/// piece in order, at most `connections` pieces in flight, and checks each
/// piece on the rayon pool while the next ones download: the hash of the
/// whole pack, and every blob. The header is compared with the listing by
/// the header pass, which every pack goes through.
fn read_packs(
    repo: &Repository,
    file: &IndexFile,
    todo: Vec<(usize, PackId, u64)>,
    opts: &CheckOptions,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    let storage = repo.storage().clone();
    let key = repo.key_arc();
    let mut jobs = Vec::new();
    for (i, id, size) in todo {
        let pieces = pieces(size, &file.packs[i].blobs, opts.piece_size);
        let last = pieces.len() - 1;
        jobs.extend(pieces.into_iter().enumerate().map(|(n, piece)| PieceJob {
            pack: i,
            id,
            piece,
            first: n == 0,
            last: n == last,
        }));
    }
    let mut current: Option<PackHash> = None;
    for_each_in_order(
        repo.runtime(),
        jobs.into_iter(),
        opts.connections,
        move |job: PieceJob| {
            let storage = storage.clone();
            async move {
                let got = match job.piece.length {
                    0 => Ok(Bytes::new()),
                    len => {
                        storage
                            .get_range(FileKind::Pack, &job.id.to_hex(), job.piece.offset, len)
                            .await
                    }
                };
                (job, got)
            }
        },
        |(job, got)| {
            if job.first {
                current = Some(PackHash::new(job.id));
            }
            // None: an earlier piece of this pack could not be read.
            let Some(hash) = current.as_mut() else { return };
            match got {
                Ok(bytes) if bytes.len() as u64 == job.piece.length => {
                    report.counters.bytes_read += bytes.len() as u64;
                    hash.piece(&key, &job.piece, &bytes, &file.packs[job.pack].blobs, report);
                    if job.last {
                        report.counters.packs_read += 1;
                        if let Some(hash) = current.take() {
                            hash.finish(report);
                        }
                    }
                }
                Ok(bytes) => {
                    current = None;
                    report.error(
                        ObjectType::Pack,
                        job.id,
                        format!(
                            "cannot be read: {} bytes at {} came back as {}",
                            job.piece.length,
                            job.piece.offset,
                            bytes.len()
                        ),
                    );
                }
                Err(e) => {
                    current = None;
                    report.error(ObjectType::Pack, job.id, format!("cannot be read: {e}"));
                }
            }
        },
    )
}

/// One piece of a pack to read and check.
struct PieceJob {
    /// The pack's position in its index file.
    pack: usize,
    id: PackId,
    piece: Piece,
    first: bool,
    last: bool,
}

fn view<'a>(file: &'a IndexFile, file_id: &IndexId, i: usize) -> PackView<'a> {
    let pack = &file.packs[i];
    PackView {
        blobs: &pack.blobs,
        index_file: *file_id,
    }
}

/// Reports blobs stored in more than one pack (info: any copy may be read).
/// `copies` holds the copies the index does not read.
fn report_duplicates(index: &Index, mut copies: Vec<(BlobId, BlobKind, PackId)>, report: &mut CheckReport) {
    copies.sort_unstable();
    copies.dedup();
    let mut read: Vec<(BlobId, BlobKind, PackId)> = Vec::new();
    for run in copies.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        if let Some(loc) = index.get(run[0].1, &run[0].0) {
            read.push((run[0].0, run[0].1, loc.pack));
        }
    }
    copies.extend(read);
    copies.sort_unstable();
    copies.dedup();
    for run in copies.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        if run.len() < 2 {
            continue;
        }
        report.counters.duplicate_blobs += 1;
        let kind = match run[0].1 {
            BlobKind::Tree => ObjectType::Tree,
            BlobKind::Data => ObjectType::DataBlob,
        };
        let packs: Vec<String> = run.iter().map(|(_, _, p)| p.to_hex()).collect();
        report.info(
            kind,
            run[0].0,
            format!("is stored {} times, in packs {}", run.len(), packs.join(", ")),
        );
    }
}

/// Reports indexed blobs that no snapshot reaches (info): the first ones by
/// id one by one, then a count of the rest.
fn report_unused(index: &Index, reached: &Reached, first: FirstUnused, report: &mut CheckReport) {
    let total = index.len().saturating_sub(reached.blobs.count_ones()) as u64;
    report.counters.unused_blobs = total;
    let mut shown = first.heap.into_sorted_vec();
    shown.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    for (id, kind, pack) in &shown {
        let object = match kind {
            BlobKind::Tree => ObjectType::Tree,
            BlobKind::Data => ObjectType::DataBlob,
        };
        report.info(object, id, format!("in pack {pack} is not used by any snapshot"));
    }
    let rest = total.saturating_sub(shown.len() as u64);
    if rest > 0 {
        report.info(
            ObjectType::Repository,
            "index",
            format!("{rest} more blobs are not used by any snapshot"),
        );
    }
}
