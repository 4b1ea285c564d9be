//! `repair index`: rebuild the index from the packs' own headers.
//!
//! Every pack in storage is listed and its header read (two ranged reads, or
//! the whole pack with `read_all_packs`, which also checks every blob against
//! its id and leaves out those that fail). The new index files name every
//! readable pack and supersede every index file that existed before; once
//! they are durable the old files are deleted (format spec §13, "superseding
//! index first"). A pack whose header cannot be read is reported by id and
//! left alone: it is neither indexed nor deleted.
//!
//! The new index lists every readable pack as live, including packs that a
//! previous prune had marked: the next prune marks them again, which only
//! delays their deletion.

use std::sync::Arc;

use bytes::Bytes;

use super::error::{MaintenanceError, Result};
use crate::crypto::MasterKey;
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{header_location, PackEntry, PackHeader, TRAILER_LEN};
use crate::format::{limits, BlobKind};
use crate::id::{IndexId, PackId};
use crate::repo::saver::INDEX_BATCH;
use crate::repo::{LockWatch, Repository};
use crate::storage::{DynStorage, FileKind, Keep};

/// How to rebuild the index.
#[derive(Debug, Clone)]
pub struct RepairIndexOptions {
    /// Packs read at once.
    pub connections: usize,
    /// Read whole packs and verify every blob, not just the headers.
    pub read_all_packs: bool,
    /// Read everything but write and delete nothing.
    pub dry_run: bool,
    /// The lock repair runs under: checked before it writes and before it
    /// deletes.
    pub lock: Option<LockWatch>,
}

impl Default for RepairIndexOptions {
    fn default() -> Self {
        Self {
            connections: 2,
            read_all_packs: false,
            dry_run: false,
            lock: None,
        }
    }
}

fn ensure_held(lock: Option<&LockWatch>) -> Result<()> {
    if let Some(lock) = lock {
        lock.ensure_held()?;
    }
    Ok(())
}

/// Something wrong with one pack or blob, found while rebuilding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PackProblem {
    /// The pack's name in storage.
    pub pack: String,
    /// The blob at fault, if the problem is one blob (`read_all_packs`).
    pub blob: Option<String>,
    pub message: String,
}

/// What a repair of the index did.
#[derive(Debug, Clone, Default)]
pub struct RepairIndexOutcome {
    /// Packs in storage.
    pub packs: u64,
    /// Packs whose header was read and that the new index names.
    pub packs_indexed: u64,
    /// Blobs the new index names.
    pub blobs: u64,
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// Packs left out (and left alone) and blobs left out.
    pub problems: Vec<PackProblem>,
    /// New index files (empty in a dry run).
    pub written: Vec<IndexId>,
    /// Old index files deleted (would be deleted, in a dry run).
    pub deleted: u64,
}

/// The header of one pack, or why it cannot be read.
type Read = (
    String,
    u64,
    std::result::Result<(PackHeader, Vec<PackProblem>), String>,
    u64,
);

/// Rebuilds the index of `repo` from its pack headers.
pub fn repair_index(repo: &Repository, opts: &RepairIndexOptions) -> Result<RepairIndexOutcome> {
    let old = repo.block_on(repo.storage().list(FileKind::Index))?;
    let mut packs = repo.block_on(repo.storage().list(FileKind::Pack))?;
    packs.sort();
    let mut outcome = RepairIndexOutcome {
        packs: packs.len() as u64,
        ..RepairIndexOutcome::default()
    };
    let storage = repo.storage().clone();
    let key = repo.key_arc();
    let limit = opts.connections.max(1);
    let read_all = opts.read_all_packs;
    let results: Vec<Read> = repo.block_on(async move {
        let mut out = Vec::new();
        let mut running = tokio::task::JoinSet::new();
        let mut todo = packs.into_iter();
        loop {
            while running.len() < limit {
                let Some(info) = todo.next() else { break };
                let storage = storage.clone();
                let key = key.clone();
                running.spawn(async move {
                    let (result, read) = read_pack(&storage, &key, &info.name, info.size, read_all).await;
                    (info.name, info.size, result, read)
                });
            }
            match running.join_next().await {
                None => break,
                Some(joined) => out.push(joined.map_err(|e| MaintenanceError::Task(e.to_string()))?),
            }
        }
        Ok::<_, MaintenanceError>(out)
    })?;
    let mut index_packs = Vec::new();
    for (name, size, result, read) in results {
        outcome.bytes_read += read;
        let id: PackId = match name.parse() {
            Ok(id) => id,
            Err(_) => {
                outcome.problems.push(PackProblem {
                    pack: name,
                    blob: None,
                    message: "is not named by a pack id; left alone".into(),
                });
                continue;
            }
        };
        match result {
            Ok((header, problems)) => {
                outcome.problems.extend(problems);
                outcome.blobs += header.entries.len() as u64;
                outcome.packs_indexed += 1;
                index_packs.push(IndexPack {
                    id,
                    size,
                    blobs: header.entries,
                });
            }
            Err(message) => outcome.problems.push(PackProblem {
                pack: name,
                blob: None,
                message: format!("{message}; not indexed, left alone"),
            }),
        }
    }
    index_packs.sort_by_key(|p| p.id);
    outcome
        .problems
        .sort_by(|a, b| (&a.pack, &a.blob).cmp(&(&b.pack, &b.blob)));
    let old_ids: Vec<IndexId> = old.iter().filter_map(|info| info.name.parse().ok()).collect();
    outcome.deleted = old_ids.len() as u64;
    if opts.dry_run || (index_packs.is_empty() && old_ids.is_empty()) {
        return Ok(outcome);
    }
    let mut files: Vec<IndexFile> = index_packs
        .chunks(INDEX_BATCH)
        .map(|chunk| IndexFile {
            supersedes: Vec::new(),
            packs: chunk.to_vec(),
            marked: Vec::new(),
        })
        .collect();
    if files.is_empty() {
        // No pack left: an empty file still supersedes the old ones.
        files.push(IndexFile::default());
    }
    // The last file written supersedes every old one: until it is durable
    // the old files stay live, so a crash at any point loses nothing.
    if let Some(last) = files.last_mut() {
        last.supersedes = old_ids.clone();
    }
    ensure_held(opts.lock.as_ref())?;
    for file in &files {
        let name = repo.save_file(FileKind::Index, &file.encode())?;
        outcome.written.push(
            name.parse()
                .map_err(|_| MaintenanceError::Task(format!("new index file has a malformed name {name}")))?,
        );
    }
    ensure_held(opts.lock.as_ref())?;
    for id in &old_ids {
        if !outcome.written.contains(id) {
            repo.block_on(repo.storage().delete(FileKind::Index, &id.to_hex()))?;
        }
    }
    Ok(outcome)
}

/// Reads one pack's header (and with `all`, every blob); returns it with the
/// problems of single blobs, or why the pack cannot be used, and the number
/// of bytes read.
async fn read_pack(
    storage: &DynStorage,
    key: &Arc<MasterKey>,
    name: &str,
    size: u64,
    all: bool,
) -> (std::result::Result<(PackHeader, Vec<PackProblem>), String>, u64) {
    if all {
        let bytes = match storage.get(FileKind::Pack, name).await {
            Ok(b) => b,
            Err(e) => return (Err(format!("pack {name} cannot be read: {e}")), 0),
        };
        let read = bytes.len() as u64;
        (verify_whole_pack(key, name, &bytes), read)
    } else {
        match read_header(storage, key, name, size).await {
            Ok((header, read)) => (Ok((header, Vec::new())), read),
            Err(message) => (Err(message), 0),
        }
    }
}

/// Reads the trailer and the sealed header of a pack with ranged reads.
async fn read_header(
    storage: &DynStorage,
    key: &MasterKey,
    name: &str,
    size: u64,
) -> std::result::Result<(PackHeader, u64), String> {
    if size < TRAILER_LEN as u64 {
        return Err(format!("pack {name} is only {size} bytes long"));
    }
    let trailer = storage
        .get_range_keep(
            FileKind::Pack,
            name,
            size - TRAILER_LEN as u64,
            TRAILER_LEN as u64,
            Keep::Range,
        )
        .await
        .map_err(|e| format!("pack {name}: cannot read its header: {e}"))?;
    let trailer: [u8; TRAILER_LEN] = trailer
        .as_ref()
        .try_into()
        .map_err(|_| format!("pack {name}: short read of its trailer"))?;
    let (offset, len) = header_location(size, trailer).map_err(|e| format!("pack {name}: {e}"))?;
    let sealed = storage
        .get_range_keep(FileKind::Pack, name, offset, u64::from(len), Keep::Range)
        .await
        .map_err(|e| format!("pack {name}: cannot read its header: {e}"))?;
    let header = open_header(key, name, &sealed, offset)?;
    Ok((header, sealed.len() as u64 + TRAILER_LEN as u64))
}

/// Opens and checks a sealed header found at `offset` (see
/// [`crate::repo::packer::open_header`]), naming the pack in the message.
fn open_header(key: &MasterKey, name: &str, sealed: &[u8], offset: u64) -> std::result::Result<PackHeader, String> {
    crate::repo::packer::open_header(key, sealed, offset).map_err(|e| format!("pack {name}: {e}"))
}

/// Checks a whole pack: its header, and every blob against its id. Blobs
/// that fail are left out of the returned header and reported.
fn verify_whole_pack(
    key: &MasterKey,
    name: &str,
    bytes: &Bytes,
) -> std::result::Result<(PackHeader, Vec<PackProblem>), String> {
    let mut header = crate::repo::packer::header_of_pack(key, bytes).map_err(|e| format!("pack {name}: {e}"))?;
    let mut problems = Vec::new();
    if blake3::hash(bytes).to_hex().as_str() != name {
        problems.push(PackProblem {
            pack: name.to_owned(),
            blob: None,
            message: "its contents do not hash to its name; only blobs that verify are indexed".into(),
        });
    }
    header.entries.retain(|entry| match verify_blob(key, bytes, entry) {
        Ok(()) => true,
        Err(message) => {
            problems.push(PackProblem {
                pack: name.to_owned(),
                blob: Some(entry.id.to_hex()),
                message,
            });
            false
        }
    });
    if header.entries.is_empty() {
        return Err(format!("pack {name}: none of its blobs verifies"));
    }
    Ok((header, problems))
}

/// Opens one blob of a pack read whole and checks it against its id.
fn verify_blob(key: &MasterKey, bytes: &[u8], entry: &PackEntry) -> std::result::Result<(), String> {
    let sealed = bytes
        .get(entry.offset as usize..entry.end() as usize)
        .ok_or_else(|| format!("blob at offset {} runs past the end of the pack", entry.offset))?;
    let limit = match entry.kind {
        BlobKind::Data => limits::MAX_BLOB,
        BlobKind::Tree => limits::MAX_OBJECT,
    };
    let plain = key
        .open(entry.kind.object_kind(), sealed, limit, Some(entry.raw_length as usize))
        .map_err(|e| format!("blob at offset {} is corrupt: {e}; not indexed", entry.offset))?;
    if key.blob_id(&plain) != entry.id.0 {
        return Err(format!(
            "blob at offset {} does not match its id; not indexed",
            entry.offset
        ));
    }
    Ok(())
}
