//! Building a local table without the whole index in memory: index files
//! are decoded one at a time and their entries spilled into 256 partition
//! files by the first id byte; each partition is then sorted in memory and
//! appended to the table. Memory is bounded by one partition plus the pack
//! list, not by the number of blobs.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::disk::{HeadLists, MacKey, TableWriter};
use super::layered::marked_bits;
use super::table::{Entry, KEY_LEN};
use crate::format::index::MarkedPack;
use crate::format::BlobKind;
use crate::id::{IndexId, PackId};
use crate::repo::{RepoError, Repository, Result};

/// Partitions: one per value of the first id byte.
const PARTITIONS: usize = 256;
/// Bytes of a spilled entry: file ordinal (u32), kind (u8), second id
/// byte, id bytes 2..22, pack ordinal as listed (u32), offset, length, raw
/// length (u32 each).
const RECORD: usize = 4 + 1 + 1 + (KEY_LEN - 2) + 4 + 12;
/// Write buffer per partition.
const BUFFER: usize = 8 << 10;

/// What one index file contributed.
struct FileInfo {
    id: IndexId,
    packs: Range<u32>,
    marked: Vec<MarkedPack>,
    supersedes: Vec<IndexId>,
}

/// A directory of partition files, removed when dropped.
struct SpillDir {
    path: PathBuf,
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn io_error(path: &Path, e: io::Error) -> RepoError {
    RepoError::IndexTable {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Outcome of [`Repository::build_spilled`].
pub(super) enum Built {
    /// The table's file name in the directory.
    Table(String),
    /// The directory cannot be written: nothing was read.
    NoRoom,
}

impl Repository {
    /// Reads the index files `names` and writes their table to `dir`
    /// through partition files, holding one partition at a time.
    pub(super) fn build_spilled(&self, dir: &Path, key: &MacKey, names: Vec<String>) -> Result<Built> {
        let mut unique = [0u8; 8];
        crate::crypto::random_bytes(&mut unique)?;
        let path = dir.join(format!(".spill-{:016x}", u64::from_le_bytes(unique)));
        let made = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&path);
        if made.is_err() {
            return Ok(Built::NoRoom);
        }
        let spill = SpillDir { path };
        let part_path = |p: usize| spill.path.join(format!("{p:02x}"));
        let mut parts = Vec::with_capacity(PARTITIONS);
        for p in 0..PARTITIONS {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(part_path(p));
            match file {
                Ok(f) => parts.push(BufWriter::with_capacity(BUFFER, f)),
                Err(_) => return Ok(Built::NoRoom),
            }
        }

        let mut files: Vec<FileInfo> = Vec::new();
        let mut packs: Vec<(PackId, u64)> = Vec::new();
        let mut record = [0u8; RECORD];
        let mut write_error: Option<io::Error> = None;
        self.read_index_files(names, |id, file| {
            let ordinal = u32::try_from(files.len()).map_err(|_| RepoError::IndexTooLarge("too many files".into()))?;
            if packs.len() + file.packs.len() > u32::MAX as usize {
                return Err(RepoError::IndexTooLarge(format!("more than {} packs", u32::MAX)));
            }
            let first = packs.len() as u32;
            for pack in &file.packs {
                let pack_ordinal = packs.len() as u32;
                packs.push((pack.id, pack.size));
                for blob in &pack.blobs {
                    record[..4].copy_from_slice(&ordinal.to_le_bytes());
                    record[4] = match blob.kind {
                        BlobKind::Data => 0,
                        BlobKind::Tree => 1,
                    };
                    record[5] = blob.id.0[1];
                    record[6..26].copy_from_slice(&blob.id.0[2..KEY_LEN]);
                    record[26..30].copy_from_slice(&pack_ordinal.to_le_bytes());
                    record[30..34].copy_from_slice(&blob.offset.to_le_bytes());
                    record[34..38].copy_from_slice(&blob.length.to_le_bytes());
                    record[38..42].copy_from_slice(&blob.raw_length.to_le_bytes());
                    if let Err(e) = parts[usize::from(blob.id.0[0])].write_all(&record) {
                        write_error = Some(e);
                        return Ok(false);
                    }
                }
            }
            files.push(FileInfo {
                id,
                packs: first..packs.len() as u32,
                marked: file.marked,
                supersedes: file.supersedes,
            });
            Ok(true)
        })?;
        if let Some(e) = write_error {
            return Err(io_error(&spill.path, e));
        }
        for part in parts {
            part.into_inner().map_err(|e| io_error(&spill.path, e.into_error()))?;
        }

        // The live files, the packs they name (sorted, each once, with the
        // size the lowest file id gives) and their marks, as the in-memory
        // builder decides them.
        let superseded: HashSet<IndexId> = files.iter().flat_map(|f| f.supersedes.iter().copied()).collect();
        let mut live: Vec<&FileInfo> = files.iter().filter(|f| !superseded.contains(&f.id)).collect();
        live.sort_by_key(|f| f.id);
        let mut is_live = vec![false; files.len()];
        for (i, f) in files.iter().enumerate() {
            is_live[i] = !superseded.contains(&f.id);
        }
        let mut order: Vec<u32> = live.iter().flat_map(|f| f.packs.clone()).collect();
        order.sort_by_key(|&o| packs[o as usize].0);
        let mut renumber = vec![u32::MAX; packs.len()];
        let (mut pack_ids, mut pack_sizes) = (Vec::with_capacity(order.len()), Vec::with_capacity(order.len()));
        for &o in &order {
            let (id, size) = packs[o as usize];
            if pack_ids.last() != Some(&id) {
                pack_ids.push(id);
                pack_sizes.push(size);
            }
            renumber[o as usize] = (pack_ids.len() - 1) as u32;
        }
        drop(order);
        drop(packs);
        let mut marked: Vec<MarkedPack> = live.iter().flat_map(|f| f.marked.iter().copied()).collect();
        marked.sort_unstable_by_key(|m| (m.id, m.marked_ns));
        marked.dedup();
        let bits = marked_bits(&pack_ids, &marked);
        let is_marked = |p: u32| bits.get(p as usize / 64).is_some_and(|w| w & (1 << (p % 64)) != 0);
        let mut live_ids: Vec<IndexId> = live.iter().map(|f| f.id).collect();
        live_ids.dedup();
        let mut passed_over: Vec<IndexId> = files
            .iter()
            .map(|f| f.id)
            .filter(|id| superseded.contains(id))
            .collect();
        passed_over.sort_unstable();
        passed_over.dedup();
        drop(files);
        let mut lists = HeadLists {
            files: live_ids,
            passed_over,
            marked,
            packs: pack_ids,
            pack_sizes,
            duplicates: 0,
        };

        let mut writer = TableWriter::create(dir, key.clone(), &lists).map_err(|e| io_error(dir, e))?;
        let mut bytes = Vec::new();
        let mut entries: Vec<(u8, Entry)> = Vec::new();
        let mut bucket: Vec<Entry> = Vec::new();
        let mut duplicates = 0u64;
        for kind in [0u8, 1] {
            for p in 0..PARTITIONS {
                bytes.clear();
                File::open(part_path(p))
                    .and_then(|mut f| f.read_to_end(&mut bytes))
                    .map_err(|e| io_error(&spill.path, e))?;
                entries.clear();
                for r in bytes.chunks_exact(RECORD) {
                    if r[4] != kind || !is_live[u32_at(r, 0) as usize] {
                        continue;
                    }
                    let mut key = [0u8; KEY_LEN - 2];
                    key.copy_from_slice(&r[6..26]);
                    entries.push((
                        r[5],
                        Entry {
                            key,
                            pack: renumber[u32_at(r, 26) as usize],
                            offset: u32_at(r, 30),
                            length: u32_at(r, 34),
                            raw_length: u32_at(r, 38),
                        },
                    ));
                }
                entries.sort_unstable();
                let mut next = 0usize;
                for low in 0..=255u8 {
                    bucket.clear();
                    let mut r = next;
                    while r < entries.len() && entries[r].0 == low {
                        let key = entries[r].1.key;
                        let mut end = r + 1;
                        while end < entries.len() && entries[end].0 == low && entries[end].1.key == key {
                            end += 1;
                        }
                        let chosen = (r..end).find(|&i| !is_marked(entries[i].1.pack)).unwrap_or(r);
                        bucket.push(entries[chosen].1);
                        duplicates += (end - r - 1) as u64;
                        r = end;
                    }
                    next = r;
                    writer.push_bucket(&bucket).map_err(|e| io_error(dir, e))?;
                }
            }
        }
        lists.duplicates = duplicates;
        let table = writer.finish(&lists).map_err(|e| io_error(dir, e))?;
        drop(spill);
        Ok(Built::Table(
            table
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
                .unwrap_or_default(),
        ))
    }
}
